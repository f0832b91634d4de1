//! Archives in object storage (a real S3 API: moto_server on loopback): `replay`, `verify` and
//! the shard/merge backtest read `s3://BUCKET/PREFIX` as they read a directory, and a time
//! window reads little more than the segments it covers.

mod common;
mod moto;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{ev, lineage, P};
use lanner_formats::archive::{segment_file_name, ChunkBuilder, SegmentMeta, SegmentWriter};
use lanner_formats::event::oflags;
use lanner_formats::syscall::EventType;
use lanner_objectstore::{segment_key, Connection, Store, StoreUrl};

/// 2026-12-01T00:00:00Z.
const DAY: u64 = 1_796_083_200_000_000_000;
const HOUR: u64 = 3_600_000_000_000;
const CHUNKS_PER_SEGMENT: u64 = 12;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn analyze(args: &[&str], endpoint: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lanner-analyze")).args(args).env("AWS_ENDPOINT_URL_S3", endpoint).output().unwrap()
}

/// One node's day: 24 hourly segments of one capture, chained, each of 12 five-minute chunks of
/// file opens with one read of /etc/shadow (one "Sensitive file read" alert) per chunk.
fn write_day(dir: &Path) -> Vec<(PathBuf, SegmentMeta)> {
    let sh = P { pid: 100, name: "sh", args: &["-c", "..."], uid: 0 };
    let mut prev_chain = String::new();
    let mut first_event = 0;
    let mut out = Vec::new();
    for h in 0..24u64 {
        let meta = SegmentMeta {
            hostname: "node-a".into(),
            cluster: "test".into(),
            capture_id: "0123abcd45678901".into(),
            sequence: h,
            created_ns: DAY + h * HOUR,
            prev_chain: prev_chain.clone(),
            first_event,
            ..Default::default()
        };
        let path = dir.join(segment_file_name(&meta));
        let mut w = SegmentWriter::create(&path, &meta, 3).unwrap();
        let mut b = ChunkBuilder::new();
        for c in 0..CHUNKS_PER_SEGMENT {
            let t0 = DAY + h * HOUR + c * 300_000_000_000 + 1;
            let cat = lineage(&mut b, &sh, &P { pid: 101, name: "cat", args: &["/etc/shadow"], uid: 0 });
            for i in 0..2000u64 {
                let mix = (h * 1_000_003 + c * 7919 + i).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                let path = format!("/var/lib/app/{h}/{c}/{:x}/data-{i}.db", mix >> 40);
                ev(&mut b, t0 + i * 1000, (cat, 101), EventType::Openat, &path, oflags::O_RDONLY, 3);
            }
            ev(&mut b, t0 + 500_000, (cat, 101), EventType::Openat, "/etc/shadow", oflags::O_RDONLY, 3);
            let chunk = b.take();
            first_event += chunk.events.len() as u64;
            w.append(&chunk).unwrap();
        }
        prev_chain = w.chain_hex();
        w.finish().unwrap();
        out.push((path, meta));
    }
    out
}

fn store(moto: &moto::Moto, url: &str) -> Store {
    let conn = Connection { endpoint: Some(moto.url()), path_style: Some(true), region: Some("us-east-1".into()) };
    Store::connect(&StoreUrl::parse(url).unwrap(), &conn).unwrap()
}

