//! Turns events into sealed chunks and rotating segment files in the spool directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use lanner_formats::archive::{ChunkBuilder, SegmentMeta, SegmentWriter, SEGMENT_EXTENSION};
use lanner_formats::event::{Event, Process, NONE};

use crate::state::{EventDraft, ProcessTable};

/// When to seal chunks and rotate segments.
#[derive(Debug, Clone)]
pub struct SpoolLimits {
    /// Seal a chunk after this many events.
    pub chunk_events: usize,
    /// Seal a non-empty chunk after this long.
    pub chunk_interval: Duration,
    /// Start a new segment once the current one reaches this size.
    pub segment_bytes: u64,
    /// zstd level.
    pub zstd_level: i32,
}

/// Writes one capture run into a spool directory.
pub struct Spool {
    dir: PathBuf,
    limits: SpoolLimits,
    meta: SegmentMeta,
    builder: ChunkBuilder,
    in_chunk: HashMap<(u32, u64), u32>,
    chunk_opened: Instant,
    writer: Option<SegmentWriter>,
    /// Segments finished so far.
    pub finished: Vec<PathBuf>,
    /// Events written so far.
    pub events_written: u64,
}

impl Spool {
    /// Prepares a spool in `dir` (created if missing) for a capture described by `meta`.
    pub fn new(dir: &Path, limits: SpoolLimits, meta: SegmentMeta) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating spool directory {}", dir.display()))?;
        Ok(Self {
            dir: dir.to_owned(),
            limits,
            meta,
            builder: ChunkBuilder::new(),
            in_chunk: HashMap::new(),
            chunk_opened: Instant::now(),
            writer: None,
            finished: Vec::new(),
            events_written: 0,
        })
    }

    /// Adds one event; its process (and ancestors) are copied into the chunk on first use.
    pub fn push(&mut self, d: &EventDraft, table: &ProcessTable) {
        if self.builder.is_empty() {
            self.chunk_opened = Instant::now();
        }
        let process = self.intern_process(d.pid, table);
        let path = self.builder.intern_path_opt(d.path.as_deref());
        let path2 = self.builder.intern_path_opt(d.path2.as_deref());
        self.builder.push(Event {
            ts_ns: d.ts_ns,
            tid: d.tid,
            process,
            etype: d.etype as u16,
            ret: d.ret,
            flags: d.flags,
            mode: d.mode,
            dirfd: d.dirfd,
            path,
            path2,
        });
    }

    /// Records kernel drops in the open chunk.
    pub fn add_drops(&mut self, n: u64) {
        if n > 0 {
            if self.builder.is_empty() {
                self.chunk_opened = Instant::now();
            }
            self.builder.add_drops(n);
        }
    }

    fn intern_process(&mut self, pid: u32, table: &ProcessTable) -> u32 {
        // Walk up to the oldest ancestor not yet in the chunk, then add downwards.
        let mut chain = Vec::new();
        let mut cur = pid;
        let mut parent_idx = NONE;
        while let Some(p) = table.get(cur) {
            if let Some(&idx) = self.in_chunk.get(&(p.pid, p.version)) {
                parent_idx = idx;
                break;
            }
            chain.push(p);
            if p.ppid == 0 || p.ppid == p.pid || chain.len() >= 64 {
                break;
            }
            cur = p.ppid;
        }
        if chain.is_empty() && parent_idx == NONE {
            // Unknown process: keep the event, with a minimal entry.
            let empty = self.builder.intern("");
            let idx = self.builder.add_process(Process {
                pid,
                ppid: 0,
                parent: NONE,
                uid: 0,
                gid: 0,
                name: empty,
                exe: empty,
                exepath: empty,
                args: empty,
                cwd: empty,
                start_ns: 0,
                container_id: empty,
                tty: 0,
                loginuid: u32::MAX,
            });
            return idx;
        }
        let mut idx = parent_idx;
        for p in chain.into_iter().rev() {
            let b = &mut self.builder;
            let name = b.intern(&p.comm);
            let exe = b.intern(&p.exe);
            let exepath = b.intern(&p.exepath);
            let args = b.intern(&p.args.join("\0"));
            let cwd = b.intern(&p.cwd);
            let container_id = b.intern(&p.container_id);
            idx = b.add_process(Process {
                pid: p.pid,
                ppid: p.ppid,
                parent: idx,
                uid: p.uid,
                gid: p.gid,
                name,
                exe,
                exepath,
                args,
                cwd,
                start_ns: p.start_ns,
                container_id,
                tty: p.tty,
                loginuid: p.loginuid,
            });
            self.in_chunk.insert((p.pid, p.version), idx);
        }
        idx
    }

    /// True when the open chunk should be sealed now.
    pub fn due(&self) -> bool {
        !self.builder.is_empty()
            && (self.builder.len() >= self.limits.chunk_events
                || self.chunk_opened.elapsed() >= self.limits.chunk_interval)
    }

    /// Seals the open chunk (if any) into the current segment, rotating segments by size.
    pub fn seal(&mut self) -> Result<()> {
        if self.builder.is_empty() {
            return Ok(());
        }
        let chunk = self.builder.take();
        self.in_chunk.clear();
        if self.writer.is_none() {
            self.open_segment()?;
        }
        let w = self.writer.as_mut().expect("segment open");
        w.append(&chunk).context("writing chunk")?;
        self.events_written += chunk.events.len() as u64;
        if w.len() >= self.limits.segment_bytes {
            self.close_segment()?;
        }
        Ok(())
    }

    fn open_segment(&mut self) -> Result<()> {
        let start = chrono::DateTime::from_timestamp_nanos(self.meta.created_ns as i64);
        let name = format!(
            "lanner-{}-{}-{:06}.{SEGMENT_EXTENSION}",
            start.format("%Y%m%dT%H%M%SZ"),
            &self.meta.capture_id[..8.min(self.meta.capture_id.len())],
            self.meta.sequence
        );
        let path = self.dir.join(name);
        self.writer = Some(SegmentWriter::create(&path, &self.meta, self.limits.zstd_level)?);
        Ok(())
    }

    fn close_segment(&mut self) -> Result<()> {
        if let Some(w) = self.writer.take() {
            let chain = w.chain_hex();
            self.finished.push(w.finish()?);
            self.meta.sequence += 1;
            self.meta.prev_chain = chain;
            self.meta.created_ns = now_ns();
        }
        Ok(())
    }

    /// Seals the open chunk and the current segment (footer written).
    pub fn close(mut self) -> Result<Vec<PathBuf>> {
        self.seal()?;
        self.close_segment()?;
        Ok(self.finished)
    }
}

/// Wall-clock now, unix ns.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}
