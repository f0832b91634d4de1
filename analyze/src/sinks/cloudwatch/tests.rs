//! Unit tests: batch limits and truncation (which the local emulator does not enforce), error
//! classification, name substitution, and the spool's recovery.

use super::config::expand_with;
use super::request_builder::*;
use super::retry::{classify, Action, Backoff, Failure, FailureKind};
use super::service::Rejected;
use super::spool;
use std::time::Duration;

fn ev(ts: i64, len: usize) -> LogEvent {
    LogEvent { timestamp_ms: ts, message: "x".repeat(len) }
}

/// Fills batches from `events` the way delivery does, returning each batch.
fn batches(events: Vec<LogEvent>, limits: Limits) -> Vec<Vec<LogEvent>> {
    let mut out = Vec::new();
    let mut b = BatchBuilder::new(limits);
    for e in events {
        if let Err(e) = b.push(e) {
            out.push(std::mem::replace(&mut b, BatchBuilder::new(limits)).finish());
            b.push(e).expect("an empty batch takes any event");
        }
    }
    if !b.is_empty() {
        out.push(b.finish());
    }
    out
}

#[test]
fn count_limit_is_10000_events() {
    let v = batches((0..25_001).map(|i| ev(1_000 + i, 10)).collect(), Limits::default());
    assert_eq!(v.iter().map(Vec::len).collect::<Vec<_>>(), vec![10_000, 10_000, 5_001]);
}

#[test]
fn byte_limit_counts_26_bytes_per_event() {
    // 1000-byte messages: 1026 bytes each; 1,048,576 / 1026 = 1022.0 -> 1022 fit.
    let v = batches((0..3000).map(|i| ev(i, 1000)).collect(), Limits::default());
    assert_eq!(v[0].len(), 1022);
    for b in &v {
        let bytes: usize = b.iter().map(|e| e.message.len() + EVENT_OVERHEAD).sum();
        assert!(bytes <= MAX_BATCH_BYTES, "{bytes}");
    }
    assert_eq!(v.iter().map(Vec::len).sum::<usize>(), 3000);
    // Exactly at the limit fits: 1024 events of 1024 - 26 bytes = 1,048,576.
    let v = batches((0..1025).map(|i| ev(i, 1024 - EVENT_OVERHEAD)).collect(), Limits::default());
    assert_eq!(v.iter().map(Vec::len).collect::<Vec<_>>(), vec![1024, 1]);
}

#[test]
fn a_batch_spans_less_than_24_hours_and_is_sorted() {
    let day = MAX_BATCH_SPAN_MS;
    // Out of order inside the window: sorted, stable for equal timestamps.
    let input = vec![
        LogEvent { timestamp_ms: 5_000, message: "a".into() },
        LogEvent { timestamp_ms: 1_000, message: "b".into() },
        LogEvent { timestamp_ms: 5_000, message: "c".into() },
        // 24 h after the oldest (1000): must start a new batch.
        LogEvent { timestamp_ms: 1_000 + day, message: "d".into() },
        LogEvent { timestamp_ms: 1_000 + day - 1, message: "e".into() },
    ];
    let v = batches(input, Limits::default());
    let msgs: Vec<Vec<&str>> = v.iter().map(|b| b.iter().map(|e| e.message.as_str()).collect()).collect();
    assert_eq!(msgs, vec![vec!["b", "a", "c"], vec!["e", "d"]]);
    for b in &v {
        assert!(b.last().unwrap().timestamp_ms - b[0].timestamp_ms < day);
        assert!(b.windows(2).all(|w| w[0].timestamp_ms <= w[1].timestamp_ms));
    }
    // Just under 24 h stays in one batch.
    let v = batches(vec![ev(0, 1), ev(day - 1, 1)], Limits::default());
    assert_eq!(v.len(), 1);
}

