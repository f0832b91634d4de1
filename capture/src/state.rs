//! Process and fd state rebuilt from kernel records, so every event can carry the full
//! context of its process (name, exe, cmdline, parent, uid, cwd) even after it is gone.

use std::collections::HashMap;

use lanner_formats::event::args::Columns;
use lanner_formats::event::{fdkind, oflags, sock_name, AT_FDCWD};
use lanner_formats::syscall::{self, EventType};
use lanner_formats::wire::RecordKind;
use lanner_formats::wire::{task_info, SockInfo, TaskInfo};
use lanner_procstate::fd::{connect_names_socket, connection_kind, fcntl_dup, server_kind, FcntlCodes};
use lanner_procstate::{Exec, Fd, FdTable, Image, Semantics};

use crate::kernel::decode::{split_argv, Record};
use crate::metadata::k8s::{ContainerInfo, PodMetadata};
use crate::metadata::procfs::{self, ProcSnapshot};
use crate::metadata::runtime::RuntimeMetadata;
use lanner_formats::paths::resolve;

/// A process as capture knows it: the shared process state plus what only capture knows.
#[derive(Debug, Clone, Default)]
pub struct ProcInfo {
    /// Thread-group id.
    pub pid: u32,
    /// Parent thread-group id.
    pub ppid: u32,
    /// Program, identity, working directory and container.
    pub image: Image,
    /// Open fds.
    pub fds: FdTable,
    /// Bumped on every change that events must see.
    pub version: u64,
    /// Set when the thread-group leader exited (unix ns).
    pub exited_ns: Option<u64>,
    /// cgroup v2 id the container id was resolved from.
    pub cgroup_id: u64,
    /// Kubernetes pod UID its cgroup path names (empty: none).
    pub pod_uid: String,
    /// Container name from the pod metadata (empty: unknown).
    pub container_name: String,
    /// Container image from the pod metadata (empty: unknown).
    pub container_image: String,
    /// Pod name (empty: unknown).
    pub k8s_pod: String,
    /// Pod namespace (empty: unknown).
    pub k8s_ns: String,
    /// Pod metadata generation these names were looked up in (0: not yet).
    pub meta_generation: u64,
    /// The container's privilege, start and mounts, from the pod spec or the runtime.
    pub container_info: ContainerInfo,
}

/// An fd as `/proc/PID/fd/N` shows it (`socket:[123]`, `pipe:[5]`, `anon_inode:[eventfd]`, a path).
pub fn fd_from_proc_link(link: String) -> Fd {
    let kind = if link.starts_with('/') {
        if link.starts_with("/memfd:") {
            fdkind::MEMFD
        } else {
            fdkind::FILE
        }
    } else if link.starts_with("pipe:") {
        fdkind::FIFO
    } else if link.starts_with("socket:") {
        // The family is not visible here; the name stays empty like libsinsp's unknown sockets.
        return Fd::new(String::new(), fdkind::UNKNOWN);
    } else if link.contains("eventpoll") {
        fdkind::EVENTPOLL
    } else if link.contains("eventfd") {
        fdkind::EVENT
    } else if link.contains("inotify") {
        fdkind::INOTIFY
    } else if link.contains("timerfd") {
        fdkind::TIMERFD
    } else if link.contains("signalfd") {
        fdkind::SIGNALFD
    } else if link.contains("bpf") {
        fdkind::BPF
    } else {
        fdkind::UNKNOWN
    };
    Fd::new(link, kind)
}

/// An event ready for the chunk builder (paths resolved, arguments decoded).
#[derive(Debug, Clone, PartialEq)]
pub struct EventDraft {
    /// Wall-clock ns.
    pub ts_ns: u64,
    /// Thread id.
    pub tid: u32,
    /// Thread-group id.
    pub pid: u32,
    /// Event type.
    pub etype: EventType,
    /// Return value.
    pub ret: i64,
    /// Flags (x86_64 `O_*` for opens).
    pub flags: u32,
    /// Mode.
    pub mode: u32,
    /// dirfd or fd argument.
    pub dirfd: i32,
    /// First path, absolute.
    pub path: Option<String>,
    /// Second path, absolute.
    pub path2: Option<String>,
}

/// All processes and threads seen, plus what is pending between paired records.
#[derive(Default)]
pub struct ProcessTable {
    procs: HashMap<u32, ProcInfo>,
    threads: HashMap<u32, u32>,
    /// Child thread id -> (parent's thread-group id, clone flags when the kernel read them).
    pending_fork: HashMap<u32, (u32, Option<u64>)>,
    pending_exec: HashMap<u32, (Vec<u8>, Vec<String>)>,
    /// What `sched_process_exec` said of a thread's new program, until its exec's record.
    pending_exec_info: HashMap<u32, (TaskInfo, Vec<String>)>,
    next_version: u64,
    boot_to_wall_ns: i64,
    containers: crate::metadata::containers::ContainerResolver,
    k8s: Option<PodMetadata>,
    runtime: Option<RuntimeMetadata>,
    /// Each container's users and groups, read from inside it at the first exec seen in it.
    accounts: HashMap<String, std::sync::Arc<lanner_formats::event::ContainerAccounts>>,
    /// When each container not read yet was last tried.
    accounts_tried: HashMap<String, std::time::Instant>,
    /// Records that could not be used (unknown syscall numbers).
    pub unknown_records: u64,
}

impl ProcessTable {
    /// A table converting boot-relative timestamps with `boot_to_wall_ns`.
    pub fn new(boot_to_wall_ns: i64) -> Self {
        Self {
            boot_to_wall_ns,
            containers: crate::metadata::containers::ContainerResolver::new(),
            ..Default::default()
        }
    }

    /// Names containers and pods from `meta` (from then on, for each process's next event).
    pub fn set_pod_metadata(&mut self, meta: PodMetadata) {
        self.k8s = Some(meta);
    }

    /// Names containers from a container runtime's socket through `meta` (looked up when a
    /// process of the container is first seen; the names come with its next event after that).
    pub fn set_runtime_metadata(&mut self, meta: RuntimeMetadata) {
        self.runtime = Some(meta);
    }

    /// The users and groups of container `id`, once a process of it has exec'd.
    pub fn container_accounts(&self, id: &str) -> Option<&std::sync::Arc<lanner_formats::event::ContainerAccounts>> {
        self.accounts.get(id)
    }

