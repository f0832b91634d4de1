//! Turns a capture's events into Lanner chunks, tracking threads and fds the way libsinsp does.
//!
//! Each syscall's enter and exit events become one Lanner event, emitted at the exit (the enter
//! event supplies the arguments the exit lacks, such as the fd of `read`). Thread state comes
//! from the process list and is updated by clone/fork/vfork, execve and procexit; fd state comes
//! from the fd list and is updated by open, socket, accept, connect, bind, dup, fcntl and close.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use lanner_formats::archive::ChunkBuilder;
use lanner_formats::event::{args, fdkind, oflags, Chunk, Event, Process, AT_FDCWD, NONE, RET_UNKNOWN};
use lanner_formats::paths::resolve;
use lanner_formats::syscall::EventType;
use lanner_procstate::fd::{connect_names_socket, fcntl_dup, FcntlCodes};
use lanner_procstate::{Exec, Fd, FdTable, Image, Semantics};

use crate::event_table::SYSCALLS;
use crate::params::{int, socket, string, string_list, uint, ParamType};
use crate::reader::{FdKind, RawEvent, ScapFile};
use crate::ScapError;

/// Import replays libsinsp's state machine: the output is judged against sysdig's.
const LIBSINSP: Semantics = Semantics::Libsinsp;

/// What an import saw and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportStats {
    /// Events read from the file (enter and exit counted separately).
    pub events_read: u64,
    /// Lanner events written.
    pub imported: u64,
    /// Enter events whose exit never came (end of capture), not imported.
    pub unpaired_enters: u64,
    /// Events of types Lanner does not model, by name: counted, not imported.
    pub not_imported: BTreeMap<String, u64>,
    /// Event numbers beyond libscap's table (written by a newer driver), by number.
    pub unknown_types: BTreeMap<u16, u64>,
    /// Threads in the file's process list.
    pub threads: usize,
    /// Fds in the file's fd lists.
    pub fds: usize,
}

/// A thread as libsinsp keeps it: each has its own image (copied at clone), fds are per process.
#[derive(Debug, Clone, Default)]
struct Thread {
    pid: i64,
    ptid: i64,
    image: Image,
    /// Bumped whenever the thread's process-level state changes.
    generation: u64,
}

fn kind_code(k: &FdKind) -> u32 {
    match k {
        FdKind::File => fdkind::FILE,
        FdKind::Directory => fdkind::DIRECTORY,
        FdKind::Ipv4 { .. } => fdkind::IPV4,
        FdKind::Ipv6 { .. } => fdkind::IPV6,
        FdKind::Ipv4Server { .. } => fdkind::IPV4_SERVER,
        FdKind::Ipv6Server { .. } => fdkind::IPV6_SERVER,
        FdKind::Unix => fdkind::UNIX,
        FdKind::Other(n) => fdkind::from_name(n).unwrap_or(fdkind::UNKNOWN),
    }
}

/// libscap's `SCAP_L4_*` code as Lanner's protocol (ICMP sockets are raw ones).
fn l4_code(l4: u8) -> u8 {
    match l4 {
        2 => fdkind::L4_TCP,
        3 => fdkind::L4_UDP,
        4 | 5 => fdkind::L4_RAW,
        _ => fdkind::L4_UNKNOWN,
    }
}

fn container_of(cgroups: &[String]) -> String {
    cgroups
        .iter()
        .find_map(|c| {
            let path = c.split_once('=').map_or(c.as_str(), |(_, p)| p);
            lanner_formats::container::container_id_from_path(Path::new(path))
        })
        .unwrap_or_else(|| "host".to_owned())
}

/// The replayed libsinsp state plus the chunk being built.
struct Importer<'a> {
    threads: HashMap<i64, Thread>,
    /// Fd tables by process id.
    fds: HashMap<i64, FdTable>,
    /// The last enter event of each thread.
    pending: HashMap<i64, RawEvent<'a>>,
    builder: ChunkBuilder,
    /// Process-table index of each (thread, generation) in the current chunk.
    in_chunk: HashMap<(i64, u64), u32>,
    generation: u64,
    stats: ImportStats,
}

