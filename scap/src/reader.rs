//! The block layer of a `.scap` file: section header, machine info, process, fd, interface and
//! user lists, then event blocks. The whole (decompressed) file is held in memory and events
//! are borrowed from it.

use std::io::Read;
use std::path::Path;

use crate::event_table::{EventInfo, EVENTS};
use crate::ScapError;

use crate::blocks::*;

/// The highest section-header major version this reader understands.
pub const MAX_MAJOR_VERSION: u16 = 1;

/// The machine-info block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MachineInfo {
    /// Number of CPUs of the recording machine.
    pub num_cpus: u32,
    /// Its memory size in bytes.
    pub memory_bytes: u64,
    /// Its host name.
    pub hostname: String,
}

/// One thread of the process-list block (the state when the capture started).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadInfo {
    /// Thread id.
    pub tid: i64,
    /// Process (thread-group) id.
    pub pid: i64,
    /// Parent's thread id.
    pub ptid: i64,
    /// `comm`.
    pub comm: String,
    /// `argv[0]`.
    pub exe: String,
    /// Full executable path (empty before block version 7).
    pub exepath: String,
    /// `argv[1..]`.
    pub args: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// Real user id.
    pub uid: u32,
    /// Real group id.
    pub gid: u32,
    /// Login uid (`u32::MAX` when unknown).
    pub loginuid: u32,
    /// Controlling terminal (0 when none or unknown).
    pub tty: u32,
    /// Virtual (namespace) pid, -1 when unknown.
    pub vpid: i64,
    /// `/proc/PID/cgroup` entries as `subsys=path`.
    pub cgroups: Vec<String>,
}

/// What an fd refers to, as libscap's fd list and socket events describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FdKind {
    /// A regular file (`f`), with its open flags when known.
    File,
    /// A directory (`d`).
    Directory,
    /// An IPv4 socket with both ends: source ip, source port, destination ip, destination port, L4 protocol.
    Ipv4 { sip: [u8; 4], sport: u16, dip: [u8; 4], dport: u16, l4: u8 },
    /// An IPv6 socket with both ends.
    Ipv6 { sip: [u8; 16], sport: u16, dip: [u8; 16], dport: u16, l4: u8 },
    /// A listening IPv4 socket.
    Ipv4Server { ip: [u8; 4], port: u16, l4: u8 },
    /// A listening IPv6 socket.
    Ipv6Server { ip: [u8; 16], port: u16, l4: u8 },
    /// A unix socket.
    Unix,
    /// Another kind, by libscap's `fd.type` name (`pipe`, `event`, `signalfd`, ...).
    Other(&'static str),
}

/// One fd of one process, from the fd-list blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdInfo {
    /// Owning thread id.
    pub tid: i64,
    /// The fd number.
    pub fd: i64,
    /// What it refers to.
    pub kind: FdKind,
    /// The name libsinsp gives it (path, or socket description).
    pub name: String,
    /// Open flags (libscap `PPM_O_*` bits), 0 when not recorded.
    pub open_flags: u32,
}

/// A user from the user-list block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Login name.
    pub name: String,
    /// Home directory.
    pub homedir: String,
    /// Login shell.
    pub shell: String,
}

/// A group from the user-list block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// Group id.
    pub gid: u32,
    /// Group name.
    pub name: String,
}

/// A parsed `.scap` file: its tables, and its events to iterate with [`ScapFile::events`].
#[derive(Debug)]
pub struct ScapFile {
    /// Section-header version (major, minor).
    pub version: (u16, u16),
    /// Machine information, when the file has it.
    pub machine: Option<MachineInfo>,
    /// Threads alive when the capture started.
    pub threads: Vec<ThreadInfo>,
    /// Their open fds.
    pub fds: Vec<FdInfo>,
    /// Users of the recording machine.
    pub users: Vec<UserInfo>,
    /// Groups of the recording machine.
    pub groups: Vec<GroupInfo>,
    /// Number of network interfaces listed.
    pub interfaces: usize,
    /// Blocks of unknown type that were skipped.
    pub skipped_blocks: usize,
    data: Vec<u8>,
    events_at: usize,
}