    /// Seeds the table from a `/proc` snapshot.
    pub fn seed(&mut self, snaps: Vec<ProcSnapshot>) {
        for s in snaps {
            let p = self.adopt_snapshot(s);
            // Containers running before capture started: read from their running processes.
            let (id, pid) = (p.image.container_id.clone(), p.pid);
            self.procs.insert(p.pid, p);
            self.read_accounts(&id, pid);
        }
    }

    /// Reads container `id`'s users and groups from inside it, once: through `pid`'s root (a
    /// process of it that just exec'd: by then a runtime has switched it to the container's
    /// root, which it had not yet when it joined the container's cgroup), or, when that process
    /// is already gone, through another live process of the container.
    fn read_accounts(&mut self, id: &str, pid: u32) {
        if id == crate::metadata::containers::HOST || self.accounts.contains_key(id) {
            return;
        }
        // The exec'ing process itself is always tried (one directory read). Walking the table
        // for another live process of the container is done at most once a second per
        // container, not at each of its execs.
        let mut found = procfs::container_accounts(id, pid);
        let now = std::time::Instant::now();
        let walk_due =
            self.accounts_tried.get(id).is_none_or(|t| now.duration_since(*t) >= std::time::Duration::from_secs(1));
        if found.is_none() && walk_due {
            self.accounts_tried.insert(id.to_owned(), now);
            found = self
                .procs
                .values()
                .filter(|p| p.pid != pid && p.exited_ns.is_none() && p.image.container_id == id)
                .map(|p| p.pid)
                .take(8)
                .find_map(|p| procfs::container_accounts(id, p));
        }
        if let Some(a) = found {
            self.accounts_tried.remove(id);
            self.accounts.insert(id.to_owned(), std::sync::Arc::new(a));
        }
    }

    fn bump(&mut self) -> u64 {
        self.next_version += 1;
        self.next_version
    }

    fn adopt_snapshot(&mut self, s: ProcSnapshot) -> ProcInfo {
        let mut argv = s.argv.into_iter();
        let (container_id, pod_uid) = crate::metadata::containers::ids_or_host(s.cgroup_ids);
        let mut fds = FdTable::default();
        for (fd, link) in s.fds {
            fds.insert(fd as i64, fd_from_proc_link(link));
        }
        let mut image = Image {
            comm: s.comm,
            exe: argv.next().unwrap_or_default(),
            args: argv.collect(),
            exepath: s.exepath,
            uid: s.uid,
            gid: s.gid,
            tty: s.tty,
            loginuid: s.loginuid,
            start_ns: self.wall(s.start_boot_ns),
            container_id,
            ..Default::default()
        };
        image.set_cwd(&s.cwd);
        ProcInfo {
            pid: s.pid,
            ppid: s.ppid,
            image,
            fds,
            version: self.bump(),
            exited_ns: None,
            cgroup_id: 0,
            pod_uid,
            ..Default::default()
        }
    }

    fn wall(&self, boot_ns: u64) -> u64 {
        (boot_ns as i64 + self.boot_to_wall_ns).max(0) as u64
    }

    /// The process with thread-group id `pid`.
    pub fn get(&self, pid: u32) -> Option<&ProcInfo> {
        self.procs.get(&pid)
    }

    /// Whether no process is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of processes in the table.
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// Forgets processes that exited more than `grace_ns` before `now_ns`.
    pub fn purge_exited(&mut self, now_ns: u64, grace_ns: u64) {
        self.procs.retain(|_, p| p.exited_ns.is_none_or(|t| t + grace_ns > now_ns));
    }

    fn ensure_process(&mut self, r: &Record) {
        if let Some(p) = self.procs.get_mut(&r.tgid) {
            if p.exited_ns.is_some() {
                // A pid was reused.
                self.procs.remove(&r.tgid);
            } else {
                let mut changed = false;
                if r.tid == r.tgid && !r.comm.is_empty() && p.image.comm != r.comm {
                    p.image.comm = r.comm.clone();
                    changed = true;
                }
                if p.image.uid != r.uid || p.image.gid != r.gid {
                    (p.image.uid, p.image.gid) = (r.uid, r.gid);
                    changed = true;
                }
                if r.tid == r.tgid && r.cgroup_id != 0 && p.cgroup_id != r.cgroup_id {
                    // Moved into another cgroup (a container runtime starting its process).
                    p.cgroup_id = r.cgroup_id;
                    let (container, pod) = self.containers.resolve_process(r.tgid, r.cgroup_id, None);
                    changed |= set_container(p, container, pod, self.runtime.as_mut());
                }
                changed |= refresh_metadata(self.k8s.as_ref(), self.runtime.as_mut(), p);
                if changed {
                    self.next_version += 1;
                    p.version = self.next_version;
                }
                if r.tid != r.tgid {
                    self.threads.insert(r.tid, r.tgid);
                    self.pending_fork.remove(&r.tid);
                }
                return;
            }
        }
        let p = if let Some((parent, flags)) = self.pending_fork.remove(&r.tgid) {
            // A fork we saw: the child starts as a copy of its parent.
            let base = self.procs.get(&parent).cloned();
            let parent_known = base.is_some();
            let base = base.unwrap_or_default();
            let task = forked_task(&base.image.task, parent, r.tgid, flags);
            let image = Image {
                uid: r.uid,
                gid: r.gid,
                comm: r.comm.clone(),
                start_ns: self.wall(r.ts_boot_ns),
                task,
                ..base.image
            };
            let child = ProcInfo { pid: r.tgid, ppid: parent, image, version: self.bump(), exited_ns: None, ..base };
            (child, parent_known)
        } else if let Some(s) = procfs::read_process(r.tgid) {
            (self.adopt_snapshot(s), true)
        } else {
            let image =
                Image { uid: r.uid, gid: r.gid, comm: r.comm.clone(), loginuid: u32::MAX, ..Default::default() };
            let unknown = ProcInfo { pid: r.tgid, image, version: self.bump(), ..Default::default() };
            (unknown, false)
        };
        let (mut p, from_proc_or_parent) = p;
        // Forked or read from /proc, it already has the ids its (or its parent's) /proc cgroup
        // file names (used when the v2 id names no container on a v1 host).
        let known = from_proc_or_parent.then(|| (p.image.container_id.clone(), p.pod_uid.clone()));
        p.cgroup_id = r.cgroup_id;
        (p.image.container_id, p.pod_uid) = self.containers.resolve_process(r.tgid, r.cgroup_id, known);
        clear_pod_metadata(&mut p);
        if let Some(rt) = self.runtime.as_mut() {
            rt.want(&p.image.container_id);
        }
        refresh_metadata(self.k8s.as_ref(), self.runtime.as_mut(), &mut p);
        self.procs.insert(r.tgid, p);
        if r.tid != r.tgid {
            self.threads.insert(r.tid, r.tgid);
            self.pending_fork.remove(&r.tid);
        }
    }

