//! The CloudWatch Logs output against a real CloudWatch Logs API (moto_server on loopback):
//! volume, an endpoint outage, a killed analyzer, and `replay` end to end.

mod common;
mod moto;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lanner_analyze::sinks::cloudwatch::{CloudWatchConfig, CloudWatchSink, TimestampSource};
use lanner_analyze::sinks::{AlertFormat, Sink};
use lanner_formats::alert::Alert;
use moto::Moto;

fn alert(seq: usize) -> Alert {
    let mut fields = serde_json::Map::new();
    fields.insert("seq".into(), seq.into());
    fields.insert("proc.name".into(), "cat".into());
    fields.insert("fd.name".into(), "/etc/shadow".into());
    Alert {
        time: format!("2026-11-27T01:02:03.{seq:09}Z"),
        rule: "Sensitive file read".into(),
        priority: "Warning".into(),
        output: format!(
            "01:02:03.{seq:09}: Warning Sensitive file opened for reading (seq={seq} file=/etc/shadow proc=cat)"
        ),
        output_fields: fields,
        source: "syscall".into(),
        tags: vec!["filesystem".into(), "mitre_credential_access".into()],
        hostname: "testhost".into(),
        cluster: None,
    }
}

fn seq_of(message: &str) -> usize {
    let v: serde_json::Value = serde_json::from_str(message).unwrap_or_else(|e| panic!("{e}: {message}"));
    v["output_fields"]["seq"].as_u64().unwrap() as usize
}

fn config(moto: &Moto, group: &str, stream: &str, spool: &std::path::Path) -> CloudWatchConfig {
    let mut c = CloudWatchConfig::new(group, Some(stream));
    c.endpoint = Some(moto.url());
    c.region = Some("us-east-1".into());
    c.spool_dir = Some(spool.to_owned());
    c.drain_timeout = Duration::from_secs(180);
    c
}

#[test]
#[ignore = "needs moto_server on loopback (cargo xtask setup installs it; cargo xtask test runs it)"]
fn delivers_50000_alerts_none_lost_none_duplicated_in_order() {
    if !moto::available("delivers_50000_alerts") {
        return;
    }
    let _serial = moto::serial();
    let moto = Moto::start();
    let spool = tempfile::tempdir().unwrap();
    let mut sink = CloudWatchSink::open(config(&moto, "/lanner/volume", "node-1", spool.path()), AlertFormat::Json)
        .expect("opening the sink");
    let metrics = sink.metrics();
    const N: usize = 50_000;
    let started = Instant::now();
    for i in 0..N {
        sink.send(&alert(i)).unwrap();
        if i % 1000 == 999 {
            sink.flush().unwrap();
        }
    }
    sink.close().unwrap();
    let took = started.elapsed();
    let m = metrics.snapshot();
    eprintln!(
        "50000 alerts delivered in {:.2} s ({:.0} alerts/s) in {} PutLogEvents call(s): {m:?}",
        took.as_secs_f64(),
        N as f64 / took.as_secs_f64(),
        m.batches
    );
    assert_eq!(m.sent, N as u64, "{m:?}");
    assert_eq!((m.spool_events, m.spool_bytes, m.dropped, m.rejected, m.duplicates_possible), (0, 0, 0, 0, 0));
    assert!(m.batches >= 5, "1 MiB batches: {m:?}");

    let got: Vec<usize> = moto.read_stream("/lanner/volume", "node-1").iter().map(|m| seq_of(m)).collect();
    assert_eq!(got.len(), N, "read back");
    assert!(got.iter().enumerate().all(|(i, s)| *s == i), "in order, none lost or duplicated");
}