/// One event as stored: header, and its parameters as byte slices.
#[derive(Debug, Clone)]
pub struct RawEvent<'a> {
    /// Byte offset of the event's block in the (decompressed) file.
    pub offset: usize,
    /// CPU that recorded it.
    pub cpu: u16,
    /// Event flags (`EVF` blocks), else 0.
    pub flags: u32,
    /// Timestamp, ns since the Unix epoch.
    pub ts: u64,
    /// Thread id.
    pub tid: i64,
    /// Event number (index into libscap's event table).
    pub etype: u16,
    /// Parameter values, in table order.
    pub params: Vec<&'a [u8]>,
}

impl<'a> RawEvent<'a> {
    /// The event table entry, when the event number is known.
    pub fn info(&self) -> Option<&'static EventInfo> {
        EVENTS.get(self.etype as usize)
    }

    /// Event name (`open`, `execve`, ...), or `unknown` for numbers beyond the table.
    pub fn name(&self) -> &'static str {
        self.info().map_or("unknown", |i| i.name)
    }

    /// Whether this is an enter event (libscap numbers enter events even, exit events odd).
    pub fn is_enter(&self) -> bool {
        self.etype.is_multiple_of(2)
    }

    /// The raw bytes of the parameter called `name`.
    pub fn param(&self, name: &str) -> Option<&'a [u8]> {
        let info = self.info()?;
        let i = info.params.iter().position(|(n, _)| *n == name)?;
        self.params.get(i).copied()
    }
}