    /// Applies one record to the state and returns the event it describes, if any.
    pub fn apply(&mut self, r: Record) -> Option<EventDraft> {
        let ts_ns = self.wall(r.ts_boot_ns);
        if r.kind == RecordKind::Fork {
            // The header is the parent's; the child appears in later records.
            self.ensure_process(&r);
            let child = r.args[0] as u32;
            self.pending_fork.insert(child, (r.tgid, (r.args[2] != 0).then_some(r.args[1])));
            let mut d = self.draft(&r, ts_ns, EventType::Clone, child as i64);
            if r.args[2] != 0 {
                // Clone flags, read in the kernel from the forking syscall (low 32 bits).
                d.flags = r.args[1] as u32;
            }
            return Some(d);
        }
        self.ensure_process(&r);
        match r.kind {
            RecordKind::ExecArgs => {
                let argv = split_argv(&r.blobs[1]);
                self.pending_exec.insert(r.tid, (r.blobs[0].clone(), argv));
                None
            }
            RecordKind::ExecInfo => {
                if let Some(t) = parse_task_info(&r.blobs[0]) {
                    self.pending_exec_info.insert(r.tid, (t, split_argv(&r.blobs[1])));
                }
                None
            }
            RecordKind::Exit => {
                self.threads.remove(&r.tid);
                self.pending_exec.remove(&r.tid);
                self.pending_exec_info.remove(&r.tid);
                if r.tid == r.tgid {
                    if let Some(p) = self.procs.get_mut(&r.tgid) {
                        p.exited_ns = Some(ts_ns);
                    }
                }
                Some(self.draft(&r, ts_ns, EventType::Procexit, 0))
            }
            RecordKind::SyscallExit => self.syscall(r, ts_ns),
            RecordKind::Fork => unreachable!("handled above"),
        }
    }

    fn draft(&self, r: &Record, ts_ns: u64, etype: EventType, ret: i64) -> EventDraft {
        EventDraft {
            ts_ns,
            tid: r.tid,
            pid: r.tgid,
            etype,
            ret,
            flags: 0,
            mode: 0,
            dirfd: AT_FDCWD,
            path: None,
            path2: None,
        }
    }

    /// The name of memfd `fd` of process `pid`, when that fd is a memfd.
    fn memfd_name(&self, pid: u32, fd: i32) -> Option<String> {
        let f = self.procs.get(&pid)?.fds.get(fd as i64)?;
        (f.kind == fdkind::MEMFD).then(|| f.name.clone())
    }

    /// Base directory for a path relative to `dirfd` in process `pid`.
    fn base_dir(&self, pid: u32, dirfd: i32) -> Option<String> {
        let p = self.procs.get(&pid)?;
        if dirfd == AT_FDCWD {
            return p.image.cwd_path().map(str::to_owned);
        }
        p.fds.get(dirfd as i64).map(|f| f.name.clone()).or_else(|| procfs::fd_path(pid, dirfd))
    }

