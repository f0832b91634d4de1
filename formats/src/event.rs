//! The event model stored in archive chunks: a string table, a process table and events.
//!
//! A chunk is self-contained: every process an event references is in its process table,
//! with its ancestors, so any chunk can be analyzed alone.

use rkyv::{Archive, Deserialize, Serialize};

/// Sentinel for "no string" / "no process" indices.
pub const NONE: u32 = u32::MAX;

/// One independently decodable unit of a recording.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Chunk {
    /// Interned strings; events and processes refer to them by index.
    pub strings: Vec<String>,
    /// Process states referenced by events (and their ancestors).
    pub processes: Vec<Process>,
    /// Events in capture order, one column per field.
    pub events: EventColumns,
    /// Events the kernel could not deliver while this chunk was being filled.
    pub drops: u64,
}

/// Events stored column by column: similar values sit together, so they compress well and
/// decode without per-event parsing. All columns have the same length.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct EventColumns {
    /// Smallest timestamp of the chunk (unix ns); `ts_off` is relative to it.
    pub ts_base: u64,
    /// Timestamp minus `ts_base`.
    pub ts_off: Vec<u64>,
    /// See [`Event::tid`].
    pub tid: Vec<u32>,
    /// See [`Event::process`].
    pub process: Vec<u32>,
    /// See [`Event::etype`].
    pub etype: Vec<u16>,
    /// See [`Event::ret`].
    pub ret: Vec<i64>,
    /// See [`Event::flags`].
    pub flags: Vec<u32>,
    /// See [`Event::mode`].
    pub mode: Vec<u32>,
    /// See [`Event::dirfd`].
    pub dirfd: Vec<i32>,
    /// See [`Event::path`].
    pub path: Vec<u32>,
    /// See [`Event::path2`].
    pub path2: Vec<u32>,
}

impl EventColumns {
    /// Number of events.
    pub fn len(&self) -> usize {
        self.ts_off.len()
    }

    /// True when there are no events.
    pub fn is_empty(&self) -> bool {
        self.ts_off.is_empty()
    }

    /// Event `i` (panics when out of range, like slice indexing).
    pub fn get(&self, i: usize) -> Event {
        Event {
            ts_ns: self.ts_base + self.ts_off[i],
            tid: self.tid[i],
            process: self.process[i],
            etype: self.etype[i],
            ret: self.ret[i],
            flags: self.flags[i],
            mode: self.mode[i],
            dirfd: self.dirfd[i],
            path: self.path[i],
            path2: self.path2[i],
        }
    }

    /// All events, in order.
    pub fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Builds the columns from events.
    pub fn from_events(events: &[Event]) -> Self {
        let ts_base = events.iter().map(|e| e.ts_ns).min().unwrap_or(0);
        Self {
            ts_base,
            ts_off: events.iter().map(|e| e.ts_ns - ts_base).collect(),
            tid: events.iter().map(|e| e.tid).collect(),
            process: events.iter().map(|e| e.process).collect(),
            etype: events.iter().map(|e| e.etype).collect(),
            ret: events.iter().map(|e| e.ret).collect(),
            flags: events.iter().map(|e| e.flags).collect(),
            mode: events.iter().map(|e| e.mode).collect(),
            dirfd: events.iter().map(|e| e.dirfd).collect(),
            path: events.iter().map(|e| e.path).collect(),
            path2: events.iter().map(|e| e.path2).collect(),
        }
    }
}

/// A process (thread group) as it was when the referencing events happened.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Process {
    /// Thread-group id.
    pub pid: u32,
    /// Parent's thread-group id (0 when unknown).
    pub ppid: u32,
    /// Index of the parent's entry in this chunk's process table, or [`NONE`].
    pub parent: u32,
    /// Real user id.
    pub uid: u32,
    /// Real group id.
    pub gid: u32,
    /// `comm` (string id): Falco's `proc.name`.
    pub name: u32,
    /// `argv[0]` (string id): Falco's `proc.exe`.
    pub exe: u32,
    /// Full executable path (string id): Falco's `proc.exepath`.
    pub exepath: u32,
    /// `argv[1..]` joined with NUL bytes (string id).
    pub args: u32,
    /// Current working directory (string id).
    pub cwd: u32,
    /// Start time of the process image (unix ns; 0 when unknown).
    pub start_ns: u64,
}

