//! The corruption matrix: each kind of damage is reported by `verify` exactly, and `replay`
//! still analyzes every intact chunk.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use lanner_formats::archive::SegmentReader;

fn analyze(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lanner-analyze")).args(args).output().unwrap()
}

fn verify(dir: &Path) -> (Option<i32>, String) {
    let out = analyze(&["verify", dir.to_str().unwrap()]);
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Number of alerts replay prints, and its exit code.
fn replay_alerts(dir: &Path) -> (usize, Option<i32>, String) {
    let out = analyze(&["replay", dir.to_str().unwrap()]);
    (
        String::from_utf8_lossy(&out.stdout).lines().count(),
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn intact_capture_verifies_ok() {
    let dir = tempfile::tempdir().unwrap();
    common::write_capture(dir.path(), 3);
    let (code, out) = verify(dir.path());
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out.matches("ok    ").count(), 3, "{out}");
    assert!(out.contains("seg-001.lnr: ok (3 chunks, 5 events, sealed)"), "{out}");
    assert!(out.contains("3 segment(s) checked, 0 problem(s)"), "{out}");
    assert_eq!(replay_alerts(dir.path()).0, 9);
}

#[test]
fn flipped_byte_in_a_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let segs = common::write_capture(dir.path(), 2);
    let off = SegmentReader::open(&segs[1]).unwrap().chunks()[2].offset;
    let mut b = fs::read(&segs[1]).unwrap();
    b[off as usize + 95] ^= 0x01;
    fs::write(&segs[1], b).unwrap();
    let (code, out) = verify(dir.path());
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "FAIL  {}: corrupted chunk 2 at byte offset {off}: checksum mismatch",
            segs[1].display()
        )),
        "{out}"
    );
    assert!(!out.contains("chain broken"), "the chain to the next segment still holds: {out}");
    let (alerts, code, _) = replay_alerts(dir.path());
    assert_eq!((alerts, code), (5, Some(1)), "5 of 6 chunks still analyzed");
}

#[test]
fn truncated_mid_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let segs = common::write_capture(dir.path(), 2);
    let len = fs::metadata(&segs[0]).unwrap().len();
    let cut = SegmentReader::open(&segs[0]).unwrap().chunks()[2].offset + 40;
    fs::OpenOptions::new().write(true).open(&segs[0]).unwrap().set_len(cut).unwrap();
    let (code, out) = verify(dir.path());
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "FAIL  {}: truncated: the segment was sealed at {len} bytes but the file ends at byte offset {cut}; the 2 complete chunk(s) before the cut were verified",
            segs[0].display()
        )),
        "{out}"
    );
    // The next segment links to the chain as it was sealed, not as it is now.
    assert!(out.contains("seg-001.lnr does not continue the hash chain of seg-000.lnr"), "{out}");
    let (alerts, code, _) = replay_alerts(dir.path());
    assert_eq!((alerts, code), (5, Some(1)));
}

#[test]
fn deleted_middle_segment() {
    let dir = tempfile::tempdir().unwrap();
    let segs = common::write_capture(dir.path(), 3);
    fs::remove_file(&segs[1]).unwrap();
    let (code, out) = verify(dir.path());
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "FAIL  chain broken between {} and {}: segment 1 is missing from capture cafe0001 (removed)",
            segs[0].display(),
            segs[2].display()
        )),
        "{out}"
    );
    assert_eq!(replay_alerts(dir.path()).0, 6);
}

#[test]
fn swapped_segments() {
    let dir = tempfile::tempdir().unwrap();
    let segs = common::write_capture(dir.path(), 3);
    let tmp = dir.path().join("tmp");
    fs::rename(&segs[1], &tmp).unwrap();
    fs::rename(&segs[2], &segs[1]).unwrap();
    fs::rename(&tmp, &segs[2]).unwrap();
    let (code, out) = verify(dir.path());
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAIL  chain broken between"), "{out}");
    assert!(out.contains("seg-002.lnr (sequence 1) comes after seg-001.lnr (sequence 2): segments reordered"), "{out}");
    assert_eq!(replay_alerts(dir.path()).0, 9, "every chunk is intact");
}

#[test]
fn zeroed_footer() {
    let dir = tempfile::tempdir().unwrap();
    let segs = common::write_capture(dir.path(), 1);
    let r = SegmentReader::open(&segs[0]).unwrap();
    let last = r.chunks()[2];
    let footer = last.offset as usize + 88 + last.header.payload_len as usize;
    drop(r);
    let mut b = fs::read(&segs[0]).unwrap();
    let end = b.len() - 16;
    b[footer..end].fill(0);
    fs::write(&segs[0], b).unwrap();
    let (code, out) = verify(dir.path());
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "FAIL  {}: {}: bad footer index at byte offset {footer}: bad footer magic; chunk index rebuilt by scanning",
            segs[0].display(),
            segs[0].display()
        )),
        "{out}"
    );
    assert!(!out.contains("corrupted chunk"), "{out}");
    let (alerts, code, err) = replay_alerts(dir.path());
    assert_eq!((alerts, code), (3, Some(0)), "{err}");
    assert!(err.contains("chunk index rebuilt by scanning"), "{err}");
}

#[test]
fn torn_tail_alone_is_not_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let seg = common::write_segment(dir.path(), "a.lnr", &common::threat_chunks(), false);
    let good = fs::metadata(&seg).unwrap().len();
    let mut f = fs::OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut f, b"LNRC\x01\x00").unwrap();
    drop(f);
    let (code, out) = verify(dir.path());
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("ok    {}: torn tail at byte offset {good} (6 bytes", seg.display())), "{out}");
}

#[test]
fn time_window_and_event_types_prune_chunks() {
    let dir = tempfile::tempdir().unwrap();
    common::write_capture(dir.path(), 1);
    // Chunk times: 1700000000000000001..=2, ..3, ..4..=5 (see common::threat_chunks).
    let out = analyze(&["replay", "--since", "1700000000000000003", dir.path().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    assert!(err.contains("3 events in 2 chunk(s) (1 chunk(s) skipped by the index)"), "{err}");

    let out = analyze(&["replay", "--until", "2023-11-14T22:13:20.000000001Z", dir.path().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("1 events in 1 chunk(s) (2 chunk(s) skipped by the index)"), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 0, "the shadow read is at ...002");

    let rules = dir.path().join("mkdir-only.yaml");
    fs::write(&rules, "- rule: m\n  desc: d\n  condition: evt.type = mkdir\n  output: o\n  priority: info\n").unwrap();
    let out = analyze(&["replay", "--rules", rules.to_str().unwrap(), dir.path().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 events in 1 chunk(s) (2 chunk(s) skipped by the index)"), "{err}");

    let out = analyze(&["replay", "--since", "yesterday", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'yesterday' is not a time"));
}
