use std::fs;
use std::io::Write;

use super::*;
use crate::event::{Chunk, Event, Process, NONE};

fn sample_chunk(builder: &mut ChunkBuilder, n: u64) -> Chunk {
    let name = builder.intern("cat");
    let exepath = builder.intern("/usr/bin/cat");
    let args = builder.intern("/etc/shadow");
    let cwd = builder.intern("/root");
    let (image, pod, ns) = (builder.intern("nginx:1.25"), builder.intern("web-0"), builder.intern("shop"));
    let p = builder.add_process(Process {
        pid: 42,
        ppid: 1,
        parent: NONE,
        uid: 0,
        gid: 0,
        name,
        exe: name,
        exepath,
        args,
        cwd,
        start_ns: 1,
        container_id: name,
        tty: 0,
        loginuid: u32::MAX,
        container_name: NONE,
        container_image: image,
        k8s_pod: pod,
        k8s_ns: ns,
        task: crate::event::TaskFacts::UNKNOWN,
        container: crate::event::ContainerFacts::UNKNOWN,
    });
    for i in 0..n {
        let path = builder.intern_path(&format!("/etc/file{i}"));
        builder.push(Event {
            ts_ns: 1_000 + i,
            tid: 42,
            process: p,
            etype: 2,
            ret: 3,
            flags: 0,
            mode: 0,
            dirfd: -100,
            path,
            path2: NONE,
        });
    }
    builder.take()
}

fn write_segment(dir: &std::path::Path, chunks: usize, seal: bool) -> (std::path::PathBuf, Vec<Chunk>) {
    let path = dir.join("seg.lnr");
    let mut w = SegmentWriter::create(&path, &SegmentMeta { hostname: "h".into(), ..Default::default() }, 3).unwrap();
    let mut b = ChunkBuilder::new();
    let mut written = Vec::new();
    for c in 0..chunks {
        let chunk = sample_chunk(&mut b, 10 + c as u64);
        w.append(&chunk).unwrap();
        written.push(chunk);
    }
    if seal {
        w.finish().unwrap();
    }
    (path, written)
}

fn read_all(r: &SegmentReader) -> Vec<Result<usize, ArchiveError>> {
    r.chunks().iter().map(|c| r.decode(c).map(|d| d.chunk().events.len())).collect()
}

#[test]
fn sealed_segment_round_trips_with_0600_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let (path, written) = write_segment(dir.path(), 3, true);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let r = SegmentReader::open(&path).unwrap();
    assert!(r.is_sealed());
    assert!(r.torn_tail().is_none());
    assert_eq!(r.meta().hostname, "h");
    assert_eq!(r.chunks().len(), 3);
    for (cref, orig) in r.chunks().iter().zip(&written) {
        let d = r.decode(cref).unwrap();
        let back: Chunk = rkyv::deserialize::<Chunk, rkyv::rancor::Error>(d.chunk()).unwrap();
        assert_eq!(&back, orig);
        assert_eq!(cref.header.event_count as usize, orig.events.len());
        assert!(cref.header.has_event_type(2));
        assert!(!cref.header.has_event_type(3));
    }
}

#[test]
fn a_process_naming_a_missing_pod_string_is_a_corrupt_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seg.lnr");
    let mut w = SegmentWriter::create(&path, &SegmentMeta::default(), 3).unwrap();
    let mut chunk = sample_chunk(&mut ChunkBuilder::new(), 1);
    chunk.processes[0].k8s_ns = 999;
    w.append(&chunk).unwrap();
    w.finish().unwrap();
    let r = SegmentReader::open(&path).unwrap();
    let e = r.decode(&r.chunks()[0]).err().expect("dangling string id refused").to_string();
    assert!(e.contains("process 0 references missing string 999"), "{e}");
}

#[test]
fn unsealed_segment_is_indexed_by_scanning() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_segment(dir.path(), 2, false);
    let r = SegmentReader::open(&path).unwrap();
    assert!(!r.is_sealed());
    assert_eq!(r.chunks().len(), 2);
    assert!(r.torn_tail().is_none());
    assert!(read_all(&r).iter().all(|x| x.is_ok()));
}