    fn syscall(&mut self, r: Record, ts_ns: u64) -> Option<EventDraft> {
        let Some(spec) = syscall::by_native_nr(r.nr) else {
            self.unknown_records += 1;
            return None;
        };
        let a = r.args;
        let i32a = |i: usize| a[i] as i32;
        let mut d = self.draft(&r, ts_ns, spec.event, r.ret);
        let text = |b: &Vec<u8>| String::from_utf8_lossy(b).into_owned();
        let p1 = text(&r.blobs[0]);
        let p2 = text(&r.blobs[1]);
        use EventType::*;
        // (dirfd for path 1, dirfd for path 2)
        let (fd1, fd2) = match spec.event {
            Openat | Openat2 | Mkdirat | Unlinkat | Execveat | Fchmodat | Fchownat => (i32a(0), AT_FDCWD),
            Renameat | Renameat2 | Linkat => (i32a(0), i32a(2)),
            Symlinkat => (i32a(1), AT_FDCWD),
            _ => (AT_FDCWD, AT_FDCWD),
        };
        // Every argument a column holds, from the one per-type map (formats::event::args).
        let cols = Columns::from_syscall(spec.event, &a, native_oflags);
        (d.flags, d.mode, d.dirfd) = (cols.flags, cols.mode, cols.dirfd);
        if spec.event == Creat {
            d.flags = oflags::O_CREAT | oflags::O_WRONLY | oflags::O_TRUNC;
        }
        let pid = r.tgid;
        if spec.event == Execve || spec.event == Execveat {
            let (filename, argv) =
                self.pending_exec.remove(&r.tid).or_else(|| self.pending_exec.remove(&r.tgid)).unwrap_or_default();
            let filename = text(&filename);
            let resolved = resolve(self.base_dir(pid, fd1).as_deref(), &filename);
            // The fd a program is run through: fexecve/execveat's, or N of an exec of
            // `/proc/self/fd/N` (or `/proc/PID/fd/N` of this process).
            let via_fd = if filename.is_empty() { Some(fd1) } else { proc_fd_of(&resolved, pid) };
            let path = match via_fd.and_then(|fd| self.memfd_name(pid, fd)) {
                // A program run from a memfd: the path the kernel gives it (`/proc/PID/exe`),
                // which a memfd found in /proc already has as its name.
                Some(link) if link.starts_with("/memfd:") => link,
                Some(name) => format!("/memfd:{name} (deleted)"),
                None => resolved,
            };
            if r.ret == 0 {
                let version = self.bump();
                let p = self.procs.get_mut(&pid)?;
                let mut it = argv.into_iter();
                let exec = Exec {
                    exe: it.next().unwrap_or_else(|| filename.clone()),
                    args: it.collect(),
                    exepath: path.clone(),
                    comm: if r.comm.is_empty() { p.image.comm.clone() } else { r.comm.clone() },
                    start_ns: ts_ns,
                    // The kernel side reads the terminal and login uid for exec records.
                    tty: Some(r.tty),
                    loginuid: Some(r.loginuid),
                    uid: None,
                    task: self.pending_exec_info.remove(&r.tid).or_else(|| self.pending_exec_info.remove(&r.tgid)),
                };
                p.image.exec(&mut p.fds, exec);
                p.version = version;
                if self.containers.uses_v1() {
                    // A runtime's process joins the container's v1 cgroups before it execs.
                    if let Some(ids) = crate::metadata::containers::ids_of_process(pid) {
                        let known = crate::metadata::containers::ids_or_host(ids);
                        let (container, pod) = self.containers.resolve_process(pid, p.cgroup_id, Some(known));
                        if set_container(p, container, pod, self.runtime.as_mut()) {
                            refresh_metadata(self.k8s.as_ref(), self.runtime.as_mut(), p);
                        }
                    }
                }
                let id = p.image.container_id.clone();
                self.read_accounts(&id, pid);
            }
            d.path = Some(path);
            return Some(d);
        }
        if spec.event == MemfdCreate && r.ret >= 0 {
            // MFD_CLOEXEC is 1.
            if let Some(p) = self.procs.get_mut(&pid) {
                p.fds.memfd(r.ret, p1.clone(), a[1] & 1 != 0);
            }
        }
        if spec.event.uses_fd() {
            self.fd_event(&r, &mut d);
            return Some(d);
        }
        if spec.event == Fchdir {
            if r.ret == 0 {
                if let Some(dir) = self.base_dir(pid, d.dirfd) {
                    let version = self.bump();
                    let p = self.procs.get_mut(&pid)?;
                    p.image.set_cwd(&dir);
                    p.version = version;
                    d.path = Some(dir);
                }
            }
            return Some(d);
        }
        let has_p1 = lanner_formats::wire::desc::path_a(spec.desc).is_some();
        let has_p2 = lanner_formats::wire::desc::path_b(spec.desc).is_some();
        use lanner_formats::wire::desc::{RAW_A, RAW_B};
        if has_p1 {
            d.path = Some(if spec.desc & RAW_A != 0 {
                p1.clone()
            } else {
                resolve(self.base_dir(pid, fd1).as_deref(), &p1)
            });
        }
        if has_p2 {
            d.path2 = Some(if spec.desc & RAW_B != 0 { p2 } else { resolve(self.base_dir(pid, fd2).as_deref(), &p2) });
        }
        if spec.event.is_open() && d.path.as_deref() != Some(p1.as_str()) {
            // An open keeps the path as the process passed it (`fd.nameraw`), where it differs.
            d.path2 = Some(p1.clone());
        }
        if r.ret >= 0 {
            match spec.event {
                Open | Openat | Openat2 | Creat => {
                    if let (Some(p), Some(path)) = (self.procs.get_mut(&pid), d.path.clone()) {
                        p.fds.open(r.ret, path, &p1, d.flags);
                    }
                }
                Chdir => {
                    let version = self.bump();
                    if let (Some(p), Some(path)) = (self.procs.get_mut(&pid), d.path.as_deref()) {
                        p.image.set_cwd(path);
                        p.version = version;
                    }
                }
                _ => {}
            }
        }
        Some(d)
    }
}

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
/// `SOCK_CLOEXEC` in socket's type and accept4's flags (the value of `O_CLOEXEC`).
const SOCK_CLOEXEC: u32 = 0o2000000;

/// A user `struct sockaddr` as copied by the kernel side: (family, address text, port).
fn parse_sockaddr(b: &[u8]) -> Option<(u16, String, u16)> {
    let fam = u16::from_ne_bytes(b.get(..2)?.try_into().ok()?);
    match fam {
        AF_INET if b.len() >= 8 => {
            let port = u16::from_be_bytes([b[2], b[3]]);
            Some((fam, std::net::Ipv4Addr::new(b[4], b[5], b[6], b[7]).to_string(), port))
        }
        AF_INET6 if b.len() >= 24 => {
            let port = u16::from_be_bytes([b[2], b[3]]);
            let ip: [u8; 16] = b[8..24].try_into().ok()?;
            Some((fam, std::net::Ipv6Addr::from(ip).to_string(), port))
        }
        AF_UNIX => {
            let path = &b[2..];
            // Abstract sockets start with a NUL; libsinsp shows them with a leading '@'.
            let (abs, path) = match path.first() {
                Some(0) => (true, &path[1..]),
                _ => (false, path),
            };
            let end = path.iter().position(|&c| c == 0).unwrap_or(path.len());
            let p = String::from_utf8_lossy(&path[..end]).into_owned();
            Some((fam, if abs && !p.is_empty() { format!("@{p}") } else { p }, 0))
        }
        _ => None,
    }
}

/// A plain-old-data wire struct ([`SockInfo`], [`TaskInfo`]) from the start of a blob.
fn read_wire<T: Copy>(b: &[u8]) -> Option<T> {
    if b.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: length checked; the wire structs are repr(C) plain old data, read unaligned.
    Some(unsafe { std::ptr::read_unaligned(b.as_ptr() as *const T) })
}

fn parse_task_info(b: &[u8]) -> Option<TaskInfo> {
    read_wire(b)
}

/// A forked child's view of itself, from its parent's: the same capabilities, executable,
/// process group and session. Its own id in its pid namespace is 1 when the clone made a new
/// namespace, its pid when the parent's namespace is the host's (where the two agree), and
/// unknown (0) otherwise, until it execs.
fn forked_task(parent: &TaskInfo, ppid: u32, child: u32, flags: Option<u64>) -> TaskInfo {
    const CLONE_NEWPID: u64 = 0x2000_0000;
    let mut t = *parent;
    if t.flags & task_info::IDS != 0 {
        if flags.is_some_and(|f| f & CLONE_NEWPID != 0) {
            // The parent's group and session are not visible from the new namespace.
            (t.vpid, t.vpgid, t.vsid) = (1, 0, 0);
        } else {
            t.vpid = if parent.vpid == ppid { child } else { 0 };
        }
    }
    t
}

fn parse_sock_info(b: &[u8]) -> Option<SockInfo> {
    read_wire(b)
}