/// One recorded event (the row view of [`EventColumns`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Wall-clock time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// Thread id.
    pub tid: u32,
    /// Index into the chunk's process table.
    pub process: u32,
    /// A [`crate::syscall::EventType`] value.
    pub etype: u16,
    /// Return value (syscalls), child tid (`clone`), 0 otherwise.
    pub ret: i64,
    /// Open flags (x86_64 `O_*` values), unlink/rename flags, or 0.
    pub flags: u32,
    /// Mode argument (open/creat/mkdir), or 0.
    pub mode: u32,
    /// Directory fd argument (`*at` syscalls) or fd argument (`fchdir`), else -100 (`AT_FDCWD`).
    pub dirfd: i32,
    /// First path argument, resolved to absolute (string id or [`NONE`]).
    pub path: u32,
    /// Second path argument (rename target), resolved to absolute (string id or [`NONE`]).
    pub path2: u32,
}

/// Linux open flags (x86_64 values, used in archives on every architecture).
pub mod oflags {
    /// Access mode mask.
    pub const O_ACCMODE: u32 = 0o3;
    /// Read only.
    pub const O_RDONLY: u32 = 0;
    /// Write only.
    pub const O_WRONLY: u32 = 0o1;
    /// Read and write.
    pub const O_RDWR: u32 = 0o2;
    /// Create if missing.
    pub const O_CREAT: u32 = 0o100;
    /// Fail if it exists.
    pub const O_EXCL: u32 = 0o200;
    /// Truncate.
    pub const O_TRUNC: u32 = 0o1000;
    /// Append.
    pub const O_APPEND: u32 = 0o2000;
    /// Must be a directory.
    pub const O_DIRECTORY: u32 = 0o200000;
    /// Close on exec.
    pub const O_CLOEXEC: u32 = 0o2000000;
    /// Unnamed temporary file.
    pub const O_TMPFILE: u32 = 0o20200000;
}

impl ArchivedEventColumns {
    /// Number of events (columns are validated to have equal lengths when a chunk is decoded).
    pub fn len(&self) -> usize {
        self.ts_off.len()
    }

    /// True when there are no events.
    pub fn is_empty(&self) -> bool {
        self.ts_off.is_empty()
    }

    /// Event `i`, materialized from the columns; `None` when out of range.
    pub fn get(&self, i: usize) -> Option<Event> {
        Some(Event {
            ts_ns: self.ts_base.to_native().wrapping_add(self.ts_off.get(i)?.to_native()),
            tid: self.tid.get(i)?.to_native(),
            process: self.process.get(i)?.to_native(),
            etype: self.etype.get(i)?.to_native(),
            ret: self.ret.get(i)?.to_native(),
            flags: self.flags.get(i)?.to_native(),
            mode: self.mode.get(i)?.to_native(),
            dirfd: self.dirfd.get(i)?.to_native(),
            path: self.path.get(i)?.to_native(),
            path2: self.path2.get(i)?.to_native(),
        })
    }

    /// All events, in order.
    pub fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        (0..self.len()).map_while(|i| self.get(i))
    }

    /// True when every column has the same length.
    pub fn is_consistent(&self) -> bool {
        let n = self.ts_off.len();
        [
            self.tid.len(),
            self.process.len(),
            self.etype.len(),
            self.ret.len(),
            self.flags.len(),
            self.mode.len(),
            self.dirfd.len(),
            self.path.len(),
            self.path2.len(),
        ]
        .iter()
        .all(|&l| l == n)
    }
}

impl ArchivedChunk {
    /// The string with id `id`, or `None` for [`NONE`] (ids are validated when a chunk is decoded).
    pub fn string(&self, id: u32) -> Option<&str> {
        self.strings.get(id as usize).map(|s| s.as_str())
    }

    /// The process entry at `idx` (validated when a chunk is decoded).
    pub fn process(&self, idx: u32) -> Option<&ArchivedProcess> {
        self.processes.get(idx as usize)
    }
}