#[test]
fn torn_tail_is_reported_and_never_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_segment(dir.path(), 2, false);
    let good_len = fs::metadata(&path).unwrap().len();
    // Half a frame, as a writer killed mid-write leaves it.
    let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(b"LNRC\x01\x00\x00\x00\xff\xff\x00\x00").unwrap();
    drop(f);
    let r = SegmentReader::open(&path).unwrap();
    assert_eq!(r.chunks().len(), 2);
    assert_eq!(r.torn_tail(), Some(&TornTail { offset: good_len, bytes: 12 }));
    assert!(read_all(&r).iter().all(|x| x.is_ok()));
}

#[test]
fn truncated_sealed_segment_is_reported_with_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_segment(dir.path(), 2, true);
    let len = fs::metadata(&path).unwrap().len();
    let cut = SegmentReader::open(&path).unwrap().chunks()[1].offset + 50;
    fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(cut).unwrap();
    let r = SegmentReader::open(&path).unwrap();
    let msg = r.truncation().expect("truncation reported").to_string();
    assert_eq!(r.chunks().len(), 1, "the complete chunk before the cut is still usable");
    assert!(r.decode(&r.chunks()[0]).is_ok());
    assert!(r.torn_tail().is_none());
    assert!(msg.contains("seg.lnr"), "{msg}");
    assert!(msg.contains(&format!("sealed at {len} bytes")), "{msg}");
    assert!(msg.contains(&format!("byte offset {cut}")), "{msg}");
}

#[test]
fn flipped_byte_fails_only_its_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_segment(dir.path(), 3, true);
    let r = SegmentReader::open(&path).unwrap();
    let victim = r.chunks()[1];
    drop(r);
    let mut bytes = fs::read(&path).unwrap();
    let at = victim.offset as usize + 88 + 5;
    bytes[at] ^= 0x40;
    fs::write(&path, &bytes).unwrap();
    let r = SegmentReader::open(&path).unwrap();
    let results = read_all(&r);
    assert!(results[0].is_ok() && results[2].is_ok());
    let msg = results[1].as_ref().unwrap_err().to_string();
    assert!(msg.contains(&format!("chunk 1 at byte offset {}", victim.offset)), "{msg}");
    assert!(msg.contains("checksum mismatch"), "{msg}");
}

#[test]
fn short_garbage_and_newer_versions_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.lnr");
    fs::write(&p, b"hello world, not an archive at all, but long enough to hold a header......").unwrap();
    assert!(matches!(SegmentReader::open(&p), Err(ArchiveError::NotASegment { .. })));
    fs::write(&p, b"LANNERSG").unwrap();
    let msg = SegmentReader::open(&p).err().unwrap().to_string();
    assert!(msg.contains("byte offset 8"), "{msg}");

    let (path, _) = write_segment(dir.path(), 1, true);
    let mut bytes = fs::read(&path).unwrap();
    bytes[8] = 9;
    fs::write(&path, &bytes).unwrap();
    let msg = SegmentReader::open(&path).err().unwrap().to_string();
    assert!(msg.contains("version 9.0 is newer"), "{msg}");
    // Version 1 predates the process records' terminal and login uid; version 2 stored plain
    // event columns.
    for old in [1, 2] {
        bytes[8] = old;
        fs::write(&path, &bytes).unwrap();
        let msg = SegmentReader::open(&path).err().unwrap().to_string();
        assert!(msg.contains("byte offset 8") && msg.contains(&format!("version {old}.0 is older")), "{msg}");
    }
}

#[test]
fn hostile_footer_offsets_do_not_overflow() {
    // Found by the `segment` fuzz target: a sealed header whose footer offset is near u64::MAX.
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_segment(dir.path(), 1, true);
    let mut bytes = fs::read(&path).unwrap();
    bytes[24..32].copy_from_slice(&(u64::MAX - 3).to_le_bytes());
    let r = SegmentReader::from_bytes(&path, bytes).unwrap();
    assert!(r.warnings()[0].contains("footer offset out of range"), "{:?}", r.warnings());
    assert_eq!(r.chunks().len(), 1, "chunks are still found by scanning");
}

