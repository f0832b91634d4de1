//! Alert outputs without a network: Falco's JSON shape on stdout, the `--config` file and its
//! errors, per-output minimum priority, file rotation and reopening on SIGHUP.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use lanner_analyze::sinks::{AlertFormat, FileConfig, FileSink, Sink};

fn analyze(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lanner-analyze")).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn archive(dir: &Path) -> String {
    common::write_segment(dir, "a.lnr", &common::threat_chunks(), true);
    dir.to_str().unwrap().to_owned()
}

const FALCO_PRIORITIES: &[&str] =
    &["Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug"];

#[test]
fn stdout_json_has_falcos_field_names_and_types() {
    let dir = tempfile::tempdir().unwrap();
    let out = analyze(&["replay", &archive(dir.path())]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3);
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let o = v.as_object().unwrap();
        let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["hostname", "output", "output_fields", "priority", "rule", "source", "tags", "time"]);
        let time = o["time"].as_str().unwrap();
        let t = chrono::DateTime::parse_from_rfc3339(time).unwrap_or_else(|e| panic!("{time}: {e}"));
        assert_eq!(t.offset().local_minus_utc(), 0, "UTC");
        assert!(time.ends_with('Z') && time.len() == "2023-11-14T22:13:20.000000002Z".len(), "{time}");
        assert!(!o["rule"].as_str().unwrap().is_empty());
        let priority = o["priority"].as_str().unwrap();
        assert!(FALCO_PRIORITIES.contains(&priority), "{priority}");
        // Falco: "<HH:MM:SS.nnnnnnnnn>: <Priority> <rule output>", the time being the event's.
        let output = o["output"].as_str().unwrap();
        assert_eq!(&output[..18], &time[11..29], "{output}");
        assert!(output[18..].starts_with(&format!(": {priority} ")), "{output}");
        assert!(o["output_fields"].is_object());
        assert!(o["output_fields"].as_object().unwrap().contains_key("proc.name"), "{line}");
        assert_eq!(o["source"], "syscall");
        let tags = o["tags"].as_array().unwrap();
        assert!(!tags.is_empty() && tags.iter().all(|t| t.is_string()), "{line}");
        assert_eq!(o["hostname"], "testhost");
    }
}

fn write_config(dir: &Path, yaml: &str) -> String {
    let p = dir.join("outputs.yaml");
    fs::write(&p, yaml).unwrap();
    p.to_str().unwrap().to_owned()
}

#[test]
fn config_outputs_with_formats_and_minimum_priorities() {
    let dir = tempfile::tempdir().unwrap();
    let arch = archive(dir.path());
    let all = dir.path().join("all.json");
    let severe = dir.path().join("severe.txt");
    let cfg = write_config(
        dir.path(),
        &format!(
            "outputs:\n  - type: file\n    path: {}\n  - type: file\n    path: {}\n    format: text\n    min_priority: ERROR\n",
            all.display(),
            severe.display()
        ),
    );
    let out = analyze(&["replay", "--config", &cfg, &arch]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "--config without stdout in it: nothing on stdout");
    let all: Vec<serde_json::Value> =
        fs::read_to_string(&all).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(all.len(), 3);
    let want: Vec<String> = all
        .iter()
        .filter(|a| ["Emergency", "Alert", "Critical", "Error"].contains(&a["priority"].as_str().unwrap()))
        .map(|a| a["output"].as_str().unwrap().to_owned())
        .collect();
    assert!(!want.is_empty() && want.len() < 3, "the archive has alerts on both sides of Error: {all:?}");
    let got: Vec<String> = fs::read_to_string(&severe).unwrap().lines().map(str::to_owned).collect();
    assert_eq!(got, want, "text lines, Error and above only");
}

