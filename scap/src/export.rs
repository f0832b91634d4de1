//! Lanner archive segments to a `.scap` capture that sysdig and Falco read.
//!
//! Each Lanner event becomes an enter and an exit event of libscap's newest layout for that
//! syscall (both at the event's time); syscalls libscap has no dedicated layout for become
//! generic `syscall` events. Threads first seen in the archive go into the process list, so
//! libsinsp knows every process even without its clone.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;

use lanner_formats::archive::SegmentReader;
use lanner_formats::event::{
    args, fdkind, oflags, sock_name, ArchivedChunk, Event, PathIndex, AT_FDCWD, NONE, RET_UNKNOWN,
};
use lanner_formats::syscall::{type_bits, EventType, ENTER};

use crate::event_table::{EVENTS, SYSCALLS};
use crate::reader::ThreadInfo;
use crate::writer::{encode, ScapWriter, Value};

/// libscap `EF_UNUSED`.
const EF_UNUSED: u32 = 1 << 6;
/// libscap `EF_OLD_VERSION`.
const EF_OLD_VERSION: u32 = 1 << 9;
/// libscap's generic events.
const GENERIC_E: u16 = 0;
/// libscap's `procexit`.
const PROCEXIT: u16 = 186;

/// What an export wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExportStats {
    /// Lanner events exported.
    pub events: u64,
    /// scap events written (enter and exit).
    pub scap_events: u64,
    /// Threads in the process list.
    pub threads: usize,
}

/// The enter event number of libscap's newest layout for each syscall name.
fn layouts() -> HashMap<&'static str, u16> {
    let mut m = HashMap::new();
    let mut i = 0;
    while i + 1 < EVENTS.len() {
        let (e, x) = (&EVENTS[i], &EVENTS[i + 1]);
        if e.name == x.name && (e.flags | x.flags) & (EF_UNUSED | EF_OLD_VERSION) == 0 {
            m.insert(e.name, i as u16);
        }
        i += 2;
    }
    m
}

/// Reads every chunk of `segments` in order, calling `f` with each decoded chunk.
fn for_each_chunk(
    segments: &[PathBuf],
    mut f: impl FnMut(&ArchivedChunk, &PathIndex) -> std::io::Result<()>,
) -> Result<(), String> {
    for s in segments {
        let r = SegmentReader::open(s).map_err(|e| e.to_string())?;
        for c in r.chunks() {
            let d = r.decode(c).map_err(|e| e.to_string())?;
            f(d.chunk(), d.paths()).map_err(|e| format!("writing: {e}"))?;
        }
    }
    Ok(())
}

/// The tuple parameter of a socket event, from an IPv4 fd name `a.b.c.d:p->e.f.g.h:q`.
fn ipv4_tuple(name: &str) -> Option<Vec<u8>> {
    let (c, s) = sock_name::parse_connection(name)?;
    let end = |x: &str| -> Option<([u8; 4], u16)> {
        let (ip, port) = sock_name::parse_end(x)?;
        Some((ip.parse::<std::net::Ipv4Addr>().ok()?.octets(), port))
    };
    let ((cip, cport), (sip, sport)) = (end(c)?, end(s)?);
    let mut v = vec![2u8];
    v.extend_from_slice(&cip);
    v.extend_from_slice(&cport.to_le_bytes());
    v.extend_from_slice(&sip);
    v.extend_from_slice(&sport.to_le_bytes());
    Some(v)
}

/// The sockaddr parameter (libscap encoding: family, address, port) of one socket end: the
/// remote end of a `cip:cport->sip:sport` name, or the whole name of a listening socket, or a
/// unix socket path.
fn sockaddr_param(name: &str, kind: u32) -> Option<Vec<u8>> {
    if kind == fdkind::UNIX {
        let mut v = vec![1u8];
        v.extend_from_slice(name.as_bytes());
        v.push(0);
        return Some(v);
    }
    let (ip, port) = sock_name::parse_end(sock_name::server_end(name))?;
    let mut v = match ip.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(a) => {
            let mut v = vec![2u8];
            v.extend_from_slice(&a.octets());
            v
        }
        std::net::IpAddr::V6(a) => {
            let mut v = vec![10u8];
            v.extend_from_slice(&a.octets());
            v
        }
    };
    v.extend_from_slice(&port.to_le_bytes());
    Some(v)
}