#[test]
fn long_messages_are_cut_at_a_char_boundary_with_a_marker() {
    // 'é' is two bytes: a cut in the middle of one must step back.
    let mut m = "é".repeat(200_000);
    assert!(truncate_message(&mut m, MAX_MESSAGE_BYTES));
    assert!(m.len() <= MAX_MESSAGE_BYTES, "{}", m.len());
    assert!(m.len() > MAX_MESSAGE_BYTES - 4);
    assert!(m.ends_with(TRUNCATION_MARKER));
    assert!(m.trim_end_matches(TRUNCATION_MARKER).chars().all(|c| c == 'é'));
    let mut short = "ok".to_owned();
    assert!(!truncate_message(&mut short, MAX_MESSAGE_BYTES));
    assert_eq!(short, "ok");
    // Exactly at the limit is kept whole.
    let mut exact = "y".repeat(MAX_MESSAGE_BYTES);
    assert!(!truncate_message(&mut exact, MAX_MESSAGE_BYTES));
    // The batch builder cuts too (spools written by other versions).
    let mut b = BatchBuilder::new(Limits::default());
    b.push(ev(0, 300_000)).unwrap();
    assert_eq!(b.truncated(), 1);
    assert!(b.bytes() <= MAX_MESSAGE_BYTES + EVENT_OVERHEAD);
    // A maximal event and a second one exceed 1 MiB only after 4 of them.
    let v = batches((0..5).map(|i| ev(i, 300_000)).collect(), Limits::default());
    assert_eq!(v.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 1]);
}

#[test]
fn rejected_indexes_are_counted() {
    let r = Rejected::from_indexes(10, Some(8), Some(2), None);
    assert_eq!((r.too_new, r.too_old, r.expired, r.total()), (2, 3, 0, 5));
    let r = Rejected::from_indexes(10, None, Some(1), Some(4));
    assert_eq!(r.total(), 5);
    assert_eq!(Rejected::from_indexes(10, None, None, None).total(), 0);
    assert_eq!(Rejected::from_indexes(3, Some(0), None, None).total(), 3);
}

fn service(code: &str, status: u16) -> Failure {
    Failure { kind: FailureKind::Service { code: Some(code.into()), status }, message: code.into() }
}

#[test]
fn errors_are_classified() {
    assert_eq!(classify(&service("ThrottlingException", 400)), Action::Retry { maybe_applied: false });
    assert_eq!(classify(&service("ServiceUnavailableException", 503)), Action::Retry { maybe_applied: true });
    assert_eq!(classify(&service("Whatever", 500)), Action::Retry { maybe_applied: true });
    assert_eq!(classify(&service("ResourceNotFoundException", 400)), Action::Recreate);
    assert_eq!(classify(&service("InvalidParameterException", 400)), Action::Drop);
    assert_eq!(classify(&service("DataAlreadyAcceptedException", 400)), Action::AlreadyAccepted);
    let f = |kind| Failure { kind, message: String::new() };
    assert_eq!(classify(&f(FailureKind::ConnectRefused)), Action::Retry { maybe_applied: false });
    assert_eq!(classify(&f(FailureKind::Transport)), Action::Retry { maybe_applied: true });
}

#[test]
fn backoff_grows_to_the_cap_with_jitter() {
    let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
    let first = b.next_delay();
    assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100), "{first:?}");
    let later: Vec<Duration> = (0..30).map(|_| b.next_delay()).collect();
    assert!(later.iter().all(|d| *d <= Duration::from_secs(30)));
    assert!(later[20..].iter().all(|d| *d >= Duration::from_secs(15)), "{later:?}");
    // Jitter: not all the same.
    assert!(later[20..].windows(2).any(|w| w[0] != w[1]), "{later:?}");
    b.reset();
    assert!(b.next_delay() <= Duration::from_millis(100));
}

#[test]
fn names_take_environment_variables() {
    let env = |k: &str| match k {
        "NODE_NAME" => Some("node-1".to_owned()),
        "EMPTY" => Some(String::new()),
        _ => None,
    };
    assert_eq!(expand_with("/lanner/${NODE_NAME}/x", env).unwrap(), "/lanner/node-1/x");
    assert_eq!(expand_with("${CLUSTER:-dev}-${NODE_NAME}", env).unwrap(), "dev-node-1");
    assert_eq!(expand_with("${EMPTY:-d}", env).unwrap(), "d");
    assert_eq!(expand_with("plain", env).unwrap(), "plain");
    assert!(expand_with("${MISSING}", env).unwrap_err().to_string().contains("MISSING is not set"));
    assert!(expand_with("${NODE_NAME", env).unwrap_err().to_string().contains("unclosed"));
    assert!(expand_with("${bad name}", env).is_err());
}