/// (local, remote) ends of a kernel socket description as `ip:port` text.
fn sock_ends(si: &SockInfo) -> Option<(String, String)> {
    let (s, d) = match si.family {
        AF_INET => {
            let v4 = |a: &[u8; 16]| std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string();
            (v4(&si.saddr), v4(&si.daddr))
        }
        AF_INET6 => (std::net::Ipv6Addr::from(si.saddr).to_string(), std::net::Ipv6Addr::from(si.daddr).to_string()),
        _ => return None,
    };
    Some((sock_name::end(s, si.sport), sock_name::end(d, si.dport)))
}

impl ProcessTable {
    /// Applies an fd syscall (socket, connect, accept*, bind, listen, close, dup*, fcntl) to the
    /// process's fd table and fills the event's fd columns: `dirfd` = the fd, `path` = its name,
    /// `mode` = its kind.
    fn fd_event(&mut self, r: &Record, d: &mut EventDraft) {
        use EventType::*;
        const K: Semantics = Semantics::Kernel;
        let a = r.args;
        let ok = r.ret >= 0;
        let Some(p) = self.procs.get_mut(&r.tgid) else { return };
        let fds = &mut p.fds;
        // The name before a call that may rename the socket (`fd.name_changed`).
        let renames = matches!(d.etype, Connect | Sendto);
        let before = renames.then(|| fds.get(a[0] as i32 as i64).map(|f| f.name.clone()).unwrap_or_default());
        let (fd, entry) = match d.etype {
            Socket => {
                let cloexec = d.flags & SOCK_CLOEXEC != 0;
                let e = if ok {
                    fds.socket(r.ret, a[0], a[1], cloexec, K).clone()
                } else {
                    Fd::new(String::new(), lanner_procstate::fd::socket_kind(a[0]))
                };
                (r.ret, Some(e))
            }
            Connect | Accept | Accept4 | Bind | Listen => {
                let accept = matches!(d.etype, Accept | Accept4);
                let fd = if accept { r.ret } else { a[0] as i32 as i64 };
                let sa = parse_sockaddr(&r.blobs[0]);
                let si = parse_sock_info(&r.blobs[1]);
                let family = si.map(|s| s.family).or(sa.as_ref().map(|s| s.0)).unwrap_or(0);
                let v6 = family == AF_INET6;
                let known = fds.get(fd).cloned();
                // The kernel's socket type, when it described the socket.
                let l4 = si.as_ref().map_or(fdkind::L4_UNKNOWN, |s| fdkind::l4_of_sock_type(s.sock_type as u64));
                let (name, kind) = match (family, si.as_ref().and_then(sock_ends)) {
                    (AF_UNIX, _) => {
                        let path = sa.map(|s| s.1).filter(|s| !s.is_empty());
                        (path.or(known.map(|k| k.name)).unwrap_or_default(), fdkind::UNIX)
                    }
                    (_, Some((local, remote))) => match d.etype {
                        // libsinsp names a connection client -> server.
                        Connect => (sock_name::connection(&local, &remote), connection_kind(v6)),
                        Accept | Accept4 => (sock_name::connection(&remote, &local), connection_kind(v6)),
                        _ => (local, server_kind(v6)),
                    },
                    // No kernel description (no BTF): the user's sockaddr is all there is.
                    (AF_INET | AF_INET6, None) => match (d.etype, sa) {
                        (Connect, Some((_, ip, port))) => {
                            let any = if v6 { "::" } else { "0.0.0.0" };
                            (
                                sock_name::connection(&sock_name::end(any, 0), &sock_name::end(ip, port)),
                                connection_kind(v6),
                            )
                        }
                        (Bind, Some((_, ip, port))) => (sock_name::end(ip, port), server_kind(v6)),
                        _ => known.map_or((String::new(), connection_kind(v6)), |k| (k.name, k.kind)),
                    },
                    _ => known.map(|k| (k.name, k.kind)).unwrap_or_default(),
                };
                let e = match d.etype {
                    // accept4's flags decide for the new fd.
                    Accept | Accept4 if ok => {
                        let cloexec = d.etype == Accept4 && a[3] as u32 & SOCK_CLOEXEC != 0;
                        fds.accept(fd, name, kind, l4, cloexec, K).clone()
                    }
                    Connect | Bind | Listen if ok || (d.etype == Connect && connect_names_socket(r.ret)) => {
                        let role = if d.etype == Connect { fdkind::ROLE_CLIENT } else { fdkind::ROLE_UNKNOWN };
                        fds.name_socket(fd, name, kind, l4, role);
                        if d.etype == Connect && ok {
                            fds.set_connected(fd);
                        }
                        fds.get(fd).cloned().unwrap_or_default()
                    }
                    _ => Fd::new(name, kind),
                };
                (fd, Some(e))
            }
            Close => {
                let fd = a[0] as i32 as i64;
                let e = if r.ret == 0 { fds.close(fd) } else { fds.get(fd).cloned() };
                (fd, e)
            }
            Dup | Dup2 | Dup3 | Fcntl => {
                let old = a[0] as i32 as i64;
                // What the call asks for the new fd: close-on-exec, or (an fcntl that is no
                // duplicate) nothing.
                let dup = match d.etype {
                    Dup3 => Some(a[2] as u32 & oflags::O_CLOEXEC != 0),
                    Fcntl => fcntl_dup(a[1], FcntlCodes::Native),
                    _ => Some(false),
                };
                match dup {
                    Some(cloexec) if ok => {
                        let e = fds.get(old).cloned();
                        fds.dup(old, r.ret, cloexec, K);
                        (r.ret, e)
                    }
                    _ => (old, fds.get(old).cloned()),
                }
            }
            // A datagram sent to an address: an unconnected IPv4/IPv6 socket takes the address
            // as its other end, as libsinsp names it (a connected one keeps its tuple).
            Sendto => {
                let fd = a[0] as i32 as i64;
                let known = fds.get(fd).cloned();
                let to = parse_sockaddr(&r.blobs[0]).filter(|s| s.0 == AF_INET || s.0 == AF_INET6);
                let e = match (to, known) {
                    (Some((family, ip, port)), Some(k)) if ok && !k.connected => {
                        let v6 = family == AF_INET6;
                        let si = parse_sock_info(&r.blobs[1]);
                        let any = sock_name::end(if v6 { "::" } else { "0.0.0.0" }, 0);
                        let local = si.as_ref().and_then(sock_ends).map_or(any, |(l, _)| l);
                        let name = sock_name::connection(&local, &sock_name::end(&ip, port));
                        let l4 = si.map_or(fdkind::L4_UNKNOWN, |s| fdkind::l4_of_sock_type(s.sock_type as u64));
                        Some(fds.name_socket(fd, name, connection_kind(v6), l4, fdkind::ROLE_CLIENT).clone())
                    }
                    (_, k) => k,
                };
                (fd, e)
            }
            // read, write, send*, recv*, fstat: the fd as the table knows it.
            _ => {
                let fd = a[0] as i32 as i64;
                (fd, fds.get(fd).cloned())
            }
        };
        d.dirfd = fd as i32;
        // An fd missing from the table keeps its number and gets an empty name, as in libsinsp.
        let e = entry.unwrap_or_default();
        // Only connect and sendto look the name up again (not every fd event).
        let name_changed = before.is_some_and(|b| fds.get(fd).map_or("", |f| f.name.as_str()) != b);
        d.mode = fdkind::FdMode { name_changed, ..e.mode() }.to_column();
        d.path = Some(e.name);
        // The name as the process passed it at open (`fd.nameraw`), where it differs.
        d.path2 = (!e.raw.is_empty()).then_some(e.raw);
    }
}

