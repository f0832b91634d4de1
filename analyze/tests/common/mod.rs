//! Builds small synthetic archives for analyzer tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use lanner_formats::archive::{ChunkBuilder, SegmentMeta, SegmentWriter};
use lanner_formats::event::{oflags, Chunk, Event, Process, NONE};
use lanner_formats::syscall::EventType;

/// A process for synthetic events.
pub struct P<'a> {
    pub pid: u32,
    pub name: &'a str,
    pub args: &'a [&'a str],
    pub uid: u32,
}

/// Adds `parent` then `child` and returns the child's index.
pub fn lineage(b: &mut ChunkBuilder, parent: &P, child: &P) -> u32 {
    let pi = add(b, parent, NONE, 1);
    add(b, child, pi, parent.pid)
}

fn add(b: &mut ChunkBuilder, p: &P, parent: u32, ppid: u32) -> u32 {
    let name = b.intern(p.name);
    let exepath = b.intern(&format!("/usr/bin/{}", p.name));
    let args = b.intern(&p.args.join("\0"));
    let cwd = b.intern("/root");
    let container_id = b.intern("host");
    b.add_process(Process {
        pid: p.pid,
        ppid,
        parent,
        uid: p.uid,
        gid: 0,
        name,
        exe: name,
        exepath,
        args,
        cwd,
        start_ns: 0,
        container_id,
        tty: 0,
        loginuid: u32::MAX,
        container_name: NONE,
        container_image: NONE,
        k8s_pod: NONE,
        k8s_ns: NONE,
        task: lanner_formats::event::TaskFacts::UNKNOWN,
        container: lanner_formats::event::ContainerFacts::UNKNOWN,
    })
}

/// An event of type `t` on `path` by process index `proc_idx`.
/// `who` is (process index, thread id).
pub fn ev(b: &mut ChunkBuilder, ts: u64, who: (u32, u32), t: EventType, path: &str, flags: u32, ret: i64) {
    let (proc_idx, pid) = who;
    let path = b.intern_path(path);
    b.push(Event {
        ts_ns: ts,
        tid: pid,
        process: proc_idx,
        etype: t as u16,
        ret,
        flags,
        mode: 0,
        dirfd: -100,
        path,
        path2: NONE,
    });
}

/// The reference threats as three chunks: `cat /etc/shadow`, `touch /etc/x`, `mkdir /bin/x`.
pub fn threat_chunks() -> Vec<Chunk> {
    let sh = P { pid: 100, name: "sh", args: &["-c", "..."], uid: 0 };
    let mut out = Vec::new();
    let mut b = ChunkBuilder::new();
    let cat = lineage(&mut b, &sh, &P { pid: 101, name: "cat", args: &["/etc/shadow"], uid: 0 });
    ev(&mut b, 1_700_000_000_000_000_001, (cat, 101), EventType::Openat, "/etc/hostname", oflags::O_RDONLY, 3);
    ev(
        &mut b,
        1_700_000_000_000_000_002,
        (cat, 101),
        EventType::Openat,
        "/etc/shadow",
        oflags::O_RDONLY | oflags::O_CLOEXEC,
        3,
    );
    out.push(b.take());
    let touch = lineage(&mut b, &sh, &P { pid: 102, name: "touch", args: &["/etc/badconfigfile"], uid: 1000 });
    ev(
        &mut b,
        1_700_000_000_000_000_003,
        (touch, 102),
        EventType::Openat,
        "/etc/badconfigfile",
        oflags::O_WRONLY | oflags::O_CREAT,
        3,
    );
    out.push(b.take());
    let mkdir = lineage(&mut b, &sh, &P { pid: 103, name: "mkdir", args: &["/bin/dangerousfolder"], uid: 0 });
    ev(&mut b, 1_700_000_000_000_000_004, (mkdir, 103), EventType::Mkdir, "/bin/dangerousfolder", 0, 0);
    ev(&mut b, 1_700_000_000_000_000_005, (mkdir, 103), EventType::Mkdir, "/bin/exists", 0, -17);
    out.push(b.take());
    out
}

/// Writes `chunks` as one segment; `seal` writes the footer.
pub fn write_segment(dir: &Path, name: &str, chunks: &[Chunk], seal: bool) -> PathBuf {
    let path = dir.join(name);
    let meta = SegmentMeta { hostname: "testhost".into(), ..Default::default() };
    let mut w = SegmentWriter::create(&path, &meta, 3).unwrap();
    for c in chunks {
        w.append(c).unwrap();
    }
    if seal {
        w.finish().unwrap();
    }
    path
}

/// Writes a capture of `segments` linked segments (`seg-000.lnr`…), each holding the three
/// reference-threat chunks; returns their paths.
pub fn write_capture(dir: &Path, segments: usize) -> Vec<PathBuf> {
    let mut prev_chain = String::new();
    let mut out = Vec::new();
    let per_segment: u64 = threat_chunks().iter().map(|c| c.events.len() as u64).sum();
    for seq in 0..segments {
        let path = dir.join(format!("seg-{seq:03}.lnr"));
        let meta = SegmentMeta {
            hostname: "testhost".into(),
            capture_id: "cafe0001".into(),
            sequence: seq as u64,
            prev_chain: prev_chain.clone(),
            first_event: seq as u64 * per_segment,
            ..Default::default()
        };
        let mut w = SegmentWriter::create(&path, &meta, 3).unwrap();
        for c in threat_chunks() {
            w.append(&c).unwrap();
        }
        prev_chain = w.chain_hex();
        w.finish().unwrap();
        out.push(path);
    }
    out
}

/// `chunks` chunks of `per_chunk` reads of /etc/shadow by `cat` (one "Sensitive file read"
/// alert each), at distinct, increasing times.
pub fn shadow_reads(chunks: usize, per_chunk: usize) -> Vec<Chunk> {
    let sh = P { pid: 100, name: "sh", args: &["-c", "..."], uid: 0 };
    let mut b = ChunkBuilder::new();
    let mut out = Vec::new();
    let mut ts = 1_700_000_000_000_000_000u64;
    for _ in 0..chunks {
        let cat = lineage(&mut b, &sh, &P { pid: 101, name: "cat", args: &["/etc/shadow"], uid: 0 });
        for _ in 0..per_chunk {
            ts += 1_000;
            ev(&mut b, ts, (cat, 101), EventType::Openat, "/etc/shadow", oflags::O_RDONLY, 3);
        }
        out.push(b.take());
    }
    out
}