#[test]
fn bad_configs_and_flags_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let arch = archive(dir.path());
    let cases: &[(&str, &str)] = &[
        ("outputs:\n  - type: file\n    path: /tmp/x\n    min_priority: loud\n", ":4:19: unknown priority 'loud'"),
        ("outputs:\n  - type: smoke\n", ":2:11: unknown output type 'smoke'"),
        ("outputs:\n  - path: /tmp/x\n", ":2:5: output has no `type`"),
        (
            "outputs:\n  - type: file\n    pathh: /tmp/x\n",
            ":3:5: file output: pathh: Unknown field `pathh`, expected one of `path`",
        ),
        ("outputs:\n  - type: cloudwatch\n    group: /g\n    retention_days: 8\n", "retention_days 8"),
        (
            "outputs:\n  - type: cloudwatch\n    group: /g/${LANNER_TEST_UNSET_VAR}\n",
            "LANNER_TEST_UNSET_VAR is not set",
        ),
        (
            "outputs:\n  - type: cloudwatch\n    group: /g\n    spool_max_bytes: lots\n",
            ":4:22: cloudwatch output: spool_max_bytes: invalid digit",
        ),
        ("output:\n  - type: stdout\n", ":1:1: unknown key `output`"),
        ("outputs: [\n", "outputs.yaml:"),
    ];
    for (yaml, want) in cases {
        let cfg = write_config(dir.path(), yaml);
        let out = analyze(&["replay", "--config", &cfg, &arch]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{yaml}: {err}");
        assert!(err.contains(&cfg), "names the file: {err}");
        assert!(err.contains(want), "{yaml}: want {want:?} in {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(out.stdout.is_empty());
    }
    let out = analyze(&["replay", "--config", "/nonexistent/lanner.yaml", &arch]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("reading config file /nonexistent/lanner.yaml"), "{}", text(&out.stderr));
    for (flag, want) in [("cloudwatch:", "needs a log group"), ("kafka:x", "unknown output 'kafka:x'")] {
        let out = analyze(&["replay", "-o", flag, &arch]);
        assert_eq!(out.status.code(), Some(2));
        assert!(text(&out.stderr).contains(want), "{}", text(&out.stderr));
    }
}

fn alert(i: usize) -> lanner_formats::alert::Alert {
    lanner_formats::alert::Alert {
        time: "2026-11-27T00:00:00.000000000Z".into(),
        rule: "r".into(),
        priority: "Warning".into(),
        output: format!("00:00:00.000000000: Warning alert {i:04}"),
        output_fields: serde_json::Map::new(),
        source: "syscall".into(),
        tags: vec![],
        hostname: "h".into(),
        cluster: None,
    }
}

#[test]
fn files_rotate_by_size_keeping_n_and_checkpoint_lengths_refer_to_the_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.log");
    let cfg = FileConfig { rotate_bytes: Some(1000), keep: 2, ..FileConfig::new(&path) };
    let mut sink = FileSink::open_with(&cfg, AlertFormat::Text).unwrap();
    let line_len = alert(0).output.len() as u64 + 1;
    let mut n = 0;
    for _round in 0..4 {
        // 25 lines of 38 bytes = 950: under the limit, no rotation at this flush.
        for _ in 0..25 {
            sink.send(&alert(n)).unwrap();
            n += 1;
        }
        sink.flush().unwrap();
        assert_eq!(sink.durable_position().unwrap(), (path.clone(), 25 * line_len));
        // 2 more cross it: the flush rotates, the new file is empty.
        for _ in 0..2 {
            sink.send(&alert(n)).unwrap();
            n += 1;
        }
        sink.flush().unwrap();
        assert_eq!(sink.durable_position().unwrap(), (path.clone(), 0));
    }
    let read = |p: &Path| fs::read_to_string(p).unwrap_or_default();
    let rotated = |i: usize| dir.path().join(format!("alerts.log.{i}"));
    assert!(!rotated(3).exists(), "keep 2");
    assert_eq!(read(&path), "");
    // alerts.log.1 is the newest rotated file: the 4th round.
    assert!(read(&rotated(1)).starts_with("00:00:00.000000000: Warning alert 0081\n"));
    assert!(read(&rotated(2)).starts_with("00:00:00.000000000: Warning alert 0054\n"));
    assert_eq!(read(&rotated(1)).lines().count(), 27);
}

#[test]
fn files_reopen_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.log");
    let mut sink = FileSink::open(&path, AlertFormat::Text).unwrap();
    sink.send(&alert(1)).unwrap();
    sink.flush().unwrap();
    // logrotate: move the file away, then HUP.
    fs::rename(&path, dir.path().join("alerts.log.old")).unwrap();
    sink.send(&alert(2)).unwrap();
    // SAFETY: raising a signal whose handler the sink installed.
    assert_eq!(unsafe { libc::raise(libc::SIGHUP) }, 0);
    sink.flush().unwrap();
    sink.send(&alert(3)).unwrap();
    sink.flush().unwrap();
    let old = fs::read_to_string(dir.path().join("alerts.log.old")).unwrap();
    assert_eq!(old.lines().count(), 2, "{old}");
    assert_eq!(fs::read_to_string(&path).unwrap(), "00:00:00.000000000: Warning alert 0003\n");
}

#[test]
fn files_rotate_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.log");
    let cfg = FileConfig { rotate_interval: Some(std::time::Duration::from_millis(300)), ..FileConfig::new(&path) };
    let mut sink = FileSink::open_with(&cfg, AlertFormat::Text).unwrap();
    sink.send(&alert(1)).unwrap();
    sink.flush().unwrap();
    assert!(!dir.path().join("alerts.log.1").exists(), "younger than the interval");
    std::thread::sleep(std::time::Duration::from_millis(350));
    sink.send(&alert(2)).unwrap();
    sink.flush().unwrap();
    assert_eq!(fs::read_to_string(dir.path().join("alerts.log.1")).unwrap().lines().count(), 2);
    assert_eq!(fs::read_to_string(&path).unwrap(), "");
    // An empty file is not rotated, however old.
    std::thread::sleep(std::time::Duration::from_millis(350));
    sink.flush().unwrap();
    assert!(!dir.path().join("alerts.log.2").exists());
}
