//! The event model stored in archive chunks: a string table, a process table and events.
//!
//! A chunk is self-contained: every process an event references is in its process table,
//! with its ancestors, so any chunk can be analyzed alone.

use rkyv::{Archive, Deserialize, Serialize};

/// Sentinel for "no string" / "no process" indices.
pub const NONE: u32 = u32::MAX;

/// Stored as an event's return value when the syscall's result was not recorded (generic
/// events of imported scap captures).
pub const RET_UNKNOWN: i64 = i64::MIN;

/// One independently decodable unit of a recording.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Chunk {
    /// Interned process strings (names, executables, arguments, cwd).
    pub strings: Vec<String>,
    /// Interned event paths, in order of first use by an event (see [`EventColumns::path`]).
    pub paths: PathTable,
    /// Process states referenced by events (and their ancestors).
    pub processes: Vec<Process>,
    /// Events in capture order, one column per field.
    pub events: EventColumns,
    /// Events the kernel could not deliver while this chunk was being filled.
    pub drops: u64,
}

/// Event paths, front-coded: each path stores how many leading bytes it shares with the
/// previous one and its own remainder. Paths arrive in traversal order (a `find`, a build), so
/// most of each path is shared; the table is expanded once per chunk when it is decoded.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct PathTable {
    /// Bytes shared with the previous path.
    pub shared: Vec<u16>,
    /// Length in bytes of each path's own remainder.
    pub suffix_len: Vec<u32>,
    /// All remainders, concatenated.
    pub suffixes: String,
}

impl PathTable {
    /// Front-codes `paths`.
    pub fn from_paths(paths: &[String]) -> Self {
        let mut t = Self::default();
        let mut prev = "";
        for p in paths {
            let mut shared = prev.bytes().zip(p.bytes()).take_while(|(a, b)| a == b).count().min(u16::MAX as usize);
            while !p.is_char_boundary(shared) {
                shared -= 1;
            }
            t.shared.push(shared as u16);
            t.suffix_len.push((p.len() - shared) as u32);
            t.suffixes.push_str(&p[shared..]);
            prev = p;
        }
        t
    }

    /// Number of paths.
    pub fn len(&self) -> usize {
        self.shared.len()
    }

    /// True when there are no paths.
    pub fn is_empty(&self) -> bool {
        self.shared.is_empty()
    }

    /// The paths, expanded.
    pub fn to_vec(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(self.len());
        let mut at = 0usize;
        for (i, (&sh, &len)) in self.shared.iter().zip(&self.suffix_len).enumerate() {
            let mut p = if i == 0 { String::new() } else { out[i - 1][..sh as usize].to_owned() };
            p.push_str(&self.suffixes[at..at + len as usize]);
            at += len as usize;
            out.push(p);
        }
        out
    }
}

/// Expanded event paths of one decoded chunk.
#[derive(Debug, Default, Clone)]
pub struct PathIndex {
    buf: String,
    ends: Vec<u32>,
}

impl PathIndex {
    /// Path `id`, or `None` for [`NONE`] or an unknown id.
    pub fn get(&self, id: u32) -> Option<&str> {
        let i = id as usize;
        let end = *self.ends.get(i)? as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        Some(&self.buf[start..end])
    }

    /// Number of paths.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when there are no paths.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

impl ArchivedPathTable {
    /// Number of paths.
    pub fn len(&self) -> usize {
        self.shared.len()
    }

    /// True when there are no paths.
    pub fn is_empty(&self) -> bool {
        self.shared.is_empty()
    }