/// Imports every event of `file`, handing each chunk of at most `chunk_events` events to `emit`.
pub fn import<E>(
    file: &ScapFile,
    chunk_events: usize,
    mut emit: impl FnMut(Chunk) -> Result<(), E>,
) -> Result<ImportStats, ImportError<E>> {
    let mut im = Importer {
        threads: HashMap::new(),
        fds: HashMap::new(),
        pending: HashMap::new(),
        builder: ChunkBuilder::new(),
        in_chunk: HashMap::new(),
        generation: 0,
        stats: ImportStats { threads: file.threads.len(), fds: file.fds.len(), ..Default::default() },
    };
    for t in &file.threads {
        let mut image = Image {
            comm: t.comm.clone(),
            exe: t.exe.clone(),
            exepath: t.exepath.clone(),
            args: t.args.clone(),
            uid: t.uid,
            gid: t.gid,
            container_id: container_of(&t.cgroups),
            tty: t.tty,
            loginuid: t.loginuid,
            start_ns: 0,
            cwd: String::new(),
            task: Default::default(),
            env: None,
        };
        image.set_cwd(&t.cwd);
        im.threads.insert(t.tid, Thread { pid: t.pid, ptid: t.ptid, image, generation: 0 });
    }
    for f in &file.fds {
        // Fd lists are per thread; libsinsp keeps one table per process.
        let pid = im.threads.get(&f.tid).map_or(f.tid, |t| t.pid);
        let cloexec = oflags::from_ppm(f.open_flags) & oflags::O_CLOEXEC != 0;
        let l4 = match &f.kind {
            FdKind::Ipv4 { l4, .. } | FdKind::Ipv6 { l4, .. } => l4_code(*l4),
            FdKind::Ipv4Server { l4, .. } | FdKind::Ipv6Server { l4, .. } => l4_code(*l4),
            _ => fdkind::L4_UNKNOWN,
        };
        let entry = Fd {
            kind: kind_code(&f.kind),
            name: f.name.clone(),
            cloexec,
            l4,
            role: fdkind::ROLE_UNKNOWN,
            raw: String::new(),
            connected: false,
        };
        im.fds.entry(pid).or_default().insert(f.fd, entry);
    }
    for ev in file.events() {
        let ev = ev.map_err(ImportError::Scap)?;
        im.stats.events_read += 1;
        im.event(ev);
        if im.builder.len() >= chunk_events {
            emit(im.take()).map_err(ImportError::Sink)?;
        }
    }
    im.stats.unpaired_enters = im.pending.len() as u64;
    if !im.builder.is_empty() {
        emit(im.take()).map_err(ImportError::Sink)?;
    }
    Ok(im.stats)
}

/// Why an import stopped.
#[derive(Debug)]
pub enum ImportError<E> {
    /// The capture is malformed.
    Scap(ScapError),
    /// The chunk consumer failed.
    Sink(E),
}

impl<E: std::fmt::Display> std::fmt::Display for ImportError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Scap(e) => write!(f, "{e}"),
            Self::Sink(e) => write!(f, "{e}"),
        }
    }
}

impl<E: std::fmt::Debug + std::fmt::Display> std::error::Error for ImportError<E> {}

/// The numeric columns of one Lanner event.
struct Cols {
    ret: i64,
    flags: u32,
    mode: u32,
    dirfd: i32,
}

/// The fd-table view of one event's arguments.
struct FdRef {
    fd: i64,
    /// The fd event's `mode` column: kind, protocol and role.
    mode: u32,
    name: Option<String>,
    /// The name as the process passed it at open, where it differs.
    raw: Option<String>,
}

impl<'a> Importer<'a> {
    fn take(&mut self) -> Chunk {
        self.in_chunk.clear();
        self.builder.take()
    }

