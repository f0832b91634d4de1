//! Archive benchmark over a real captured spool (`LANNER_BENCH_SPOOL`): bytes per event against
//! the same events as JSON lines + zstd -3, single-core decode throughput with every event
//! materialised, and a zstd level table. Run through `cargo xtask bench archive`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use lanner_formats::archive::{decode_payload, SegmentMeta, SegmentReader, SegmentWriter};
use lanner_formats::event::{ArchivedChunk, Chunk, Event, PathIndex, Process, StoredEvents, NONE};
use lanner_formats::syscall::EventType;

fn segments() -> Vec<PathBuf> {
    let dir = std::env::var("LANNER_BENCH_SPOOL").expect("set LANNER_BENCH_SPOOL to a spool directory");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("spool directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "lnr"))
        .collect();
    v.sort();
    v
}

/// One event as a self-describing JSON line, with its process context (what a recorder without
/// string and process tables would write).
fn json_line(c: &ArchivedChunk, paths: &PathIndex, e: &Event, out: &mut Vec<u8>) {
    let s = |id: u32| if id == NONE { "" } else { c.string(id).unwrap_or("") };
    let p = c.process(e.process).expect("validated");
    let pname = c.process(p.parent.to_native()).map_or("", |pp| s(pp.name.to_native()));
    let args = s(p.args.to_native()).replace('\0', " ");
    let v = serde_json::json!({
        "ts": e.ts_ns,
        "type": EventType::from_u16(e.etype).map_or("?", |t| t.name()),
        "tid": e.tid,
        "pid": p.pid.to_native(),
        "ppid": p.ppid.to_native(),
        "uid": p.uid.to_native(),
        "gid": p.gid.to_native(),
        "ret": e.ret,
        "path": paths.get(e.path).unwrap_or(""),
        "path2": paths.get(e.path2).unwrap_or(""),
        "flags": e.flags,
        "mode": e.mode,
        "dirfd": e.dirfd,
        "proc_name": s(p.name.to_native()),
        "exepath": s(p.exepath.to_native()),
        "cmdline": format!("{} {args}", s(p.name.to_native())),
        "pname": pname,
        "cwd": s(p.cwd.to_native()),
    });
    serde_json::to_writer(&mut *out, &v).expect("json");
    out.push(b'\n');
}

fn main() {
    let segs = segments();
    let disk: u64 = segs.iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
    let readers: Vec<SegmentReader> = segs.iter().map(|p| SegmentReader::open(p).unwrap()).collect();

    // Same events as JSON lines, compressed with zstd -3.
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    let mut line = Vec::new();
    let mut events = 0u64;
    let mut owned: Vec<Chunk> = Vec::new();
    let mut json_raw = 0u64;
    for r in &readers {
        for c in r.chunks() {
            let d = r.decode(c).unwrap();
            let ch = d.chunk();
            for e in ch.events.iter() {
                line.clear();
                json_line(ch, d.paths(), &e, &mut line);
                json_raw += line.len() as u64;
                enc.write_all(&line).unwrap();
                events += 1;
            }
            owned.push(rkyv::deserialize::<Chunk, rkyv::rancor::Error>(ch).unwrap());
        }
    }
    let json_zstd = enc.finish().unwrap().len() as u64;
    // Workload composition: events by type and by process name.
    let mut by_type = std::collections::BTreeMap::<&str, u64>::new();
    let mut by_proc = std::collections::BTreeMap::<String, u64>::new();
    for c in &owned {
        for e in c.events.iter() {
            *by_type.entry(EventType::from_u16(e.etype).map_or("?", |t| t.name())).or_default() += 1;
            let name = c.strings[c.processes[e.process as usize].name as usize].clone();
            *by_proc.entry(name).or_default() += 1;
        }
    }
    let mut procs: Vec<_> = by_proc.into_iter().collect();
    procs.sort_by_key(|p| std::cmp::Reverse(p.1));
    println!("Workload: events by type {by_type:?}; top processes {:?}\n", &procs[..procs.len().min(8)]);
    println!("## Archive size ({events} events, {} segments, {} chunks)\n", segs.len(), owned.len());
    println!("| encoding | bytes | bytes/event | vs Lanner |");
    println!("|---|---|---|---|");
    println!("| Lanner segments on disk (zstd -3) | {disk} | {:.2} | 1.00 |", disk as f64 / events as f64);
    println!(
        "| JSON lines, zstd -3 | {json_zstd} | {:.2} | {:.2} |",
        json_zstd as f64 / events as f64,
        json_zstd as f64 / disk as f64
    );
    println!(
        "| JSON lines, uncompressed | {json_raw} | {:.2} | {:.2} |\n",
        json_raw as f64 / events as f64,
        json_raw as f64 / disk as f64
    );

    // Where the bytes go: each column of every chunk compressed alone with zstd -3.
    println!("## Compressed bytes per event, by column (each column of each chunk compressed alone, zstd -3)\n");
    println!("| column | bytes/event |");
    println!("|---|---|");
    let z = |b: &[u8]| zstd::bulk::compress(b, 3).unwrap().len() as u64;
    let bytes_of = |f: &dyn Fn(&Chunk) -> Vec<u8>| owned.iter().map(|c| z(&f(c))).sum::<u64>();
    let stored: Vec<StoredEvents> = owned.iter().map(|c| StoredEvents::encode(&c.events).unwrap()).collect();
    let col = |f: &dyn Fn(&StoredEvents) -> &[u8]| stored.iter().map(|s| z(f(s))).sum::<u64>();
    let cols: Vec<(&str, u64)> = vec![
        ("ts (byte planes)", col(&|s| &s.ts)),
        ("tid", col(&|s| &s.tid)),
        ("process", col(&|s| &s.process)),
        ("etype", col(&|s| &s.etype)),
        ("ret", col(&|s| &s.ret)),
        ("flags", col(&|s| &s.flags)),
        ("mode", col(&|s| &s.mode)),
        ("dirfd", col(&|s| &s.dirfd)),
        ("path (references)", col(&|s| &s.path)),
        ("path2 (references)", col(&|s| &s.path2)),
        ("strings", bytes_of(&|c| c.strings.join("\n").into_bytes())),
        ("paths", bytes_of(&|c| rkyv::to_bytes::<rkyv::rancor::Error>(&c.paths).unwrap().to_vec())),
        ("processes", bytes_of(&|c| rkyv::to_bytes::<rkyv::rancor::Error>(&c.processes).unwrap().to_vec())),
    ];
    for (name, b) in cols {
        println!("| {name} | {:.3} |", b as f64 / events as f64);
    }
    println!();

    // Decode throughput, one core: verify, decompress, validate, materialise every event.
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let mut n = 0u64;
        let mut sink = 0u64;
        for r in &readers {
            for c in r.chunks() {
                let d = r.decode(c).unwrap();
                for e in d.chunk().events.iter() {
                    sink = sink.wrapping_add(e.ts_ns ^ e.path as u64 ^ e.process as u64);
                    n += 1;
                }
            }
        }
        std::hint::black_box(sink);
        assert_eq!(n, events);
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!("## Decode, one core (best of 5)\n");
    println!(
        "{:.1} M events/s ({events} events in {:.1} ms: hash check, zstd, rkyv validation, every event materialised)\n",
        events as f64 / best / 1e6,
        best * 1e3
    );

    format2_comparison(&owned, events);
    what_if(&owned, events);

    // zstd level table: re-encode the same chunks.
    println!("## zstd level table (same chunks re-encoded)\n");
    println!("| level | bytes/event | write M events/s | read M events/s |");
    println!("|---|---|---|---|");
    let dir = std::env::temp_dir().join(format!("lanner-bench-levels-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for level in [1, 3, 6, 9, 12, 19] {
        let path = dir.join(format!("l{level}.lnr"));
        let _ = std::fs::remove_file(&path);
        let t = Instant::now();
        let mut w = SegmentWriter::create(&path, &SegmentMeta::default(), level).unwrap();
        for c in &owned {
            w.append(c).unwrap();
        }
        w.finish().unwrap();
        let write = t.elapsed().as_secs_f64();
        let size = std::fs::metadata(&path).unwrap().len();
        let r = SegmentReader::open(&path).unwrap();
        let t = Instant::now();
        let mut n = 0u64;
        for c in r.chunks() {
            n += r.decode(c).unwrap().chunk().events.iter().count() as u64;
        }
        let read = t.elapsed().as_secs_f64();
        println!(
            "| {level} | {:.2} | {:.2} | {:.1} |",
            size as f64 / events as f64,
            events as f64 / write / 1e6,
            n as f64 / read / 1e6
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Format 2's chunk layout (until 2026-11-27): plain arrays, zigzag time differences, path
/// references 0 = none, 1 = next new path, n ≥ 2 = path n − 2.
#[derive(rkyv::Archive, rkyv::Serialize)]
struct Format2Chunk {
    strings: Vec<String>,
    paths: Format2Paths,
    processes: Vec<Process>,
    ts_base: u64,
    ts_delta: Vec<u64>,
    tid: Vec<u32>,
    process: Vec<u32>,
    etype: Vec<u16>,
    ret: Vec<i64>,
    flags: Vec<u32>,
    mode: Vec<u32>,
    dirfd: Vec<i32>,
    path: Vec<u32>,
    path2: Vec<u32>,
    drops: u64,
}

/// Format 2's path table: shared byte counts, remainder lengths and remainders as three arrays.
#[derive(rkyv::Archive, rkyv::Serialize)]
struct Format2Paths {
    shared: Vec<u16>,
    suffix_len: Vec<u32>,
    suffixes: String,
}

impl Format2Paths {
    fn from_paths(paths: &[String]) -> Self {
        let mut t = Self { shared: Vec::new(), suffix_len: Vec::new(), suffixes: String::new() };
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
}

impl ArchivedFormat2Paths {
    fn len(&self) -> usize {
        self.shared.len()
    }

    /// Format 2's expansion, with its checks.
    fn expand(&self) -> (String, Vec<u32>) {
        let suffixes = self.suffixes.as_str();
        let (mut buf, mut ends) = (String::with_capacity(suffixes.len() * 4), Vec::with_capacity(self.len()));
        let (mut at, mut prev_start) = (0usize, 0usize);
        for (sh, len) in self.shared.iter().zip(self.suffix_len.iter()) {
            let (sh, len) = (sh.to_native() as usize, len.to_native() as usize);
            let start = buf.len();
            assert!(sh <= start - prev_start && buf[prev_start..start].is_char_boundary(sh));
            let suffix = suffixes.get(at..at + len).unwrap();
            buf.extend_from_within(prev_start..prev_start + sh);
            buf.push_str(suffix);
            at += len;
            prev_start = start;
            ends.push(buf.len() as u32);
        }
        (buf, ends)
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

impl Format2Chunk {
    fn from_chunk(c: &Chunk) -> Self {
        let e = &c.events;
        let ts_base = e.ts_ns.first().copied().unwrap_or(0);
        let mut prev = ts_base;
        let mut next_new = 0u32;
        let mut path_ref = |id: u32| {
            if id == NONE {
                0
            } else if id == next_new {
                next_new += 1;
                1
            } else {
                id + 2
            }
        };
        let (mut path, mut path2) = (Vec::new(), Vec::new());
        for (&a, &b) in e.path.iter().zip(&e.path2) {
            path.push(path_ref(a));
            path2.push(path_ref(b));
        }
        Self {
            strings: c.strings.clone(),
            paths: Format2Paths::from_paths(&c.paths.to_vec()),
            processes: c.processes.clone(),
            ts_base,
            ts_delta: e
                .ts_ns
                .iter()
                .map(|&t| {
                    let d = zigzag(t.wrapping_sub(prev) as i64);
                    prev = t;
                    d
                })
                .collect(),
            tid: e.tid.clone(),
            process: e.process.clone(),
            etype: e.etype.clone(),
            ret: e.ret.clone(),
            flags: e.flags.clone(),
            mode: e.mode.clone(),
            dirfd: e.dirfd.clone(),
            path,
            path2,
            drops: c.drops,
        }
    }
}

/// Format 2's decoder, as it was: zstd, bytecheck, reference checks, path expansion, events.
fn decode_format2(payload: &[u8], raw_len: usize, sink: &mut u64) -> u64 {
    let mut bytes = rkyv::util::AlignedVec::<16>::with_capacity(raw_len);
    bytes.resize(raw_len, 0);
    zstd::bulk::Decompressor::new().unwrap().decompress_to_buffer(payload, &mut bytes[..]).unwrap();
    let c = rkyv::access::<ArchivedFormat2Chunk, rkyv::rancor::Error>(&bytes).unwrap();
    let nproc = c.processes.len() as u32;
    assert!(c.process.iter().all(|p| p.to_native() < nproc));
    let (mut next_new, npaths) = (0u32, c.paths.len() as u32);
    for (a, b) in c.path.iter().zip(c.path2.iter()) {
        for r in [a.to_native(), b.to_native()] {
            let id = match r {
                0 => NONE,
                1 => {
                    next_new += 1;
                    next_new - 1
                }
                n => n - 2,
            };
            assert!(id == NONE || id < npaths);
        }
    }
    let _paths = c.paths.expand();
    let (mut ts, mut next_new) = (c.ts_base.to_native(), 0u32);
    let mut path_id = |r: u32| match r {
        0 => NONE,
        1 => {
            next_new += 1;
            next_new - 1
        }
        n => n - 2,
    };
    let n = c.ts_delta.len();
    for i in 0..n {
        let d = c.ts_delta[i].to_native();
        ts = ts.wrapping_add((((d >> 1) as i64) ^ -((d & 1) as i64)) as u64);
        let e = Event {
            ts_ns: ts,
            tid: c.tid[i].to_native(),
            process: c.process[i].to_native(),
            etype: c.etype[i].to_native(),
            ret: c.ret[i].to_native(),
            flags: c.flags[i].to_native(),
            mode: c.mode[i].to_native(),
            dirfd: c.dirfd[i].to_native(),
            path: path_id(c.path[i].to_native()),
            path2: path_id(c.path2[i].to_native()),
        };
        *sink = sink.wrapping_add(e.ts_ns ^ e.path as u64 ^ e.process as u64 ^ e.ret as u64);
    }
    n as u64
}

/// The same chunks in format 2 and in this format: size and single-core decode (zstd, validation,
/// every event materialised; no hash check), interleaved in one run so machine load affects both.
fn format2_comparison(owned: &[Chunk], events: u64) {
    let encode = |raw: &[u8]| (zstd::bulk::compress(raw, 3).unwrap(), raw.len());
    let old: Vec<(Vec<u8>, usize)> = owned
        .iter()
        .map(|c| encode(&rkyv::to_bytes::<rkyv::rancor::Error>(&Format2Chunk::from_chunk(c)).unwrap()))
        .collect();
    let new: Vec<(Vec<u8>, usize)> =
        owned.iter().map(|c| encode(&rkyv::to_bytes::<rkyv::rancor::Error>(c).unwrap())).collect();
    let frame = 88.0 * owned.len() as f64;
    let size = |v: &[(Vec<u8>, usize)]| (v.iter().map(|p| p.0.len()).sum::<usize>() as f64 + frame) / events as f64;
    let raw = |v: &[(Vec<u8>, usize)]| v.iter().map(|p| p.1).sum::<usize>() as f64 / events as f64;
    let (mut best_old, mut best_new, mut sink) = (f64::MAX, f64::MAX, 0u64);
    for _ in 0..7 {
        let t = Instant::now();
        let n: u64 = old.iter().map(|(p, len)| decode_format2(p, *len, &mut sink)).sum();
        best_old = best_old.min(t.elapsed().as_secs_f64());
        assert_eq!(n, events);
        let t = Instant::now();
        let mut n = 0u64;
        for (p, len) in &new {
            let d = decode_payload(p, *len as u32).unwrap();
            for e in d.chunk().events.iter() {
                sink = sink.wrapping_add(e.ts_ns ^ e.path as u64 ^ e.process as u64 ^ e.ret as u64);
                n += 1;
            }
        }
        best_new = best_new.min(t.elapsed().as_secs_f64());
        assert_eq!(n, events);
    }
    std::hint::black_box(sink);
    println!("## This format against format 2 (same chunks, zstd -3; decode best of 7, interleaved)\n");
    println!("| layout | bytes/event (chunk frames) | raw bytes/event | decode M events/s |");
    println!("|---|---|---|---|");
    for (name, v, best) in [("format 2 (plain arrays)", &old, best_old), ("format 3 (this build)", &new, best_new)] {
        println!("| {name} | {:.2} | {:.1} | {:.1} |", size(v), raw(v), events as f64 / best / 1e6);
    }
    println!();
}

/// Bytes per event of `chunks` as chunk frames (rkyv, zstd at `level`, 88-byte frame headers).
fn frames_size(chunks: &[Chunk], level: i32, events: u64) -> f64 {
    let bytes: usize = chunks
        .iter()
        .map(|c| zstd::bulk::compress(&rkyv::to_bytes::<rkyv::rancor::Error>(c).unwrap(), level).unwrap().len() + 88)
        .sum();
    bytes as f64 / events as f64
}

/// `k` consecutive chunks as one (what a longer chunk interval would write).
fn merge(chunks: &[Chunk]) -> Chunk {
    let mut b = lanner_formats::archive::ChunkBuilder::new();
    for c in chunks {
        let paths = c.paths.to_vec();
        let mut map = Vec::new();
        for p in &c.processes {
            let mut q = p.clone();
            let s = |id: u32| c.strings.get(id as usize).map(String::as_str);
            for (dst, src) in [
                (&mut q.name, p.name),
                (&mut q.exe, p.exe),
                (&mut q.exepath, p.exepath),
                (&mut q.args, p.args),
                (&mut q.cwd, p.cwd),
                (&mut q.container_id, p.container_id),
                (&mut q.container_name, p.container_name),
                (&mut q.container_image, p.container_image),
                (&mut q.k8s_pod, p.k8s_pod),
                (&mut q.k8s_ns, p.k8s_ns),
            ] {
                *dst = b.intern_opt(s(src));
            }
            q.parent = map.get(p.parent as usize).copied().unwrap_or(NONE);
            map.push(b.add_process(q));
        }
        for e in c.events.iter() {
            let path = paths.get(e.path as usize).map_or(NONE, |p| b.intern_path(p));
            let path2 = paths.get(e.path2 as usize).map_or(NONE, |p| b.intern_path(p));
            b.push(Event { process: map[e.process as usize], path, path2, ..e });
        }
    }
    b.take()
}

/// Sizes under other choices: lossy time resolutions, longer chunks, zstd levels (for the
/// size target's analysis; none of these is what the capture writes by default).
fn what_if(owned: &[Chunk], events: u64) {
    println!("## What other choices would give (same events; bytes/event as chunk frames)\n");
    println!("| variant | bytes/event |");
    println!("|---|---|");
    println!("| as written (1 s chunks, ns times, zstd -3) | {:.2} |", frames_size(owned, 3, events));
    for (name, q) in [("10 ns", 10u64), ("100 ns", 100), ("1 µs", 1000)] {
        let coarse: Vec<Chunk> = owned
            .iter()
            .map(|c| {
                let mut c = c.clone();
                c.events.ts_ns.iter_mut().for_each(|t| *t -= *t % q);
                c
            })
            .collect();
        println!("| times truncated to {name} (lossy) | {:.2} |", frames_size(&coarse, 3, events));
    }
    for k in [2, 4] {
        let merged: Vec<Chunk> = owned.chunks(k).map(merge).collect();
        println!("| chunks of {k} s (--chunk-interval {k}s) | {:.2} |", frames_size(&merged, 3, events));
    }
    println!();
}