fn nul_list(s: &str) -> Vec<u8> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut v: Vec<u8> = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// Converts `segments` into one scap capture written to `out`.
pub fn export<W: Write>(segments: &[PathBuf], out: W) -> Result<ExportStats, String> {
    let first = segments.first().ok_or("no segments to export")?;
    let mut hostname = String::new();
    let mut users: BTreeMap<u32, String> = BTreeMap::new();
    for s in segments {
        let r = SegmentReader::open(s).map_err(|e| e.to_string())?;
        if s == first {
            hostname = r.meta().hostname.clone();
        }
        users.extend(r.meta().users.clone());
    }
    // Pass 1: the first state of every thread, for the process list.
    let mut threads: BTreeMap<u64, ThreadInfo> = BTreeMap::new();
    for_each_chunk(segments, |c, _| {
        for ev in c.events.iter() {
            let Some(p) = c.process(ev.process) else { continue };
            // The ancestors too (as their main threads), so parent fields resolve.
            let mut a = p.parent.to_native();
            for _ in 0..64 {
                let Some(anc) = (a != NONE).then(|| c.process(a)).flatten() else { break };
                let pid = anc.pid.to_native() as u64;
                threads.entry(pid).or_insert_with(|| thread_entry(c, anc, pid));
                a = anc.parent.to_native();
            }
            let tid = ev.tid as u64;
            threads.entry(tid).or_insert_with(|| thread_entry(c, p, tid));
        }
        Ok(())
    })?;
    let mut w = ScapWriter::new(out, &hostname, 1).map_err(|e| e.to_string())?;
    let list: Vec<ThreadInfo> = threads.into_values().collect();
    let stats_threads = list.len();
    w.threads(&list).map_err(|e| e.to_string())?;
    if !users.is_empty() {
        w.users(&users.into_iter().collect::<Vec<_>>()).map_err(|e| e.to_string())?;
    }
    // Pass 2: the events.
    let layouts = layouts();
    let mut stats = ExportStats { threads: stats_threads, ..Default::default() };
    for_each_chunk(segments, |c, paths| {
        for ev in c.events.iter() {
            if ev.etype & ENTER != 0 {
                continue; // imported enter rows: every exported event gets its own
            }
            let Some(t) = EventType::from_u16(type_bits(ev.etype)) else { continue };
            stats.events += 1;
            stats.scap_events += write_event(&mut w, &layouts, c, paths, &ev, t)?;
        }
        Ok(())
    })?;
    w.finish().map_err(|e| e.to_string())?;
    Ok(stats)
}

/// A process-list entry for thread `tid` of process `p`.
fn thread_entry(c: &ArchivedChunk, p: &lanner_formats::event::ArchivedProcess, tid: u64) -> ThreadInfo {
    let s = |id: u32| if id == NONE { String::new() } else { c.string(id).unwrap_or("").to_owned() };
    let pid = p.pid.to_native() as i64;
    let ppid = p.ppid.to_native();
    ThreadInfo {
        tid: tid as i64,
        pid,
        ptid: if tid as i64 != pid {
            pid
        } else if ppid == u32::MAX {
            -1
        } else {
            ppid as i64
        },
        comm: s(p.name.to_native()),
        exe: s(p.exe.to_native()),
        exepath: s(p.exepath.to_native()),
        args: s(p.args.to_native()).split('\0').filter(|a| !a.is_empty()).map(str::to_owned).collect(),
        cwd: s(p.cwd.to_native()),
        uid: p.uid.to_native(),
        gid: p.gid.to_native(),
        loginuid: p.loginuid.to_native(),
        tty: p.tty.to_native(),
        vpid: pid,
        cgroups: Vec::new(),
    }
}

