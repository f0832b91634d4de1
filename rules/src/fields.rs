//! Filter fields with libsinsp's names and meanings, extracted from archived events.

use std::borrow::Cow;

use lanner_formats::archive::SegmentMeta;
use lanner_formats::event::{
    args, fdkind, oflags, sock_name, ArchivedChunk, ArchivedContainerAccounts, ArchivedProcess, ArchivedTaskFacts,
    Event, PathIndex, NONE, RET_UNKNOWN,
};
use lanner_formats::syscall::EventType;
use lanner_formats::wire::task_info;

/// Type of a field's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Text.
    Str,
    /// Signed integer.
    Int,
    /// Boolean.
    Bool,
}

fn dir_of(n: &str) -> &str {
    match n.rfind('/') {
        Some(0) => "/",
        Some(i) => &n[..i],
        None => n,
    }
}

fn file_of(n: &str) -> &str {
    n.rsplit('/').next().unwrap_or(n)
}

/// Which end of a connection a socket field reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The client (the connecting side).
    Client,
    /// The server (the accepting or listening side).
    Server,
    /// Either: multi-valued in conditions.
    Either,
    /// This process's end: the client's after `connect`, the server's after `accept` or for a
    /// listening socket.
    Local,
    /// The other end.
    Remote,
}

/// A field, resolved from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// `evt.type`
    EvtType,
    /// `evt.res`: `SUCCESS` or the errno name.
    EvtRes,
    /// `evt.rawres`
    EvtRawres,
    /// `evt.num`: the event's number in its capture run, from 1.
    EvtNum,
    /// `evt.failed`
    EvtFailed,
    /// `evt.time`
    EvtTime,
    /// `evt.dir`: `<`, or `>` for the enter rows of imported scap data
    EvtDir,
    /// `evt.is_open_read`
    EvtIsOpenRead,
    /// `evt.is_open_write`
    EvtIsOpenWrite,
    /// `evt.hostname`
    EvtHostname,
    /// `evt.arg.NAME` / `evt.arg[N]`
    EvtArg(String),
    /// `fd.name`
    FdName,
    /// `fd.directory`
    FdDirectory,
    /// `fd.filename`
    FdFilename,
    /// `fd.num`
    FdNum,
    /// `fd.typechar`
    FdTypechar,
    /// `fd.type`
    FdType,
    /// `fd.cip`, `fd.sip`, `fd.ip` (client, server, either end of a socket)
    FdIp(End),
    /// `fd.cport`, `fd.sport`, `fd.port`, `fd.lport`, `fd.rport`
    FdPort(End),
    /// `fd.cnet`, `fd.snet`, `fd.net`, `fd.lnet`, `fd.rnet`: compared as networks (`in ("10.0.0.0/8")`)
    FdNet(End),
    /// `fd.sockfamily` (`ip` or `unix`)
    FdSockfamily,
    /// `fd.l4proto`: `tcp`, `udp` or `raw` for an IPv4/IPv6 socket whose protocol is known
    FdL4proto,
    /// `fd.cip.name`, `fd.sip.name`, `fd.lip.name`, `fd.rip.name`: the host names the capture
    /// resolved (`--resolve`) to that end's address while the event's chunk was open
    FdIpName(End),
    /// `fd.nameraw`: the fd's path exactly as the process passed it to `open`
    FdNameraw,
    /// `fd.connected`: the socket is connected (connect succeeded, or accept returned it)
    FdConnected,
    /// `fd.name_changed`: this event changed the fd's name (a connect, a sendto to a new address)
    FdNameChanged,
    /// `proc.tty`: controlling terminal (`tty_nr`; 0 when none)
    ProcTty,
    /// `user.name`, from the recording host's user table
    UserName,
    /// `user.loginuid` (-1 when unset)
    UserLoginuid,
    /// `user.loginname`: the name of the login uid, from the recording host's user table
    UserLoginname,
    /// `group.name`: the name of the gid, from the recording host's group table
    GroupName,
    /// `proc.name`
    ProcName,
    /// `proc.exe`
    ProcExe,
    /// `proc.exepath`
    ProcExepath,
    /// `proc.is_exe_from_memfd`: the program was run from a memfd (its path is the kernel's
    /// `/memfd:NAME (deleted)`).
    ProcIsExeFromMemfd,
    /// `proc.cmdline`
    ProcCmdline,
    /// `proc.args`
    ProcArgs,
    /// `proc.pid`
    ProcPid,
    /// `proc.ppid`
    ProcPpid,
    /// `proc.pname`
    ProcPname,
    /// `proc.pcmdline`
    ProcPcmdline,
    /// `proc.pexe`
    ProcPexe,
    /// `proc.aname[N]` (N ≥ 1; 0 is the process itself)
    ProcAname(u32),
    /// `proc.aname` without an index: matches when any ancestor matches.
    ProcAnameAny,
    /// `proc.apid` without an index: matches when any ancestor matches.
    ProcApidAny,
    /// `evt.args`: all arguments as `name=value` pairs.
    EvtArgs,
    /// `evt.is_open_exec`: an open that creates an executable file.
    EvtIsOpenExec,
    /// `proc.aexe[N]` (`argv[0]` of ancestor N).
    ProcAexe(u32),
    /// `proc.aexepath[N]`.
    ProcAexepath(u32),
    /// `proc.pexepath`
    ProcPexepath,
    /// `proc.duration`: nanoseconds since the process image started.
    ProcDuration,
    /// `proc.vpid`: the process id in its own pid namespace.
    ProcVpid,
    /// `proc.vpgid`: the process group id in the process's pid namespace.
    ProcVpgid,
    /// `proc.sid`: the session id in the process's pid namespace.
    ProcSid,
    /// `proc.sname`: the name of the session leader: the eldest of the process and its ancestors
    /// in the same session.
    ProcSname,
    /// `proc.is_vpgid_leader`: the process leads its process group.
    ProcIsVpgidLeader,
    /// `proc.is_sid_leader`: the process leads its session.
    ProcIsSidLeader,
    /// `thread.cap_inheritable`, `thread.cap_permitted`, `thread.cap_effective`: the set's
    /// capability names, space-separated.
    ThreadCap(CapSet),
    /// `proc.env`: the environment as `K=v K1=v1`; `proc.env[NAME]`: one variable's value.
    ProcEnv(Option<String>),
    /// `proc.exe_ino`: the executable's inode number.
    ProcExeIno,
    /// `proc.exe_ino.ctime`: its change time (ns).
    ProcExeInoCtime,
    /// `proc.exe_ino.mtime`: its modification time (ns).
    ProcExeInoMtime,
    /// `proc.exe_ino.ctime_duration_proc_start`: ns from the executable's change to the program's start.
    ProcExeInoCtimeDurationProcStart,
    /// `proc.is_exe_upper_layer`: the executable is in an overlayfs upper layer (written in the container).
    ProcIsExeUpperLayer,
    /// `container.privileged`: the container runs privileged.
    ContainerPrivileged,
    /// `container.start_ts`: when the container started (ns).
    ContainerStartTs,
    /// `container.mounts`: its mounts, `source:dest:mode:rw:propagation` items space-separated.
    ContainerMounts,
    /// `container.mount.dest[N or SOURCE-GLOB]`: a mount's destination, by index or source.
    ContainerMountDest(String),
    /// `container.mount.source[N or DEST-GLOB]`: a mount's source, by index or destination.
    ContainerMountSource(String),
    /// A libsinsp field whose data capture does not record yet: it is always missing (`<NA>`).
    NotCaptured(&'static str, FieldType),
    /// `proc.apid[N]`
    ProcApid(u32),
    /// `proc.cwd`
    ProcCwd,
    /// `thread.tid`
    ThreadTid,
    /// `user.uid`
    UserUid,
    /// `group.gid`
    GroupGid,
    /// `container.id` (`host` outside containers)
    ContainerId,
    /// `container.name` (`host` outside containers)
    ContainerName,
    /// `container.image` (`repo:tag` or `repo@digest`)
    ContainerImage,
    /// `container.image.repository`: the image without its tag and digest.
    ContainerImageRepository,
    /// `container.image.tag`
    ContainerImageTag,
    /// `k8s.pod.name`
    K8sPodName,
    /// `k8s.ns.name`
    K8sNsName,
}