/// A bounds-checked little-endian cursor over one block's body.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Absolute offset of `buf[0]` in the file, for error messages.
    base: usize,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8], base: usize) -> Self {
        Self { buf, pos: 0, base }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn err(&self, what: &str) -> ScapError {
        ScapError::at(self.base + self.pos, format!("truncated {what}"))
    }

    fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8], ScapError> {
        if self.remaining() < n {
            return Err(self.err(what));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self, what: &str) -> Result<u8, ScapError> {
        Ok(self.bytes(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, ScapError> {
        Ok(u16::from_le_bytes(self.bytes(2, what)?.try_into().expect("2 bytes")))
    }

    fn u32(&mut self, what: &str) -> Result<u32, ScapError> {
        Ok(u32::from_le_bytes(self.bytes(4, what)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self, what: &str) -> Result<u64, ScapError> {
        Ok(u64::from_le_bytes(self.bytes(8, what)?.try_into().expect("8 bytes")))
    }

    fn i64(&mut self, what: &str) -> Result<i64, ScapError> {
        Ok(self.u64(what)? as i64)
    }

    /// A string stored as a u16 length and that many bytes (not NUL-terminated).
    fn string(&mut self, what: &str) -> Result<String, ScapError> {
        let n = self.u16(what)? as usize;
        Ok(lossy(self.bytes(n, what)?))
    }

    fn skip(&mut self, n: usize, what: &str) -> Result<(), ScapError> {
        self.bytes(n, what).map(|_| ())
    }
}

/// Text of a stored string, without trailing NULs, invalid UTF-8 replaced.
pub(crate) fn lossy(b: &[u8]) -> String {
    let end = b.iter().rposition(|&c| c != 0).map_or(0, |i| i + 1);
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn nul_split(b: &[u8]) -> Vec<String> {
    let mut v: Vec<String> = b.split(|&c| c == 0).map(|s| String::from_utf8_lossy(s).into_owned()).collect();
    if b.last() == Some(&0) {
        v.pop();
    }
    if b.is_empty() {
        v.clear();
    }
    v
}

impl ScapFile {
    /// Reads and parses `path` (plain or gzip-compressed).
    pub fn open(path: &Path) -> Result<Self, ScapError> {
        let raw = std::fs::read(path).map_err(|e| ScapError::io(format!("reading {}: {e}", path.display())))?;
        Self::from_bytes(raw)
    }

    /// Parses a capture held in memory (plain or gzip-compressed).
    pub fn from_bytes(raw: Vec<u8>) -> Result<Self, ScapError> {
        let data = if raw.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::with_capacity(raw.len() * 8);
            flate2::read::MultiGzDecoder::new(&raw[..])
                .read_to_end(&mut out)
                .map_err(|e| ScapError::at(out.len(), format!("gzip stream is corrupt ({e}) after this many bytes")))?;
            out
        } else {
            raw
        };
        let mut f = ScapFile {
            version: (0, 0),
            machine: None,
            threads: Vec::new(),
            fds: Vec::new(),
            users: Vec::new(),
            groups: Vec::new(),
            interfaces: 0,
            skipped_blocks: 0,
            data: Vec::new(),
            events_at: 0,
        };
        if data.len() < 4 || data[..4] != SHB.to_le_bytes() {
            let head = u32::from_le_bytes(data.get(..4).and_then(|b| b.try_into().ok()).unwrap_or([0; 4]));
            return Err(ScapError::at(
                0,
                format!("not a scap file: first block type is {head:#x}, expected the section header {SHB:#x}"),
            ));
        }
        let mut at = 0usize;
        let mut first = true;
        loop {
            let Some((btype, body, next)) = block(&data, at)? else {
                f.events_at = at;
                break;
            };
            if first {
                if btype != SHB {
                    return Err(ScapError::at(
                        0,
                        format!(
                            "not a scap file: first block type is {btype:#x}, expected the section header {SHB:#x}"
                        ),
                    ));
                }
                first = false;
                let mut c = Cursor::new(body, at + 8);
                let magic = c.u32("section header")?;
                if magic != SHB_MAGIC {
                    return Err(ScapError::at(at + 8, format!("section header magic is {magic:#x}, expected {SHB_MAGIC:#x} (byte-swapped files are not supported)")));
                }
                f.version = (c.u16("section header")?, c.u16("section header")?);
                if f.version.0 > MAX_MAJOR_VERSION {
                    return Err(ScapError::at(
                        at + 12,
                        format!(
                            "scap format version {}.{} is newer than this reader supports ({MAX_MAJOR_VERSION}.x)",
                            f.version.0, f.version.1
                        ),
                    ));
                }
                at = next;
                continue;
            }
            let base = at + 8;
            match btype {
                MI | MI_INT => f.machine = Some(machine_info(body, base)?),
                PL_V1 | PL_V1_INT | PL_V2 | PL_V2_INT | PL_V3 | PL_V3_INT | PL_V4 | PL_V5 | PL_V6 | PL_V7 | PL_V8
                | PL_V9 => proc_list(body, base, btype, &mut f.threads)?,
                FDL | FDL_INT | FDL_V2 => fd_list(body, base, btype == FDL_V2, &mut f.fds)?,
                IL | IL_INT | IL_V2 => f.interfaces += count_interfaces(body, btype == IL_V2),
                UL | UL_INT | UL_V2 => user_list(body, base, btype == UL_V2, &mut f.users, &mut f.groups)?,
                EV | EV_INT | EV_V2 | EV_V2_LARGE | EVF | EVF_V2 | EVF_V2_LARGE => {
                    f.events_at = at;
                    break;
                }
                _ => f.skipped_blocks += 1,
            }
            at = next;
        }
        if first {
            return Err(ScapError::at(0, "empty file: no section header"));
        }
        f.data = data;
        Ok(f)
    }

    /// The events, in file order. Each item is one event or the error that ends the iteration.
    pub fn events(&self) -> Events<'_> {
        Events { data: &self.data, at: self.events_at, done: false }
    }

    /// The user name of `uid`, when the user list has it.
    pub fn user_name(&self, uid: u32) -> Option<&str> {
        self.users.iter().find(|u| u.uid == uid).map(|u| u.name.as_str())
    }
}

/// The block at `at`: (type, body, offset of the next block); `None` at a clean end of file.
/// A block's type, body, and the offset of the block after it.
type Block<'a> = (u32, &'a [u8], usize);

fn block(data: &[u8], at: usize) -> Result<Option<Block<'_>>, ScapError> {
    if at == data.len() {
        return Ok(None);
    }
    if data.len() - at < 12 {
        return Err(ScapError::at(at, format!("torn block: {} trailing bytes are not a whole block", data.len() - at)));
    }
    let btype = u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes"));
    let len = u32::from_le_bytes(data[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
    if len < 12 || !len.is_multiple_of(4) {
        return Err(ScapError::at(at, format!("block of type {btype:#x} has an invalid length {len}")));
    }
    if len > data.len() - at {
        return Err(ScapError::at(
            at,
            format!("torn block: type {btype:#x} claims {len} bytes, {} remain", data.len() - at),
        ));
    }
    let trailer = u32::from_le_bytes(data[at + len - 4..at + len].try_into().expect("4 bytes")) as usize;
    if trailer != len {
        return Err(ScapError::at(
            at,
            format!("block of type {btype:#x}: length {len} in header, {trailer} in trailer"),
        ));
    }
    Ok(Some((btype, &data[at + 8..at + len - 4], at + len)))
}

fn machine_info(body: &[u8], base: usize) -> Result<MachineInfo, ScapError> {
    let mut c = Cursor::new(body, base);
    let num_cpus = c.u32("machine info")?;
    let memory_bytes = c.u64("machine info")?;
    let _max_pid = c.u64("machine info")?;
    let hostname = lossy(c.bytes(128, "machine info")?);
    Ok(MachineInfo { num_cpus, memory_bytes, hostname })
}

fn proc_list(body: &[u8], base: usize, btype: u32, out: &mut Vec<ThreadInfo>) -> Result<(), ScapError> {
    let version = match btype {
        PL_V1 | PL_V1_INT => 1,
        PL_V2 | PL_V2_INT => 2,
        PL_V3 | PL_V3_INT => 3,
        PL_V4 => 4,
        PL_V5 => 5,
        PL_V6 => 6,
        PL_V7 => 7,
        PL_V8 => 8,
        _ => 9,
    };
    let mut c = Cursor::new(body, base);
    while c.remaining() >= 4 {
        let start = c.pos;
        let sub_len = if version >= 9 { c.u32("process entry length")? as usize } else { 0 };
        let what = "process entry";
        let mut t = ThreadInfo { loginuid: u32::MAX, vpid: -1, ..Default::default() };
        t.tid = c.i64(what)?;
        t.pid = c.i64(what)?;
        t.ptid = c.i64(what)?;
        if version >= 6 {
            c.skip(8, what)?; // sid
        }
        if version >= 8 {
            c.skip(8, what)?; // vpgid
        }
        t.comm = c.string(what)?;
        t.exe = c.string(what)?;
        if version >= 7 {
            t.exepath = c.string(what)?;
        }
        let n = c.u16(what)? as usize;
        t.args = nul_split(c.bytes(n, what)?);
        t.cwd = c.string(what)?;
        c.skip(8 + 4, what)?; // fdlimit, flags
        t.uid = c.u32(what)?;
        t.gid = c.u32(what)?;
        if version >= 2 {
            c.skip(4 * 3 + 8 * 2, what)?; // vmsize, vmrss, vmswap, pfmajor, pfminor
            if version >= 3 {
                let n = c.u16(what)? as usize;
                c.skip(n, what)?; // environment
            }
            if version >= 4 {
                c.skip(8, what)?; // vtid
                t.vpid = c.i64(what)?;
                let n = c.u16(what)? as usize;
                t.cgroups = nul_split(c.bytes(n, what)?);
                if version >= 5 {
                    let _root = c.string(what)?;
                }
            }
        }
        if sub_len > 0 {
            let read = c.pos - start;
            if read > sub_len {
                return Err(ScapError::at(
                    base + start,
                    format!("process entry is {sub_len} bytes but its fields take {read}"),
                ));
            }
            let mut rest = sub_len - read;
            // libs 0.10 inserted pidns_init_start_ts and tty before loginuid; older writers
            // leave at most the 29 bytes of loginuid, exe_writable and three capability sets.
            if rest > 29 {
                c.skip(8, what)?;
                t.tty = c.u32(what)?;
                rest -= 12;
            }
            if rest >= 4 {
                t.loginuid = c.u32(what)?;
                rest -= 4;
            }
            c.skip(rest, what)?;
        }
        out.push(t);
    }
    Ok(())
}

fn fd_list(body: &[u8], base: usize, v2: bool, out: &mut Vec<FdInfo>) -> Result<(), ScapError> {
    let mut c = Cursor::new(body, base);
    let tid = c.i64("fd list")?;
    while c.remaining() >= 4 {
        let start = c.pos;
        let what = "fd entry";
        let sub_len = if v2 { c.u32(what)? as usize } else { 0 };
        let fd = c.i64(what)?;
        let _ino = c.u64(what)?;
        let ftype = c.u8(what)?;
        let mut open_flags = 0;
        let (kind, name) = match ftype {
            3 => {
                let sip = c.bytes(4, what)?.try_into().expect("4");
                let dip = c.bytes(4, what)?.try_into().expect("4");
                let (sport, dport, l4) = (c.u16(what)?, c.u16(what)?, c.u8(what)?);
                let k = FdKind::Ipv4 { sip, sport, dip, dport, l4 };
                let n = crate::params::tuple_name(&k);
                (k, n)
            }
            5 => {
                let ip = c.bytes(4, what)?.try_into().expect("4");
                let (port, l4) = (c.u16(what)?, c.u8(what)?);
                let k = FdKind::Ipv4Server { ip, port, l4 };
                let n = crate::params::tuple_name(&k);
                (k, n)
            }
            4 => {
                let sip = c.bytes(16, what)?.try_into().expect("16");
                let dip = c.bytes(16, what)?.try_into().expect("16");
                let (sport, dport, l4) = (c.u16(what)?, c.u16(what)?, c.u8(what)?);
                let k = FdKind::Ipv6 { sip, sport, dip, dport, l4 };
                let n = crate::params::tuple_name(&k);
                (k, n)
            }
            6 => {
                let ip = c.bytes(16, what)?.try_into().expect("16");
                let (port, l4) = (c.u16(what)?, c.u8(what)?);
                let k = FdKind::Ipv6Server { ip, port, l4 };
                let n = crate::params::tuple_name(&k);
                (k, n)
            }
            8 => {
                c.skip(16, what)?;
                (FdKind::Unix, c.string(what)?)
            }
            16 => {
                open_flags = c.u32(what)?;
                let n = c.string(what)?;
                if sub_len > 0 && sub_len >= c.pos - start + 4 {
                    c.skip(4, what)?; // dev
                }
                (FdKind::File, n)
            }
            1 => (FdKind::File, c.string(what)?),
            2 => (FdKind::Directory, c.string(what)?),
            7 | 9..=15 | 17..=21 => (FdKind::Other(fd_type_name(ftype)), c.string(what)?),
            _ => (FdKind::Other("unknown"), format!("unknown-type:[{ftype}]")),
        };
        if sub_len > 0 {
            let read = c.pos - start;
            if read > sub_len {
                return Err(ScapError::at(
                    base + start,
                    format!("fd entry is {sub_len} bytes but its fields take {read}"),
                ));
            }
            c.skip(sub_len - read, what)?;
        }
        out.push(FdInfo { tid, fd, kind, name, open_flags });
    }
    Ok(())
}

fn fd_type_name(t: u8) -> &'static str {
    match t {
        7 => "pipe",
        9 => "event",
        10 => "unsupported",
        11 => "signalfd",
        12 => "eventpoll",
        13 => "inotify",
        14 => "timerfd",
        15 => "netlink",
        17 => "bpf",
        18 => "userfaultfd",
        19 => "io_uring",
        20 => "memfd",
        21 => "pidfd",
        _ => "unknown",
    }
}

fn count_interfaces(body: &[u8], v2: bool) -> usize {
    let mut at = 0usize;
    let mut n = 0;
    while body.len() - at >= 4 {
        let size = if v2 {
            u32::from_le_bytes(body[at..at + 4].try_into().expect("4")) as usize + 4
        } else {
            let ty = u16::from_le_bytes([body[at], body[at + 1]]);
            let name = u16::from_le_bytes([body[at + 2], body[at + 3]]) as usize;
            // type, name length, addr/netmask/bcast, [linkspeed], name
            4 + name
                + match ty {
                    1 => 12 + 8,
                    2 => 48 + 8,
                    3 => 12,
                    4 => 48,
                    _ => return n,
                }
        };
        if size == 0 || size > body.len() - at {
            break;
        }
        at += size;
        n += 1;
    }
    n
}

fn user_list(
    body: &[u8],
    base: usize,
    v2: bool,
    users: &mut Vec<UserInfo>,
    groups: &mut Vec<GroupInfo>,
) -> Result<(), ScapError> {
    let mut c = Cursor::new(body, base);
    while c.remaining() >= 4 {
        let start = c.pos;
        let what = "user list entry";
        let sub_len = if v2 { c.u32(what)? as usize } else { 0 };
        if c.u8(what)? == 0 {
            let uid = c.u32(what)?;
            let gid = c.u32(what)?;
            let name = c.string(what)?;
            let homedir = c.string(what)?;
            let shell = c.string(what)?;
            users.push(UserInfo { uid, gid, name, homedir, shell });
        } else {
            let gid = c.u32(what)?;
            let name = c.string(what)?;
            groups.push(GroupInfo { gid, name });
        }
        if sub_len > 0 {
            let read = c.pos - start;
            if read > sub_len {
                return Err(ScapError::at(
                    base + start,
                    format!("user entry is {sub_len} bytes but its fields take {read}"),
                ));
            }
            c.skip(sub_len - read, what)?;
        }
    }
    Ok(())
}

/// Iterator over a file's events.
pub struct Events<'a> {
    data: &'a [u8],
    at: usize,
    done: bool,
}

impl<'a> Iterator for Events<'a> {
    type Item = Result<RawEvent<'a>, ScapError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        loop {
            let r = match block(self.data, self.at) {
                Ok(None) => {
                    self.done = true;
                    return None;
                }
                Ok(Some(b)) => b,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            let (btype, body, next) = r;
            let at = self.at;
            self.at = next;
            let (with_flags, v2, large) = match btype {
                EV | EV_INT => (false, false, false),
                EV_V2 => (false, true, false),
                EV_V2_LARGE => (false, true, true),
                EVF => (true, false, false),
                EVF_V2 => (true, true, false),
                EVF_V2_LARGE => (true, true, true),
                // Metadata blocks between events (a merged capture): skip them.
                _ => continue,
            };
            let r = event(body, at, with_flags, v2, large);
            if r.is_err() {
                self.done = true;
            }
            return Some(r);
        }
    }
}

fn event(body: &[u8], at: usize, with_flags: bool, v2: bool, large: bool) -> Result<RawEvent<'_>, ScapError> {
    let mut c = Cursor::new(body, at + 8);
    let cpu = c.u16("event")?;
    let flags = if with_flags { c.u32("event")? } else { 0 };
    let hdr_at = c.pos;
    let ts = c.u64("event header")?;
    let tid = c.i64("event header")?;
    let len = c.u32("event header")? as usize;
    let etype = c.u16("event header")?;
    let hdr_len = if v2 { 26 } else { 22 };
    if len < hdr_len || len > body.len() - hdr_at {
        return Err(ScapError::at(at, format!("event length {len} does not fit its {}-byte block", body.len())));
    }
    let ev = &body[hdr_at..hdr_at + len];
    let lsize = if large { 4 } else { 2 };
    let nparams = if v2 {
        u32::from_le_bytes(ev[22..26].try_into().expect("4")) as usize
    } else {
        // Version-1 events carry no parameter count: take the largest count, up to the
        // table's, whose lengths add up exactly to the event length.
        let max = EVENTS.get(etype as usize).map_or(0, |i| i.params.len());
        (0..=max)
            .rev()
            .find(|&n| {
                let lens_end = hdr_len + n * 2;
                lens_end <= len
                    && (0..n)
                        .map(|i| u16::from_le_bytes([ev[hdr_len + 2 * i], ev[hdr_len + 2 * i + 1]]) as usize)
                        .sum::<usize>()
                        + lens_end
                        == len
            })
            .ok_or_else(|| {
                ScapError::at(at, format!("event type {etype}: parameter lengths do not add up to its length {len}"))
            })?
    };
    if nparams > 64 || hdr_len + nparams * lsize > len {
        return Err(ScapError::at(
            at,
            format!("event type {etype} claims {nparams} parameters, more than its {len} bytes hold"),
        ));
    }
    let mut params = Vec::with_capacity(nparams);
    let mut data = hdr_len + nparams * lsize;
    for i in 0..nparams {
        let p = hdr_len + i * lsize;
        let plen = if large {
            u32::from_le_bytes(ev[p..p + 4].try_into().expect("4")) as usize
        } else {
            u16::from_le_bytes([ev[p], ev[p + 1]]) as usize
        };
        if plen > len - data {
            return Err(ScapError::at(
                at,
                format!("event type {etype}: parameter {i} ({plen} bytes) runs past the event's end"),
            ));
        }
        params.push(&ev[data..data + plen]);
        data += plen;
    }
    Ok(RawEvent { offset: at, cpu, flags, ts, tid, etype, params })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(btype: u32, body: &[u8]) -> Vec<u8> {
        let pad = (4 - body.len() % 4) % 4;
        let total = (12 + body.len() + pad) as u32;
        let mut v = btype.to_le_bytes().to_vec();
        v.extend_from_slice(&total.to_le_bytes());
        v.extend_from_slice(body);
        v.extend(std::iter::repeat_n(0, pad));
        v.extend_from_slice(&total.to_le_bytes());
        v
    }

    fn section() -> Vec<u8> {
        let mut b = SHB_MAGIC.to_le_bytes().to_vec();
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&u64::MAX.to_le_bytes());
        block(SHB, &b)
    }

    /// An event body: cpu, [flags], header (with nparams) and parameters with `lsize`-byte lengths.
    fn event(flags: Option<u32>, etype: u16, params: &[&[u8]], lsize: usize) -> Vec<u8> {
        let mut b = 3u16.to_le_bytes().to_vec();
        if let Some(f) = flags {
            b.extend_from_slice(&f.to_le_bytes());
        }
        let len = 26 + params.len() * lsize + params.iter().map(|p| p.len()).sum::<usize>();
        b.extend_from_slice(&1_700_000_000_000_000_000u64.to_le_bytes());
        b.extend_from_slice(&42u64.to_le_bytes());
        b.extend_from_slice(&(len as u32).to_le_bytes());
        b.extend_from_slice(&etype.to_le_bytes());
        b.extend_from_slice(&(params.len() as u32).to_le_bytes());
        for p in params {
            b.extend_from_slice(&(p.len() as u64).to_le_bytes()[..lsize]);
        }
        for p in params {
            b.extend_from_slice(p);
        }
        b
    }

    #[test]
    fn event_blocks_with_flags_and_large_payloads_read() {
        let big = vec![b'x'; 70_000];
        let mut f = section();
        f.extend(block(EVF_V2, &event(Some(7), 2, &[b"/etc/passwd\0", &1u32.to_le_bytes(), &0u32.to_le_bytes()], 2)));
        f.extend(block(EV_V2_LARGE, &event(None, 9, &[&5i64.to_le_bytes(), &big], 4)));
        f.extend(block(EVF_V2_LARGE, &event(Some(1), 9, &[&5i64.to_le_bytes(), b"y"], 4)));
        f.extend(block(0x999, b"an unknown block is skipped"));
        f.extend(block(EV_V2, &event(None, 60_000, &[], 2)));
        let file = ScapFile::from_bytes(f).unwrap();
        let evs: Vec<RawEvent<'_>> = file.events().map(|e| e.unwrap()).collect();
        assert_eq!(evs.len(), 4);
        assert_eq!((evs[0].cpu, evs[0].flags, evs[0].tid, evs[0].name()), (3, 7, 42, "open"));
        assert_eq!(evs[0].param("name"), Some(&b"/etc/passwd\0"[..]));
        assert_eq!(evs[1].params[1].len(), 70_000);
        assert_eq!((evs[2].flags, evs[2].params[1]), (1, &b"y"[..]));
        assert_eq!((evs[3].etype, evs[3].name()), (60_000, "unknown"));
        // The import counts the unknown type and goes on.
        let stats = crate::import(&file, 100, |_| Ok::<_, ()>(())).unwrap();
        assert_eq!(stats.unknown_types.get(&60_000), Some(&1));
        assert_eq!(stats.events_read, 4);
    }

    #[test]
    fn parameter_lengths_past_the_event_are_refused() {
        let mut f = section();
        let mut ev = event(None, 2, &[b"/etc/passwd\0"], 2);
        // Claim 200 bytes for the only parameter.
        let at = 2 + 26;
        ev[at..at + 2].copy_from_slice(&200u16.to_le_bytes());
        f.extend(block(EV_V2, &ev));
        let file = ScapFile::from_bytes(f).unwrap();
        let e = file.events().next().unwrap().unwrap_err().to_string();
        assert!(e.contains("parameter 0 (200 bytes) runs past the event's end"), "{e}");
    }
}