/// The number after `label` in `s` (`... 12 GET(s), 3456 bytes read ...`).
fn number_before(s: &str, label: &str) -> u64 {
    let i = s.find(label).unwrap_or_else(|| panic!("`{label}` not in: {s}"));
    s[..i].trim_end().rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn a_bucket_reads_like_the_spool_it_was_shipped_from() {
    if !moto::available("a_bucket_reads_like_the_spool_it_was_shipped_from") {
        return;
    }
    let _serial = moto::serial();
    let moto = moto::Moto::start();
    let endpoint = moto.url();
    let url = "s3://lanner-evidence/fleet";
    let s = store(&moto, url);
    s.create_bucket(None).unwrap();
    let spool = tempfile::tempdir().unwrap();
    let day = write_day(spool.path());
    for (path, meta) in &day {
        let name = path.file_name().unwrap().to_str().unwrap();
        s.put_file(&segment_key(&s.url, "test", &meta.hostname, meta.created_ns, name), path).unwrap();
    }
    let bucket_bytes: u64 = s.list("fleet/").unwrap().iter().map(|o| o.size).sum();

    // A file over the multipart threshold goes up in parts and comes back whole.
    let big = spool.path().join("big.bin");
    let bytes: Vec<u8> = (0..20u64 << 20).map(|i| (i.wrapping_mul(0x9e37_79b9) >> 13) as u8).collect();
    std::fs::write(&big, &bytes).unwrap();
    let before = s.traffic().puts.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(s.put_file("other/big.bin", &big).unwrap(), 20 << 20);
    // 20 MiB in 8 MiB parts: three part uploads.
    assert_eq!(s.traffic().puts.load(std::sync::atomic::Ordering::Relaxed) - before, 3);
    assert!(s.get_all("other/big.bin").unwrap() == bytes, "the multipart upload reads back whole");
    assert_eq!(s.get_range("other/big.bin", 9 << 20..(9 << 20) + 16).unwrap(), bytes[9 << 20..(9 << 20) + 16]);
    std::fs::remove_file(&big).unwrap();
    let local = spool.path().to_str().unwrap();

    // The whole day: the same alerts, byte for byte, from the spool and from the bucket.
    let from_disk = analyze(&["replay", local], &endpoint);
    let from_bucket = analyze(&["replay", url], &endpoint);
    assert!(from_bucket.status.success(), "{}", text(&from_bucket.stderr));
    assert_eq!(text(&from_disk.stdout).lines().count(), 24 * CHUNKS_PER_SEGMENT as usize);
    assert_eq!(from_bucket.stdout, from_disk.stdout);
    // Alerts say which node and cluster they came from.
    let first: serde_json::Value = serde_json::from_str(text(&from_bucket.stdout).lines().next().unwrap()).unwrap();
    assert_eq!((first["hostname"].as_str(), first["cluster"].as_str()), (Some("node-a"), Some("test")));
    let filtered = analyze(&["replay", "--cluster", "test", "--node", "node-a", url], &endpoint);
    assert_eq!(filtered.stdout, from_disk.stdout, "{}", text(&filtered.stderr));

    // The inspection commands read the bucket too.
    let query = |input: &str| {
        analyze(&["query", "-f", "fd.name = /etc/shadow", "-p", "%evt.num %proc.name %fd.name", input], &endpoint)
    };
    let (q_disk, q_bucket) = (query(local), query(url));
    assert!(q_bucket.status.success(), "{}", text(&q_bucket.stderr));
    assert_eq!(text(&q_bucket.stdout).lines().count(), 24 * CHUNKS_PER_SEGMENT as usize);
    assert_eq!(q_bucket.stdout, q_disk.stdout);
    let stats = |input: &str| {
        let o = analyze(&["stats", "--json", input], &endpoint);
        assert!(o.status.success(), "{}", text(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let (s_disk, s_bucket) = (stats(local), stats(url));
    for args in [&["proctree"][..], &["timeline", "--pid", "101"]] {
        let (d, b) = (analyze(&[args, &[local]].concat(), &endpoint), analyze(&[args, &[url]].concat(), &endpoint));
        assert!(b.status.success() && !b.stdout.is_empty(), "{args:?}: {}", text(&b.stderr));
        assert_eq!(b.stdout, d.stdout, "{args:?}");
    }
    assert_eq!((&s_bucket["events"], &s_bucket["by_syscall"]), (&s_disk["events"], &s_disk["by_syscall"]));
    assert!(s_bucket["events"].as_u64() > Some(0));

    // One hour of the 24 reads less than a tenth of the bucket: keys prune the segments, the
    // footer index prunes the chunks.
    let window = ["--since", "2026-12-01T10:00:00Z", "--until", "2026-12-01T10:59:59Z"];
    let hour_disk = analyze(&[&["replay", local][..], &window].concat(), &endpoint);
    let hour_bucket = analyze(&[&["replay", url][..], &window].concat(), &endpoint);
    let err = text(&hour_bucket.stderr);
    assert!(hour_bucket.status.success(), "{err}");
    assert_eq!(text(&hour_bucket.stdout).lines().count(), CHUNKS_PER_SEGMENT as usize);
    assert_eq!(hour_bucket.stdout, hour_disk.stdout);
    let (gets, read) = (number_before(&err, "GET(s)"), number_before(&err, "bytes read"));
    eprintln!(
        "one hour of 24: {gets} GETs, {read} of {bucket_bytes} bytes ({:.1}%)",
        read as f64 * 100.0 / bucket_bytes as f64
    );
    assert!(read * 10 < bucket_bytes, "{read} of {bucket_bytes} bytes read: {err}");

    // Four shards over the bucket, merged, equal one run.
    let out = tempfile::tempdir().unwrap();
    let o = |n: &str| out.path().join(n).to_str().unwrap().to_owned();
    let whole = analyze(&["replay", "--summary-out", &o("whole.json"), url], &endpoint);
    assert!(whole.status.success(), "{}", text(&whole.stderr));
    let mut summaries = Vec::new();
    for k in 0..4 {
        let f = o(&format!("s{k}.json"));
        let r = analyze(&["replay", "--shard", &format!("{k}/4"), "--summary-out", &f, url], &endpoint);
        assert!(r.status.success(), "{}", text(&r.stderr));
        summaries.push(f);
    }
    let merged = o("merged.json");
    let m = analyze(
        &[&["merge", "-o", &merged][..], &summaries.iter().map(String::as_str).collect::<Vec<_>>()].concat(),
        &endpoint,
    );
    assert!(m.status.success(), "{}", text(&m.stderr));
    let json = |p: &str| serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(p).unwrap()).unwrap();
    let (merged, whole) = (json(&merged), json(&o("whole.json")));
    assert_eq!(merged["hits"], whole["hits"]);
    assert_eq!(merged["events"], whole["events"]);
    assert_eq!(merged["segments"], 24);
    assert_eq!(whole["hits_by_node"]["Sensitive file read"]["node-a"], 24 * CHUNKS_PER_SEGMENT);

    // verify checks the node's whole chain in the bucket...
    let v = analyze(&["verify", url], &endpoint);
    assert!(v.status.success(), "{}{}", text(&v.stdout), text(&v.stderr));
    assert!(text(&v.stdout).ends_with("24 segment(s) checked, 0 problem(s)\n"), "{}", text(&v.stdout));
    // ...and names a segment altered in the bucket, by its key.
    let (path, meta) = &day[7];
    let key = segment_key(&s.url, "test", "node-a", meta.created_ns, path.file_name().unwrap().to_str().unwrap());
    let mut bytes = s.get_all(&key).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x40;
    s.put_bytes(&key, bytes).unwrap();
    let v = analyze(&["verify", url], &endpoint);
    let report = text(&v.stdout);
    assert_eq!(v.status.code(), Some(1), "{report}");
    let fail: Vec<&str> = report.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(fail.len(), 1, "{report}");
    assert!(
        fail[0].contains(&format!("s3://lanner-evidence/{key}")) && fail[0].contains("corrupted chunk"),
        "{report}"
    );

    // Filters by node and cluster, with a clear error when nothing matches.
    let none = analyze(&["verify", "--node", "node-b", url], &endpoint);
    assert_eq!(none.status.code(), Some(2), "{}", text(&none.stderr));
    assert!(
        text(&none.stderr).contains("no .lnr archive segments under this prefix for node node-b"),
        "{}",
        text(&none.stderr)
    );
}