impl Field {
    /// Resolves a field name (with optional `[arg]`); `Err` explains what is wrong.
    pub fn parse(name: &str) -> Result<Field, String> {
        let (base, arg) = match name.split_once('[') {
            Some((b, rest)) => match rest.strip_suffix(']') {
                Some(a) => (b, Some(a)),
                None => return Err(format!("field '{name}': missing ']'")),
            },
            None => (name, None),
        };
        let index = |what: &str| -> Result<u32, String> {
            arg.ok_or_else(|| {
                format!("field '{base}' needs an index, e.g. {base}[1] (the any-ancestor form is not supported yet)")
            })?
            .parse::<u32>()
            .map_err(|_| format!("field '{base}': '{}' is not a {what}", arg.unwrap_or("")))
        };
        let no_arg =
            |f: Field| if arg.is_some() { Err(format!("field '{base}' does not take an argument")) } else { Ok(f) };
        if let Some(a) = base.strip_prefix("evt.arg.") {
            return no_arg(Field::EvtArg(a.to_owned()));
        }
        match base {
            "evt.arg" | "evt.rawarg" => {
                let a = arg.ok_or_else(|| format!("field '{base}' needs an argument name, e.g. {base}.path"))?;
                Ok(Field::EvtArg(a.to_owned()))
            }
            "evt.type" => no_arg(Field::EvtType),
            "evt.res" => no_arg(Field::EvtRes),
            "evt.rawres" => no_arg(Field::EvtRawres),
            "evt.num" => no_arg(Field::EvtNum),
            "evt.failed" => no_arg(Field::EvtFailed),
            "evt.time" => no_arg(Field::EvtTime),
            "evt.dir" => no_arg(Field::EvtDir),
            "evt.is_open_read" => no_arg(Field::EvtIsOpenRead),
            "evt.is_open_write" => no_arg(Field::EvtIsOpenWrite),
            "evt.hostname" => no_arg(Field::EvtHostname),
            "fd.name" => no_arg(Field::FdName),
            "fd.directory" => no_arg(Field::FdDirectory),
            "fd.filename" => no_arg(Field::FdFilename),
            "fd.num" => no_arg(Field::FdNum),
            "fd.typechar" => no_arg(Field::FdTypechar),
            "fd.type" => no_arg(Field::FdType),
            "fd.cip" => no_arg(Field::FdIp(End::Client)),
            "fd.sip" => no_arg(Field::FdIp(End::Server)),
            "fd.ip" => no_arg(Field::FdIp(End::Either)),
            "fd.cport" => no_arg(Field::FdPort(End::Client)),
            "fd.sport" => no_arg(Field::FdPort(End::Server)),
            "fd.port" => no_arg(Field::FdPort(End::Either)),
            "fd.cnet" => no_arg(Field::FdNet(End::Client)),
            "fd.snet" => no_arg(Field::FdNet(End::Server)),
            "fd.net" => no_arg(Field::FdNet(End::Either)),
            "fd.lip" => no_arg(Field::FdIp(End::Local)),
            "fd.rip" => no_arg(Field::FdIp(End::Remote)),
            "fd.lport" => no_arg(Field::FdPort(End::Local)),
            "fd.rport" => no_arg(Field::FdPort(End::Remote)),
            "fd.lnet" => no_arg(Field::FdNet(End::Local)),
            "fd.rnet" => no_arg(Field::FdNet(End::Remote)),
            "fd.l4proto" => no_arg(Field::FdL4proto),
            "fd.cip.name" => no_arg(Field::FdIpName(End::Client)),
            "fd.sip.name" => no_arg(Field::FdIpName(End::Server)),
            "fd.lip.name" => no_arg(Field::FdIpName(End::Local)),
            "fd.rip.name" => no_arg(Field::FdIpName(End::Remote)),
            "fd.nameraw" => no_arg(Field::FdNameraw),
            "fd.connected" => no_arg(Field::FdConnected),
            "fd.name_changed" => no_arg(Field::FdNameChanged),
            "fd.sockfamily" => no_arg(Field::FdSockfamily),
            "proc.tty" => no_arg(Field::ProcTty),
            "user.name" => no_arg(Field::UserName),
            "user.loginuid" => no_arg(Field::UserLoginuid),
            "user.loginname" => no_arg(Field::UserLoginname),
            "group.name" => no_arg(Field::GroupName),
            "proc.name" => no_arg(Field::ProcName),
            "proc.exe" => no_arg(Field::ProcExe),
            "proc.exepath" => no_arg(Field::ProcExepath),
            "proc.is_exe_from_memfd" => no_arg(Field::ProcIsExeFromMemfd),
            "proc.vpid" => no_arg(Field::ProcVpid),
            "proc.vpgid" => no_arg(Field::ProcVpgid),
            "proc.sid" => no_arg(Field::ProcSid),
            "proc.sname" => no_arg(Field::ProcSname),
            "proc.is_vpgid_leader" => no_arg(Field::ProcIsVpgidLeader),
            "proc.is_sid_leader" => no_arg(Field::ProcIsSidLeader),
            "thread.cap_inheritable" => no_arg(Field::ThreadCap(CapSet::Inheritable)),
            "thread.cap_permitted" => no_arg(Field::ThreadCap(CapSet::Permitted)),
            "thread.cap_effective" => no_arg(Field::ThreadCap(CapSet::Effective)),
            "proc.env" => Ok(Field::ProcEnv(arg.map(str::to_owned))),
            "proc.exe_ino" => no_arg(Field::ProcExeIno),
            "proc.exe_ino.ctime" => no_arg(Field::ProcExeInoCtime),
            "proc.exe_ino.mtime" => no_arg(Field::ProcExeInoMtime),
            "proc.exe_ino.ctime_duration_proc_start" => no_arg(Field::ProcExeInoCtimeDurationProcStart),
            "proc.is_exe_upper_layer" => no_arg(Field::ProcIsExeUpperLayer),
            "container.privileged" => no_arg(Field::ContainerPrivileged),
            "container.start_ts" => no_arg(Field::ContainerStartTs),
            "container.mounts" => no_arg(Field::ContainerMounts),
            "container.mount.dest" | "container.mount.source" => match arg {
                Some(a) if base == "container.mount.dest" => Ok(Field::ContainerMountDest(a.to_owned())),
                Some(a) => Ok(Field::ContainerMountSource(a.to_owned())),
                None => Err(format!("field '{base}' needs an argument")),
            },
            "proc.cmdline" => no_arg(Field::ProcCmdline),
            "proc.args" => no_arg(Field::ProcArgs),
            "proc.pid" => no_arg(Field::ProcPid),
            "proc.ppid" => no_arg(Field::ProcPpid),
            "proc.pname" => no_arg(Field::ProcPname),
            "proc.pcmdline" => no_arg(Field::ProcPcmdline),
            "proc.pexe" => no_arg(Field::ProcPexe),
            "proc.aname" if arg.is_none() => Ok(Field::ProcAnameAny),
            "proc.apid" if arg.is_none() => Ok(Field::ProcApidAny),
            "proc.aname" => Ok(Field::ProcAname(index("number")?)),
            "proc.apid" => Ok(Field::ProcApid(index("number")?)),
            "evt.args" => no_arg(Field::EvtArgs),
            "evt.is_open_exec" => no_arg(Field::EvtIsOpenExec),
            "proc.aexe" => Ok(Field::ProcAexe(if arg.is_none() { 1 } else { index("number")? })),
            "proc.aexepath" => Ok(Field::ProcAexepath(if arg.is_none() { 1 } else { index("number")? })),
            "proc.pexepath" => no_arg(Field::ProcPexepath),
            "proc.duration" => no_arg(Field::ProcDuration),
            "proc.cwd" => no_arg(Field::ProcCwd),
            "thread.tid" => no_arg(Field::ThreadTid),
            "user.uid" => no_arg(Field::UserUid),
            "group.gid" => no_arg(Field::GroupGid),
            "container.id" => no_arg(Field::ContainerId),
            "container.name" => no_arg(Field::ContainerName),
            "container.image" => no_arg(Field::ContainerImage),
            "container.image.repository" => no_arg(Field::ContainerImageRepository),
            "container.image.tag" => no_arg(Field::ContainerImageTag),
            "k8s.pod.name" => no_arg(Field::K8sPodName),
            "k8s.ns.name" => no_arg(Field::K8sNsName),
            _ => match NOT_CAPTURED.iter().find(|(n, _, _)| *n == base) {
                Some(&(_, _, ArgKind::None)) if arg.is_some() => {
                    Err(format!("field '{base}' does not take an argument"))
                }
                Some(&(_, _, ArgKind::Required)) if arg.is_none() => Err(format!("field '{base}' needs an argument")),
                Some(&(n, t, _)) => Ok(Field::NotCaptured(n, t)),
                None => Err(format!("unknown field '{base}'")),
            },
        }
    }

