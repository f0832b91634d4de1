//! `cargo xtask fuzz`: seeds the corpora with valid archive data and runs the cargo-fuzz targets.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use lanner_formats::archive::{ChunkBuilder, SegmentMeta, SegmentReader, SegmentWriter};
use lanner_formats::event::{Event, Process, NONE};

const TARGETS: [&str; 2] = ["segment", "chunk_payload"];

/// Installs cargo-fuzz if needed, writes seeds, fuzzes each target for `seconds`.
pub fn run(root: &Path, seconds: u64) -> Result<()> {
    if !Command::new("cargo").args(["fuzz", "--version"]).output().is_ok_and(|o| o.status.success()) {
        super::run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    // cargo-fuzz needs a nightly: the one pinned for the eBPF programs.
    let nightly = format!("+{}", super::BpfToolchain::read(root).map_err(anyhow::Error::msg)?.nightly);
    let fuzz = root.join("fuzz");
    write_seeds(&fuzz.join("corpus"))?;
    for t in TARGETS {
        let corpus = fuzz.join("corpus").join(t);
        super::run(
            Command::new("cargo").current_dir(&fuzz).args([nightly.as_str(), "fuzz", "run", t]).arg(&corpus).args([
                "--",
                &format!("-max_total_time={seconds}"),
                "-max_len=65536",
            ]),
        )?;
    }
    eprintln!("xtask: fuzzing finished without a crash ({seconds} s per target)");
    Ok(())
}

fn sample_chunk(b: &mut ChunkBuilder, n: u32) -> lanner_formats::event::Chunk {
    let name = b.intern("sh");
    let exe = b.intern("/bin/sh");
    let args = b.intern("-c\0cat /etc/shadow");
    let cwd = b.intern("/");
    let parent = b.add_process(Process {
        pid: 1,
        ppid: 0,
        parent: NONE,
        uid: 0,
        gid: 0,
        name,
        exe,
        exepath: exe,
        args,
        cwd,
        start_ns: 1,
        container_id: name,
        tty: 0,
        loginuid: u32::MAX,
        container_name: NONE,
        container_image: NONE,
        k8s_pod: NONE,
        k8s_ns: NONE,
        task: lanner_formats::event::TaskFacts::UNKNOWN,
        container: lanner_formats::event::ContainerFacts::UNKNOWN,
    });
    let child = b.add_process(Process { pid: 2, ppid: 1, parent, ..b_process(name, exe, args, cwd) });
    for i in 0..n {
        // Pairs of events share a path (a thread-cache reference), and paths recur (distances).
        let path = b.intern_path(&format!("/etc/f{}", (i / 2) % 7));
        b.push(Event {
            ts_ns: 1_000 + i as u64,
            tid: 2,
            process: if i % 2 == 0 { parent } else { child },
            etype: 1 + (i % 18) as u16,
            ret: i as i64 - 3,
            flags: 0o101,
            mode: 0o644,
            dirfd: -100,
            path,
            path2: if i % 3 == 0 { path } else { NONE },
        });
    }
    b.take()
}

fn b_process(name: u32, exe: u32, args: u32, cwd: u32) -> Process {
    Process {
        pid: 0,
        ppid: 0,
        parent: NONE,
        uid: 1000,
        gid: 1000,
        name,
        exe,
        exepath: exe,
        args,
        cwd,
        start_ns: 2,
        container_id: name,
        tty: 0,
        loginuid: u32::MAX,
        container_name: NONE,
        container_image: NONE,
        k8s_pod: NONE,
        k8s_ns: NONE,
        task: lanner_formats::event::TaskFacts::UNKNOWN,
        container: lanner_formats::event::ContainerFacts::UNKNOWN,
    }
}

fn write_seeds(corpus: &Path) -> Result<()> {
    let seg_dir = corpus.join("segment");
    let pay_dir = corpus.join("chunk_payload");
    std::fs::create_dir_all(&seg_dir)?;
    std::fs::create_dir_all(&pay_dir)?;
    let tmp = std::env::temp_dir().join(format!("lanner-fuzz-seed-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let meta = SegmentMeta { hostname: "seed".into(), capture_id: "seed".into(), ..Default::default() };
    let mut w = SegmentWriter::create(&tmp, &meta, 3)?;
    let mut b = ChunkBuilder::new();
    w.append(&sample_chunk(&mut b, 5))?;
    w.append(&sample_chunk(&mut b, 40))?;
    let open_len = w.len();
    w.finish()?;
    let sealed = std::fs::read(&tmp).context("reading seed segment")?;
    std::fs::write(seg_dir.join("seed-sealed"), &sealed)?;
    std::fs::write(seg_dir.join("seed-unsealed"), &sealed[..open_len as usize])?;
    std::fs::write(seg_dir.join("seed-torn"), &sealed[..open_len as usize - 7])?;
    let r = SegmentReader::open(&tmp)?;
    for c in r.chunks() {
        let start = c.offset as usize + 88;
        let payload = &sealed[start..start + c.header.payload_len as usize];
        let mut seed = c.header.raw_len.to_le_bytes().to_vec();
        seed.extend_from_slice(payload);
        std::fs::write(pay_dir.join(format!("seed-chunk{}", c.index)), seed)?;
    }
    std::fs::remove_file(&tmp)?;
    Ok(())
}
