//! Shipping to object storage, for real: eBPF capture with `--ship` against a real S3 API
//! (moto_server on loopback) behind a gate the test closes to make an outage. Every segment ends
//! up in the bucket (an Object Lock one) once, through an outage and a SIGKILL, and the bucket
//! verifies and replays like the spool.

mod common;
#[path = "../../analyze/tests/moto/server.rs"]
mod moto;

use std::collections::BTreeMap;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lanner_objectstore::{Connection, Store, StoreUrl};

/// A TCP forwarder to moto that the test can close (every connection cut, new ones refused)
/// and open again: an outage of the store without losing its state.
struct Gate {
    port: u16,
    open: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<TcpStream>>>,
}

impl Gate {
    fn to(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let live: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (o, l) = (Arc::clone(&open), Arc::clone(&live));
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                if !o.load(SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else { continue };
                l.lock().unwrap().extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                for (mut from, mut to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)]
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Write);
                    });
                }
            }
        });
        Gate { port, open, live }
    }

    fn close(&self) {
        self.open.store(false, SeqCst);
        for s in self.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn reopen(&self) {
        self.open.store(true, SeqCst);
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn analyze(args: &[&str], endpoint: &str) -> Output {
    Command::new(common::analyze_bin()).args(args).env("AWS_ENDPOINT_URL_S3", endpoint).output().unwrap()
}

/// The segment file names in the bucket, with how often each occurs and its size.
fn shipped(store: &Store) -> BTreeMap<String, (usize, u64)> {
    let mut out: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for o in store.list("nodes/").unwrap() {
        let name = o.key.rsplit('/').next().unwrap().to_owned();
        let e = out.entry(name).or_default();
        e.0 += 1;
        e.1 = o.size;
    }
    out
}

fn local_segments(spool: &Path) -> Vec<(String, u64, bool)> {
    let mut v: Vec<(String, u64, bool)> = std::fs::read_dir(spool)
        .unwrap()
        .map_while(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".lnr"))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let marker = spool.join(format!("{name}.shipped"));
            (name, e.metadata().unwrap().len(), marker.exists())
        })
        .collect();
    v.sort();
    v
}