    /// True when the value depends only on the event's fd path (see [`EventView::fd_path_id`]).
    pub fn is_fd_path_only(&self) -> bool {
        matches!(self, Field::FdName | Field::FdDirectory | Field::FdFilename)
    }

    /// True when the value depends only on the event's process entry (and its ancestors).
    pub fn is_process_only(&self) -> bool {
        use Field::*;
        matches!(
            self,
            ProcName
                | ProcExe
                | ProcExepath
                | ProcIsExeFromMemfd
                | ProcCmdline
                | ProcArgs
                | ProcPid
                | ProcPpid
                | ProcPname
                | ProcPcmdline
                | ProcPexe
                | ProcPexepath
                | ProcAname(_)
                | ProcApid(_)
                | ProcAnameAny
                | ProcApidAny
                | ProcAexe(_)
                | ProcAexepath(_)
                | ProcCwd
                | UserUid
                | GroupGid
                | ContainerId
                | ContainerName
                | ContainerImage
                | ContainerImageRepository
                | ContainerImageTag
                | K8sPodName
                | K8sNsName
                | ProcTty
                | UserLoginuid
                | ProcVpid
                | ProcVpgid
                | ProcSid
                | ProcSname
                | ProcIsVpgidLeader
                | ProcIsSidLeader
                | ThreadCap(_)
                | ProcEnv(_)
                | ProcExeIno
                | ProcExeInoCtime
                | ProcExeInoMtime
                | ProcIsExeUpperLayer
                | ContainerPrivileged
                | ContainerStartTs
                | ContainerMounts
                | ContainerMountDest(_)
                | ContainerMountSource(_)
                | UserName
                | UserLoginname
                | GroupName
                | NotCaptured(..)
        )
    }

    /// The type of the field's values.
    pub fn ftype(&self) -> FieldType {
        use Field::*;
        match self {
            EvtRawres
            | EvtNum
            | FdNum
            | FdPort(_)
            | ProcTty
            | UserLoginuid
            | ProcPid
            | ProcPpid
            | ProcApid(_)
            | ProcApidAny
            | ThreadTid
            | UserUid
            | GroupGid
            | ProcVpid
            | ProcVpgid
            | ProcSid
            | ProcExeIno
            | ProcExeInoCtime
            | ProcExeInoMtime
            | ProcExeInoCtimeDurationProcStart
            | ContainerStartTs => FieldType::Int,
            NotCaptured(_, t) => *t,
            EvtFailed | EvtIsOpenRead | EvtIsOpenWrite | EvtIsOpenExec | ProcIsExeFromMemfd | ProcIsVpgidLeader
            | ProcIsSidLeader | ProcIsExeUpperLayer | FdConnected | FdNameChanged | ContainerPrivileged => {
                FieldType::Bool
            }
            ProcDuration => FieldType::Int,
            _ => FieldType::Str,
        }
    }
}

/// A field value extracted from one event.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    /// The field does not apply to this event (Falco prints `<NA>`).
    Missing,
    /// Text.
    Str(Cow<'a, str>),
    /// Integer.
    Int(i64),
    /// Boolean.
    Bool(bool),
}

impl FieldValue<'_> {
    /// The value as Falco renders it in output strings.
    pub fn render(&self) -> String {
        match self {
            FieldValue::Missing => "<NA>".into(),
            FieldValue::Str(s) => s.to_string(),
            FieldValue::Int(i) => i.to_string(),
            FieldValue::Bool(b) => b.to_string(),
        }
    }
}

/// One event and the chunk it lives in: everything a field needs.
#[derive(Clone, Copy)]
pub struct EventView<'a> {
    /// The chunk.
    pub chunk: &'a ArchivedChunk,
    /// The chunk's expanded event paths.
    pub paths: &'a PathIndex,
    /// The event.
    pub ev: Event,
    /// Its number in its capture run, from 1 (`evt.num`): its chunk's
    /// [`lanner_formats::archive::ChunkRef::first_event`] plus its place in the chunk.
    pub num: u64,
    /// Host it was recorded on.
    pub meta: &'a SegmentMeta,
}

impl<'a> EventView<'a> {
    /// The event type, if known to this build.
    pub fn etype(&self) -> Option<EventType> {
        EventType::from_u16(lanner_formats::syscall::type_bits(self.ev.etype))
    }

    /// Whether this is the enter half of a syscall (imported `.scap` data only).
    pub fn is_enter(&self) -> bool {
        self.ev.etype & lanner_formats::syscall::ENTER != 0
    }

