//! The event model stored in archive chunks: a string table, a process table and events.
//!
//! A chunk is self-contained: every process an event references is in its process table,
//! with its ancestors, so any chunk can be analyzed alone.

use rkyv::{Archive, Deserialize, Serialize};

pub mod args;
pub mod stored;
pub use stored::{ArchivedStoredEvents, EventIter, StoredEvents};

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
    #[rkyv(with = stored::Encoded)]
    pub events: EventColumns,
    /// Events the kernel could not deliver while this chunk was being filled.
    pub drops: u64,
    /// The host names the capture was asked to resolve (`--resolve`), each with every address
    /// it resolved to while this chunk was open: what `fd.sip.name` and the other `fd.*.name`
    /// fields compare with. Sorted by name.
    pub resolved: Vec<ResolvedName>,
    /// The users and groups of the containers this chunk's processes run in, from each
    /// container's own `/etc/passwd` and `/etc/group`, sorted by container id: a container
    /// listed here names its processes' users and groups (`user.name`, `group.name`), not the
    /// host's files.
    pub accounts: Vec<ContainerAccounts>,
}

/// A container's users and groups (from inside its root filesystem).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerAccounts {
    /// The container id, as processes' `container_id` strings hold it.
    pub container_id: String,
    /// User names by uid, sorted by uid (empty when the container has no `/etc/passwd`).
    pub users: Vec<IdName>,
    /// Group names by gid, sorted by gid.
    pub groups: Vec<IdName>,
}

/// A numeric id and its name.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct IdName {
    /// The uid or gid.
    pub id: u32,
    /// Its name.
    pub name: String,
}

impl ArchivedContainerAccounts {
    /// The name of `id` in `list` (the archived `users` or `groups`).
    pub fn name_in(list: &rkyv::vec::ArchivedVec<ArchivedIdName>, id: u32) -> Option<&str> {
        list.binary_search_by_key(&id, |e| e.id.to_native()).ok().map(|i| list[i].name.as_str())
    }
}

/// An address as [`ResolvedName::addrs`] stores it: IPv6, or IPv4-mapped IPv6.
pub fn stored_addr(ip: std::net::IpAddr) -> [u8; 16] {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(v6) => v6.octets(),
    }
}

/// One host name and the addresses the recording host resolved it to during a chunk.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct ResolvedName {
    /// The name as the capture was given it.
    pub name: String,
    /// Its addresses, IPv6 or IPv4-mapped IPv6 (`::ffff:a.b.c.d`), sorted; empty when it did not
    /// resolve.
    pub addrs: Vec<[u8; 16]>,
}

/// Event paths, front-coded: each path stores how many leading bytes it shares with the
/// previous one and its own remainder. Paths arrive in traversal order (a `find`, a build), so
/// most of each path is shared; the table is expanded once per chunk when it is decoded.
///
/// `data` holds, per path: the shared byte count (LEB128 varint), the remainder with each NUL
/// byte written as `C0 80` (a sequence UTF-8 never contains), then a NUL terminator. Keeping
/// each count next to its text, with the text NUL-terminated rather than length-prefixed,
/// compresses best (0.48 against 0.58 bytes/event as separate count, length and text columns).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct PathTable {
    /// Number of paths.
    pub count: u32,
    /// The coded paths.
    pub data: Vec<u8>,
}

impl PathTable {
    /// Front-codes `paths`.
    pub fn from_paths(paths: &[String]) -> Self {
        let mut t = Self { count: paths.len() as u32, data: Vec::new() };
        let mut prev = "";
        for p in paths {
            let mut shared = prev.bytes().zip(p.bytes()).take_while(|(a, b)| a == b).count();
            while !p.is_char_boundary(shared) {
                shared -= 1;
            }
            stored::put(&mut t.data, shared as u64);
            for &b in &p.as_bytes()[shared..] {
                if b == 0 {
                    t.data.extend_from_slice(&[0xC0, 0x80]);
                } else {
                    t.data.push(b);
                }
            }
            t.data.push(0);
            prev = p;
        }
        t
    }

    /// Number of paths.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when there are no paths.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The paths, expanded; empty for a malformed table, which only a hand-built one can be
    /// (readers check stored tables with [`ArchivedPathTable::expand`]).
    pub fn to_vec(&self) -> Vec<String> {
        let Ok(idx) = expand_paths(&self.data, self.count, MAX_EXPANDED_PATHS) else { return Vec::new() };
        (0..self.count).filter_map(|i| idx.get(i).map(str::to_owned)).collect()
    }
}