#[test]
#[ignore = "needs moto_server on loopback (cargo xtask setup installs it; cargo xtask test runs it)"]
fn an_outage_of_10_seconds_loses_nothing_accepted() {
    if !moto::available("an_outage_of_10_seconds") {
        return;
    }
    let _serial = moto::serial();
    let mut moto = Moto::start();
    let port = moto.port;
    let spool = tempfile::tempdir().unwrap();
    let (group, stream) = ("/lanner/outage", "node-2");
    let mut sink = CloudWatchSink::open(config(&moto, group, stream, spool.path()), AlertFormat::Json).unwrap();
    let metrics = sink.metrics();
    let mut seq = 0;
    let mut send_for = |sink: &mut CloudWatchSink, d: Duration| {
        let until = Instant::now() + d;
        while Instant::now() < until {
            for _ in 0..20 {
                sink.send(&alert(seq)).unwrap();
                seq += 1;
            }
            sink.flush().unwrap(); // accepted from here on
            std::thread::sleep(Duration::from_millis(20));
        }
        seq
    };
    send_for(&mut sink, Duration::from_secs(2));
    moto.stop();
    let accepted_before_outage = send_for(&mut sink, Duration::from_millis(1));
    let sent_before_outage = metrics.snapshot().sent;
    // 10 s without an endpoint, alerts still arriving.
    send_for(&mut sink, Duration::from_secs(10));
    assert!(metrics.snapshot().retried > 0, "delivery was retried: {:?}", metrics.snapshot());
    assert!(metrics.snapshot().spool_events > 0);
    let moto = Moto::start_on(port); // fresh state: group and stream are gone
    let total = send_for(&mut sink, Duration::from_secs(2));
    sink.close().unwrap();
    let m = metrics.snapshot();
    eprintln!("outage: {total} alerts, {accepted_before_outage} accepted before it, {sent_before_outage} delivered before it: {m:?}");
    assert_eq!(m.spool_events, 0, "{m:?}");
    assert_eq!(m.dropped, 0);

    let got: Vec<usize> = moto.read_stream(group, stream).iter().map(|m| seq_of(m)).collect();
    // The new server only has what was delivered after it started: a suffix of the alerts,
    // beginning no later than the first alert accepted during the outage.
    let first = *got.first().expect("delivered after recovery");
    assert!(first <= accepted_before_outage, "first {first}, accepted before the outage {accepted_before_outage}");
    // A resent batch repeats alerts out of place: keep each alert's first delivery.
    let mut seen = std::collections::HashSet::new();
    let dedup: Vec<_> = got.iter().filter(|x| seen.insert(**x)).copied().collect();
    assert_eq!(dedup, (first..total).collect::<Vec<_>>(), "in order, nothing lost");
    assert!((got.len() - dedup.len()) as u64 <= m.duplicates_possible, "duplicates are counted: {m:?}");
}

#[test]
#[ignore = "needs moto_server on loopback (cargo xtask setup installs it; cargo xtask test runs it)"]
fn rejected_events_are_counted() {
    if !moto::available("rejected_events_are_counted") {
        return;
    }
    let _serial = moto::serial();
    let moto = Moto::start();
    let spool = tempfile::tempdir().unwrap();
    let mut c = config(&moto, "/lanner/rejected", "node-3", spool.path());
    c.timestamp = TimestampSource::Alert;
    let mut sink = CloudWatchSink::open(c, AlertFormat::Json).unwrap();
    let metrics = sink.metrics();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    // 3 from 30 days ago (too old), 2 from now, 1 from 3 hours ahead (too new); two batches.
    for ts in [now - 30 * 86_400_000; 3] {
        sink.send_message(ts, "old".into()).unwrap();
    }
    for ts in [now, now, now + 3 * 3_600_000] {
        sink.send_message(ts, "new".into()).unwrap();
    }
    sink.close().unwrap();
    let m = metrics.snapshot();
    assert_eq!((m.rejected, m.sent, m.spool_events), (4, 2, 0), "{m:?}");
    assert_eq!(moto.read_stream("/lanner/rejected", "node-3"), vec!["new", "new"]);
}

fn analyze() -> Command {
    moto::set_env();
    Command::new(env!("CARGO_BIN_EXE_lanner-analyze"))
}