#[test]
fn damaged_footer_is_rebuilt_by_scanning() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_segment(dir.path(), 2, true);
    let r = SegmentReader::open(&path).unwrap();
    let footer_at = r.chunks()[1].offset as usize + 88 + r.chunks()[1].header.payload_len as usize;
    drop(r);
    let mut bytes = fs::read(&path).unwrap();
    bytes[footer_at + 20] ^= 1;
    fs::write(&path, &bytes).unwrap();
    let r = SegmentReader::open(&path).unwrap();
    assert_eq!(r.chunks().len(), 2);
    assert!(r.warnings()[0].contains("footer checksum mismatch"), "{:?}", r.warnings());
    assert!(read_all(&r).iter().all(|x| x.is_ok()));
}

#[test]
fn a_chunk_holding_only_drops_is_written_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seg.lnr");
    let mut w = SegmentWriter::create(&path, &SegmentMeta::default(), 3).unwrap();
    let mut b = ChunkBuilder::new();
    w.append(&sample_chunk(&mut b, 5)).unwrap();
    // The ring buffer overflowed while no record at all reached the capture.
    assert!(b.is_empty());
    b.add_drops(7);
    assert!(!b.is_empty(), "a builder with drops must be sealed even without events");
    let gap = b.take();
    assert!(gap.events.is_empty());
    w.append(&gap).unwrap();
    let mut after = sample_chunk(&mut b, 3);
    after.drops = (u32::MAX as u64) + 9;
    w.append(&after).unwrap();
    w.finish().unwrap();

    let r = SegmentReader::open(&path).unwrap();
    let headers: Vec<(u32, u32)> = r.chunks().iter().map(|c| (c.header.event_count, c.header.drops)).collect();
    // The header saturates; the chunk itself keeps the exact count.
    assert_eq!(headers, [(5, 0), (0, 7), (3, u32::MAX)]);
    let drops: Vec<u64> = r.chunks().iter().map(|c| r.decode(c).unwrap().chunk().drops.to_native()).collect();
    assert_eq!(drops, [0, 7, (u32::MAX as u64) + 9]);
}

#[test]
fn paths_interned_in_any_order_are_renumbered_by_first_use() {
    let mut b = ChunkBuilder::new();
    let mut p = sample_chunk(&mut ChunkBuilder::new(), 0).processes[0].clone();
    (p.name, p.exe, p.exepath, p.args, p.cwd, p.container_id) = (NONE, NONE, NONE, NONE, NONE, NONE);
    (p.container_image, p.k8s_pod, p.k8s_ns) = (NONE, NONE, NONE);
    let proc_idx = b.add_process(p);
    // Interned out of order, one never used.
    let (c, unused, a) = (b.intern_path("/c"), b.intern_path("/unused"), b.intern_path("/a"));
    assert_eq!((c, unused, a), (0, 1, 2));
    let ev = |path, path2| Event {
        ts_ns: 5,
        tid: 9,
        process: proc_idx,
        etype: 2,
        ret: 0,
        flags: 0,
        mode: 0,
        dirfd: -100,
        path,
        path2,
    };
    b.push(ev(a, c));
    b.push(ev(c, NONE));
    b.push(ev(a, a));
    let chunk = b.take();
    assert_eq!(chunk.paths.to_vec(), ["/a", "/c"]);
    assert_eq!((chunk.events.path.clone(), chunk.events.path2.clone()), (vec![0, 1, 0], vec![1, NONE, 0]));
    let d = crate::archive::DecodedChunk::from_chunk(&chunk).unwrap();
    let names: Vec<_> = d.chunk().events.iter().map(|e| (d.paths().get(e.path), d.paths().get(e.path2))).collect();
    assert_eq!(names, [(Some("/a"), Some("/c")), (Some("/c"), None), (Some("/a"), Some("/a"))]);
}

#[test]
fn a_hand_built_chunk_with_path_ids_out_of_order_is_refused_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seg.lnr");
    let mut w = SegmentWriter::create(&path, &SegmentMeta::default(), 3).unwrap();
    let mut chunk = sample_chunk(&mut ChunkBuilder::new(), 3);
    chunk.events.path[0] = 2;
    let before = w.len();
    let msg = w.append(&chunk).expect_err("refused").to_string();
    assert!(
        msg.contains("seg.lnr: chunk not written") && msg.contains("event 0 uses path id 2 before path id 0"),
        "{msg}"
    );
    assert_eq!(w.len(), before);
    assert_eq!(fs::metadata(&path).unwrap().len(), before, "nothing written");
}