/// Largest expansion of one chunk's path table a reader accepts (front coding lets a small
/// hostile table claim far more).
const MAX_EXPANDED_PATHS: u64 = 1 << 30;

/// Expands coded paths (see [`PathTable`]), checking everything against the data (untrusted).
fn expand_paths(data: &[u8], count: u32, limit: u64) -> Result<PathIndex, String> {
    let mut buf: Vec<u8> = Vec::with_capacity(data.len() * 4);
    let mut ends: Vec<u32> = Vec::with_capacity(count as usize);
    let (mut at, mut prev_start) = (0usize, 0usize);
    for i in 0..count {
        let shared =
            stored::get(data, &mut at).ok_or_else(|| format!("path {i}: shared length cut off at byte {at}"))?;
        let start = buf.len();
        if shared > (start - prev_start) as u64 {
            return Err(format!("path {i} shares {shared} bytes with a {}-byte predecessor", start - prev_start));
        }
        if start as u64 + shared > limit {
            return Err(format!("paths expand beyond {limit} bytes at path {i}"));
        }
        buf.extend_from_within(prev_start..prev_start + shared as usize);
        let rest = &data[at.min(data.len())..];
        let end =
            rest.iter().position(|&b| b == 0).ok_or_else(|| format!("path {i} at byte {at} is not terminated"))?;
        let text = &rest[..end];
        if text.contains(&0xC0) {
            let mut k = 0;
            while k < text.len() {
                if text[k] == 0xC0 && text.get(k + 1) == Some(&0x80) {
                    buf.push(0);
                    k += 2;
                } else {
                    buf.push(text[k]);
                    k += 1;
                }
            }
        } else {
            buf.extend_from_slice(text);
        }
        at += end + 1;
        prev_start = start;
        ends.push(u32::try_from(buf.len()).map_err(|_| "path table too large".to_owned())?);
    }
    if at != data.len() {
        return Err(format!("path table has {} bytes after its {count} paths", data.len() - at));
    }
    let buf = String::from_utf8(buf).map_err(|e| format!("path table is not UTF-8: {e}"))?;
    if let Some(i) = ends.iter().position(|&e| !buf.is_char_boundary(e as usize)) {
        return Err(format!("path {i} ends inside a character"));
    }
    Ok(PathIndex { buf, ends })
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
        self.count.to_native() as usize
    }

    /// True when there are no paths.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Expands the table, checking every length against the data (untrusted input).
    pub fn expand(&self) -> Result<PathIndex, String> {
        expand_paths(&self.data, self.count.to_native(), MAX_EXPANDED_PATHS)
    }
}