    fn thread(&mut self, tid: i64) -> &mut Thread {
        // libsinsp names a thread it never saw created `<NA>`.
        self.threads.entry(tid).or_insert_with(|| Thread {
            pid: tid,
            ptid: -1,
            image: Image {
                comm: "<NA>".into(),
                exe: "<NA>".into(),
                uid: u32::MAX,
                gid: u32::MAX,
                container_id: "host".into(),
                loginuid: u32::MAX,
                ..Default::default()
            },
            generation: 0,
        })
    }

    fn pid_of(&self, tid: i64) -> i64 {
        self.threads.get(&tid).map_or(tid, |t| t.pid)
    }

    fn fd(&self, tid: i64, fd: i64) -> Option<&Fd> {
        self.fds.get(&self.pid_of(tid))?.get(fd)
    }

    /// The fd table of `tid`'s process.
    fn fds_of(&mut self, tid: i64) -> &mut FdTable {
        let pid = self.pid_of(tid);
        self.fds.entry(pid).or_default()
    }

    /// The process-table index of `tid`'s current state in this chunk (adding it and its
    /// ancestors as needed).
    fn process_index(&mut self, tid: i64, depth: u32) -> u32 {
        // libsinsp invents an empty thread for an id it has never seen; so does the import.
        let key = (tid, self.thread(tid).generation);
        if let Some(&i) = self.in_chunk.get(&key) {
            return i;
        }
        let Thread { pid, ptid, image: t, .. } = self.threads[&tid].clone();
        // Guard against parent cycles in damaged files.
        let parent = if depth < 64 && ptid > 0 && ptid != tid { self.process_index(ptid, depth + 1) } else { NONE };
        let b = &mut self.builder;
        // Unknown values stay unknown (`<NA>`), not empty strings.
        let name = b.intern_opt(Some(t.comm.as_str()).filter(|v| !v.is_empty()));
        let exe = b.intern_opt(Some(t.exe.as_str()).filter(|v| !v.is_empty()));
        let exepath = b.intern(&t.exepath);
        let args = b.intern(&t.args.join("\0"));
        let cwd = b.intern(&t.cwd);
        let container_id = b.intern(&t.container_id);
        let p = Process {
            pid: pid as u32,
            // An unknown parent (-1) is stored as u32::MAX, which reads back as -1.
            ppid: if ptid < 0 { u32::MAX } else { ptid as u32 },
            parent,
            uid: t.uid,
            gid: t.gid,
            name,
            exe,
            exepath,
            args,
            cwd,
            start_ns: t.start_ns,
            container_id,
            tty: t.tty,
            loginuid: t.loginuid,
            container_name: NONE,
            container_image: NONE,
            k8s_pod: NONE,
            k8s_ns: NONE,
            task: lanner_formats::event::TaskFacts::UNKNOWN,
            container: lanner_formats::event::ContainerFacts::UNKNOWN,
        };
        let i = b.add_process(p);
        self.in_chunk.insert(key, i);
        i
    }

    /// Adds one Lanner event for `ev`'s thread.
    fn push(&mut self, ev: &RawEvent<'_>, etype: EventType, cols: Cols, path: Option<&str>) {
        self.push_row(ev, etype as u16, cols, path, None);
    }

    /// Adds one row with stored event type `stored` (an [`EventType`], maybe with the enter bit).
    /// `raw` is the path as the process passed it (open events, and fd events whose fd was
    /// opened so), where it differs from `path`.
    fn push_row(&mut self, ev: &RawEvent<'_>, stored: u16, cols: Cols, path: Option<&str>, raw: Option<&str>) {
        let process = self.process_index(ev.tid, 0);
        let path = self.builder.intern_path_opt(path);
        let path2 = self.builder.intern_path_opt(raw.filter(|r| !r.is_empty()));
        self.builder.push(Event {
            ts_ns: ev.ts,
            tid: ev.tid as u32,
            process,
            etype: stored,
            ret: cols.ret,
            flags: cols.flags,
            mode: cols.mode,
            dirfd: cols.dirfd,
            path,
            path2,
        });
        self.stats.imported += 1;
    }