#[test]
fn a_format_3_chunk_reads_with_its_task_and_container_facts_unknown() {
    use crate::archive::legacy::{ChunkV3, ProcessV3};
    let mut b = ChunkBuilder::new();
    let now = sample_chunk(&mut b, 5);
    let old = ChunkV3 {
        strings: now.strings.clone(),
        paths: now.paths.clone(),
        processes: now
            .processes
            .iter()
            .map(|p| ProcessV3 {
                pid: p.pid,
                ppid: p.ppid,
                parent: p.parent,
                uid: p.uid,
                gid: p.gid,
                name: p.name,
                exe: p.exe,
                exepath: p.exepath,
                args: p.args,
                cwd: p.cwd,
                start_ns: p.start_ns,
                container_id: p.container_id,
                tty: p.tty,
                loginuid: p.loginuid,
                container_name: p.container_name,
                container_image: p.container_image,
                k8s_pod: p.k8s_pod,
                k8s_ns: p.k8s_ns,
            })
            .collect(),
        events: now.events.clone(),
        drops: now.drops,
    };
    let (payload, len) = compressed(&old);
    let back = decoded(&payload, len, 3);
    let mut want = now.clone();
    for p in &mut want.processes {
        (p.task, p.container) = (crate::event::TaskFacts::UNKNOWN, crate::event::ContainerFacts::UNKNOWN);
    }
    assert_eq!(back, want);
    // Read as this build's format, the same bytes are refused, not misread.
    assert!(crate::archive::decode_payload(&payload, len).is_err());

    // A segment whose header says 3.0 opens (its chunks are then read as format 3).
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_segment(dir.path(), 1, true);
    let mut bytes = fs::read(&path).unwrap();
    bytes[8] = 3;
    fs::write(&path, &bytes).unwrap();
    let r = SegmentReader::open(&path).unwrap();
    assert_eq!(r.version(), (3, 0));
}

#[test]
fn a_format_4_chunk_reads_with_no_names_resolved() {
    use crate::archive::legacy::ChunkV4;
    let mut b = ChunkBuilder::new();
    let now = sample_chunk(&mut b, 5);
    let old = ChunkV4 {
        strings: now.strings.clone(),
        paths: now.paths.clone(),
        processes: now.processes.clone(),
        events: now.events.clone(),
        drops: now.drops,
    };
    let (payload, len) = compressed(&old);
    assert_eq!(decoded(&payload, len, 4), now);
    assert!(crate::archive::decode_payload(&payload, len).is_err());
}

#[test]
fn resolved_names_and_container_accounts_round_trip() {
    use crate::event::{ContainerAccounts, IdName, ResolvedName};
    let mut b = ChunkBuilder::new();
    let mut chunk = sample_chunk(&mut b, 3);
    chunk.resolved = vec![ResolvedName {
        name: "api.example".into(),
        addrs: vec![std::net::Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped().octets()],
    }];
    chunk.accounts = vec![ContainerAccounts {
        container_id: "cat".into(),
        users: vec![IdName { id: 0, name: "croot".into() }, IdName { id: 1234, name: "app".into() }],
        groups: vec![IdName { id: 0, name: "cwheel".into() }],
    }];
    let (payload, len) = compressed(&chunk);
    assert_eq!(decoded(&payload, len, crate::archive::FORMAT_MAJOR), chunk);
}

/// `value`'s rkyv bytes, zstd-compressed, and their uncompressed length.
fn compressed<T>(value: &T) -> (Vec<u8>, u32)
where
    T: for<'a> rkyv::Serialize<
        rkyv::api::high::HighSerializer<
            rkyv::util::AlignedVec,
            rkyv::ser::allocator::ArenaHandle<'a>,
            rkyv::rancor::BoxedError,
        >,
    >,
{
    let raw = rkyv::to_bytes::<rkyv::rancor::BoxedError>(value).unwrap();
    (zstd::bulk::compress(&raw, 1).unwrap(), raw.len() as u32)
}

/// The chunk a reader gets from a compressed payload of format `major`.
fn decoded(payload: &[u8], len: u32, major: u16) -> Chunk {
    let d = crate::archive::decode_payload_of(payload, len, major).unwrap();
    rkyv::deserialize::<Chunk, rkyv::rancor::Error>(d.chunk()).unwrap()
}