/// Events column by column: plain values in memory; stored transformed so that they compress
/// well (see [`stored`]), and decoded while iterating over the archived chunk. All columns have
/// the same length.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventColumns {
    /// See [`Event::ts_ns`].
    pub ts_ns: Vec<u64>,
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
        self.ts_ns.len()
    }

    /// True when there are no events.
    pub fn is_empty(&self) -> bool {
        self.ts_ns.is_empty()
    }

    /// All events, in order.
    pub fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        (0..self.len()).map(move |i| Event {
            ts_ns: self.ts_ns[i],
            tid: self.tid[i],
            process: self.process[i],
            etype: self.etype[i],
            ret: self.ret[i],
            flags: self.flags[i],
            mode: self.mode[i],
            dirfd: self.dirfd[i],
            path: self.path[i],
            path2: self.path2[i],
        })
    }

    /// Builds the columns from events whose path ids were assigned in order of first use
    /// (first path before second path), which the stored path references rely on.
    pub fn from_events(events: &[Event]) -> Self {
        let mut c = Self::default();
        for e in events {
            c.ts_ns.push(e.ts_ns);
            c.tid.push(e.tid);
            c.process.push(e.process);
            c.etype.push(e.etype);
            c.ret.push(e.ret);
            c.flags.push(e.flags);
            c.mode.push(e.mode);
            c.dirfd.push(e.dirfd);
            c.path.push(e.path);
            c.path2.push(e.path2);
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
    /// What the kernel said of the task at its exec (or its parent's state at its fork).
    pub task: TaskFacts,
    /// What the pod spec or the container runtime said of its container.
    pub container: ContainerFacts,
}

/// A container's privilege, start time and mounts, from the pod spec or the runtime.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
pub struct ContainerFacts {
    /// 0: unknown, 1: not privileged, 2: privileged: Falco's `container.privileged`.
    pub privileged: u8,
    /// When the container started, unix ns (0: unknown): `container.start_ts`.
    pub start_ns: u64,
    /// Its mounts, `source:dest:mode:rw:propagation` items space-separated (string id,
    /// [`NONE`]: unknown): `container.mounts`.
    pub mounts: u32,
}

impl ContainerFacts {
    /// Nothing known.
    pub const UNKNOWN: ContainerFacts = ContainerFacts { privileged: 0, start_ns: 0, mounts: NONE };
}

impl Default for ContainerFacts {
    fn default() -> Self {
        Self::UNKNOWN
    }
}

/// A process's ids in its own pid namespace, its capabilities, its executable's inode and its
/// environment, as the kernel gave them at exec (see `lanner_formats::wire::TaskInfo`).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
pub struct TaskFacts {
    /// Process id in its pid namespace (0: unknown): Falco's `proc.vpid`.
    pub vpid: u32,
    /// Process group id in that namespace (0: unknown): `proc.vpgid`.
    pub vpgid: u32,
    /// Session id in that namespace (0: unknown): `proc.sid`.
    pub sid: u32,
    /// [`crate::wire::task_info`] bits: which of the values below are known, and the
    /// executable's overlayfs layer.
    pub flags: u32,
    /// Capability sets: inheritable, permitted, effective (bit N is capability N).
    pub caps: [u64; 3],
    /// The executable's inode number: `proc.exe_ino`.
    pub exe_ino: u64,
    /// Its change time, unix ns.
    pub exe_ctime_ns: u64,
    /// Its modification time, unix ns.
    pub exe_mtime_ns: u64,
    /// The environment, `K=v` strings joined with NUL bytes (string id, [`NONE`]: unknown).
    pub env: u32,
}

impl TaskFacts {
    /// Nothing known.
    pub const UNKNOWN: TaskFacts = TaskFacts {
        vpid: 0,
        vpgid: 0,
        sid: 0,
        flags: 0,
        caps: [0; 3],
        exe_ino: 0,
        exe_ctime_ns: 0,
        exe_mtime_ns: 0,
        env: NONE,
    };
}

impl TaskFacts {
    /// The archive's form of what the kernel side read ([`crate::wire::TaskInfo`]), with the
    /// environment's string id.
    pub fn from_wire(t: &crate::wire::TaskInfo, env: u32) -> Self {
        Self {
            vpid: t.vpid,
            vpgid: t.vpgid,
            sid: t.vsid,
            flags: t.flags,
            caps: [t.cap_inheritable, t.cap_permitted, t.cap_effective],
            exe_ino: t.exe_ino,
            exe_ctime_ns: t.exe_ctime_ns,
            exe_mtime_ns: t.exe_mtime_ns,
            env,
        }
    }
}

impl Default for TaskFacts {
    fn default() -> Self {
        Self::UNKNOWN
    }
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

    /// Each kind with libsinsp's `fd.type` name and `fd.typechar`: the one two-way table.
    const NAMES: [(u32, &str, &str); 16] = [
        (FILE, "file", "f"),
        (DIRECTORY, "directory", "d"),
        (IPV4, "ipv4", "4"),
        (IPV4_SERVER, "ipv4", "4"),
        (IPV6, "ipv6", "6"),
        (IPV6_SERVER, "ipv6", "6"),
        (FIFO, "pipe", "p"),
        (UNIX, "unix", "u"),
        (EVENT, "event", "e"),
        (SIGNALFD, "signalfd", "s"),
        (EVENTPOLL, "eventpoll", "l"),
        (INOTIFY, "inotify", "i"),
        (TIMERFD, "timerfd", "t"),
        (NETLINK, "netlink", "n"),
        (BPF, "bpf", "b"),
        (MEMFD, "memfd", "m"),
    ];

    /// libsinsp's `fd.type` name and `fd.typechar` of a kind.
    pub fn names(kind: u32) -> Option<(&'static str, &'static str)> {
        NAMES.iter().find(|(k, _, _)| *k == kind).map(|&(_, name, c)| (name, c))
    }

    /// The kind libsinsp's `fd.type` name stands for (the client side for `ipv4` and `ipv6`);
    /// `None` for a name Lanner does not model.
    pub fn from_name(name: &str) -> Option<u32> {
        NAMES.iter().find(|(_, n, _)| *n == name).map(|&(k, _, _)| k)
    }

    /// An fd event's `mode` column: the fd's kind in the low 8 bits and, for TCP/UDP sockets,
    /// what the kind cannot say: the transport protocol and which end this process holds.
    /// Archives written before these bits existed read as protocol and role unknown.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct FdMode {
        /// The kind (one of this module's constants).
        pub kind: u32,
        /// The transport protocol ([`L4_UNKNOWN`], [`L4_TCP`], [`L4_UDP`], [`L4_RAW`]).
        pub l4: u8,
        /// Which end of the connection this process holds ([`ROLE_UNKNOWN`], [`ROLE_CLIENT`]
        /// for a socket that connected, [`ROLE_SERVER`] for one that `accept` returned): it
        /// decides whether `fd.lport` is `fd.cport` or `fd.sport`.
        pub role: u8,
        /// The socket is connected (a `connect` that succeeded, or an `accept`ed connection):
        /// `fd.connected`.
        pub connected: bool,
        /// This event changed the fd's name (a first or another `connect`, a `sendto` to a new
        /// address): `fd.name_changed`.
        pub name_changed: bool,
    }

    /// Role not known (a socket found in `/proc`, or an archive from before the role bits).
    pub const ROLE_UNKNOWN: u8 = 0;
    /// The process connected: the local end is the client's.
    pub const ROLE_CLIENT: u8 = 1;
    /// The process accepted: the local end is the server's.
    pub const ROLE_SERVER: u8 = 2;

    /// Transport protocol not known.
    pub const L4_UNKNOWN: u8 = 0;
    /// TCP (`SOCK_STREAM` over IPv4/IPv6).
    pub const L4_TCP: u8 = 1;
    /// UDP (`SOCK_DGRAM` over IPv4/IPv6).
    pub const L4_UDP: u8 = 2;
    /// A raw IP socket (`SOCK_RAW`).
    pub const L4_RAW: u8 = 3;

    const L4_SHIFT: u32 = 8;
    const ROLE_SHIFT: u32 = 10;
    const CONNECTED: u32 = 1 << 12;
    const NAME_CHANGED: u32 = 1 << 13;

    impl FdMode {
        /// Unpacks an fd event's `mode` column.
        pub fn from_column(mode: u32) -> Self {
            Self {
                kind: mode & 0xff,
                l4: ((mode >> L4_SHIFT) & 3) as u8,
                role: ((mode >> ROLE_SHIFT) & 3) as u8,
                connected: mode & CONNECTED != 0,
                name_changed: mode & NAME_CHANGED != 0,
            }
        }

        /// Packs into an fd event's `mode` column.
        pub fn to_column(self) -> u32 {
            let flag = |on: bool, bit: u32| if on { bit } else { 0 };
            self.kind
                | (self.l4 as u32 & 3) << L4_SHIFT
                | (self.role as u32 & 3) << ROLE_SHIFT
                | flag(self.connected, CONNECTED)
                | flag(self.name_changed, NAME_CHANGED)
        }

        /// libsinsp's `fd.l4proto` name, for IPv4/IPv6 sockets whose protocol is known.
        pub fn l4proto(self) -> Option<&'static str> {
            if !matches!(self.kind, IPV4 | IPV6 | IPV4_SERVER | IPV6_SERVER) {
                return None;
            }
            match self.l4 {
                L4_TCP => Some("tcp"),
                L4_UDP => Some("udp"),
                L4_RAW => Some("raw"),
                _ => None,
            }
        }
    }

    /// The protocol of an IPv4/IPv6 socket of type `sock_type` (`SOCK_STREAM` 1, `SOCK_DGRAM`
    /// 2, `SOCK_RAW` 3; flag bits such as `SOCK_CLOEXEC` are ignored).
    pub fn l4_of_sock_type(sock_type: u64) -> u8 {
        match sock_type & 0xf {
            1 => L4_TCP,
            2 => L4_UDP,
            3 => L4_RAW,
            _ => L4_UNKNOWN,
        }
    }
}

