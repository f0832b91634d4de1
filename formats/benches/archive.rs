//! Archive benchmark over a real captured spool (`LANNER_BENCH_SPOOL`): bytes per event against
//! the same events as JSON lines + zstd -3, single-core decode throughput with every event
//! materialised, and a zstd level table. Run through `cargo xtask bench archive`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use lanner_formats::archive::{SegmentMeta, SegmentReader, SegmentWriter};
use lanner_formats::event::{ArchivedChunk, Chunk, Event, PathIndex, NONE};
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
    fn le<T: Copy, const N: usize>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
        v.iter().flat_map(|x| f(*x)).collect()
    }
    let cols: Vec<(&str, u64)> = vec![
        ("ts_delta", bytes_of(&|c| le(&c.events.ts_delta, u64::to_le_bytes))),
        ("tid", bytes_of(&|c| le(&c.events.tid, u32::to_le_bytes))),
        ("process", bytes_of(&|c| le(&c.events.process, u32::to_le_bytes))),
        ("etype", bytes_of(&|c| le(&c.events.etype, u16::to_le_bytes))),
        ("ret", bytes_of(&|c| le(&c.events.ret, i64::to_le_bytes))),
        ("flags", bytes_of(&|c| le(&c.events.flags, u32::to_le_bytes))),
        ("mode", bytes_of(&|c| le(&c.events.mode, u32::to_le_bytes))),
        ("dirfd", bytes_of(&|c| le(&c.events.dirfd, i32::to_le_bytes))),
        ("path", bytes_of(&|c| le(&c.events.path, u32::to_le_bytes))),
        ("path2", bytes_of(&|c| le(&c.events.path2, u32::to_le_bytes))),
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
