//! The reader and importer against Falco 0.33.1's trace files (pinned in testdata/MANIFEST) and against
//! damaged input.

use std::path::{Path, PathBuf};

use lanner_formats::syscall::EventType;
use lanner_scap::{import, ScapError, ScapFile};

fn trace_dir() -> Option<PathBuf> {
    lanner_testdata::require("falco-0.33.1/test/trace_files", "scap trace tests")
}

fn gunzip(path: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()).read_to_end(&mut out).unwrap();
    out
}

/// (file, event blocks, threads in the process list) as counted independently of the reader.
const TRACES: &[(&str, u64, usize)] = &[
    ("cat_write.scap", 345, 73),
    ("connect_localhost.scap", 374, 184),
    ("empty.scap", 143, 218),
    ("open-multiple-files.scap", 1272, 128),
    ("ping_sendto.scap", 1526, 136),
    ("syscall.scap", 368, 229),
];

#[test]
fn every_trace_reads_to_the_end_with_its_tables() {
    let Some(dir) = trace_dir() else { return };
    for &(name, events, threads) in TRACES {
        let f = ScapFile::open(&dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(f.version.0, 1, "{name}");
        assert_eq!(f.threads.len(), threads, "{name}");
        assert!(!f.fds.is_empty(), "{name}: fd list");
        assert!(f.machine.is_some(), "{name}: machine info");
        let mut n = 0u64;
        for e in f.events() {
            e.unwrap_or_else(|e| panic!("{name}: {e}"));
            n += 1;
        }
        assert_eq!(n, events, "{name}");
    }
}

#[test]
fn cat_write_imports_the_cat_process_and_its_opens() {
    let Some(dir) = trace_dir() else { return };
    let f = ScapFile::open(&dir.join("cat_write.scap")).unwrap();
    assert_eq!(f.machine.as_ref().unwrap().hostname, "ubuntu");
    assert_eq!(f.user_name(0), Some("root"));
    let mut chunks = Vec::new();
    let stats = import(&f, 1 << 20, |c| {
        chunks.push(c);
        Ok::<_, ()>(())
    })
    .unwrap();
    assert_eq!(stats.events_read, 345);
    // 42 syscalls of modeled types (4 mprotect and an arch_prctl among them), 40 of them with
    // an enter row (procexit and the execve whose enter came before the capture have none).
    assert_eq!(stats.imported, 82, "{stats:?}");
    let enters = c_enter_rows(&chunks);
    assert_eq!(enters, 40);
    // The one syscall libscap could not name is counted, not imported.
    assert_eq!(stats.not_imported.get("<unknown>"), Some(&1), "{stats:?}");
    assert_eq!(chunks.len(), 1);
    let c = &chunks[0];
    let paths = c.paths.to_vec();
    let s = |id: u32| c.strings[id as usize].as_str();
    let rows: Vec<_> = (0..c.events.etype.len()).collect();
    let execve = rows.iter().find(|&&i| c.events.etype[i] == EventType::Execve as u16).copied().unwrap();
    let p = &c.processes[c.events.process[execve] as usize];
    assert_eq!((p.pid, p.ppid, s(p.name), s(p.exe), s(p.args)), (20072, 11310, "cat", "cat", "/dev/null"));
    let parent = &c.processes[p.parent as usize];
    assert_eq!(s(parent.name), "bash");
    let opens: Vec<_> = rows.iter().filter(|&&i| c.events.etype[i] == EventType::Open as u16).collect();
    assert_eq!(opens.len(), 4);
    // The last open is of /dev/null, read-only, fd 3.
    let last = *opens[3];
    assert_eq!(c.events.ret[last], 3);
    assert_eq!(c.events.flags[last] & 3, 0, "O_RDONLY");
    assert!(paths.iter().any(|p| p == "/dev/null"), "{paths:?}");
}

fn c_enter_rows(chunks: &[lanner_formats::event::Chunk]) -> usize {
    chunks.iter().flat_map(|c| &c.events.etype).filter(|&&t| t & lanner_formats::syscall::ENTER != 0).count()
}

fn err_text(r: Result<ScapFile, ScapError>) -> String {
    match r {
        Ok(_) => panic!("damaged input was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn damaged_files_are_refused_with_the_offset_and_the_problem() {
    let Some(dir) = trace_dir() else { return };
    let good = gunzip(&dir.join("cat_write.scap"));

    let mut magic = good.clone();
    magic[8] ^= 0xff;
    assert!(err_text(ScapFile::from_bytes(magic)).contains("offset 8: section header magic"));

    let mut newer = good.clone();
    newer[12] = 2;
    assert!(err_text(ScapFile::from_bytes(newer)).contains("version 2.0 is newer"));

    let not_scap = b"LANNERSG and more bytes".to_vec();
    assert!(err_text(ScapFile::from_bytes(not_scap)).contains("not a scap file"));

    // A block whose trailer disagrees with its header, inside the process list.
    let mut trailer = good.clone();
    let pl = 0x1c + 0xc0 + 0xe4; // section header, machine info, interface list
    let len = u32::from_le_bytes(trailer[pl + 4..pl + 8].try_into().unwrap()) as usize;
    trailer[pl + len - 4] ^= 1;
    let e = err_text(ScapFile::from_bytes(trailer));
    assert!(e.contains(&format!("offset {pl}:")) && e.contains("trailer"), "{e}");

    // A file cut in the middle of an event: every event before the cut is read, then the
    // iterator reports the torn block and stops.
    let f = ScapFile::from_bytes(good.clone()).unwrap();
    let offsets: Vec<usize> = f.events().map(|e| e.unwrap().offset).collect();
    let cut = offsets[100] + 10;
    let f = ScapFile::from_bytes(good[..cut].to_vec()).unwrap();
    let results: Vec<_> = f.events().collect();
    assert_eq!(results.len(), 101);
    assert!(results[..100].iter().all(|r| r.is_ok()));
    let e = results[100].as_ref().unwrap_err().to_string();
    assert!(e.starts_with(&format!("offset {}: torn block", offsets[100])), "{e}");

    // A corrupt gzip stream.
    let mut gz = std::fs::read(dir.join("cat_write.scap")).unwrap();
    let mid = gz.len() / 2;
    gz[mid..].iter_mut().for_each(|b| *b = !*b);
    assert!(err_text(ScapFile::from_bytes(gz)).contains("gzip stream is corrupt"));
}

#[test]
fn arbitrary_bytes_never_panic() {
    let Some(dir) = trace_dir() else { return };
    let good = gunzip(&dir.join("open-multiple-files.scap"));
    // Flip one byte at a time across the headers and the first events; the reader and the
    // importer must return errors or data, never panic.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..400 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut bad = good.clone();
        let at = (state as usize) % 40_000;
        bad[at] = bad[at].wrapping_add((state >> 32) as u8 | 1);
        if let Ok(f) = ScapFile::from_bytes(bad) {
            let _ = import(&f, 4096, |_| Ok::<_, ()>(()));
        }
    }
}