/// The `dirfd` column's value for "relative to the current directory" (Linux's `AT_FDCWD`).
pub const AT_FDCWD: i32 = -100;

/// A socket's addresses as the `path` column holds them, libsinsp's fd name: `cip:cport->sip:sport`
/// for a connection (client first), `ip:port` for a listening socket. The one writer and parser
/// of that text.
pub mod sock_name {
    /// One end, `ip:port` (an IPv6 address unbracketed, as libsinsp prints it).
    pub fn end(ip: impl core::fmt::Display, port: u16) -> String {
        format!("{ip}:{port}")
    }

    /// A connection's name from its two ends (each from [`end`]).
    pub fn connection(client: &str, server: &str) -> String {
        format!("{client}->{server}")
    }

    /// Splits one end into its address text and port.
    pub fn parse_end(s: &str) -> Option<(&str, u16)> {
        let (ip, port) = s.rsplit_once(':')?;
        Some((ip, port.parse().ok()?))
    }

    /// The client and server ends of a connection's name (`None` when it is not one).
    pub fn parse_connection(name: &str) -> Option<(&str, &str)> {
        name.split_once("->")
    }

    /// The far end as a client sees it: a connection's server end, or a listening socket's name.
    pub fn server_end(name: &str) -> &str {
        name.rsplit_once("->").map_or(name, |(_, s)| s)
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

    /// Each flag beyond the access mode with libscap's `PPM_O_*` bit and its name: the one
    /// table that `.scap` import and export and the analyzer's `evt.arg.flags` read. Values
    /// spanning several bits (`O_SYNC` holds `O_DSYNC`'s, `O_TMPFILE` holds `O_DIRECTORY`'s)
    /// match only when all of theirs are set.
    pub const PPM: [(u32, u32, &str); 12] = [
        (O_CREAT, 1 << 2, "O_CREAT"),
        (O_APPEND, 1 << 3, "O_APPEND"),
        (0o10000, 1 << 4, "O_DSYNC"),
        (O_EXCL, 1 << 5, "O_EXCL"),
        (0o4000, 1 << 6, "O_NONBLOCK"),
        (0o4010000, 1 << 7, "O_SYNC"),
        (O_TRUNC, 1 << 8, "O_TRUNC"),
        (0o40000, 1 << 9, "O_DIRECT"),
        (O_DIRECTORY, 1 << 10, "O_DIRECTORY"),
        (0o100000, 1 << 11, "O_LARGEFILE"),
        (O_CLOEXEC, 1 << 12, "O_CLOEXEC"),
        (O_TMPFILE, 1 << 13, "O_TMPFILE"),
    ];

    /// Linux open flags by name: the access mode, then each flag set, `|`-separated.
    pub fn render(f: u32) -> String {
        let mode = match f & O_ACCMODE {
            O_WRONLY => "O_WRONLY",
            O_RDWR => "O_RDWR",
            _ => "O_RDONLY",
        };
        PPM.iter().filter(|(l, _, _)| f & l == *l).fold(mode.to_owned(), |s, (_, _, n)| s + "|" + n)
    }

    /// Linux open flags as libscap's `PPM_O_*` bits (access mode in the low two).
    pub fn to_ppm(f: u32) -> u32 {
        let mode = match f & O_ACCMODE {
            O_RDONLY => 1,
            O_WRONLY => 2,
            _ => 3,
        };
        PPM.iter().filter(|(l, _, _)| f & l == *l).fold(mode, |p, (_, b, _)| p | b)
    }

    /// libscap's `PPM_O_*` bits as Linux open flags.
    pub fn from_ppm(ppm: u32) -> u32 {
        let mode = match ppm & 3 {
            2 => O_WRONLY,
            3 => O_RDWR,
            _ => O_RDONLY,
        };
        PPM.iter().filter(|(_, b, _)| ppm & b != 0).fold(mode, |f, (l, _, _)| f | l)
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

    #[test]
    fn an_fd_events_mode_packs_kind_protocol_and_role() {
        use fdkind::*;
        for m in [
            FdMode { kind: IPV4, l4: L4_TCP, role: ROLE_SERVER, ..Default::default() },
            FdMode { kind: IPV6, l4: L4_UDP, role: ROLE_CLIENT, ..Default::default() },
            FdMode { kind: IPV4_SERVER, l4: L4_TCP, role: ROLE_UNKNOWN, ..Default::default() },
            FdMode { kind: MEMFD, l4: L4_UNKNOWN, role: ROLE_UNKNOWN, ..Default::default() },
        ] {
            assert_eq!(FdMode::from_column(m.to_column()), m);
        }
        // Archives from before the bits: the kind alone, protocol unknown.
        assert_eq!(
            FdMode::from_column(IPV6),
            FdMode { kind: IPV6, l4: L4_UNKNOWN, role: ROLE_UNKNOWN, ..Default::default() }
        );
        assert_eq!(FdMode::from_column(IPV4).to_column(), IPV4);
        let flags = FdMode { kind: IPV4, l4: L4_UDP, role: ROLE_CLIENT, connected: true, name_changed: true };
        assert_eq!(FdMode::from_column(flags.to_column()), flags);
        let changed = FdMode { kind: IPV6, name_changed: true, ..Default::default() };
        assert_eq!(FdMode::from_column(changed.to_column()), changed);
        assert_eq!(FdMode { kind: IPV4, l4: L4_UDP, role: ROLE_CLIENT, ..Default::default() }.l4proto(), Some("udp"));
        assert_eq!(FdMode { kind: UNIX, l4: L4_TCP, role: ROLE_CLIENT, ..Default::default() }.l4proto(), None);
        assert_eq!(FdMode { kind: IPV6, l4: L4_UNKNOWN, role: ROLE_CLIENT, ..Default::default() }.l4proto(), None);
        assert_eq!(
            (l4_of_sock_type(1 | 0o2000000), l4_of_sock_type(2), l4_of_sock_type(5)),
            (L4_TCP, L4_UDP, L4_UNKNOWN)
        );
    }

    #[test]
    fn open_flags_round_trip_through_libscaps_bits() {
        use oflags::*;
        for f in [
            O_RDONLY,
            O_WRONLY | O_CREAT | O_TRUNC,
            O_RDWR | O_APPEND | O_CLOEXEC,
            O_RDONLY | O_DIRECTORY,
            O_TMPFILE | O_RDWR,
        ] {
            assert_eq!(from_ppm(to_ppm(f)), f, "{f:o}");
        }
        // O_WRONLY|O_CREAT|O_TRUNC is PPM_O_WRONLY|PPM_O_CREAT|PPM_O_TRUNC.
        assert_eq!(to_ppm(O_WRONLY | O_CREAT | O_TRUNC), 2 | 1 << 2 | 1 << 8);
        // O_SYNC holds O_DSYNC's bit; O_DSYNC alone is not O_SYNC.
        assert_eq!(to_ppm(0o10000), 1 | 1 << 4);
        assert_eq!(to_ppm(0o4010000), 1 | 1 << 4 | 1 << 7);
    }

    #[test]
    fn socket_names_are_written_and_read_one_way() {
        let c = sock_name::end("::ffff:127.0.0.1", 39132);
        let name = sock_name::connection(&c, &sock_name::end("::ffff:127.0.0.1", 7777));
        assert_eq!(name, "::ffff:127.0.0.1:39132->::ffff:127.0.0.1:7777");
        let (client, server) = sock_name::parse_connection(&name).unwrap();
        assert_eq!(sock_name::parse_end(client), Some(("::ffff:127.0.0.1", 39132)));
        assert_eq!(sock_name::parse_end(server), Some(("::ffff:127.0.0.1", 7777)));
        assert_eq!(sock_name::server_end(&name), "::ffff:127.0.0.1:7777");
        assert_eq!(sock_name::server_end("0.0.0.0:80"), "0.0.0.0:80");
        assert_eq!(sock_name::parse_end("no-port"), None);
        assert_eq!(sock_name::parse_connection("10.0.0.1:80"), None);
    }

    #[test]
    fn fd_kind_names_map_both_ways() {
        for kind in 0..32 {
            if let Some((name, _)) = fdkind::names(kind) {
                let back = fdkind::from_name(name).expect("every name maps back");
                assert_eq!(fdkind::names(back).map(|n| n.0), Some(name), "kind {kind}");
            }
        }
        assert_eq!(fdkind::from_name("memfd"), Some(fdkind::MEMFD));
        assert_eq!(fdkind::from_name("ipv6"), Some(fdkind::IPV6));
        assert_eq!(fdkind::from_name("io_uring"), None);
    }

    fn ev(ts: u64, path: u32, path2: u32) -> Event {
        Event { ts_ns: ts, tid: 1, process: 0, etype: 2, ret: -2, flags: 0, mode: 0, dirfd: -100, path, path2 }
    }

    #[test]
    fn front_coded_paths_round_trip_and_reject_bad_lengths() {
        let paths: Vec<String> =
            ["/usr/share/doc", "/usr/share/doc/zstd", "/usr/lib", "", "/usr/é", "/usr/è", "a\0b", "a\0"]
                .map(String::from)
                .into();
        let t = PathTable::from_paths(&paths);
        let mut want = vec![0u8];
        want.extend(b"/usr/share/doc\0");
        want.extend(b"\x0e/zstd\0\x05lib\0\x00\0\x00/usr/\xc3\xa9\0");
        want.extend(b"\x05\xc3\xa8\0"); // é and è share a first byte, not a character
        want.extend(b"\x00a\xc0\x80b\0\x02\0"); // NUL written as C0 80
        assert_eq!(t.data, want);
        assert_eq!(t.to_vec(), paths);
        let access = |t: &PathTable| {
            let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(t).unwrap();
            rkyv::access::<ArchivedPathTable, rkyv::rancor::Error>(&bytes).unwrap().expand()
        };
        let idx = access(&t).unwrap();
        assert_eq!((0..8).map(|i| idx.get(i).unwrap().to_owned()).collect::<Vec<_>>(), paths);
        assert_eq!(idx.get(8), None);
        assert_eq!(idx.get(NONE), None);

        let bad = |f: &dyn Fn(&mut PathTable)| {
            let mut b = t.clone();
            f(&mut b);
            access(&b).unwrap_err()
        };
        assert_eq!(bad(&|b| b.data[16] = 40), "path 1 shares 40 bytes with a 14-byte predecessor");
        assert_eq!(bad(&|b| b.count = 9), format!("path 8: shared length cut off at byte {}", want.len()));
        assert_eq!(bad(&|b| b.count = 7), "path table has 2 bytes after its 7 paths");
        assert_eq!(
            bad(&|b| {
                b.data.pop();
            }),
            format!("path 7 at byte {} is not terminated", want.len() - 1)
        );
        assert!(bad(&|b| b.data[31] = 0xff).starts_with("path table is not UTF-8"));
        let split = PathTable { count: 2, data: vec![0, 0xC3, 0, 0, 0xA9, 0] };
        assert_eq!(access(&split).unwrap_err(), "path 0 ends inside a character", "é cut in two");
        // Each 3-byte entry repeats the 4096-byte first path.
        let mut huge = PathTable { count: 100, data: [[0u8].as_slice(), &[b'x'; 4096], &[0]].concat() };
        for _ in 1..huge.count {
            huge.data.extend_from_slice(&[0x80, 0x20, 0]);
        }
        assert_eq!(expand_paths(&huge.data, 100, 40_000).unwrap_err(), "paths expand beyond 40000 bytes at path 9");
        assert_eq!(expand_paths(&huge.data, 100, 1 << 20).unwrap().len(), 100);
    }

    fn stored(cols: &EventColumns) -> rkyv::util::AlignedVec {
        rkyv::to_bytes::<rkyv::rancor::Error>(&Chunk { events: cols.clone(), ..Default::default() }).unwrap()
    }

    #[test]
    fn stored_columns_round_trip_out_of_order_times_extremes_and_repeated_paths() {
        let mut events =
            vec![ev(1_000, 0, NONE), ev(990, 1, 0), ev(u64::MAX - 5, NONE, 2), ev(5, 1, 3), ev(5, 1, NONE)];
        events[1].tid = 7;
        events[2].ret = RET_UNKNOWN;
        events[3].dirfd = i32::MIN;
        events[4].etype = 0x8000 | 2;
        events[4].flags = u32::MAX;
        let cols = EventColumns::from_events(&events);
        let s = StoredEvents::encode(&cols).unwrap();
        assert_eq!(s.path, vec![1, 1, 0, 4, 2], "new, new, none, 2 back from 3, thread 1's last path");
        assert_eq!(s.path2, vec![0, 4, 1, 1, 0], "none, 2 back from 2, new, new, none");
        assert_eq!(s.ts.len(), 5 * 2, "differences wrap around: 990 → 2^64 − 6 is −996, two bytes zigzagged");
        assert_eq!(s.ts_unit, 1);
        let bytes = stored(&cols);
        let a = rkyv::access::<ArchivedChunk, rkyv::rancor::Error>(&bytes).unwrap();
        assert_eq!(a.events.iter().collect::<Vec<_>>(), events);
        assert_eq!(a.events.validate(1, 4), Ok(()));
        assert_eq!(a.events.validate(1, 3).unwrap_err(), "event 3 references missing path 3");
        assert_eq!(a.events.validate(0, 4).unwrap_err(), "event 0 references missing process 0");
        let back = rkyv::deserialize::<Chunk, rkyv::rancor::Error>(a).unwrap();
        assert_eq!(back.events, cols);
    }

    #[test]
    fn times_are_stored_in_the_greatest_common_unit_of_their_differences() {
        let round = |times: &[u64]| {
            let events: Vec<Event> = times.iter().map(|&t| ev(t, NONE, NONE)).collect();
            let s = StoredEvents::encode(&EventColumns::from_events(&events)).unwrap();
            let bytes = stored(&EventColumns::from_events(&events));
            let a = rkyv::access::<ArchivedChunk, rkyv::rancor::Error>(&bytes).unwrap();
            assert_eq!(a.events.iter().map(|e| e.ts_ns).collect::<Vec<_>>(), times);
            (s.ts_unit, s.ts.len())
        };
        // Microsecond times: differences of 1, 2 and -3 µs take one byte each.
        assert_eq!(
            round(&[
                1_700_000_000_000_001_000,
                1_700_000_000_000_002_000,
                1_700_000_000_000_004_000,
                1_700_000_000_000_001_000
            ]),
            (1000, 4)
        );
        assert_eq!(round(&[7, 7, 7]), (1, 0), "no differences: unit 1, no time bytes");
        assert_eq!(round(&[0, 1 << 63, 0]), (1, 24), "a 2^63 difference does not fit i64 units");
        assert_eq!(round(&[5, u64::MAX, 5]), (6, 3), "wrapping differences -6 and +6: -1 and +1 units");
    }

    #[test]
    fn damaged_stored_columns_are_refused_not_panicking() {
        let events: Vec<Event> = (0..4).map(|i| ev(100 + i * 300, i as u32, NONE)).collect();
        let good = StoredEvents::encode(&EventColumns::from_events(&events)).unwrap();
        let check = |s: StoredEvents| {
            let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&s).unwrap();
            let a = rkyv::access::<ArchivedStoredEvents, rkyv::rancor::Error>(&bytes).unwrap();
            a.validate(3, u32::MAX).map(|()| a.iter().count())
        };
        assert_eq!(check(good.clone()), Ok(4));
        let mut s = good.clone();
        s.tid.pop();
        assert_eq!(check(s).unwrap_err(), "tid column has 3 bytes for 4 events");
        let mut s = good.clone();
        s.flags.pop();
        assert_eq!(check(s).unwrap_err(), "flags column has 3 values for 4 events");
        let mut s = good.clone();
        s.flags = vec![0, 0, 0x80, 0x80];
        assert_eq!(check(s).unwrap_err(), "flags column: value 2 at byte 2 is cut off by the end of the column");
        let mut s = good.clone();
        s.mode.push(0);
        assert_eq!(check(s).unwrap_err(), "mode column has more than 4 values");
        let mut s = good.clone();
        s.ts.push(0);
        assert_eq!(check(s).unwrap_err(), "time column has 5 bytes for 4 events", "300 ns units: one byte each");
        let mut s = good.clone();
        s.path[2] = 9;
        assert_eq!(check(s).unwrap_err(), "event 2: path reference 9 names no earlier path");
        let mut s = good.clone();
        s.path[0] = 2;
        assert_eq!(check(s).unwrap_err(), "event 0: path reference 2 names no earlier path", "nothing cached yet");
        let mut s = good.clone();
        s.etype = vec![0xff, 0xff, 0x04, 2, 2, 2];
        assert_eq!(check(s).unwrap_err(), "etype column: value 0 at byte 0 is out of range");
        let mut s = good.clone();
        s.dirfd = [[0xff; 11].as_slice(), &[0, 0, 0, 0]].concat();
        assert_eq!(check(s).unwrap_err(), "dirfd column: value 0 at byte 0 is not terminated within 10 bytes");
        let mut s = good.clone();
        s.ret = [[0xff; 9].as_slice(), &[0x02, 0, 0, 0]].concat();
        assert_eq!(check(s).unwrap_err(), "ret column: value 0 at byte 0 is out of range", "65 bits");
        let mut s = good.clone();
        s.ret = [[0xff; 9].as_slice(), &[0x01, 0, 0, 0]].concat();
        assert_eq!(check(s), Ok(4), "u64::MAX is a valid zigzagged return value");
        let mut s = good.clone();
        s.process = vec![0, 0, 3, 0];
        assert_eq!(check(s.clone()).unwrap_err(), "event 2 references missing process 3");
        s.process.push(0);
        assert_eq!(check(s.clone()).unwrap_err(), "process column has 5 bytes for 4 events");
        s.process = vec![0, 0, 0, 0, 3, 0, 2, 0];
        assert_eq!(check(s).unwrap_err(), "event 2 references missing process 3");
        let mut s = good.clone();
        s.ts_unit = 0;
        assert_eq!(check(s).unwrap_err(), "time unit is 0");
        let mut s = good;
        s.count = 5;
        assert_eq!(check(s).unwrap_err(), "time column has 4 bytes for 5 events");
    }
}