/// Gives `p` container `container` and pod `pod`; when they differ from its current ones, its
/// names are cleared (looked up again) and the runtime is asked about the container. True when
/// they changed.
fn set_container(p: &mut ProcInfo, container: String, pod: String, runtime: Option<&mut RuntimeMetadata>) -> bool {
    if p.image.container_id == container && p.pod_uid == pod {
        return false;
    }
    (p.image.container_id, p.pod_uid) = (container, pod);
    clear_pod_metadata(p);
    if let Some(rt) = runtime {
        rt.want(&p.image.container_id);
    }
    true
}

fn clear_pod_metadata(p: &mut ProcInfo) {
    p.meta_generation = 0;
    for s in [&mut p.container_name, &mut p.container_image, &mut p.k8s_pod, &mut p.k8s_ns] {
        s.clear();
    }
    p.container_info = ContainerInfo::default();
}

/// Looks `p`'s container and pod up again if the pod or runtime metadata changed since its last
/// look (without waiting: a cache being swapped is tried on a later event); true when its names
/// changed. Names from the pod list win; the runtime's fill in containers it does not list, and a
/// container neither knows is asked of the runtime again.
fn refresh_metadata(k8s: Option<&PodMetadata>, runtime: Option<&mut RuntimeMetadata>, p: &mut ProcInfo) -> bool {
    if k8s.is_none() && runtime.is_none() {
        return false;
    }
    // Both generations only grow: their sum changes whenever either does.
    let generation = k8s.map_or(0, |m| m.generation()) + runtime.as_ref().map_or(0, |r| r.cache().generation());
    if generation == p.meta_generation
        || (p.image.container_id == crate::metadata::containers::HOST && p.pod_uid.is_empty())
    {
        return false;
    }
    let id = p.image.container_id.as_str();
    let ([mut name, mut image, pod, ns], mut info) = match k8s {
        Some(k8s) => match k8s.try_index() {
            Some(index) => {
                (index.lookup(id, &p.pod_uid), index.containers.get(id).map(|c| c.info.clone()).unwrap_or_default())
            }
            None => return false,
        },
        None => Default::default(),
    };
    if let Some(rt) = runtime {
        if name.is_empty() && image.is_empty() && id != crate::metadata::containers::HOST {
            let Some(index) = rt.cache().try_index() else { return false };
            match index.containers.get(id) {
                Some(c) => (name, image, info) = (c.name.clone(), c.image.clone(), c.info.clone()),
                None => rt.want(id),
            }
        }
    }
    p.meta_generation = generation;
    if [&name, &image, &pod, &ns] == [&p.container_name, &p.container_image, &p.k8s_pod, &p.k8s_ns]
        && info == p.container_info
    {
        return false;
    }
    (p.container_name, p.container_image, p.k8s_pod, p.k8s_ns) = (name, image, pod, ns);
    p.container_info = info;
    true
}

/// N when `path` is `/proc/self/fd/N`, `/proc/thread-self/fd/N` or `/proc/PID/fd/N` of process
/// `pid`: an exec through it runs what fd N refers to.
fn proc_fd_of(path: &str, pid: u32) -> Option<i32> {
    let rest = path.strip_prefix("/proc/")?;
    let (who, fd) = rest.split_once("/fd/")?;
    let ours = who == "self" || who == "thread-self" || who.parse::<u32>().ok() == Some(pid);
    if ours {
        fd.parse().ok()
    } else {
        None
    }
}