    fn event(&mut self, ev: RawEvent<'a>) {
        let Some(info) = ev.info() else {
            *self.stats.unknown_types.entry(ev.etype).or_default() += 1;
            return;
        };
        // Events without an enter/exit pair: procexit and friends are single exit-less events.
        let single = matches!(info.name, "procexit" | "container" | "procinfo" | "switch" | "signaldeliver");
        if ev.is_enter() && !single {
            self.enter_row(info.name, &ev);
            self.pending.insert(ev.tid, ev);
            return;
        }
        let enter = if single { None } else { self.pending.remove(&ev.tid).filter(|e| e.etype + 1 == ev.etype) };
        let mut name = info.name;
        if info.name == "syscall" {
            // Generic events name their syscall by libscap code.
            let id = enter.as_ref().and_then(|e| e.param("ID")).or_else(|| ev.param("ID")).and_then(uint);
            name = id.and_then(|i| SYSCALLS.get(i as usize)).copied().unwrap_or("syscall");
        }
        let Some(etype) = EventType::from_name(name) else {
            if !matches!(name, "procinfo" | "switch" | "container") {
                *self.stats.not_imported.entry(name.to_owned()).or_default() += 1;
            }
            return;
        };
        if info.name == "syscall" {
            // Generic events carry no result.
            let cols = Cols { ret: RET_UNKNOWN, flags: 0, mode: 0, dirfd: AT_FDCWD };
            self.push(&ev, etype, cols, None);
            return;
        }
        self.syscall(etype, enter.as_ref(), &ev);
    }

    /// Adds the enter row of a modeled syscall: Falco evaluates rules on enter events too, with
    /// the thread's state before the call and the fd the call is about to use.
    fn enter_row(&mut self, name: &str, ev: &RawEvent<'a>) {
        let name = if name == "syscall" {
            ev.param("ID").and_then(uint).and_then(|i| SYSCALLS.get(i as usize)).copied().unwrap_or(name)
        } else {
            name
        };
        let Some(etype) = EventType::from_name(name) else { return };
        let (mut cols, mut path, mut raw) = (Cols { ret: 0, flags: 0, mode: 0, dirfd: AT_FDCWD }, None, None);
        if etype.uses_fd() {
            // libsinsp: fd -1 when the call has no fd argument yet; an fd missing from the
            // table has no name on the enter event.
            cols.dirfd = -1;
            if let Some(fd) = ev.param("fd").and_then(int) {
                let known = self.fd(ev.tid, fd).cloned();
                cols.dirfd = fd as i32;
                cols.mode = known.as_ref().map_or(fdkind::UNKNOWN, |f| f.mode().to_column());
                raw = known.as_ref().map(|f| f.raw.clone());
                path = known.map(|f| f.name);
            }
        }
        self.push_row(ev, etype as u16 | lanner_formats::syscall::ENTER, cols, path.as_deref(), raw.as_deref());
    }