#[test]
#[ignore = "needs moto_server on loopback (cargo xtask setup installs it; cargo xtask test runs it)"]
fn replay_delivers_the_same_alerts_to_cloudwatch_as_to_stdout() {
    if !moto::available("replay_delivers_to_cloudwatch") {
        return;
    }
    let _serial = moto::serial();
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    common::write_segment(dir.path(), "a.lnr", &common::threat_chunks(), true);
    let state = tempfile::tempdir().unwrap();
    let out = analyze()
        .env("LANNER_STATE_DIR", state.path())
        .args(["replay", "-o", "stdout", "-o", "cloudwatch:/lanner/replay:${NODE_NAME}"])
        .args(["--cloudwatch-endpoint", &moto.url()])
        .arg(dir.path())
        .env("NODE_NAME", "node-7")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("cloudwatch /lanner/replay/node-7: sent 3 in 1 call(s)"), "{err}");
    assert!(err.contains("0 alert(s) (0 bytes) still spooled"), "{err}");
    let stdout: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned).collect();
    assert_eq!(stdout.len(), 3);
    assert_eq!(moto.read_stream("/lanner/replay", "node-7"), stdout);
    // The spool went where LANNER_STATE_DIR says.
    assert!(state.path().join("cloudwatch/lanner_replay_node-7").is_dir());
}

