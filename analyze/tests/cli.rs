//! `lanner-analyze` as a user runs it: exit codes, messages, outputs.

mod common;

use std::fs;
use std::process::{Command, Output};

fn analyze(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lanner-analyze")).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn rules_of(stdout: &[u8]) -> Vec<String> {
    text(stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["rule"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn replays_a_directory_to_stdout_and_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let chunks = common::threat_chunks();
    common::write_segment(dir.path(), "b.lnr", &chunks[2..], true);
    common::write_segment(dir.path(), "a.lnr", &chunks[..2], true);
    let out = analyze(&["replay", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        rules_of(&out.stdout),
        vec!["Sensitive file read", "Write below etc", "Directory created below binary directory"],
        "segments are read in name order"
    );
    let err = text(&out.stderr);
    assert!(err.contains("5 events in 3 chunk(s) of 2 segment(s)"), "{err}");
    assert!(err.contains("3 alert(s)"), "{err}");

    let file = dir.path().join("alerts.json");
    let spec = format!("file:{}", file.display());
    let out = analyze(&["replay", "--output", &spec, "--threads", "2", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    assert_eq!(rules_of(&fs::read(&file).unwrap()).len(), 3);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn evt_num_numbers_a_capture_run_the_same_whatever_the_threads_and_always_true_holds() {
    let dir = tempfile::tempdir().unwrap();
    let segs = common::write_capture(dir.path(), 3);
    // Upstream's macros, as falco_rules.yaml defines them.
    let rules = dir.path().join("num.yaml");
    fs::write(
        &rules,
        "- macro: always_true\n  condition: (evt.num>=0)\n- macro: never_true\n  condition: (evt.num=0)\n\
         - rule: numbered\n  desc: d\n  condition: always_true and not never_true and evt.type != procexit\n\
         \x20 output: n=%evt.num\n  priority: info\n",
    )
    .unwrap();
    let nums = |threads: &str| -> Vec<u64> {
        let out = analyze(&[
            "replay",
            "--rules",
            rules.to_str().unwrap(),
            "--threads",
            threads,
            dir.path().to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["output_fields"]["evt.num"].as_u64().unwrap()
            })
            .collect()
    };
    let one = nums("1");
    let per_segment = one.len() / segs.len();
    assert!(per_segment > 0 && one.len() == per_segment * segs.len(), "{one:?}");
    // Numbered from 1 across the run's segments, in archive order.
    assert_eq!(one, (1..=one.len() as u64).collect::<Vec<_>>());
    assert_eq!(nums("2"), one, "the numbers do not depend on the thread count");
    // A query over the last segment alone gives its events the same numbers.
    let out = analyze(&["query", "-p", "%evt.num", segs[2].to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let last: Vec<u64> = text(&out.stdout).lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(last, one[2 * per_segment..].to_vec());
}

#[test]
fn malformed_rules_fail_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let seg = common::write_segment(dir.path(), "a.lnr", &common::threat_chunks(), true);
    let rules = dir.path().join("bad.yaml");
    fs::write(&rules, "- rule: r\n  desc: d\n  condition: (evt.type = open\n  output: o\n  priority: info\n").unwrap();
    let out = analyze(&["replay", "--rules", rules.to_str().unwrap(), seg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{}:3:14: LOAD_ERR_COMPILE_CONDITION (rule 'r'): missing ')'", rules.display())),
        "{err}"
    );
    assert!(err.contains("missing ')'"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn corrupted_chunk_is_an_error_but_good_chunks_are_analyzed() {
    let dir = tempfile::tempdir().unwrap();
    let seg = common::write_segment(dir.path(), "a.lnr", &common::threat_chunks(), true);
    let r = lanner_formats::archive::SegmentReader::open(&seg).unwrap();
    let victim = r.chunks()[1].offset;
    drop(r);
    let mut bytes = fs::read(&seg).unwrap();
    bytes[victim as usize + 100] ^= 0xff;
    fs::write(&seg, bytes).unwrap();
    let out = analyze(&["replay", seg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains(&format!("{}: chunk 1 at byte offset {victim}: checksum mismatch", seg.display())), "{err}");
    assert_eq!(rules_of(&out.stdout), vec!["Sensitive file read", "Directory created below binary directory"]);
}

#[test]
fn truncated_sealed_segment_is_an_error_naming_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let seg = common::write_segment(dir.path(), "a.lnr", &common::threat_chunks(), true);
    let len = fs::metadata(&seg).unwrap().len();
    fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(len / 2).unwrap();
    let out = analyze(&["replay", seg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "truncated: the segment was sealed at {len} bytes but the file ends at byte offset {}",
            len / 2
        )),
        "{err}"
    );
}

#[test]
fn torn_tail_of_an_unclosed_segment_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let seg = common::write_segment(dir.path(), "a.lnr", &common::threat_chunks(), false);
    let good = fs::metadata(&seg).unwrap().len();
    let mut f = fs::OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut f, &[b'L', b'N', b'R', b'C', 1, 0, 0, 0, 0xff, 0xff]).unwrap();
    drop(f);
    let out = analyze(&["replay", seg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains(&format!("warning: {}: torn tail at byte offset {good} (10 bytes", seg.display())), "{err}");
    assert_eq!(rules_of(&out.stdout).len(), 3);
}

#[test]
fn non_archives_and_missing_paths_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.lnr");
    fs::write(&junk, "this is a text file, not an archive segment at all; long enough for a header").unwrap();
    let out = analyze(&["replay", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr)
        .contains(&format!("{}: not a Lanner archive segment (bad magic at byte offset 0)", junk.display())));

    let out = analyze(&["replay", "/nonexistent/x.lnr"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent/x.lnr: No such file or directory"), "{}", text(&out.stderr));

    let out = analyze(&["replay", "--output", "carrier-pigeon", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown output 'carrier-pigeon'"));
}

#[test]
fn output_is_identical_for_every_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    common::write_capture(dir.path(), 12);
    let run = |threads: &str| {
        let out = analyze(&["replay", "--threads", threads, "--rule-matching", "all", dir.path().to_str().unwrap()]);
        assert!(out.status.success());
        (out.stdout, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (one, summary) = run("1");
    assert_eq!(one.iter().filter(|&&b| b == b'\n').count(), 36);
    assert!(summary.contains("(top processes: cat 12; containers: host 12)"), "{summary}");
    for t in ["2", "8"] {
        let (other, _) = run(t);
        assert!(other == one, "output with {t} threads differs from 1 thread");
    }
    let text = analyze(&["replay", "--format", "text", dir.path().to_str().unwrap()]);
    let first = String::from_utf8_lossy(&text.stdout).lines().next().unwrap().to_owned();
    assert!(first.starts_with("22:13:20.000000002: Warning Sensitive file opened"), "{first}");
}

#[test]
fn completions_and_man_pages() {
    let out = analyze(&["completions", "bash"]);
    assert!(out.status.success());
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(script.contains("lanner-analyze") && script.contains("proctree") && script.contains("--rule-matching"));
    let dir = tempfile::tempdir().unwrap();
    let out = analyze(&["man", dir.path().to_str().unwrap()]);
    assert!(out.status.success());
    let page = fs::read_to_string(dir.path().join("lanner-analyze-replay.1")).unwrap();
    assert!(page.contains("Example:") && page.contains("\\-\\-since"), "{page}");
}