    /// Expands the table, checking every length against the data (untrusted input).
    pub fn expand(&self) -> Result<PathIndex, String> {
        if self.shared.len() != self.suffix_len.len() {
            return Err("path table columns have different lengths".into());
        }
        let suffixes = self.suffixes.as_str();
        let mut out =
            PathIndex { buf: String::with_capacity(suffixes.len() * 4), ends: Vec::with_capacity(self.len()) };
        let (mut at, mut prev_start) = (0usize, 0usize);
        for (i, (sh, len)) in self.shared.iter().zip(self.suffix_len.iter()).enumerate() {
            let (sh, len) = (sh.to_native() as usize, len.to_native() as usize);
            let start = out.buf.len();
            let prev = &out.buf[prev_start..start];
            if sh > prev.len() || !prev.is_char_boundary(sh) {
                return Err(format!("path {i} shares {sh} bytes with a {}-byte predecessor", prev.len()));
            }
            let suffix = at
                .checked_add(len)
                .and_then(|end| suffixes.get(at..end))
                .ok_or_else(|| format!("path {i}: remainder of {len} bytes at {at} is outside the table"))?;
            out.buf.extend_from_within(prev_start..prev_start + sh);
            out.buf.push_str(suffix);
            at += len;
            prev_start = start;
            out.ends.push(u32::try_from(out.buf.len()).map_err(|_| "path table too large".to_owned())?);
        }
        if at != suffixes.len() {
            return Err(format!("path table has {} unused bytes", suffixes.len() - at));
        }
        Ok(out)
    }
}

/// Events stored column by column, so that similar values sit together and compress well.
///
/// Two columns are delta-coded and decoded while iterating: `ts_delta` (zigzag difference to
/// the previous event's time, the first relative to `ts_base`) and the path references (0 = no
/// path, 1 = the next path not used before, n ≥ 2 = path `n - 2`). All columns have the same
/// length.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct EventColumns {
    /// Time of the first event (unix ns).
    pub ts_base: u64,
    /// Zigzag-coded time differences.
    pub ts_delta: Vec<u64>,
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
    /// Path references for [`Event::path`].
    pub path: Vec<u32>,
    /// Path references for [`Event::path2`].
    pub path2: Vec<u32>,
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Running state of the path-reference decoder.
#[derive(Debug, Clone, Copy, Default)]
struct PathRefs {
    next_new: u32,
}

impl PathRefs {
    fn encode(&mut self, id: u32) -> u32 {
        if id == NONE {
            0
        } else if id == self.next_new {
            self.next_new += 1;
            1
        } else {
            id + 2
        }
    }

    fn decode(&mut self, r: u32) -> u32 {
        match r {
            0 => NONE,
            1 => {
                self.next_new = self.next_new.saturating_add(1);
                self.next_new - 1
            }
            n => n - 2,
        }
    }
}

impl EventColumns {
    /// Number of events.
    pub fn len(&self) -> usize {
        self.ts_delta.len()
    }

    /// True when there are no events.
    pub fn is_empty(&self) -> bool {
        self.ts_delta.is_empty()
    }

    /// All events, in order.
    pub fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        let mut ts = self.ts_base;
        let mut refs = PathRefs::default();
        (0..self.len()).map(move |i| {
            ts = ts.wrapping_add(unzigzag(self.ts_delta[i]) as u64);
            let path = refs.decode(self.path[i]);
            let path2 = refs.decode(self.path2[i]);
            Event {
                ts_ns: ts,
                tid: self.tid[i],
                process: self.process[i],
                etype: self.etype[i],
                ret: self.ret[i],
                flags: self.flags[i],
                mode: self.mode[i],
                dirfd: self.dirfd[i],
                path,
                path2,
            }
        })
    }