    fn process(&self) -> Option<&'a ArchivedProcess> {
        self.chunk.process(self.ev.process)
    }

    fn ancestor(&self, n: u32) -> Option<&'a ArchivedProcess> {
        let mut p = self.process()?;
        for _ in 0..n {
            let parent = p.parent.to_native();
            if parent == NONE {
                return None;
            }
            p = self.chunk.process(parent)?;
        }
        Some(p)
    }

    /// The process's task facts, when the parts `flag` names are known.
    fn task(&self, flag: u32) -> Option<&'a ArchivedTaskFacts> {
        self.process().map(|p| &p.task).filter(|t| t.flags.to_native() & flag != 0)
    }

    /// The session leader as libsinsp finds it when the leader's pid is not to be trusted across
    /// namespaces: the eldest of the process and its ancestors that share its session id.
    fn session_leader(&self) -> Option<&'a ArchivedProcess> {
        let sid = self.task(task_info::IDS)?.sid.to_native();
        if sid == 0 {
            return None;
        }
        let mut leader = self.process()?;
        loop {
            let parent = leader.parent.to_native();
            let p = if parent == NONE { None } else { self.chunk.process(parent) };
            match p {
                Some(p) if p.task.flags.to_native() & task_info::IDS != 0 && p.task.sid.to_native() == sid => {
                    leader = p
                }
                _ => return Some(leader),
            }
        }
    }

    fn s(&self, id: u32) -> Option<&'a str> {
        self.chunk.string(id)
    }

    fn path(&self) -> Option<&'a str> {
        self.paths.get(self.ev.path)
    }

    /// The path id of an fd-producing event (open family, fchdir), if it has one.
    pub fn fd_path_id(&self) -> Option<u32> {
        match self.etype()? {
            t if t.is_open() || t.uses_fd() || t == EventType::Fchdir => Some(self.ev.path).filter(|&p| p != NONE),
            _ => None,
        }
    }

    /// The path an fd-producing event refers to (open family).
    fn fd_name(&self) -> Option<&'a str> {
        match self.etype()? {
            t if t.is_open() || t.uses_fd() => self.path(),
            EventType::Fchdir => self.path(),
            _ => None,
        }
    }

    /// The (client, server) ends of a socket event's fd as (ip, port), from the fd name
    /// (`cip:cport->sip:sport`, or `ip:port` for a listening socket).
    #[allow(clippy::type_complexity)]
    fn socket_ends(&self) -> Option<(Option<(&'a str, u16)>, Option<(&'a str, u16)>)> {
        if !self.etype()?.uses_fd() {
            return None;
        }
        let name = self.path()?;
        match self.fd_mode().kind {
            fdkind::IPV4 | fdkind::IPV6 => {
                let (c, s) = sock_name::parse_connection(name)?;
                Some((sock_name::parse_end(c), sock_name::parse_end(s)))
            }
            fdkind::IPV4_SERVER | fdkind::IPV6_SERVER => Some((None, sock_name::parse_end(name))),
            _ => None,
        }
    }

    fn flags(&self) -> u32 {
        self.ev.flags
    }

    /// The client or server end that `end` (local or remote) stands for on this event's socket:
    /// by the role its fd was recorded with; a listening socket's local end is the server's.
    /// The names resolved to the address at `end` of the event's socket, in name order; `None`
    /// when the event has no IP socket with that end.
    pub fn ip_names(&self, end: End) -> Option<Vec<&'a str>> {
        let ip = match self.get(&Field::FdIp(end)) {
            FieldValue::Str(s) => s.parse::<std::net::IpAddr>().ok()?,
            _ => return None,
        };
        let key = lanner_formats::event::stored_addr(ip);
        let chunk: &'a ArchivedChunk = self.chunk;
        Some(chunk.resolved.iter().filter(|r| r.addrs.contains(&key)).map(|r| r.name.as_str()).collect())
    }

    /// The accounts the chunk holds for `p`'s container.
    fn container_accounts(&self, p: &ArchivedProcess) -> Option<&'a ArchivedContainerAccounts> {
        let chunk: &'a ArchivedChunk = self.chunk;
        if chunk.accounts.is_empty() {
            return None;
        }
        let id = self.s(p.container_id.to_native())?;
        chunk.accounts.binary_search_by(|a| a.container_id.as_str().cmp(id)).ok().map(|i| &chunk.accounts[i])
    }

    fn local_or_remote(&self, end: End) -> Option<End> {
        let m = self.fd_mode();
        let local_is_server = match m.kind {
            fdkind::IPV4_SERVER | fdkind::IPV6_SERVER => true,
            fdkind::IPV4 | fdkind::IPV6 => match m.role {
                fdkind::ROLE_SERVER => true,
                fdkind::ROLE_CLIENT => false,
                _ => return None,
            },
            _ => return None,
        };
        Some(if (end == End::Local) == local_is_server { End::Server } else { End::Client })
    }

    /// An fd event's kind, protocol and role (from its `mode` column).
    fn fd_mode(&self) -> fdkind::FdMode {
        fdkind::FdMode::from_column(self.ev.mode)
    }

    fn ret(&self) -> i64 {
        self.ev.ret
    }

    /// Extracts `field`.
    pub fn get(&self, field: &Field) -> FieldValue<'a> {
        use FieldValue::{Bool, Int, Missing, Str};
        let opt_str = |s: Option<&'a str>| s.map_or(Missing, |s| Str(Cow::Borrowed(s)));
        let proc_str =
            |p: Option<&'a ArchivedProcess>, f: fn(&ArchivedProcess) -> u32| opt_str(p.and_then(|p| self.s(f(p))));
        match field {
            Field::EvtType => opt_str(self.etype().map(|t| t.name())),
            // Enter events have no result yet.
            // Enter events (procexit is one) and imported generic events have no result.
            Field::EvtRes | Field::EvtRawres
                if self.is_enter() || self.ret() == RET_UNKNOWN || self.etype() == Some(EventType::Procexit) =>
            {
                Missing
            }
            Field::EvtFailed if self.is_enter() => Bool(false),
            Field::EvtRes => {
                let r = self.ret();
                if r < 0 {
                    Str(Cow::Owned(errno_name(-r)))
                } else {
                    Str(Cow::Borrowed("SUCCESS"))
                }
            }
            Field::EvtRawres => Int(self.ret()),
            Field::EvtNum => Int(self.num as i64),
            Field::EvtFailed => Bool(self.ret() < 0 && self.ret() != RET_UNKNOWN),
            Field::EvtTime => Str(Cow::Owned(format_time_of_day(self.ev.ts_ns))),
            // procexit is an enter event in libscap's numbering.
            Field::EvtDir => {
                Str(Cow::Borrowed(if self.is_enter() || self.etype() == Some(EventType::Procexit) { ">" } else { "<" }))
            }
            Field::EvtHostname => Str(Cow::Borrowed(&self.meta.hostname)),
            Field::EvtIsOpenRead | Field::EvtIsOpenWrite => match self.etype() {
                Some(t) if t.is_open() => {
                    let acc = self.flags() & oflags::O_ACCMODE;
                    let read = acc == oflags::O_RDONLY || acc == oflags::O_RDWR;
                    let write = acc == oflags::O_WRONLY || acc == oflags::O_RDWR;
                    Bool(if *field == Field::EvtIsOpenRead { read } else { write })
                }
                _ => Missing,
            },
            Field::EvtArg(name) => self.arg(name),
            Field::FdName => opt_str(self.fd_name()),
            Field::FdDirectory | Field::FdFilename if self.etype().is_some_and(|t| t.uses_fd()) => {
                // libsinsp splits only file and directory names; an fd it knows nothing about
                // reads as the root directory.
                match (self.fd_mode().kind, self.fd_name(), field) {
                    (fdkind::FILE | fdkind::DIRECTORY, Some(n), Field::FdDirectory) => Str(Cow::Borrowed(dir_of(n))),
                    (fdkind::FILE | fdkind::DIRECTORY, Some(n), _) => Str(Cow::Borrowed(file_of(n))),
                    (fdkind::UNKNOWN, Some(""), Field::FdDirectory) => Str(Cow::Borrowed("/")),
                    _ => Missing,
                }
            }
            Field::FdDirectory => opt_str(self.fd_name().map(dir_of)),
            Field::FdFilename => opt_str(self.fd_name().map(file_of)),
            Field::FdNum => match self.etype() {
                // The fd of an open exists only once it returns.
                Some(t) if t.is_open() && self.is_enter() => Int(-1),
                Some(t) if t.is_open() => Int(self.ret()),
                Some(t) if t.uses_fd() => Int(self.ev.dirfd as i64),
                Some(EventType::Fchdir) => Int(self.ev.dirfd as i64),
                _ => Missing,
            },
            Field::FdTypechar if self.is_enter() && self.etype().is_some_and(|t| t.is_open()) => {
                Str(Cow::Borrowed("f"))
            }
            Field::FdTypechar | Field::FdType => match self.etype() {
                Some(t) if t.is_open() && self.ret() >= 0 => {
                    let dir = self.flags() & oflags::O_DIRECTORY != 0;
                    let v = match (field, dir) {
                        (Field::FdTypechar, false) => "f",
                        (Field::FdTypechar, true) => "d",
                        (_, false) => "file",
                        (_, true) => "directory",
                    };
                    Str(Cow::Borrowed(v))
                }
                Some(t) if t.uses_fd() => match fdkind::names(self.fd_mode().kind) {
                    Some((name, c)) => Str(Cow::Borrowed(if *field == Field::FdType { name } else { c })),
                    // libsinsp's type character for an fd it knows nothing about.
                    None if *field == Field::FdTypechar && self.ev.dirfd >= 0 => Str(Cow::Borrowed("o")),
                    None => Missing,
                },
                _ => Missing,
            },
            Field::FdIp(e @ (End::Local | End::Remote)) => {
                self.local_or_remote(*e).map_or(Missing, |e| self.get(&Field::FdIp(e)))
            }
            Field::FdNet(e @ (End::Local | End::Remote)) => {
                self.local_or_remote(*e).map_or(Missing, |e| self.get(&Field::FdNet(e)))
            }
            Field::FdPort(e @ (End::Local | End::Remote)) => {
                self.local_or_remote(*e).map_or(Missing, |e| self.get(&Field::FdPort(e)))
            }
            // Opens and fd events keep the name as passed in `path2` where it differs.
            Field::FdNameraw => match self.etype() {
                Some(t) if t.is_open() || t.uses_fd() => match self.paths.get(self.ev.path2) {
                    Some(raw) => Str(Cow::Borrowed(raw)),
                    None => opt_str(self.fd_name()),
                },
                _ => Missing,
            },
            Field::FdConnected | Field::FdNameChanged => match self.etype() {
                Some(t) if t.uses_fd() => {
                    let m = self.fd_mode();
                    Bool(if *field == Field::FdConnected { m.connected } else { m.name_changed })
                }
                _ => Missing,
            },
            // The first name (in name order) that had the address; libsinsp gives one too.
            Field::FdIpName(end) => match self.ip_names(*end) {
                Some(names) => names.first().map_or(Missing, |n| Str(Cow::Borrowed(n))),
                None => Missing,
            },
            Field::FdL4proto => match self.etype() {
                Some(t) if t.uses_fd() => opt_str(self.fd_mode().l4proto()),
                _ => Missing,
            },
            Field::FdIp(end) | Field::FdNet(end) => match self.socket_ends() {
                Some(e) => match (end, e) {
                    (End::Client, (Some((ip, _)), _)) | (End::Server, (_, Some((ip, _)))) => Str(Cow::Borrowed(ip)),
                    // A single value for either end: the server's, as libsinsp prints it.
                    (End::Either, (c, s)) => s.or(c).map_or(Missing, |(ip, _)| Str(Cow::Borrowed(ip))),
                    _ => Missing,
                },
                None => Missing,
            },
            Field::FdPort(end) => match self.socket_ends() {
                Some(e) => match (end, e) {
                    (End::Client, (Some((_, p)), _)) | (End::Server, (_, Some((_, p)))) => Int(p as i64),
                    (End::Either, (c, s)) => s.or(c).map_or(Missing, |(_, p)| Int(p as i64)),
                    _ => Missing,
                },
                None => Missing,
            },
            Field::FdSockfamily => match self.etype() {
                Some(t) if t.uses_fd() => match self.fd_mode().kind {
                    fdkind::IPV4 | fdkind::IPV6 | fdkind::IPV4_SERVER | fdkind::IPV6_SERVER => Str(Cow::Borrowed("ip")),
                    fdkind::UNIX => Str(Cow::Borrowed("unix")),
                    _ => Missing,
                },
                _ => Missing,
            },
            Field::ProcName => proc_str(self.process(), |p| p.name.to_native()),
            Field::ProcExe => proc_str(self.process(), |p| p.exe.to_native()),
            Field::ProcExepath => proc_str(self.process(), |p| p.exepath.to_native()),
            Field::ProcIsExeFromMemfd => match proc_str(self.process(), |p| p.exepath.to_native()) {
                Str(path) => Bool(path.starts_with("/memfd:")),
                _ => Missing,
            },
            Field::ProcCwd => proc_str(self.process(), |p| p.cwd.to_native()),
            Field::ProcArgs => self.process().map_or(Missing, |p| Str(self.args_joined(p))),
            Field::ProcCmdline => self
                .process()
                .filter(|p| p.name.to_native() != NONE)
                .map_or(Missing, |p| Str(Cow::Owned(self.cmdline(p)))),
            Field::ProcPcmdline => self.ancestor(1).map_or(Missing, |p| Str(Cow::Owned(self.cmdline(p)))),
            Field::ProcPid => self.process().map_or(Missing, |p| Int(p.pid.to_native() as i64)),
            Field::ProcPpid => self.process().map_or(Missing, |p| Int(p.ppid.to_native() as i32 as i64)),
            Field::ProcPname => proc_str(self.ancestor(1), |p| p.name.to_native()),
            Field::ProcPexe => proc_str(self.ancestor(1), |p| p.exe.to_native()),
            Field::ProcAname(n) => proc_str(self.ancestor(*n), |p| p.name.to_native()),
            // Multi-valued: `get_all` gives every ancestor; a single read gives the parent.
            Field::ProcAnameAny => proc_str(self.ancestor(1), |p| p.name.to_native()),
            Field::ProcApidAny => self.ancestor(1).map_or(Missing, |p| Int(p.pid.to_native() as i64)),
            Field::EvtArgs => Str(Cow::Owned(self.args_text())),
            Field::EvtIsOpenExec => match self.etype() {
                Some(t) if t.is_open() => Bool(self.flags() & oflags::O_CREAT != 0 && self.ev.mode & 0o111 != 0),
                _ => Missing,
            },
            Field::ProcAexe(n) => proc_str(self.ancestor(*n), |p| p.exe.to_native()),
            Field::ProcAexepath(n) => proc_str(self.ancestor(*n), |p| p.exepath.to_native()),
            Field::ProcPexepath => proc_str(self.ancestor(1), |p| p.exepath.to_native()),
            Field::ProcDuration => match self.process().map(|p| p.start_ns.to_native()) {
                Some(start) if start > 0 => Int(self.ev.ts_ns.saturating_sub(start) as i64),
                _ => Missing,
            },
            Field::NotCaptured(..) => Missing,
            Field::ProcVpid | Field::ProcVpgid | Field::ProcSid => {
                let id = |t: &ArchivedTaskFacts| match field {
                    Field::ProcVpid => t.vpid.to_native(),
                    Field::ProcVpgid => t.vpgid.to_native(),
                    _ => t.sid.to_native(),
                };
                self.task(task_info::IDS).map(id).filter(|&v| v != 0).map_or(Missing, |v| Int(v as i64))
            }
            Field::ProcIsVpgidLeader | Field::ProcIsSidLeader => match self.task(task_info::IDS) {
                Some(t) if t.vpid.to_native() != 0 => {
                    let leader = if *field == Field::ProcIsSidLeader { t.sid.to_native() } else { t.vpgid.to_native() };
                    Bool(leader == t.vpid.to_native())
                }
                _ => Missing,
            },
            Field::ProcSname => self.session_leader().map_or(Missing, |p| proc_str(Some(p), |p| p.name.to_native())),
            Field::ThreadCap(set) => match self.task(task_info::CAPS) {
                Some(t) => Str(Cow::Owned(cap_names(t.caps[*set as usize].to_native()))),
                None => Missing,
            },
            Field::ProcEnv(name) => match self.process().and_then(|p| self.s(p.task.env.to_native())) {
                Some(env) => match name {
                    None => Str(Cow::Owned(env.replace('\0', " "))),
                    Some(n) => env
                        .split('\0')
                        .find_map(|kv| kv.strip_prefix(n.as_str()).and_then(|v| v.strip_prefix('=')))
                        .map_or(Missing, |v| Str(Cow::Borrowed(v))),
                },
                None => Missing,
            },
            Field::ProcExeIno | Field::ProcExeInoCtime | Field::ProcExeInoMtime => match self.task(task_info::EXE) {
                Some(t) => Int(match field {
                    Field::ProcExeIno => t.exe_ino.to_native(),
                    Field::ProcExeInoCtime => t.exe_ctime_ns.to_native(),
                    _ => t.exe_mtime_ns.to_native(),
                } as i64),
                None => Missing,
            },
            Field::ProcExeInoCtimeDurationProcStart => match (self.task(task_info::EXE), self.process()) {
                (Some(t), Some(p)) if p.start_ns.to_native() > 0 && t.exe_ctime_ns.to_native() > 0 => {
                    Int(p.start_ns.to_native().saturating_sub(t.exe_ctime_ns.to_native()) as i64)
                }
                _ => Missing,
            },
            Field::ProcIsExeUpperLayer => match self.task(task_info::EXE) {
                Some(t) => Bool(t.flags.to_native() & task_info::EXE_UPPER_LAYER != 0),
                None => Missing,
            },
            Field::ContainerPrivileged => match self.process().map(|p| p.container.privileged) {
                Some(v @ 1..=2) => Bool(v == 2),
                _ => Missing,
            },
            Field::ContainerStartTs => match self.process().map(|p| p.container.start_ns.to_native()) {
                Some(ns) if ns > 0 => Int(ns as i64),
                _ => Missing,
            },
            Field::ContainerMounts => proc_str(self.process(), |p| p.container.mounts.to_native()),
            Field::ContainerMountDest(key) | Field::ContainerMountSource(key) => {
                let mounts = self.process().and_then(|p| self.s(p.container.mounts.to_native()));
                let dest = matches!(field, Field::ContainerMountDest(_));
                mounts.and_then(|m| find_mount(m, key, dest)).map_or(Missing, |v| Str(Cow::Borrowed(v)))
            }
            Field::ProcApid(n) => self.ancestor(*n).map_or(Missing, |p| Int(p.pid.to_native() as i64)),
            Field::ThreadTid => Int(self.ev.tid as i64),
            Field::UserUid => self.process().map_or(Missing, |p| Int(p.uid.to_native() as i64)),
            Field::UserName | Field::UserLoginname | Field::GroupName => {
                let Some(p) = self.process() else { return Missing };
                let id = match field {
                    Field::UserName => p.uid.to_native(),
                    Field::UserLoginname => p.loginuid.to_native(),
                    _ => p.gid.to_native(),
                };
                let group = *field == Field::GroupName;
                // A container whose accounts capture read names its own users; elsewhere (the
                // host, or a container not read) the recording host's files do.
                let name = match self.container_accounts(p) {
                    Some(a) => ArchivedContainerAccounts::name_in(if group { &a.groups } else { &a.users }, id),
                    None => (if group { &self.meta.groups } else { &self.meta.users }).get(&id).map(String::as_str),
                };
                name.map_or(Missing, |n| Str(Cow::Borrowed(n)))
            }
            Field::ProcTty => self.process().map_or(Missing, |p| Int(p.tty.to_native() as i64)),
            Field::UserLoginuid => self.process().map_or(Missing, |p| Int(p.loginuid.to_native() as i32 as i64)),
            Field::GroupGid => self.process().map_or(Missing, |p| Int(p.gid.to_native() as i64)),
            Field::ContainerId => proc_str(self.process(), |p| p.container_id.to_native()),
            // libsinsp names the host's pseudo-container `host`.
            Field::ContainerName => match self.process() {
                Some(p) if self.s(p.container_id.to_native()) == Some("host") => Str(Cow::Borrowed("host")),
                p => proc_str(p, |p| p.container_name.to_native()),
            },
            Field::ContainerImage => proc_str(self.process(), |p| p.container_image.to_native()),
            Field::ContainerImageRepository | Field::ContainerImageTag => {
                let image = self.process().and_then(|p| self.s(p.container_image.to_native()));
                let (repo, tag) = image.map_or((None, None), split_image);
                opt_str(if *field == Field::ContainerImageTag { tag } else { repo })
            }
            Field::K8sPodName => proc_str(self.process(), |p| p.k8s_pod.to_native()),
            Field::K8sNsName => proc_str(self.process(), |p| p.k8s_ns.to_native()),
        }
    }

    /// Every value of a multi-valued field (any-ancestor fields, either socket end), or the
    /// single value.
    pub fn get_all(&self, field: &Field) -> Vec<FieldValue<'a>> {
        match field {
            Field::FdIp(End::Either) | Field::FdNet(End::Either) | Field::FdPort(End::Either) => {
                let (c, s) = match field {
                    Field::FdPort(_) => (Field::FdPort(End::Client), Field::FdPort(End::Server)),
                    _ => (Field::FdIp(End::Client), Field::FdIp(End::Server)),
                };
                [self.get(&c), self.get(&s)].into_iter().filter(|v| *v != FieldValue::Missing).collect()
            }
            Field::ProcAnameAny | Field::ProcApidAny => {
                let mut out = Vec::new();
                let mut n = 1;
                while let Some(p) = self.ancestor(n) {
                    out.push(match field {
                        Field::ProcAnameAny => self
                            .s(p.name.to_native())
                            .map_or(FieldValue::Missing, |s| FieldValue::Str(Cow::Borrowed(s))),
                        _ => FieldValue::Int(p.pid.to_native() as i64),
                    });
                    n += 1;
                }
                out
            }
            f => vec![self.get(f)],
        }
    }

    /// `evt.args`: the event's arguments as libsinsp prints them (`name=value …`).
    fn args_text(&self) -> String {
        let Some(t) = self.etype() else { return String::new() };
        ARG_NAMES
            .iter()
            .find(|(e, _)| *e == t)
            .map(|(_, names)| {
                names.iter().map(|n| format!("{n}={}", self.arg(n).render())).collect::<Vec<_>>().join(" ")
            })
            .unwrap_or_default()
    }

    fn args_joined(&self, p: &ArchivedProcess) -> Cow<'a, str> {
        let a = self.s(p.args.to_native()).unwrap_or("");
        if a.contains('\0') {
            Cow::Owned(a.replace('\0', " "))
        } else {
            Cow::Borrowed(a)
        }
    }

    fn cmdline(&self, p: &ArchivedProcess) -> String {
        let name = self.s(p.name.to_native()).unwrap_or("");
        let args = self.args_joined(p);
        if args.is_empty() {
            name.to_owned()
        } else {
            format!("{name} {args}")
        }
    }

    fn arg(&self, name: &str) -> FieldValue<'a> {
        use EventType::*;
        let Some(t) = self.etype() else { return FieldValue::Missing };
        if let Ok(i) = name.parse::<usize>() {
            let named = ARG_NAMES.iter().find(|(e, _)| *e == t).and_then(|(_, n)| n.get(i).copied());
            return named.map_or(FieldValue::Missing, |n| self.arg(n));
        }
        let path = || self.path().map_or(FieldValue::Missing, |p| FieldValue::Str(Cow::Borrowed(p)));
        let path2 = || self.paths.get(self.ev.path2).map_or(FieldValue::Missing, |p| FieldValue::Str(Cow::Borrowed(p)));
        let int = |v: i64| FieldValue::Int(v);
        match (t, name) {
            (_, "res") => int(self.ret()),
            (Open | Openat | Openat2 | Creat, "name") => path(),
            (Open | Openat | Openat2 | Creat, "fd") => int(self.ret()),
            // creat(2) has no flags argument; libsinsp still shows the ones it implies.
            (Creat, "flags") => FieldValue::Str(Cow::Owned(oflags::render(self.flags()))),
            (Mkdir | Mkdirat | Unlink | Rmdir | Chdir, "path") => path(),
            (Unlinkat, "name") => path(),
            (Rename | Renameat | Renameat2, "oldpath") => path(),
            (Rename | Renameat | Renameat2, "newpath") => path2(),
            (Execve | Execveat, "filename") => path(),
            (Chmod | Fchmodat, "filename") | (Chown | Lchown, "path") | (Fchownat, "pathname") => path(),
            (Link | Linkat, "oldpath") | (Symlink | Symlinkat, "linkpath") | (Mount, "dir") | (Umount2, "name") => {
                path()
            }
            (Link | Linkat, "newpath") | (Symlink | Symlinkat, "target") | (Mount, "dev") => path2(),
            (MemfdCreate, "name") => path(),
            (MemfdCreate, "fd") => int(self.ret()),
            // The rest sit in the numeric columns, where formats::event::args puts them.
            _ => {
                let Some(slot) = args::slot_of(t, name) else { return FieldValue::Missing };
                let cols = args::Columns { flags: self.ev.flags, mode: self.ev.mode, dirfd: self.ev.dirfd };
                let v = cols.get(slot.column);
                match (t, slot.encoding) {
                    (_, args::Encoding::OpenFlags) => FieldValue::Str(Cow::Owned(oflags::render(v as u32))),
                    (_, args::Encoding::Mode) => FieldValue::Str(Cow::Owned(format!("0{v:o}"))),
                    (Ptrace, _) if name == "request" => FieldValue::Str(Cow::Owned(ptrace_request_name(v as u32))),
                    (Clone, _) => FieldValue::Str(Cow::Owned(render_clone_flags(v as u32))),
                    _ => int(v),
                }
            }
        }
    }
}

