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

#[test]
fn a_backtest_split_into_shards_reads_every_segment_once_and_merges_back_into_the_whole() {
    let dir = tempfile::tempdir().unwrap();
    common::write_capture(dir.path(), 8);
    let out = tempfile::tempdir().unwrap();
    let o = |n: &str| out.path().join(n).display().to_string();
    let spool = dir.path().to_str().unwrap();
    let json = |p: &str| serde_json::from_str::<serde_json::Value>(&fs::read_to_string(p).unwrap()).unwrap();
    let whole =
        analyze(&["replay", "--summary-out", &o("whole.json"), "-o", &format!("file:{}", o("whole.jsonl")), spool]);
    assert!(whole.status.success(), "{}", text(&whole.stderr));
    for k in 0..3 {
        let r = analyze(&[
            "replay",
            "--shard",
            &format!("{k}/3"),
            "--summary-out",
            &o(&format!("s{k}.json")),
            "-o",
            &format!("file:{}", o(&format!("a{k}.jsonl"))),
            spool,
        ]);
        assert!(r.status.success(), "{}", text(&r.stderr));
        assert_eq!(json(&o(&format!("s{k}.json")))["shard"], serde_json::json!({"index": k, "count": 3}));
    }
    let segments: Vec<u64> = (0..3).map(|k| json(&o(&format!("s{k}.json")))["segments"].as_u64().unwrap()).collect();
    assert_eq!(segments.iter().sum::<u64>(), 8, "each segment in exactly one shard: {segments:?}");

    // The shard index from the orchestrator's variable, as an Indexed Job or Batch array job runs it.
    let env = Command::new(env!("CARGO_BIN_EXE_lanner-analyze"))
        .args([
            "replay",
            "--shard",
            "env/3",
            "--summary-out",
            &o("env1.json"),
            "-o",
            &format!("file:{}", o("env1.jsonl")),
            spool,
        ])
        .env("JOB_COMPLETION_INDEX", "1")
        .output()
        .unwrap();
    assert!(env.status.success(), "{}", text(&env.stderr));
    assert_eq!(json(&o("env1.json")), json(&o("s1.json")));

    let (s0, s1, s2) = (o("s0.json"), o("s1.json"), o("s2.json"));
    let m = analyze(&[
        "merge",
        "--alerts",
        &o("a0.jsonl"),
        "--alerts",
        &o("a1.jsonl"),
        "--alerts",
        &o("a2.jsonl"),
        "--alerts-out",
        &o("all.jsonl"),
        "-o",
        &o("merged.json"),
        &s0,
        &s1,
        &s2,
    ]);
    assert!(m.status.success(), "{}", text(&m.stderr));
    // The merged summary is the whole replay's: counts per rule, node, container and process,
    // time range, events, segments, drops.
    let (merged, whole) = (json(&o("merged.json")), json(&o("whole.json")));
    assert_eq!(merged, whole);
    assert_eq!(whole["hits_by_node"]["Sensitive file read"]["testhost"], 8);
    let mut all: Vec<String> = fs::read_to_string(o("all.jsonl")).unwrap().lines().map(str::to_owned).collect();
    let times: Vec<String> = all
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["time"].as_str().unwrap().to_owned())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "merged alerts are in time order");
    let mut whole_alerts: Vec<String> =
        fs::read_to_string(o("whole.jsonl")).unwrap().lines().map(str::to_owned).collect();
    all.sort();
    whole_alerts.sort();
    assert_eq!(all, whole_alerts);

    // A missing or repeated shard is an error: part of the archive would go unread or count twice.
    let missing = analyze(&["merge", &s0, &s2]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("shard(s) 1 of 3 missing"), "{}", text(&missing.stderr));
    let twice = analyze(&["merge", &s0, &s1, &s2, &o("env1.json")]);
    assert!(text(&twice.stderr).contains("shard 1/3 again"), "{}", text(&twice.stderr));
    let bad = analyze(&["replay", "--shard", "3/3", spool]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("--shard 3/3: the shard index 3 is not below the count 3"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn rules_check_names_the_host_names_and_event_types_capture_needs() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("r.yaml");
    let rule = |name: &str, cond: &str| {
        format!("- rule: {name}\n  desc: d\n  condition: {cond}\n  output: o\n  priority: info\n")
    };
    let text_of = [
        rule("api", "evt.type = connect and fd.sip.name in (api.example, db.example)"),
        rule("recv", "evt.type in (recvfrom, open)"),
        rule("ioctl", "evt.type = ioctl"),
        rule("unknown", "evt.type = no_such_call"),
        rule("recorded", "evt.type in (open, setns) and not evt.type = recvfrom"),
    ]
    .concat();
    fs::write(&rules, text_of).unwrap();
    let out = analyze(&["rules", "check", "--json", rules.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["names_to_resolve"], serde_json::json!(["api.example", "db.example"]));
    let types = |name: &str| {
        v["rules"].as_array().unwrap().iter().find(|r| r["name"] == name).unwrap()["event_types_not_recorded"].clone()
    };
    assert_eq!(types("recv"), serde_json::json!([{"type": "recvfrom", "recorded": "recorded with --syscalls all"}]));
    assert_eq!(types("ioctl"), serde_json::json!([{"type": "ioctl", "recorded": "only in imported .scap captures"}]));
    assert_eq!(
        types("unknown"),
        serde_json::json!([{"type": "no_such_call", "recorded": "an event type Lanner does not know"}])
    );
    assert_eq!(types("recorded"), serde_json::json!([]), "a type asked for with != is not needed");
    assert_eq!(v["counts"]["ok_with_event_types_not_recorded"], 3);
    let out = analyze(&["rules", "check", rules.to_str().unwrap()]);
    let t = text(&out.stdout);
    assert!(t.contains("lanner-capture --resolve api.example --resolve db.example"), "{t}");
}