    fn syscall(&mut self, etype: EventType, enter: Option<&RawEvent<'a>>, ev: &RawEvent<'a>) {
        use EventType as T;
        // A parameter from the exit event, else from the enter event.
        let p = |n: &str| ev.param(n).or_else(|| enter.and_then(|e| e.param(n)));
        let pi = |n: &str| p(n).and_then(int);
        let ps = |n: &str| p(n).map(string);
        // The return value is the exit event's first parameter (`res`, or `fd` for open,
        // socket and accept), as libsinsp's evt.rawres reads it.
        let res = match ev.info().and_then(|i| i.params.first()) {
            Some((_, ParamType::Errno | ParamType::Fd | ParamType::Pid | ParamType::Int64)) => {
                ev.params.first().copied().and_then(int).unwrap_or(0)
            }
            // brk and mmap return an address.
            Some(("res", ParamType::Uint64)) => ev.params.first().copied().and_then(uint).unwrap_or(0) as i64,
            _ => 0,
        };
        let tid = ev.tid;
        match etype {
            t if t.is_open() => {
                let fd = ev.param("fd").and_then(int).unwrap_or(res);
                let ppm_flags = pi("flags").unwrap_or(0) as u32;
                let mode = pi("mode").unwrap_or(0) as u32;
                let dirfd = pi("dirfd").unwrap_or(AT_FDCWD as i64);
                let raw = ps("name").unwrap_or_default();
                let base = if dirfd == AT_FDCWD as i64 || raw.starts_with('/') {
                    self.threads.get(&tid).map(|t| t.image.cwd.clone())
                } else {
                    self.fd(tid, dirfd).map(|f| f.name.clone())
                };
                let path = resolve(base.as_deref(), &raw);
                let flags = oflags::from_ppm(ppm_flags);
                if fd >= 0 {
                    self.fds_of(tid).open(fd, path.clone(), &raw, flags);
                }
                let raw = (raw != path).then_some(raw.as_str());
                self.push_row(ev, etype as u16, Cols { ret: fd, flags, mode, dirfd: dirfd as i32 }, Some(&path), raw);
            }
            T::Execve | T::Execveat => {
                if res == 0 {
                    let exe = ps("exe").unwrap_or_default();
                    let args = p("args").map(string_list).unwrap_or_default();
                    let filename = ps("filename");
                    let comm = ps("comm");
                    // libsinsp keeps the working directory across execve (the parameter is
                    // informational).
                    let cwd = ps("cwd");
                    let cgroups = p("cgroups").map(string_list);
                    let pid = pi("pid");
                    let ptid = pi("ptid");
                    let uid = pi("uid");
                    let tty = pi("tty");
                    let loginuid = pi("loginuid");
                    self.generation += 1;
                    let generation = self.generation;
                    let t = self.thread(tid);
                    let base = cwd.clone().unwrap_or_else(|| t.image.cwd.clone());
                    let exec = Exec {
                        comm: comm.unwrap_or_else(|| exe.rsplit('/').next().unwrap_or(&exe).to_owned()),
                        // Older drivers do not send the executable's path; libsinsp leaves it empty.
                        exepath: filename.map(|f| resolve(Some(&base), &f)).unwrap_or_default(),
                        exe,
                        args,
                        start_ns: ev.ts,
                        tty: tty.map(|v| v as u32),
                        loginuid: loginuid.map(|v| v as u32),
                        uid: uid.map(|v| v as u32),
                        // What these drivers send of the task: the environment and the process
                        // group in the task's pid namespace (libsinsp's vpgid).
                        task: p("env").map(|env| {
                            let mut t = lanner_formats::wire::TaskInfo::default();
                            if let Some(g) = pi("pgid") {
                                (t.vpgid, t.flags) = (g as u32, lanner_formats::wire::task_info::IDS);
                            }
                            (t, string_list(env))
                        }),
                    };
                    if let Some(c) = cgroups {
                        t.image.container_id = container_of(&c);
                    }
                    if let Some(pid) = pid {
                        t.pid = pid;
                    }
                    if let Some(ptid) = ptid {
                        t.ptid = ptid;
                    }
                    t.generation = generation;
                    let mut image = std::mem::take(&mut t.image);
                    image.exec(self.fds_of(tid), exec);
                    self.thread(tid).image = image;
                }
                let path = self.threads.get(&tid).map(|t| t.image.exepath.clone());
                self.push(ev, etype, Cols { ret: res, flags: 0, mode: 0, dirfd: AT_FDCWD }, path.as_deref());
            }
            T::Clone | T::Fork | T::Vfork => {
                if res == 0 {
                    // The child's own exit: its parameters describe the child.
                    let parent = self.threads.get(&pi("ptid").unwrap_or(-1)).cloned();
                    self.generation += 1;
                    let generation = self.generation;
                    let t = self.thread(tid);
                    if let Some(par) = parent {
                        if t.image.comm.is_empty() {
                            *t = Thread { generation, ..par };
                        }
                    }
                    if let Some(v) = pi("pid") {
                        t.pid = v;
                    }
                    if let Some(v) = pi("ptid") {
                        t.ptid = v;
                    }
                    let img = &mut t.image;
                    if let Some(v) = ps("comm") {
                        img.comm = v;
                    }
                    if let Some(v) = ps("exe") {
                        img.exe = v;
                    }
                    if let Some(v) = p("args") {
                        img.args = string_list(v);
                    }
                    if let Some(v) = ps("cwd") {
                        img.set_cwd(&v);
                    }
                    if let Some(v) = pi("uid") {
                        img.uid = v as u32;
                    }
                    if let Some(v) = pi("gid") {
                        img.gid = v as u32;
                    }
                    if let Some(v) = p("cgroups") {
                        img.container_id = container_of(&string_list(v));
                    }
                    if img.start_ns == 0 {
                        img.start_ns = ev.ts;
                    }
                    t.generation = generation;
                } else if res > 0 && !self.threads.contains_key(&res) {
                    // The parent's exit came first: the child starts as a copy of the parent.
                    let mut child = self.threads.get(&tid).cloned().unwrap_or_default();
                    self.generation += 1;
                    child.generation = self.generation;
                    child.pid = res;
                    child.ptid = tid;
                    child.image.start_ns = ev.ts;
                    self.threads.insert(res, child);
                    let pid = self.pid_of(tid);
                    if let Some(fds) = self.fds.get(&pid).cloned() {
                        self.fds.insert(res, fds);
                    }
                }
                self.push(ev, etype, Cols { ret: res, flags: 0, mode: 0, dirfd: AT_FDCWD }, None);
            }
            T::Procexit => {
                self.push(ev, etype, Cols { ret: pi("status").unwrap_or(0), flags: 0, mode: 0, dirfd: AT_FDCWD }, None);
                if let Some(t) = self.threads.remove(&tid) {
                    if t.pid == tid {
                        self.fds.remove(&tid);
                    }
                }
            }
            T::Chdir | T::Fchdir => {
                let dir = if etype == T::Chdir {
                    let cwd = self.threads.get(&tid).map(|t| t.image.cwd.clone());
                    ps("path").map(|p| resolve(cwd.as_deref(), &p))
                } else {
                    pi("fd").and_then(|fd| self.fd(tid, fd)).map(|f| f.name.clone())
                };
                if res == 0 {
                    if let Some(d) = &dir {
                        self.thread(tid).image.set_cwd(d);
                        self.generation += 1;
                        let g = self.generation;
                        self.thread(tid).generation = g;
                    }
                }
                let dirfd = pi("fd").unwrap_or(AT_FDCWD as i64) as i32;
                self.push(ev, etype, Cols { ret: res, flags: 0, mode: 0, dirfd }, dir.as_deref());
            }
            t if t.uses_fd() => {
                let r = self.fd_event(t, tid, res, &p);
                let cols = Cols { ret: res, flags: 0, mode: r.mode, dirfd: r.fd as i32 };
                self.push_row(ev, etype as u16, cols, r.name.as_deref(), r.raw.as_deref());
            }
            _ => {
                let cwd = self.threads.get(&tid).map(|t| t.image.cwd.clone());
                let path = ps("path").or_else(|| ps("name")).or_else(|| ps("pathname"));
                let path = path.map(|x| resolve(cwd.as_deref(), &x));
                // The arguments the numeric columns hold (formats::event::args), where libscap
                // spells them as Lanner stores them.
                let mut c = args::Columns::default();
                for slot in args::slots(etype) {
                    let v = match slot.encoding {
                        args::Encoding::Plain | args::Encoding::Mode => pi(slot.name),
                        args::Encoding::OpenFlags => pi(slot.name).map(|f| oflags::from_ppm(f as u32) as i64),
                        args::Encoding::Kernel => None,
                    };
                    if let Some(v) = v {
                        c.set(slot.column, v);
                    }
                }
                self.push(ev, etype, Cols { ret: res, flags: c.flags, mode: c.mode, dirfd: c.dirfd }, path.as_deref());
            }
        }
    }