/// Argument names per event type, in libsinsp's order (for `evt.args` and `evt.arg[N]`).
const ARG_NAMES: &[(EventType, &[&str])] = &[
    (EventType::Open, &["fd", "name", "flags", "mode"]),
    (EventType::Openat, &["fd", "dirfd", "name", "flags", "mode"]),
    (EventType::Openat2, &["fd", "dirfd", "name", "flags", "mode"]),
    (EventType::Creat, &["fd", "name", "mode"]),
    (EventType::Mkdir, &["res", "path", "mode"]),
    (EventType::Mkdirat, &["res", "dirfd", "path", "mode"]),
    (EventType::Unlink, &["res", "path"]),
    (EventType::Unlinkat, &["res", "dirfd", "name", "flags"]),
    (EventType::Rmdir, &["res", "path"]),
    (EventType::Rename, &["res", "oldpath", "newpath"]),
    (EventType::Renameat, &["res", "olddirfd", "oldpath", "newpath"]),
    (EventType::Renameat2, &["res", "olddirfd", "oldpath", "newpath", "flags"]),
    (EventType::Execve, &["res", "filename"]),
    (EventType::Execveat, &["res", "dirfd", "filename"]),
    (EventType::Chdir, &["res", "path"]),
    (EventType::Fchdir, &["res", "fd"]),
    (EventType::Clone, &["res", "flags"]),
    (EventType::Procexit, &[]),
    (EventType::Chmod, &["res", "filename", "mode"]),
    (EventType::Fchmod, &["res", "fd", "mode"]),
    (EventType::Fchmodat, &["res", "dirfd", "filename", "mode"]),
    (EventType::Chown, &["res", "path", "uid", "gid"]),
    (EventType::Lchown, &["res", "path", "uid", "gid"]),
    (EventType::Fchown, &["res", "fd", "uid", "gid"]),
    (EventType::Fchownat, &["res", "dirfd", "pathname", "uid", "gid"]),
    (EventType::Link, &["res", "oldpath", "newpath"]),
    (EventType::Linkat, &["res", "olddir", "oldpath", "newdir", "newpath", "flags"]),
    (EventType::Symlink, &["res", "target", "linkpath"]),
    (EventType::Symlinkat, &["res", "target", "linkdirfd", "linkpath"]),
    (EventType::Mount, &["res", "dev", "dir", "flags"]),
    (EventType::Umount2, &["res", "name", "flags"]),
    (EventType::Setuid, &["res", "uid"]),
    (EventType::Setgid, &["res", "gid"]),
    (EventType::Setreuid, &["res", "ruid", "euid"]),
    (EventType::Setregid, &["res", "rgid", "egid"]),
    (EventType::Setresuid, &["res", "ruid", "euid", "suid"]),
    (EventType::Setresgid, &["res", "rgid", "egid", "sgid"]),
    (EventType::Ptrace, &["res", "request", "pid"]),
    (EventType::Kill, &["res", "pid", "sig"]),
    (EventType::Tkill, &["res", "tid", "sig"]),
    (EventType::Tgkill, &["res", "pid", "tid", "sig"]),
    (EventType::MemfdCreate, &["fd", "name", "flags"]),
    (EventType::Bpf, &["res", "cmd"]),
];