/// Converts native open flags to the x86_64 values archives use.
fn native_oflags(raw: u64) -> u32 {
    let f = raw as u32;
    if cfg!(target_arch = "aarch64") {
        // aarch64 swaps O_DIRECTORY/O_NOFOLLOW and O_DIRECT/O_LARGEFILE relative to x86_64.
        const A_DIRECTORY: u32 = 0o40000;
        const A_NOFOLLOW: u32 = 0o100000;
        const A_DIRECT: u32 = 0o200000;
        const A_LARGEFILE: u32 = 0o400000;
        let mut out = f & !(A_DIRECTORY | A_NOFOLLOW | A_DIRECT | A_LARGEFILE);
        let map = [(A_DIRECTORY, 0o200000), (A_NOFOLLOW, 0o400000), (A_DIRECT, 0o40000), (A_LARGEFILE, 0o100000)];
        for (from, to) in map {
            if f & from != 0 {
                out |= to;
            }
        }
        out
    } else {
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kind: RecordKind, tgid: u32, tid: u32, nr: u32, ret: i64, args: [u64; 6], blobs: [&[u8]; 2]) -> Record {
        Record {
            kind,
            nr,
            ts_boot_ns: 1000,
            tgid,
            tid,
            uid: 0,
            gid: 0,
            ret,
            args,
            comm: "sh".into(),
            blobs: [blobs[0].to_vec(), blobs[1].to_vec()],
            cgroup_id: 0,
            tty: 34816,
            loginuid: 1000,
        }
    }

    fn nr(e: EventType) -> u32 {
        syscall::native_nr(e.spec()).expect("native syscall")
    }

    #[test]
    fn a_forked_child_takes_its_parents_task_facts_and_its_own_id_where_it_is_known() {
        let parent = TaskInfo {
            vpid: 100,
            vpgid: 90,
            vsid: 80,
            cap_effective: 7,
            flags: task_info::IDS | task_info::CAPS,
            ..Default::default()
        };
        // The host's namespace (vpid = pid): the child's vpid is its pid.
        let t = forked_task(&parent, 100, 101, Some(0x11));
        assert_eq!((t.vpid, t.vpgid, t.vsid, t.cap_effective), (101, 90, 80, 7));
        // A new pid namespace: pid 1 there, and the parent's group and session are not visible.
        let t = forked_task(&parent, 100, 102, Some(0x2000_0011));
        assert_eq!((t.vpid, t.vpgid, t.vsid), (1, 0, 0));
        // A parent inside a namespace: the child's own number there is not known until it execs.
        let inside = TaskInfo { vpid: 5, ..parent };
        assert_eq!(forked_task(&inside, 100, 103, None).vpid, 0);
        // Nothing known stays nothing known.
        assert_eq!(forked_task(&TaskInfo::default(), 1, 2, None), TaskInfo::default());
    }

    #[test]
    fn fork_exec_open_builds_the_child_context() {
        let mut t = ProcessTable::new(0);
        let parent = 4_000_000; // not a live pid, so /proc is not consulted
        t.procs.insert(
            parent,
            ProcInfo {
                pid: parent,
                ppid: 1,
                image: Image { comm: "bash".into(), cwd: "/root/".into(), ..Default::default() },
                version: 1,
                ..Default::default()
            },
        );
        let child = parent + 1;
        let d =
            t.apply(rec(RecordKind::Fork, parent, parent, 0, 0, [child as u64, 0, 0, 0, 0, 0], [b"", b""])).unwrap();
        assert_eq!(d.etype, EventType::Clone);
        assert!(t
            .apply(rec(
                RecordKind::ExecArgs,
                child,
                child,
                nr(EventType::Execve),
                0,
                [0; 6],
                [b"/usr/bin/cat", b"cat\0/etc/shadow"]
            ))
            .is_none());
        let mut exit = rec(RecordKind::SyscallExit, child, child, nr(EventType::Execve), 0, [0; 6], [b"", b""]);
        exit.comm = "cat".into();
        let d = t.apply(exit).unwrap();
        assert_eq!(d.path.as_deref(), Some("/usr/bin/cat"));
        let p = t.get(child).unwrap();
        let img = &p.image;
        assert_eq!((p.ppid, img.comm.as_str(), img.exe.as_str(), img.cwd.as_str()), (parent, "cat", "cat", "/root/"));
        assert_eq!(img.args, vec!["/etc/shadow"]);
        let d = t
            .apply(rec(
                RecordKind::SyscallExit,
                child,
                child,
                nr(EventType::Openat),
                3,
                [AT_FDCWD as u64, 0, 0, 0, 0, 0],
                [b"../etc/./shadow", b""],
            ))
            .unwrap();
        assert_eq!(d.path.as_deref(), Some("/etc/shadow"));
        assert_eq!(t.get(child).unwrap().fds.get(3).map(|f| f.name.as_str()), Some("/etc/shadow"));
        // A path relative to that fd resolves through the fd table.
        let d = t
            .apply(rec(
                RecordKind::SyscallExit,
                child,
                child,
                nr(EventType::Mkdirat),
                0,
                [3, 0, 0o755, 0, 0, 0],
                [b"sub", b""],
            ))
            .unwrap();
        assert_eq!(d.path.as_deref(), Some("/etc/shadow/sub"));
        assert_eq!(d.mode, 0o755);
    }

    #[test]
    fn an_exec_through_proc_fd_names_the_fd_only_for_this_process() {
        assert_eq!(proc_fd_of("/proc/self/fd/3", 10), Some(3));
        assert_eq!(proc_fd_of("/proc/thread-self/fd/12", 10), Some(12));
        assert_eq!(proc_fd_of("/proc/10/fd/4", 10), Some(4));
        assert_eq!(proc_fd_of("/proc/11/fd/4", 10), None, "another process's fd");
        assert_eq!(proc_fd_of("/proc/self/fdinfo/3", 10), None);
        assert_eq!(proc_fd_of("/usr/bin/true", 10), None);
    }

    #[test]
    fn exec_closes_only_close_on_exec_fds() {
        let mut t = ProcessTable::new(0);
        let pid = 4_000_000;
        let image = Image { comm: "sh".into(), cwd: "/".into(), ..Default::default() };
        t.procs.insert(pid, ProcInfo { pid, ppid: 1, image, ..Default::default() });
        let exit = |nr_: u32, ret: i64, args: [u64; 6], blob: &[u8]| {
            rec(RecordKind::SyscallExit, pid, pid, nr_, ret, args, [blob, b""])
        };
        let cloexec = oflags::O_CLOEXEC as u64;
        t.apply(exit(nr(EventType::Openat), 3, [AT_FDCWD as u64, 0, 0, 0, 0, 0], b"/etc/kept")).unwrap();
        t.apply(exit(nr(EventType::Openat), 4, [AT_FDCWD as u64, 0, cloexec, 0, 0, 0], b"/etc/closed")).unwrap();
        t.apply(exit(nr(EventType::Socket), 5, [AF_INET as u64, 1 | SOCK_CLOEXEC as u64, 0, 0, 0, 0], b"")).unwrap();
        // fcntl(F_SETFL) returns 0 and duplicates nothing; F_DUPFD_CLOEXEC's copy goes at exec.
        t.apply(exit(nr(EventType::Fcntl), 0, [3, 4, 0, 0, 0, 0], b"")).unwrap();
        t.apply(exit(nr(EventType::Fcntl), 7, [3, 1030, 7, 0, 0, 0], b"")).unwrap();
        // Duplicates: plain dup2 onto stdin survives, dup3 with O_CLOEXEC does not.
        t.apply(exit(nr(EventType::Dup2), 0, [4, 0, 0, 0, 0, 0], b"")).unwrap();
        t.apply(exit(nr(EventType::Dup3), 6, [3, 6, cloexec, 0, 0, 0], b"")).unwrap();
        t.apply(exit(nr(EventType::Execve), 0, [0; 6], b"")).unwrap();
        let p = t.get(pid).unwrap();
        let mut left: Vec<(i64, &str)> = p.fds.iter().map(|(fd, f)| (fd, f.name.as_str())).collect();
        left.sort();
        assert_eq!(left, vec![(0, "/etc/closed"), (3, "/etc/kept")]);
    }

    #[test]
    fn pod_metadata_reaches_a_process_on_its_next_event_after_the_cache_changes() {
        use crate::metadata::k8s::{Container, Pod, PodIndex};
        let uid = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";
        let pid = 4_000_000;
        let meta = PodMetadata::empty();
        let mut t = ProcessTable::new(0);
        t.set_pod_metadata(meta.clone());
        t.next_version = 1;
        let info = |container_id: &str, pod_uid: &str| ProcInfo {
            pid,
            image: Image { comm: "sh".into(), container_id: container_id.into(), ..Default::default() },
            pod_uid: pod_uid.into(),
            version: 1,
            ..Default::default()
        };
        t.procs.insert(pid, info("3f0c1a2b4d5e", uid));
        t.procs.insert(pid + 1, info(crate::metadata::containers::HOST, ""));
        let open = |pid| rec(RecordKind::SyscallExit, pid, pid, nr(EventType::Openat), 3, [0; 6], [b"/etc/hosts", b""]);
        let names = |t: &ProcessTable, pid| {
            let p = t.get(pid).unwrap();
            (p.container_name.clone(), p.container_image.clone(), p.k8s_pod.clone(), p.k8s_ns.clone(), p.version)
        };
        // Nothing fetched yet: no names, and no new version.
        t.apply(open(pid));
        assert_eq!(names(&t, pid), (String::new(), String::new(), String::new(), String::new(), 1));

        let mut idx = PodIndex::default();
        idx.pods.insert(uid.into(), Pod { name: "web-0".into(), namespace: "shop".into() });
        idx.containers.insert(
            "3f0c1a2b4d5e".into(),
            Container {
                name: "nginx".into(),
                image: "nginx:1.25".into(),
                pod_uid: uid.into(),
                info: Default::default(),
            },
        );
        meta.publish(idx.clone());
        t.apply(open(pid));
        let (n, i, pod, ns, v1) = names(&t, pid);
        assert_eq!((n.as_str(), i.as_str(), pod.as_str(), ns.as_str()), ("nginx", "nginx:1.25", "web-0", "shop"));
        assert!(v1 > 1, "a new version is written with the names");
        // Unchanged cache (the same list published again): same version.
        meta.publish(idx);
        t.apply(open(pid));
        assert_eq!(names(&t, pid).4, v1);
        // Host processes never get pod names.
        t.apply(open(pid + 1));
        assert_eq!(names(&t, pid + 1), (String::new(), String::new(), String::new(), String::new(), 1));
        // The pod is gone from the list: the names go, in a new version.
        meta.publish(PodIndex::default());
        t.apply(open(pid));
        let (n, _, pod, _, v2) = names(&t, pid);
        assert!(n.is_empty() && pod.is_empty() && v2 > v1);
    }

    #[test]
    fn runtime_names_reach_a_process_after_its_lookup_and_pod_names_win() {
        use crate::metadata::k8s::{Container, PodIndex};
        let pid = 4_000_000;
        let (runtime, requests) = RuntimeMetadata::detached();
        let cache = runtime.cache().clone();
        let pods = PodMetadata::empty();
        let mut t = ProcessTable::new(0);
        t.set_runtime_metadata(runtime);
        t.set_pod_metadata(pods.clone());
        t.next_version = 1;
        for (pid, container_id) in
            [(pid, "3f0c1a2b4d5e"), (pid + 1, crate::metadata::containers::HOST), (pid + 2, "0123456789ab")]
        {
            t.procs.insert(
                pid,
                ProcInfo {
                    pid,
                    image: Image { comm: "sh".into(), container_id: container_id.into(), ..Default::default() },
                    version: 1,
                    ..Default::default()
                },
            );
        }
        let open = |pid| rec(RecordKind::SyscallExit, pid, pid, nr(EventType::Openat), 3, [0; 6], [b"/etc/hosts", b""]);
        let names = |t: &ProcessTable, pid| {
            let p = t.get(pid).unwrap();
            (p.container_name.clone(), p.container_image.clone(), p.version)
        };
        // Nothing looked up yet: no names, no new version.
        t.apply(open(pid));
        t.apply(open(pid + 1));
        assert_eq!(names(&t, pid), (String::new(), String::new(), 1));
        // A process first seen through a record, outside containers: nothing is asked for it.
        t.apply(open(pid + 3));
        assert!(requests.try_recv().is_err(), "host containers are never asked for");

        // The runtime names the first container: its process gets the names on its next event.
        let mut idx = PodIndex::default();
        let c = |name: &str, image: &str| Container {
            name: name.into(),
            image: image.into(),
            pod_uid: String::new(),
            info: Default::default(),
        };
        idx.containers.insert("3f0c1a2b4d5e".into(), c("web", "nginx:1.25"));
        cache.publish(idx.clone());
        t.apply(open(pid));
        let (n, i, v1) = names(&t, pid);
        assert_eq!((n.as_str(), i.as_str()), ("web", "nginx:1.25"));
        assert!(v1 > 1, "a new version is written with the names");
        // The other container is unknown to the runtime: looked for again, once.
        t.apply(open(pid + 2));
        t.apply(open(pid + 2));
        assert_eq!(requests.try_iter().collect::<Vec<_>>(), ["0123456789ab"]);
        assert_eq!(names(&t, pid + 2), (String::new(), String::new(), 1));
        assert_eq!(names(&t, pid + 1), (String::new(), String::new(), 1));

        // The pod list names the container too: its names win.
        let mut pod_idx = PodIndex::default();
        pod_idx.containers.insert("3f0c1a2b4d5e".into(), c("nginx", "registry.local/nginx:1.25"));
        pods.publish(pod_idx);
        t.apply(open(pid));
        let (n, i, v2) = names(&t, pid);
        assert_eq!((n.as_str(), i.as_str()), ("nginx", "registry.local/nginx:1.25"));
        assert!(v2 > v1);
    }
}