    /// Applies an fd event to the fd table and returns the fd it concerns.
    fn fd_event(&mut self, t: EventType, tid: i64, res: i64, p: &dyn Fn(&str) -> Option<&'a [u8]>) -> FdRef {
        use EventType as T;
        let fd_arg = p("fd").and_then(int).unwrap_or(-1);
        // An fd missing from the table still has a number; libsinsp then gives it an empty name.
        let current = |me: &Self, fd: i64| FdRef {
            fd,
            mode: me.fd(tid, fd).map_or(fdkind::UNKNOWN, |f| f.mode().to_column()),
            raw: me.fd(tid, fd).map(|f| f.raw.clone()),
            name: me.fd(tid, fd).map(|f| f.name.clone()).or_else(|| (fd >= 0).then(String::new)),
        };
        match t {
            T::Socket => {
                if res >= 0 {
                    let domain = p("domain").and_then(uint).unwrap_or(0);
                    let sock_type = p("type").and_then(uint).unwrap_or(0);
                    self.fds_of(tid).socket(res, domain, sock_type, false, LIBSINSP);
                }
                current(self, res)
            }
            T::Accept | T::Accept4 => {
                let newfd = if fd_arg >= 0 { fd_arg } else { res };
                if newfd >= 0 {
                    if let Some((k, name)) = p("tuple").and_then(|b| socket(b, true)) {
                        // Only stream sockets accept: over IP, TCP.
                        self.fds_of(tid).accept(newfd, name, kind_code(&k), fdkind::L4_TCP, false, LIBSINSP);
                    }
                }
                current(self, newfd)
            }
            T::Connect => {
                let before = self.fd(tid, fd_arg).map(|f| f.name.clone()).unwrap_or_default();
                if connect_names_socket(res) {
                    if let Some((k, name)) = p("tuple").and_then(|b| socket(b, true)) {
                        self.fds_of(tid).name_socket(fd_arg, name, kind_code(&k), 0, fdkind::ROLE_CLIENT);
                        if res >= 0 {
                            self.fds_of(tid).set_connected(fd_arg);
                        }
                    }
                }
                let mut r = current(self, fd_arg);
                if r.name.as_deref().is_some_and(|n| n != before) {
                    r.mode = fdkind::FdMode { name_changed: true, ..fdkind::FdMode::from_column(r.mode) }.to_column();
                }
                r
            }
            T::Bind => {
                if res >= 0 {
                    if let Some((k, name)) = p("addr").and_then(|b| socket(b, false)) {
                        self.fds_of(tid).name_socket(fd_arg, name, kind_code(&k), 0, fdkind::ROLE_UNKNOWN);
                    }
                }
                current(self, fd_arg)
            }
            T::Dup | T::Dup2 | T::Dup3 | T::Fcntl => {
                let old = p("oldfd").and_then(int).unwrap_or(fd_arg);
                // fcntl creates an fd only for F_DUPFD and F_DUPFD_CLOEXEC.
                let dup = if t == T::Fcntl {
                    fcntl_dup(p("cmd").and_then(uint).unwrap_or(0), FcntlCodes::Ppm)
                } else {
                    Some(false)
                };
                match dup {
                    Some(cloexec) if res >= 0 && res != old => {
                        self.fds_of(tid).dup(old, res, cloexec, LIBSINSP);
                        current(self, res)
                    }
                    _ => current(self, old),
                }
            }
            T::Close => {
                let r = current(self, fd_arg);
                if res >= 0 {
                    self.fds_of(tid).close(fd_arg);
                }
                r
            }
            _ => current(self, fd_arg),
        }
    }
}