/// The value of `name` on capture's `/metrics`.
fn metric(addr: std::net::SocketAddr, name: &str) -> u64 {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let line = text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{name}: {text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Some execs for the capture to record.
fn activity(n: usize) {
    for _ in 0..n {
        Command::new("/bin/true").status().unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn shipping_survives_an_outage_and_a_kill_and_every_segment_lands_once() {
    if !common::is_root() {
        common::skip_or_fail("not running as root");
        return;
    }
    if !moto::available("shipping_survives_an_outage_and_a_kill_and_every_segment_lands_once") {
        return;
    }
    let _serial = moto::serial();
    let moto = moto::Moto::start();
    let url = "s3://ship-test/nodes";
    let direct = Connection { endpoint: Some(moto.url()), path_style: Some(true), region: Some("us-east-1".into()) };
    let store = Store::connect(&StoreUrl::parse(url).unwrap(), &direct).unwrap();
    // A WORM bucket: S3 Object Lock, compliance mode. Shipping only ever puts new objects.
    store.create_bucket(Some(1)).unwrap();
    let gate = Gate::to(moto.port);
    let spool = tempfile::tempdir().unwrap();
    let gate_url = gate.url();
    let flags = [
        "--ship",
        url,
        "--ship-endpoint",
        &gate_url,
        "--cluster",
        "ci",
        "--segment-age",
        "1s",
        "--chunk-interval",
        "200ms",
    ];

    // Run 1 ships while the store is up...
    let metrics_addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let metrics_flag = metrics_addr.to_string();
    let with_metrics = [&flags[..], &["--metrics-addr", &metrics_flag]].concat();
    let Some((mut first, log1)) = common::launch(spool.path(), "60s", &with_metrics) else { return };
    activity(20);
    wait_until("two segments in the bucket", Duration::from_secs(30), || shipped(&store).len() >= 2);
    let shipped_ok = metric(metrics_addr, "lanner_capture_ship_segments_total");
    assert!(shipped_ok >= 2, "ship_segments_total {shipped_ok}");
    assert!(metric(metrics_addr, "lanner_capture_ship_bytes_total") > 0);
    // ...then the store goes away: closed segments wait on disk, unshipped.
    gate.close();
    let before = shipped(&store).len();
    wait_until("three closed segments waiting", Duration::from_secs(30), || {
        activity(5);
        local_segments(spool.path()).iter().filter(|s| !s.2).count() >= 4
    });
    // The metrics say so: failures counted, a queue, nothing more shipped.
    wait_until("a failed upload counted", Duration::from_secs(30), || {
        metric(metrics_addr, "lanner_capture_ship_failures_total") > 0
    });
    // The gauges are set at the start of each pass, so after the backoff's next retry.
    wait_until("the queue gauge", Duration::from_secs(30), || {
        activity(2);
        metric(metrics_addr, "lanner_capture_ship_queue_length") >= 2
    });
    assert_eq!(metric(metrics_addr, "lanner_capture_ship_segments_total"), before as u64);
    // Killed while its uploads fail and retry: no clean close, its last segment is left unsealed.
    first.kill().unwrap();
    first.wait().unwrap();
    let log1 = log1.lock().unwrap().join("\n");
    assert!(log1.contains("retrying in"), "uploads failed and were retried: {log1}");
    assert_eq!(shipped(&store).len(), before, "nothing reached the store during the outage");

    // The store is back; run 2 ships run 1's leftovers and its own, then stops cleanly.
    gate.reopen();
    let Some((mut second, log2)) = common::launch(spool.path(), "3s", &flags) else { return };
    activity(20);
    let status = second.wait().unwrap();
    let log2 = log2.lock().unwrap().join("\n");
    assert!(status.success(), "{log2}");

    // Every local segment is in the bucket exactly once, whole, and marked shipped.
    let local = local_segments(spool.path());
    let remote = shipped(&store);
    assert!(local.len() >= 6, "{local:?}");
    for (name, size, marked) in &local {
        assert!(marked, "{name} has no .shipped marker: {log2}");
        assert_eq!(remote.get(name), Some(&(1, *size)), "{name} in the bucket: {remote:?}");
    }
    assert_eq!(remote.len(), local.len(), "the bucket holds only the spool's segments: {remote:?}");
    // Keys are laid out by cluster, node and hour.
    let keys = store.list("nodes/").unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert!(keys.iter().all(|k| k.key.starts_with(&format!("nodes/ci/{}/20", host.trim()))), "{keys:?}");

    // The bucket verifies (both runs' chains, the killed run's torn tail allowed)...
    let v = analyze(&["verify", url], &moto.url());
    assert!(v.status.success(), "{}{}", text(&v.stdout), text(&v.stderr));
    assert!(
        text(&v.stdout).contains(&format!("{} segment(s) checked, 0 problem(s)", local.len())),
        "{}",
        text(&v.stdout)
    );
    // ...and replays to the same alerts as the spool, byte for byte.
    let rules_dir = tempfile::tempdir().unwrap();
    let rules = rules_dir.path().join("execs.yaml");
    std::fs::write(
        &rules,
        "- rule: exec\n  desc: every exec\n  condition: evt.type = execve\n  output: \"%evt.num %proc.name %proc.pid %proc.cmdline\"\n  priority: NOTICE\n",
    )
    .unwrap();
    let rules = rules.to_str().unwrap();
    let from_spool = analyze(&["replay", "-r", rules, spool.path().to_str().unwrap()], &moto.url());
    let from_bucket = analyze(&["replay", "-r", rules, url], &moto.url());
    assert!(from_bucket.status.success(), "{}", text(&from_bucket.stderr));
    let execs = text(&from_spool.stdout).lines().filter(|l| l.contains(" true ")).count();
    assert!(execs >= 40, "the test's execs of /bin/true alert: {}", text(&from_spool.stdout));
    assert_eq!(text(&from_bucket.stdout), text(&from_spool.stdout));
    assert!(text(&from_bucket.stdout).contains("\"cluster\":\"ci\""), "alerts name the cluster");
}