/// Whether a not-yet-captured field takes a `[arg]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// Never.
    None,
    /// Optionally.
    Optional,
    /// Always.
    Required,
}

/// libsinsp fields of the syscall source whose data capture does not record yet, with their
/// types. They compile and evaluate as missing, as libsinsp does for an event without that
/// information; `rules check` lists the rules that read them. (Source: docs/FIELDS.md.)
pub const NOT_CAPTURED: &[(&str, FieldType, ArgKind)] = &[
    ("container.image.id", FieldType::Str, ArgKind::None),
    ("container.info", FieldType::Str, ArgKind::None),
    ("container.type", FieldType::Str, ArgKind::None),
    ("k8s.pod.id", FieldType::Str, ArgKind::None),
    ("k8s.pod.uid", FieldType::Str, ArgKind::None),
    ("k8s.pod.label", FieldType::Str, ArgKind::Required),
    ("evt.buffer", FieldType::Str, ArgKind::None),
    ("evt.plugininfo", FieldType::Str, ArgKind::None),
    ("fd.dev", FieldType::Int, ArgKind::None),
    ("fd.ino", FieldType::Int, ArgKind::None),
    ("proc.is_exe_writable", FieldType::Bool, ArgKind::None),
    ("proc.loginshellid", FieldType::Int, ArgKind::None),
    ("user.homedir", FieldType::Str, ArgKind::None),
    ("user.shell", FieldType::Str, ArgKind::None),
];