    /// Builds the columns from events whose path ids were assigned in order of first use.
    pub fn from_events(events: &[Event]) -> Self {
        let ts_base = events.first().map_or(0, |e| e.ts_ns);
        let mut prev = ts_base;
        let mut refs = PathRefs::default();
        let mut c = Self { ts_base, ..Default::default() };
        for e in events {
            c.ts_delta.push(zigzag(e.ts_ns.wrapping_sub(prev) as i64));
            prev = e.ts_ns;
            c.tid.push(e.tid);
            c.process.push(e.process);
            c.etype.push(e.etype);
            c.ret.push(e.ret);
            c.flags.push(e.flags);
            c.mode.push(e.mode);
            c.dirfd.push(e.dirfd);
            c.path.push(refs.encode(e.path));
            c.path2.push(refs.encode(e.path2));
        }
        c
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
    /// Container id (string id): `host` outside containers, else the runtime's 12-character id.
    pub container_id: u32,
    /// Controlling terminal as `/proc/PID/stat`'s `tty_nr` (0: none): Falco's `proc.tty`.
    pub tty: u32,
    /// Login uid (`u32::MAX`: unset): Falco's `user.loginuid`.
    pub loginuid: u32,
    /// Container name (string id, [`NONE`]: unknown): Falco's `container.name`.
    pub container_name: u32,
    /// Container image as the runtime reports it, `repo:tag` or `repo@digest` (string id,
    /// [`NONE`]: unknown): Falco's `container.image`.
    pub container_image: u32,
    /// Kubernetes pod name (string id, [`NONE`]: unknown or not a pod): Falco's `k8s.pod.name`.
    pub k8s_pod: u32,
    /// Kubernetes namespace of the pod (string id, [`NONE`]: unknown): Falco's `k8s.ns.name`.
    pub k8s_ns: u32,
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
    /// First path argument, resolved to absolute (id in [`Chunk::paths`] or [`NONE`]).
    pub path: u32,
    /// Second path argument (rename target), resolved to absolute (id in [`Chunk::paths`] or [`NONE`]).
    pub path2: u32,
}

/// Fd kinds stored in the `mode` column of fd events (libscap's `SCAP_FD_*` numbering).
pub mod fdkind {
    /// Not known.
    pub const UNKNOWN: u32 = 0;
    /// Regular file.
    pub const FILE: u32 = 1;
    /// Directory.
    pub const DIRECTORY: u32 = 2;
    /// IPv4 socket.
    pub const IPV4: u32 = 3;
    /// IPv6 socket.
    pub const IPV6: u32 = 4;
    /// Listening IPv4 socket.
    pub const IPV4_SERVER: u32 = 5;
    /// Listening IPv6 socket.
    pub const IPV6_SERVER: u32 = 6;
    /// Pipe.
    pub const FIFO: u32 = 7;
    /// Unix socket.
    pub const UNIX: u32 = 8;
    /// eventfd.
    pub const EVENT: u32 = 9;
    /// signalfd.
    pub const SIGNALFD: u32 = 11;
    /// epoll.
    pub const EVENTPOLL: u32 = 12;
    /// inotify.
    pub const INOTIFY: u32 = 13;
    /// timerfd.
    pub const TIMERFD: u32 = 14;
    /// netlink socket.
    pub const NETLINK: u32 = 15;
    /// bpf object.
    pub const BPF: u32 = 17;
    /// memfd.
    pub const MEMFD: u32 = 20;

    /// libsinsp's `fd.type` name and `fd.typechar` of a kind.
    pub fn names(kind: u32) -> Option<(&'static str, &'static str)> {
        Some(match kind {
            FILE => ("file", "f"),
            DIRECTORY => ("directory", "d"),
            IPV4 | IPV4_SERVER => ("ipv4", "4"),
            IPV6 | IPV6_SERVER => ("ipv6", "6"),
            FIFO => ("pipe", "p"),
            UNIX => ("unix", "u"),
            EVENT => ("event", "e"),
            SIGNALFD => ("signalfd", "s"),
            EVENTPOLL => ("eventpoll", "l"),
            INOTIFY => ("inotify", "i"),
            TIMERFD => ("timerfd", "t"),
            NETLINK => ("netlink", "n"),
            BPF => ("bpf", "b"),
            MEMFD => ("memfd", "m"),
            _ => return None,
        })
    }
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
        self.ts_delta.len()
    }

    /// True when there are no events.
    pub fn is_empty(&self) -> bool {
        self.ts_delta.is_empty()
    }

