//! Accumulates events, processes and strings into one self-contained [`Chunk`].

use std::collections::HashMap;

use crate::event::{Chunk, Event, EventColumns, PathTable, Process, NONE};

/// Builds a chunk: interns strings, collects process states and events.
#[derive(Default)]
pub struct ChunkBuilder {
    chunk: Chunk,
    events: Vec<Event>,
    paths: Vec<String>,
    string_ids: HashMap<String, u32>,
    path_ids: HashMap<String, u32>,
}

impl ChunkBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the id of `s` in this chunk's string table, adding it if needed.
    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.string_ids.get(s) {
            return id;
        }
        let id = self.chunk.strings.len() as u32;
        self.chunk.strings.push(s.to_owned());
        self.string_ids.insert(s.to_owned(), id);
        id
    }

    /// Interns an optional string, mapping `None` to [`NONE`].
    pub fn intern_opt(&mut self, s: Option<&str>) -> u32 {
        s.map_or(NONE, |s| self.intern(s))
    }

    /// Returns the id of event path `p` in this chunk's path table, adding it if needed.
    ///
    /// The id is final only for events of this builder: [`Self::take`] renumbers paths in
    /// order of first use, which the stored path references encode in almost no space.
    pub fn intern_path(&mut self, p: &str) -> u32 {
        if let Some(&id) = self.path_ids.get(p) {
            return id;
        }
        let id = self.paths.len() as u32;
        self.paths.push(p.to_owned());
        self.path_ids.insert(p.to_owned(), id);
        id
    }

    /// Interns an optional event path, mapping `None` to [`NONE`].
    pub fn intern_path_opt(&mut self, p: Option<&str>) -> u32 {
        p.map_or(NONE, |p| self.intern_path(p))
    }

    /// Adds a process state and returns its index (its parent must already be added).
    pub fn add_process(&mut self, p: Process) -> u32 {
        self.chunk.processes.push(p);
        self.chunk.processes.len() as u32 - 1
    }

    /// Appends an event.
    pub fn push(&mut self, e: Event) {
        self.events.push(e);
    }

    /// Records kernel drops that happened while this chunk was open.
    pub fn add_drops(&mut self, n: u64) {
        self.chunk.drops += n;
    }

    /// Number of events so far.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True when no event and no drop was added.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.chunk.drops == 0
    }

    /// Takes the finished chunk and resets the builder.
    pub fn take(&mut self) -> Chunk {
        self.string_ids.clear();
        self.path_ids.clear();
        let mut chunk = std::mem::take(&mut self.chunk);
        // Number paths in order of first use (first path before second), which the stored path
        // references need, whatever order they were interned in; unused paths are dropped.
        let mut renumber = vec![NONE; self.paths.len()];
        let mut used = Vec::with_capacity(self.paths.len());
        for e in &mut self.events {
            for id in [&mut e.path, &mut e.path2] {
                if let Some(slot) = renumber.get_mut(*id as usize) {
                    if *slot == NONE {
                        *slot = used.len() as u32;
                        used.push(std::mem::take(&mut self.paths[*id as usize]));
                    }
                    *id = *slot;
                }
            }
        }
        chunk.events = EventColumns::from_events(&self.events);
        chunk.paths = PathTable::from_paths(&used);
        self.events.clear();
        self.paths.clear();
        chunk
    }
}