/// libsinsp's name for a ptrace request (`PTRACE_ATTACH`…), or the number.
pub fn ptrace_request_name(r: u32) -> String {
    let name = match r {
        0 => "PTRACE_TRACEME",
        1 => "PTRACE_PEEKTEXT",
        2 => "PTRACE_PEEKDATA",
        3 => "PTRACE_PEEKUSR",
        4 => "PTRACE_POKETEXT",
        5 => "PTRACE_POKEDATA",
        6 => "PTRACE_POKEUSR",
        7 => "PTRACE_CONT",
        8 => "PTRACE_KILL",
        9 => "PTRACE_SINGLESTEP",
        12 => "PTRACE_GETREGS",
        13 => "PTRACE_SETREGS",
        16 => "PTRACE_ATTACH",
        17 => "PTRACE_DETACH",
        24 => "PTRACE_SYSCALL",
        0x4200 => "PTRACE_SETOPTIONS",
        0x4206 => "PTRACE_SEIZE",
        0x4207 => "PTRACE_INTERRUPT",
        _ => return r.to_string(),
    };
    name.to_owned()
}

/// Clone flags by their Linux names (`CLONE_VM|CLONE_FS|…`) in bit order, the exit signal
/// left out; `0` when none is set or capture could not read them.
pub fn render_clone_flags(f: u32) -> String {
    const NAMES: [(u32, &str); 23] = [
        (0x100, "CLONE_VM"),
        (0x200, "CLONE_FS"),
        (0x400, "CLONE_FILES"),
        (0x800, "CLONE_SIGHAND"),
        (0x1000, "CLONE_PIDFD"),
        (0x2000, "CLONE_PTRACE"),
        (0x4000, "CLONE_VFORK"),
        (0x8000, "CLONE_PARENT"),
        (0x10000, "CLONE_THREAD"),
        (0x20000, "CLONE_NEWNS"),
        (0x40000, "CLONE_SYSVSEM"),
        (0x80000, "CLONE_SETTLS"),
        (0x100000, "CLONE_PARENT_SETTID"),
        (0x200000, "CLONE_CHILD_CLEARTID"),
        (0x400000, "CLONE_DETACHED"),
        (0x800000, "CLONE_UNTRACED"),
        (0x1000000, "CLONE_CHILD_SETTID"),
        (0x2000000, "CLONE_NEWCGROUP"),
        (0x4000000, "CLONE_NEWUTS"),
        (0x8000000, "CLONE_NEWIPC"),
        (0x10000000, "CLONE_NEWUSER"),
        (0x20000000, "CLONE_NEWPID"),
        (0x40000000, "CLONE_NEWNET"),
    ];
    let names: Vec<&str> = NAMES.iter().filter(|(bit, _)| f & bit != 0).map(|(_, n)| *n).collect();
    if names.is_empty() {
        "0".to_owned()
    } else {
        names.join("|")
    }
}

/// `HH:MM:SS.nnnnnnnnn` (UTC), as Falco prints `evt.time`.
pub fn format_time_of_day(ts_ns: u64) -> String {
    let t = chrono::DateTime::from_timestamp_nanos(ts_ns as i64);
    t.format("%H:%M:%S%.9f").to_string()
}

/// Linux errno names from 1 up (asm-generic numbering, used by x86_64 and aarch64): entry `n - 1`
/// names errno `n`.
const ERRNO_NAMES: [&str; 133] = [
    "EPERM",           // 1
    "ENOENT",          // 2
    "ESRCH",           // 3
    "EINTR",           // 4
    "EIO",             // 5
    "ENXIO",           // 6
    "E2BIG",           // 7
    "ENOEXEC",         // 8
    "EBADF",           // 9
    "ECHILD",          // 10
    "EAGAIN",          // 11
    "ENOMEM",          // 12
    "EACCES",          // 13
    "EFAULT",          // 14
    "ENOTBLK",         // 15
    "EBUSY",           // 16
    "EEXIST",          // 17
    "EXDEV",           // 18
    "ENODEV",          // 19
    "ENOTDIR",         // 20
    "EISDIR",          // 21
    "EINVAL",          // 22
    "ENFILE",          // 23
    "EMFILE",          // 24
    "ENOTTY",          // 25
    "ETXTBSY",         // 26
    "EFBIG",           // 27
    "ENOSPC",          // 28
    "ESPIPE",          // 29
    "EROFS",           // 30
    "EMLINK",          // 31
    "EPIPE",           // 32
    "EDOM",            // 33
    "ERANGE",          // 34
    "EDEADLK",         // 35
    "ENAMETOOLONG",    // 36
    "ENOLCK",          // 37
    "ENOSYS",          // 38
    "ENOTEMPTY",       // 39
    "ELOOP",           // 40
    "EWOULDBLOCK",     // 41
    "ENOMSG",          // 42
    "EIDRM",           // 43
    "ECHRNG",          // 44
    "EL2NSYNC",        // 45
    "EL3HLT",          // 46
    "EL3RST",          // 47
    "ELNRNG",          // 48
    "EUNATCH",         // 49
    "ENOCSI",          // 50
    "EL2HLT",          // 51
    "EBADE",           // 52
    "EBADR",           // 53
    "EXFULL",          // 54
    "ENOANO",          // 55
    "EBADRQC",         // 56
    "EBADSLT",         // 57
    "EDEADLOCK",       // 58
    "EBFONT",          // 59
    "ENOSTR",          // 60
    "ENODATA",         // 61
    "ETIME",           // 62
    "ENOSR",           // 63
    "ENONET",          // 64
    "ENOPKG",          // 65
    "EREMOTE",         // 66
    "ENOLINK",         // 67
    "EADV",            // 68
    "ESRMNT",          // 69
    "ECOMM",           // 70
    "EPROTO",          // 71
    "EMULTIHOP",       // 72
    "EDOTDOT",         // 73
    "EBADMSG",         // 74
    "EOVERFLOW",       // 75
    "ENOTUNIQ",        // 76
    "EBADFD",          // 77
    "EREMCHG",         // 78
    "ELIBACC",         // 79
    "ELIBBAD",         // 80
    "ELIBSCN",         // 81
    "ELIBMAX",         // 82
    "ELIBEXEC",        // 83
    "EILSEQ",          // 84
    "ERESTART",        // 85
    "ESTRPIPE",        // 86
    "EUSERS",          // 87
    "ENOTSOCK",        // 88
    "EDESTADDRREQ",    // 89
    "EMSGSIZE",        // 90
    "EPROTOTYPE",      // 91
    "ENOPROTOOPT",     // 92
    "EPROTONOSUPPORT", // 93
    "ESOCKTNOSUPPORT", // 94
    "EOPNOTSUPP",      // 95
    "EPFNOSUPPORT",    // 96
    "EAFNOSUPPORT",    // 97
    "EADDRINUSE",      // 98
    "EADDRNOTAVAIL",   // 99
    "ENETDOWN",        // 100
    "ENETUNREACH",     // 101
    "ENETRESET",       // 102
    "ECONNABORTED",    // 103
    "ECONNRESET",      // 104
    "ENOBUFS",         // 105
    "EISCONN",         // 106
    "ENOTCONN",        // 107
    "ESHUTDOWN",       // 108
    "ETOOMANYREFS",    // 109
    "ETIMEDOUT",       // 110
    "ECONNREFUSED",    // 111
    "EHOSTDOWN",       // 112
    "EHOSTUNREACH",    // 113
    "EALREADY",        // 114
    "EINPROGRESS",     // 115
    "ESTALE",          // 116
    "EUCLEAN",         // 117
    "ENOTNAM",         // 118
    "ENAVAIL",         // 119
    "EISNAM",          // 120
    "EREMOTEIO",       // 121
    "EDQUOT",          // 122
    "ENOMEDIUM",       // 123
    "EMEDIUMTYPE",     // 124
    "ECANCELED",       // 125
    "ENOKEY",          // 126
    "EKEYEXPIRED",     // 127
    "EKEYREVOKED",     // 128
    "EKEYREJECTED",    // 129
    "EOWNERDEAD",      // 130
    "ENOTRECOVERABLE", // 131
    "ERFKILL",         // 132
    "EHWPOISON",       // 133
];