    /// All events, in order, materialized from the columns (stops early only if the columns
    /// have different lengths, which decoding rejects).
    pub fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        let mut ts = self.ts_base.to_native();
        let mut refs = PathRefs::default();
        // Zipped column iterators: no bounds check per field.
        let rows = self.ts_delta.iter().zip(self.tid.iter()).zip(self.process.iter()).zip(self.etype.iter());
        let rows = rows.zip(self.ret.iter()).zip(self.flags.iter()).zip(self.mode.iter()).zip(self.dirfd.iter());
        rows.zip(self.path.iter().zip(self.path2.iter())).map(
            move |((((((((ts_delta, tid), process), etype), ret), flags), mode), dirfd), (path, path2))| {
                ts = ts.wrapping_add(unzigzag(ts_delta.to_native()) as u64);
                let path = refs.decode(path.to_native());
                let path2 = refs.decode(path2.to_native());
                Event {
                    ts_ns: ts,
                    tid: tid.to_native(),
                    process: process.to_native(),
                    etype: etype.to_native(),
                    ret: ret.to_native(),
                    flags: flags.to_native(),
                    mode: mode.to_native(),
                    dirfd: dirfd.to_native(),
                    path,
                    path2,
                }
            },
        )
    }

    /// Checks that every path reference resolves to one of `npaths` paths; `Err` gives the
    /// index of the first event that does not.
    pub fn check_paths(&self, npaths: u32) -> Result<(), usize> {
        let mut refs = PathRefs::default();
        for (i, (a, b)) in self.path.iter().zip(self.path2.iter()).enumerate() {
            for r in [a.to_native(), b.to_native()] {
                let id = refs.decode(r);
                if id != NONE && id >= npaths {
                    return Err(i);
                }
            }
        }
        Ok(())
    }

    /// True when every column has the same length.
    pub fn is_consistent(&self) -> bool {
        let n = self.ts_delta.len();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ts: u64, path: u32, path2: u32) -> Event {
        Event { ts_ns: ts, tid: 1, process: 0, etype: 2, ret: -2, flags: 0, mode: 0, dirfd: -100, path, path2 }
    }

    #[test]
    fn front_coded_paths_round_trip_and_reject_bad_lengths() {
        let paths: Vec<String> =
            ["/usr/share/doc", "/usr/share/doc/zstd", "/usr/lib", "", "/usr/é", "/usr/è"].map(String::from).into();
        let t = PathTable::from_paths(&paths);
        assert_eq!(t.shared, vec![0, 14, 5, 0, 0, 5], "é and è share a first byte, not a character");
        assert_eq!(t.to_vec(), paths);
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&t).unwrap();
        let a = rkyv::access::<ArchivedPathTable, rkyv::rancor::Error>(&bytes).unwrap();
        let idx = a.expand().unwrap();
        assert_eq!((0..6).map(|i| idx.get(i).unwrap().to_owned()).collect::<Vec<_>>(), paths);
        assert_eq!(idx.get(6), None);
        assert_eq!(idx.get(NONE), None);

        let mut bad = t.clone();
        bad.shared[2] = 40;
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&bad).unwrap();
        let a = rkyv::access::<ArchivedPathTable, rkyv::rancor::Error>(&bytes).unwrap();
        assert!(a.expand().unwrap_err().contains("path 2 shares 40 bytes"));
        let mut bad = t.clone();
        bad.suffix_len[5] = 99;
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&bad).unwrap();
        let a = rkyv::access::<ArchivedPathTable, rkyv::rancor::Error>(&bytes).unwrap();
        assert!(a.expand().unwrap_err().contains("outside the table"));
    }

    #[test]
    fn delta_columns_round_trip_out_of_order_times_and_repeated_paths() {
        let events = vec![ev(1_000, 0, NONE), ev(990, 1, 0), ev(u64::MAX - 5, NONE, 2), ev(5, 1, 3), ev(5, 2, NONE)];
        let cols = EventColumns::from_events(&events);
        assert_eq!(
            (cols.path.clone(), cols.path2.clone()),
            (vec![1, 1, 0, 3, 4], vec![0, 2, 1, 1, 0]),
            "new paths cost a 1, repeats their id + 2"
        );
        assert_eq!(cols.iter().collect::<Vec<_>>(), events);
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&cols).unwrap();
        let archived = rkyv::access::<ArchivedEventColumns, rkyv::rancor::Error>(&bytes).unwrap();
        assert_eq!(archived.iter().collect::<Vec<_>>(), events);
        assert_eq!(archived.check_paths(4), Ok(()));
        assert_eq!(archived.check_paths(3), Err(3), "event 3 uses path 3");
    }
}