fn write_event<W: Write>(
    w: &mut ScapWriter<W>,
    layouts: &HashMap<&'static str, u16>,
    c: &ArchivedChunk,
    paths: &PathIndex,
    ev: &Event,
    t: EventType,
) -> std::io::Result<u64> {
    let p = c.process(ev.process);
    let s = |id: u32| if id == NONE { String::new() } else { c.string(id).unwrap_or("").to_owned() };
    let path = paths.get(ev.path).unwrap_or("").to_owned();
    let path2 = paths.get(ev.path2).unwrap_or("").to_owned();
    let name = match t {
        EventType::Umount2 => "umount",
        t => t.name(),
    };
    let ret = if ev.ret == RET_UNKNOWN { 0 } else { ev.ret };
    // An fd event's kind, without the protocol and role packed above it.
    let fd_kind = fdkind::FdMode::from_column(ev.mode).kind;
    // Values by libscap parameter name.
    let value = |pname: &str, exit: bool| -> Option<Value> {
        let proc_str = |f: fn(&lanner_formats::event::ArchivedProcess) -> u32| p.map(|p| Value::Str(s(f(p))));
        // An argument a numeric column holds (formats::event::args), in libscap's spelling;
        // the kernel's own flag values are not libscap's, so those are not written.
        if let Some(slot) = args::slot_of(t, pname) {
            let cols = args::Columns { flags: ev.flags, mode: ev.mode, dirfd: ev.dirfd };
            let v = cols.get(slot.column);
            match slot.encoding {
                args::Encoding::Plain | args::Encoding::Mode => return Some(Value::Int(v)),
                args::Encoding::OpenFlags => return Some(Value::Int(oflags::to_ppm(v as u32) as i64)),
                args::Encoding::Kernel => {}
            }
        }
        Some(match pname {
            "res" | "status" => Value::Int(ret),
            "fd" if exit
                && (t.is_open() || matches!(t, EventType::Socket | EventType::Accept | EventType::Accept4)) =>
            {
                Value::Int(ret)
            }
            "fd" | "out_fd" if t.uses_fd() => Value::Int(ev.dirfd as i64),
            "fd" | "out_fd" => Value::Int(-1),
            "dirfd" | "olddirfd" | "newdirfd" | "linkdirfd" => {
                Value::Int(if t.uses_fd() || ev.dirfd == AT_FDCWD { AT_FDCWD as i64 } else { ev.dirfd as i64 })
            }
            "name" | "path" | "pathname" | "filename" | "dir" | "linkpath" | "oldpath" => Value::Str(path.clone()),
            "newpath" | "target" | "dev" => Value::Str(path2.clone()),
            "flags" if t.is_open() => Value::Int(oflags::to_ppm(ev.flags) as i64),
            "mode" if !t.uses_fd() => Value::Int(ev.mode as i64),
            // socket(2)'s address family, from the kind of fd it created.
            "domain" => Value::Int(match fd_kind {
                fdkind::IPV4 | fdkind::IPV4_SERVER => 2,
                fdkind::IPV6 | fdkind::IPV6_SERVER => 10,
                fdkind::UNIX => 1,
                fdkind::NETLINK => 16,
                _ => 0,
            }),
            "exe" => proc_str(|p| p.exe.to_native())?,
            "comm" => proc_str(|p| p.name.to_native())?,
            "cwd" => proc_str(|p| p.cwd.to_native())?,
            "args" => Value::Bytes(nul_list(&p.map(|p| s(p.args.to_native())).unwrap_or_default())),
            "tid" => Value::Int(ev.tid as i64),
            "pid" | "pgid" => Value::Int(p.map_or(0, |p| p.pid.to_native() as i64)),
            "ptid" => Value::Int(p.map_or(0, |p| p.ppid.to_native() as i32 as i64)),
            "uid" => Value::Int(p.map_or(0, |p| p.uid.to_native() as i64)),
            "gid" => Value::Int(p.map_or(0, |p| p.gid.to_native() as i64)),
            "fdlimit" => Value::Int(1024),
            "loginuid" => Value::Int(p.map_or(-1, |p| p.loginuid.to_native() as i32 as i64)),
            "tty" => Value::Int(p.map_or(0, |p| p.tty.to_native() as i64)),
            "tuple" => Value::Bytes(ipv4_tuple(&path)?),
            "addr" if t.uses_fd() => Value::Bytes(sockaddr_param(&path, fd_kind)?),
            _ => return None,
        })
    };
    let tid = ev.tid as u64;
    if t == EventType::Procexit {
        let info = &EVENTS[PROCEXIT as usize];
        let params: Vec<Vec<u8>> = info.params.iter().map(|(n, ty)| encode(*ty, value(n, true).as_ref())).collect();
        w.event(0, ev.ts_ns, tid, PROCEXIT, &params)?;
        return Ok(1);
    }
    match layouts.get(name) {
        Some(&e) => {
            for (n, exit) in [(e, false), (e + 1, true)] {
                let info = &EVENTS[n as usize];
                let params: Vec<Vec<u8>> =
                    info.params.iter().map(|(pn, ty)| encode(*ty, value(pn, exit).as_ref())).collect();
                w.event(0, ev.ts_ns, tid, n, &params)?;
            }
        }
        None => {
            // Generic events: libscap's syscall code and the native number.
            let id = SYSCALLS.iter().position(|s| *s == name).unwrap_or(0) as i64;
            let native = t.spec().nr_x86_64.unwrap_or(0) as i64;
            for (n, exit) in [(GENERIC_E, false), (GENERIC_E + 1, true)] {
                let info = &EVENTS[n as usize];
                let params: Vec<Vec<u8>> = info
                    .params
                    .iter()
                    .map(|(pn, ty)| {
                        let v = match *pn {
                            "ID" => Some(Value::Int(id)),
                            "nativeID" => Some(Value::Int(native)),
                            _ => value(pn, exit),
                        };
                        encode(*ty, v.as_ref())
                    })
                    .collect();
                w.event(0, ev.ts_ns, tid, n, &params)?;
            }
        }
    }
    Ok(2)
}