#[test]
#[ignore = "needs moto_server on loopback (cargo xtask setup installs it; cargo xtask test runs it)"]
fn an_analyzer_killed_mid_delivery_leaves_a_spool_the_next_run_drains() {
    if !moto::available("killed_mid_delivery") {
        return;
    }
    let _serial = moto::serial();
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let quiet = dir.path().join("quiet");
    std::fs::create_dir_all(&archive).unwrap();
    std::fs::create_dir_all(&quiet).unwrap();
    const N: usize = 20_000;
    common::write_segment(&archive, "a.lnr", &common::shadow_reads(20, N / 20), true);
    // An archive without alerts: the second run only drains the spool.
    common::write_segment(&quiet, "q.lnr", &common::threat_chunks()[..0], true);
    let spool = dir.path().join("spool");
    let cfg = dir.path().join("outputs.yaml");
    std::fs::write(
        &cfg,
        format!(
            "outputs:\n  - type: cloudwatch\n    group: /lanner/killed\n    stream: node-4\n    endpoint: {}\n    region: us-east-1\n    spool_dir: {}\n    batch_max_events: 50\n    drain_timeout: 3m\n",
            moto.url(),
            spool.display()
        ),
    )
    .unwrap();

    let mut child = analyze()
        .args(["replay", "--config", cfg.to_str().unwrap(), archive.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    // The summary line is printed after every alert was flushed into the spool.
    let summary = lines.by_ref().map(|l| l.unwrap()).find(|l| l.contains("alert(s);")).expect("summary line");
    assert!(summary.contains(&format!("{N} alert(s)")), "{summary}");
    // Kill it once delivery is under way.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !spool.join("committed").exists() {
        assert!(Instant::now() < deadline, "no batch delivered");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = moto.read_stream("/lanner/killed", "node-4").len();
    assert!(before < N, "killed mid-delivery ({before} of {N} delivered)");

    let out = analyze().args(["replay", "--config", cfg.to_str().unwrap(), quiet.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("left in spool"), "{err}");
    assert!(err.contains("0 alert(s) (0 bytes) still spooled"), "{err}");
    let dups: u64 = err
        .split("duplicates possible ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));

    let got = moto.read_stream("/lanner/killed", "node-4");
    let times: Vec<String> = got
        .iter()
        .map(|m| serde_json::from_str::<serde_json::Value>(m).unwrap()["time"].as_str().unwrap().to_owned())
        .collect();
    // A batch delivered just before the kill but not yet committed is sent again after the
    // restart (at-least-once): keep each alert's first delivery.
    let mut seen = std::collections::HashSet::new();
    let unique: Vec<String> = times.iter().filter(|t| seen.insert(t.as_str())).cloned().collect();
    eprintln!(
        "killed after {before} delivered; {} read back, {} unique, {dups} possible duplicate(s)",
        got.len(),
        unique.len()
    );
    assert_eq!(unique.len(), N, "nothing lost");
    assert!(unique.windows(2).all(|w| w[0] < w[1]), "in archive order");
    assert!((times.len() - unique.len()) as u64 <= dups, "duplicates are counted");
}

#[test]
#[ignore = "needs moto_server on loopback (cargo xtask setup installs it; cargo xtask test runs it)"]
fn a_full_spool_holds_new_alerts_back_until_delivery_makes_room() {
    if !moto::available("a_full_spool_holds_new_alerts_back") {
        return;
    }
    let _serial = moto::serial();
    let mut moto = Moto::start();
    let port = moto.port;
    moto.stop(); // the endpoint is down from the start
    let spool = tempfile::tempdir().unwrap();
    let (group, stream) = ("/lanner/full", "node-5");
    let mut c = config(&moto, group, stream, spool.path());
    c.spool_max_bytes = 1 << 20;
    let mut sink = CloudWatchSink::open(c, AlertFormat::Json).unwrap();
    let metrics = sink.metrics();
    const N: usize = 6_000; // about 2.5 MiB of alerts
    let producer = std::thread::spawn(move || {
        for i in 0..N {
            sink.send(&alert(i)).unwrap();
        }
        sink
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(!producer.is_finished(), "alerts wait while the spool is full");
    let m = metrics.snapshot();
    assert!(m.spooled < N as u64 && m.spool_bytes <= 1 << 20, "{m:?}");
    let moto = Moto::start_on(port);
    let mut sink = producer.join().unwrap();
    sink.close().unwrap();
    let m = metrics.snapshot();
    assert_eq!((m.sent, m.spool_events, m.dropped), (N as u64, 0, 0), "{m:?}");
    let got: Vec<usize> = moto.read_stream(group, stream).iter().map(|m| seq_of(m)).collect();
    assert_eq!(got, (0..N).collect::<Vec<_>>());
}

#[test]
#[ignore = "needs moto_server on loopback (cargo xtask setup installs it; cargo xtask test runs it)"]
fn replay_exits_after_the_drain_timeout_and_the_next_run_delivers() {
    if !moto::available("replay_exits_after_the_drain_timeout") {
        return;
    }
    let _serial = moto::serial();
    let mut moto = Moto::start();
    let port = moto.port;
    moto.stop();
    let dir = tempfile::tempdir().unwrap();
    let (archive, quiet) = (dir.path().join("archive"), dir.path().join("quiet"));
    std::fs::create_dir_all(&archive).unwrap();
    std::fs::create_dir_all(&quiet).unwrap();
    common::write_segment(&archive, "a.lnr", &common::threat_chunks(), true);
    common::write_segment(&quiet, "q.lnr", &common::threat_chunks()[..0], true);
    let cfg = dir.path().join("outputs.yaml");
    std::fs::write(
        &cfg,
        format!(
            "outputs:\n  - type: cloudwatch\n    group: /lanner/drain\n    stream: node-6\n    endpoint: {}\n    spool_dir: {}\n    drain_timeout: 2s\n    retention_days: 7\n",
            moto.url(),
            dir.path().join("spool").display()
        ),
    )
    .unwrap();
    let started = Instant::now();
    let out =
        analyze().args(["replay", "--config", cfg.to_str().unwrap(), archive.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20), "bounded wait: {:?}", started.elapsed());
    assert!(err.contains("sent 0 in 0 call(s)"), "{err}");
    assert!(err.contains("3 alert(s) were not delivered within 2s; they stay in"), "{err}");

    let moto = Moto::start_on(port);
    let out = analyze().args(["replay", "--config", cfg.to_str().unwrap(), quiet.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("3 alert(s)") && err.contains("left in spool"), "{err}");
    assert!(err.contains("sent 3 in 1 call(s)"), "{err}");
    let rules: Vec<String> = moto
        .read_stream("/lanner/drain", "node-6")
        .iter()
        .map(|m| serde_json::from_str::<serde_json::Value>(m).unwrap()["rule"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(rules, ["Sensitive file read", "Write below etc", "Directory created below binary directory"]);
    assert_eq!(moto.retention_days("/lanner/drain"), Some(7), "retention set on the group it created");
}

/// A scripted CloudWatch Logs endpoint: group and stream creation succeed; PutLogEvents calls
/// get `answers` in turn (status, error type; `None` = success), then success. Each call's
/// messages come out of the channel.
fn scripted_endpoint(answers: Vec<(u16, Option<&'static str>)>) -> (String, std::sync::mpsc::Receiver<Vec<String>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut answers = answers.into_iter();
        for conn in listener.incoming() {
            let mut conn = conn.unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 65536];
            // Headers, then Content-Length bytes of body.
            let (head_end, len) = loop {
                let n = conn.read(&mut buf).unwrap();
                if n == 0 {
                    break (0, 0);
                }
                req.extend_from_slice(&buf[..n]);
                if let Some(i) = req.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&req[..i]).to_ascii_lowercase();
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    break (i + 4, len);
                }
            };
            if head_end == 0 {
                continue;
            }
            while req.len() < head_end + len {
                let n = conn.read(&mut buf).unwrap();
                req.extend_from_slice(&buf[..n]);
            }
            let head = String::from_utf8_lossy(&req[..head_end]).to_ascii_lowercase();
            let (status, error) = if head.contains("logs_20140328.putlogevents") {
                let body: serde_json::Value = serde_json::from_slice(&req[head_end..]).unwrap();
                let messages = body["logEvents"].as_array().unwrap().iter();
                tx.send(messages.map(|e| e["message"].as_str().unwrap().to_owned()).collect()).unwrap();
                answers.next().unwrap_or((200, None))
            } else {
                (200, None)
            };
            let body = match error {
                Some(t) => format!("{{\"__type\":\"{t}\",\"message\":\"scripted {t}\"}}"),
                None => "{}".to_owned(),
            };
            let resp = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(resp.as_bytes());
        }
    });
    (url, rx)
}

#[test]
#[ignore = "needs moto_server on loopback (cargo xtask setup installs it; cargo xtask test runs it)"]
fn throttling_and_5xx_are_retried_and_a_refused_batch_is_dropped_and_counted() {
    moto::set_env();
    let (url, calls) = scripted_endpoint(vec![
        (400, Some("ThrottlingException")),
        (503, Some("ServiceUnavailableException")),
        (200, None),
        (400, Some("InvalidParameterException")),
    ]);
    let spool = tempfile::tempdir().unwrap();
    let mut c = CloudWatchConfig::new("/lanner/scripted", Some("node-8"));
    c.endpoint = Some(url);
    c.region = Some("us-east-1".into());
    c.spool_dir = Some(spool.path().to_owned());
    c.drain_timeout = Duration::from_secs(30);
    let mut sink = CloudWatchSink::open(c, AlertFormat::Json).unwrap();
    let metrics = sink.metrics();
    let wait_until = |what: &str, f: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !f() {
            assert!(Instant::now() < deadline, "{what}: {:?}", metrics.snapshot());
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    sink.send(&alert(0)).unwrap();
    sink.flush().unwrap();
    wait_until("throttled, unavailable, then sent", &|| metrics.snapshot().sent == 1);
    sink.send(&alert(1)).unwrap();
    sink.flush().unwrap();
    wait_until("refused and dropped", &|| metrics.snapshot().dropped == 1);
    sink.send(&alert(2)).unwrap();
    sink.close().unwrap();
    let m = metrics.snapshot();
    assert_eq!((m.sent, m.retried, m.dropped, m.spool_events), (2, 2, 1, 0), "{m:?}");
    // The 503 may have stored the batch before failing: its event may arrive twice.
    assert_eq!(m.duplicates_possible, 1, "{m:?}");
    let calls: Vec<usize> = calls.try_iter().map(|c| c.len()).collect();
    assert_eq!(calls, [1, 1, 1, 1, 1], "no attempt after the refusal");
}

#[test]
#[ignore = "needs moto_server on loopback (cargo xtask setup installs it; cargo xtask test runs it)"]
fn follow_delivers_live_alerts_once_across_restarts() {
    if !moto::available("follow_delivers_live_alerts") {
        return;
    }
    let _serial = moto::serial();
    let moto = Moto::start();
    let spool = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    common::write_segment(spool.path(), "seg-000.lnr", &common::threat_chunks(), true);
    let (group, stream) = ("/lanner/follow", "node-9");
    let follow = || {
        analyze()
            .env("LANNER_STATE_DIR", state.path())
            .args(["follow", "-o", &format!("cloudwatch:{group}:{stream}"), "--cloudwatch-endpoint", &moto.url()])
            .args(["--poll", "20ms"])
            .arg(spool.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let wait_for = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = moto.read_stream(group, stream);
            if got.len() >= n {
                return got;
            }
            assert!(Instant::now() < deadline, "{} of {n} alerts delivered", got.len());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let stop = |child: std::process::Child| {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        err
    };

    let child = follow();
    assert_eq!(wait_for(3).len(), 3);
    let err = stop(child);
    assert!(err.contains(&format!("cloudwatch {group}/{stream}: sent 3 in")), "{err}");

    // Restarted: the checkpoint says those chunks were handed over; only new alerts go out.
    let child = follow();
    std::thread::sleep(Duration::from_millis(500));
    common::write_segment(spool.path(), "seg-001.lnr", &common::threat_chunks(), true);
    let got = wait_for(6);
    std::thread::sleep(Duration::from_millis(500));
    let err = stop(child);
    assert!(err.contains("sent 3 in"), "{err}");
    assert_eq!(moto.read_stream(group, stream).len(), 6, "nothing sent twice");
    let rules: Vec<String> = got
        .iter()
        .map(|m| serde_json::from_str::<serde_json::Value>(m).unwrap()["rule"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(rules[..3], rules[3..]);
}

#[test]
#[ignore = "needs moto_server on loopback (cargo xtask setup installs it; cargo xtask test runs it)"]
fn a_configured_cloudwatch_output_filters_by_priority_and_exposes_its_counters() {
    moto::set_env();
    let (url, calls) = scripted_endpoint(vec![]);
    let spool = tempfile::tempdir().unwrap();
    let yaml = format!(
        "outputs:\n  - type: cloudwatch\n    group: /lanner/configured\n    stream: ${{LANNER_TEST_NODE:-node-0}}\n    endpoint: {url}\n    region: us-east-1\n    spool_dir: {}\n    min_priority: Error\n    format: text\n",
        spool.path().display()
    );
    let outputs = lanner_analyze::sinks::config::parse("test.yaml", &yaml).unwrap();
    let mut sink = outputs[0].open(AlertFormat::Json).unwrap();
    let metrics = sink.cloudwatch_metrics().expect("a cloudwatch output");
    let mut severe = alert(2);
    severe.priority = "Error".into();
    sink.send(&alert(1)).unwrap(); // Warning: below the minimum
    sink.send(&severe).unwrap();
    sink.close().unwrap();
    let m = metrics.snapshot();
    assert_eq!((m.spooled, m.sent, m.batches), (1, 1, 1), "{m:?}");
    assert_eq!(calls.try_iter().collect::<Vec<_>>(), [vec![severe.output]], "Falco's text line");
}