/// The errno name for `n` (`ENOENT`), or `E<n>` when unknown.
pub fn errno_name(n: i64) -> String {
    if n >= 1 {
        if let Some(name) = ERRNO_NAMES.get(n as usize - 1) {
            return (*name).to_owned();
        }
    }
    format!("E{n}")
}

/// (repository, tag) of an image reference `[registry[:port]/]repo[:tag][@digest]`.
fn split_image(image: &str) -> (Option<&str>, Option<&str>) {
    let no_digest = image.split_once('@').map_or(image, |(name, _)| name);
    let last_slash = no_digest.rfind('/').map_or(0, |i| i + 1);
    match no_digest[last_slash..].rfind(':') {
        Some(i) => {
            let colon = last_slash + i;
            (Some(&no_digest[..colon]), Some(&no_digest[colon + 1..]).filter(|t| !t.is_empty()))
        }
        None => (Some(no_digest).filter(|r| !r.is_empty()), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_sets_print_as_libsinsp_names() {
        assert_eq!(cap_names(0), "");
        assert_eq!(cap_names(1 << 21 | 1), "CAP_CHOWN CAP_SYS_ADMIN");
        assert_eq!(cap_names(1 << 40 | 1 << 41), "CAP_CHECKPOINT_RESTORE CAP_41");
    }

    #[test]
    fn mounts_are_found_by_index_or_by_a_glob_over_the_other_end() {
        let m = "/proc:/host/proc:ro:false:rprivate /var/run/docker.sock:/var/run/docker.sock::true:";
        assert_eq!(find_mount(m, "0", true), Some("/host/proc"));
        assert_eq!(find_mount(m, "1", false), Some("/var/run/docker.sock"));
        assert_eq!(find_mount(m, "/proc*", true), Some("/host/proc"));
        assert_eq!(find_mount(m, "/host/*", false), Some("/proc"));
        assert_eq!(find_mount(m, "/etc*", true), None);
        assert_eq!(find_mount(m, "2", true), None);
        assert_eq!(find_mount("", "0", true), None);
    }

    #[test]
    fn images_split_into_repository_and_tag() {
        for (image, repo, tag) in [
            ("nginx", Some("nginx"), None),
            ("nginx:1.25", Some("nginx"), Some("1.25")),
            ("docker.io/library/nginx:1.25", Some("docker.io/library/nginx"), Some("1.25")),
            ("localhost:5000/app", Some("localhost:5000/app"), None),
            ("localhost:5000/team/app:v2", Some("localhost:5000/team/app"), Some("v2")),
            ("busybox@sha256:0123abcd", Some("busybox"), None),
            ("ghcr.io/x/busybox:1.36@sha256:0123abcd", Some("ghcr.io/x/busybox"), Some("1.36")),
            ("", None, None),
        ] {
            assert_eq!(split_image(image), (repo, tag), "{image}");
        }
    }

    #[test]
    fn errno_names_match_linux_numbers() {
        assert_eq!(errno_name(2), "ENOENT");
        assert_eq!(errno_name(13), "EACCES");
        assert_eq!(errno_name(17), "EEXIST");
        assert_eq!(errno_name(39), "ENOTEMPTY");
        assert_eq!(errno_name(110), "ETIMEDOUT");
        assert_eq!(errno_name(133), "EHWPOISON");
        assert_eq!(errno_name(999), "E999");
    }

    #[test]
    fn field_names_resolve_or_explain() {
        assert_eq!(Field::parse("proc.aname[2]"), Ok(Field::ProcAname(2)));
        assert_eq!(Field::parse("evt.arg.path"), Ok(Field::EvtArg("path".into())));
        assert_eq!(Field::parse("evt.arg[path]"), Ok(Field::EvtArg("path".into())));
        assert!(Field::parse("proc.nope").unwrap_err().contains("unknown field 'proc.nope'"));
        assert_eq!(Field::parse("proc.aname"), Ok(Field::ProcAnameAny));
        assert!(Field::parse("proc.aname[x]").unwrap_err().contains("is not a number"));
        assert!(Field::parse("proc.name[1]").unwrap_err().contains("does not take an argument"));
    }

    #[test]
    fn open_flags_render_like_libsinsp() {
        assert_eq!(oflags::render(oflags::O_WRONLY | oflags::O_CREAT | oflags::O_TRUNC), "O_WRONLY|O_CREAT|O_TRUNC");
        assert_eq!(oflags::render(oflags::O_CLOEXEC), "O_RDONLY|O_CLOEXEC");
        // Every flag the PPM table knows has its name, multi-bit ones only when whole.
        assert_eq!(oflags::render(0o4000 | 0o100000), "O_RDONLY|O_NONBLOCK|O_LARGEFILE");
        assert_eq!(oflags::render(0o4010000 | oflags::O_RDWR), "O_RDWR|O_DSYNC|O_SYNC");
        assert_eq!(oflags::render(oflags::O_TMPFILE | oflags::O_WRONLY), "O_WRONLY|O_DIRECTORY|O_TMPFILE");
    }
}

/// A capability set of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CapSet {
    /// `cap_inheritable`
    Inheritable = 0,
    /// `cap_permitted`
    Permitted = 1,
    /// `cap_effective`
    Effective = 2,
}

/// Capability names by number, as `<linux/capability.h>` defines them.
const CAP_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// A capability set as libsinsp prints it: the names of its bits, space-separated (a bit
/// without a name as `CAP_N`).
pub fn cap_names(set: u64) -> String {
    let names: Vec<String> = (0..64)
        .filter(|b| set & (1u64 << b) != 0)
        .map(|b| CAP_NAMES.get(b).map_or_else(|| format!("CAP_{b}"), |n| (*n).to_owned()))
        .collect();
    names.join(" ")
}

/// A mount of a `container.mounts` list: by index (`key` a number), or the first whose source
/// (`want_dest`) or destination matches the glob `key`; its destination or its source.
pub fn find_mount<'a>(mounts: &'a str, key: &str, want_dest: bool) -> Option<&'a str> {
    let parts = |m: &'a str| -> Option<(&'a str, &'a str)> {
        let mut f = m.splitn(3, ':');
        Some((f.next()?, f.next()?))
    };
    let mut items = mounts.split(' ').filter(|m| !m.is_empty()).filter_map(parts);
    let found = match key.parse::<usize>() {
        Ok(i) => items.nth(i),
        Err(_) => items.find(|(src, dst)| {
            let by = if want_dest { src } else { dst };
            crate::filter::glob_match(key.as_bytes(), by.as_bytes())
        }),
    };
    found.map(|(src, dst)| if want_dest { dst } else { src })
}