#[test]
fn spool_delivers_in_order_survives_reopen_and_cuts_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, mut r, rec) = spool::open(dir.path(), 64 << 20).unwrap();
    assert_eq!(rec.records, 0);
    for i in 0..100 {
        w.append(i, &format!("m{i}")).unwrap();
    }
    w.sync().unwrap();
    let mut got = Vec::new();
    let mut last = None;
    for _ in 0..40 {
        let rec = r.next_record().unwrap().unwrap();
        got.push(rec.message.clone());
        last = Some(rec);
    }
    let last = last.unwrap();
    r.mark_inflight(last.end).unwrap();
    // A second process cannot open the same spool.
    let err = spool::open(dir.path(), 64 << 20).err().unwrap();
    assert!(err.to_string().contains("in use"), "{err}");
    drop((w, r));

    // The writer was killed mid-frame: a partial frame at the end of the last segment.
    let seg = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .max()
        .unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut f, &[7, 0, 0, 0, 1, 2]).unwrap();
    drop(f);

    let (mut w, mut r, rec) = spool::open(dir.path(), 64 << 20).unwrap();
    assert_eq!(rec.records, 100, "nothing was committed");
    assert_eq!(rec.torn_bytes, 6);
    let again: Vec<spool::SpoolRecord> = std::iter::from_fn(|| r.next_record().unwrap()).collect();
    assert_eq!(again.len(), 100);
    assert_eq!(again.iter().map(|r| r.message.clone()).take(40).collect::<Vec<_>>(), got);
    // The in-flight batch of the killed run may have been delivered.
    assert_eq!(again.iter().filter(|r| r.maybe_sent).count(), 40);
    let (end, bytes) = (again[59].end, again[..60].iter().map(|r| r.bytes).sum());
    r.commit(end, 60, bytes).unwrap();
    assert_eq!(r.pending().0, 40);
    w.append(1000, "after").unwrap();
    w.sync().unwrap();
    drop((w, r));

    let (w, mut r, rec) = spool::open(dir.path(), 64 << 20).unwrap();
    assert_eq!(rec.records, 41);
    let rest: Vec<spool::SpoolRecord> = std::iter::from_fn(|| r.next_record().unwrap()).collect();
    let want: Vec<String> = (60..100).map(|i| format!("m{i}")).chain(["after".to_owned()]).collect();
    assert_eq!(rest.iter().map(|r| r.message.clone()).collect::<Vec<_>>(), want);
    assert!(rest.iter().all(|r| !r.maybe_sent));
    drop((w, r));

    // A damaged commit file (a power loss emptied it): everything kept is sent again, flagged.
    std::fs::write(dir.path().join("committed"), b"").unwrap();
    let (_w, mut r, _) = spool::open(dir.path(), 64 << 20).unwrap();
    let all: Vec<spool::SpoolRecord> = std::iter::from_fn(|| r.next_record().unwrap()).collect();
    assert!(all.len() >= 41, "{}", all.len());
    assert!(all.iter().all(|r| r.maybe_sent));
    assert_eq!(all.last().unwrap().message, "after");
}

#[test]
fn spool_rolls_segments_and_deletes_delivered_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, mut r, _) = spool::open(dir.path(), 64 << 20).unwrap();
    let msg = "z".repeat(100_000);
    for i in 0..200 {
        w.append(i, &msg).unwrap();
    }
    w.sync().unwrap();
    let segs = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "seg"))
            .count()
    };
    assert!(segs() >= 3, "{}", segs());
    let all: Vec<spool::SpoolRecord> = std::iter::from_fn(|| r.next_record().unwrap()).collect();
    assert_eq!(all.len(), 200);
    assert!(all.iter().enumerate().all(|(i, r)| r.timestamp_ms == i as i64));
    r.commit(all[199].end, 200, all.iter().map(|r| r.bytes).sum()).unwrap();
    assert_eq!(segs(), 1);
    assert_eq!(r.pending(), (0, 0));
}

#[test]
fn a_full_spool_fails_rather_than_hang_when_delivery_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, r, _) = spool::open(dir.path(), 1 << 20).unwrap();
    drop(r);
    let msg = "q".repeat(1000);
    let err = (0..2000).find_map(|i| w.append(i, &msg).err()).expect("fills up");
    assert!(err.to_string().contains("full"), "{err}");
}
