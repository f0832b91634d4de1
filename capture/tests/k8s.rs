//! Real eBPF with pod metadata: a fake Kubernetes API server on loopback lists one pod and later
//! adds another through its watch stream; shells run in cgroups named like the kubelet's (systemd
//! driver) for those pods' containers, and the archive's events of each shell carry its pod's and
//! container's names. Needs root; skips with a message elsewhere, except under `CI=true`, where a
//! skip is a failure.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;

use common::{analyze_bin, assert_named_later, cgroup2_root, query, Capture, CgroupDirs};

/// A fake API server: `GET /api/v1/pods?…` answers 503 until `ready`, then the list `pods`;
/// with `watch=1` it streams watch events (one JSON object per line): the first watch gets an
/// ERROR 410 (its version expired), later ones every line pushed to `events`. Records the
/// request URLs.
struct FakeApi {
    port: u16,
    ready: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    urls: Arc<Mutex<Vec<String>>>,
    events: Arc<Mutex<Vec<String>>>,
    watches: Arc<AtomicUsize>,
}

/// What the connection handlers share.
#[derive(Clone)]
struct Shared {
    pods: Arc<String>,
    ready: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    urls: Arc<Mutex<Vec<String>>>,
    events: Arc<Mutex<Vec<String>>>,
    watches: Arc<AtomicUsize>,
}

impl FakeApi {
    fn start(pods: String) -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Shared {
            pods: Arc::new(pods),
            ready: Arc::default(),
            stop: Arc::default(),
            urls: Arc::default(),
            events: Arc::default(),
            watches: Arc::default(),
        };
        let api = FakeApi {
            port,
            ready: Arc::clone(&shared.ready),
            stop: Arc::clone(&shared.stop),
            urls: Arc::clone(&shared.urls),
            events: Arc::clone(&shared.events),
            watches: Arc::clone(&shared.watches),
        };
        std::thread::spawn(move || {
            while !shared.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let sh = shared.clone();
                        std::thread::spawn(move || serve(conn, &sh));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        api
    }
}

/// Answers one request on `conn` (the connection closes after it).
fn serve(mut conn: TcpStream, api: &Shared) {
    conn.set_nonblocking(false).unwrap();
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(n) if n > 0 => req.extend_from_slice(&buf[..n]),
            _ => return,
        }
    }
    let url = String::from_utf8_lossy(&req).split(' ').nth(1).unwrap_or("").to_owned();
    api.urls.lock().unwrap().push(url.clone());
    let respond = |conn: &mut TcpStream, status: &str, body: &str| {
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = conn.write_all(head.as_bytes()).and_then(|_| conn.write_all(body.as_bytes()));
    };
    if !url.starts_with("/api/v1/pods?") {
        return respond(&mut conn, "404 Not Found", "not found");
    }
    if !api.ready.load(Ordering::Relaxed) {
        return respond(&mut conn, "503 Service Unavailable", r#"{"kind":"Status","status":"Failure","code":503}"#);
    }
    if !url.contains("watch=1") {
        return respond(&mut conn, "200 OK", &api.pods);
    }
    // A watch: a body that ends when the connection closes, one event per line.
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
    if conn.write_all(head.as_bytes()).is_err() {
        return;
    }
    if api.watches.fetch_add(1, Ordering::Relaxed) == 0 {
        let gone = r#"{"type":"ERROR","object":{"kind":"Status","status":"Failure","message":"too old resource version","reason":"Expired","code":410}}"#;
        let _ = conn.write_all(format!("{gone}\n").as_bytes());
        return;
    }
    let mut sent = 0;
    while !api.stop.load(Ordering::Relaxed) {
        let events = api.events.lock().unwrap().clone();
        for e in &events[sent..] {
            if conn.write_all(format!("{e}\n").as_bytes()).and_then(|_| conn.flush()).is_err() {
                return;
            }
        }
        sent = events.len();
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A pod object with one running containerd container.
fn pod_json(name: &str, uid: &str, container: &str, image: &str, cid: &str) -> String {
    format!(
        r#"{{"metadata":{{"name":"{name}","namespace":"shop","uid":"{uid}","resourceVersion":"101"}},
            "spec":{{"nodeName":"test-node","containers":[{{"name":"{container}","image":"{image}"}}]}},
            "status":{{"phase":"Running","containerStatuses":[{{"name":"{container}","image":"{image}",
              "containerID":"containerd://{cid}","ready":true}}]}}}}"#
    )
}

/// The kubelet's systemd-driver cgroup for a burstable pod's containerd container.
fn pod_cgroup(dirs: &mut CgroupDirs, root: &std::path::Path, uid: &str, cid: &str) -> std::path::PathBuf {
    dirs.create(
        root,
        &[
            "kubepods.slice".to_owned(),
            "kubepods-burstable.slice".to_owned(),
            format!("kubepods-burstable-pod{}.slice", uid.replace('-', "_")),
            format!("cri-containerd-{cid}.scope"),
        ],
    )
}

/// A shell that joins cgroup `cg`, then opens `marker` every 0.2 s for ~6 s.
fn worker(cg: &std::path::Path, marker: &str) -> std::process::Child {
    let script = format!(
        "echo $$ > {}/cgroup.procs && for i in $(seq 30); do cat {marker} 2>/dev/null; sleep 0.2; done; exit 0",
        cg.display()
    );
    Command::new("sh").args(["-c", &script]).spawn().unwrap()
}

#[test]
#[ignore = "needs root: loads eBPF programs (cargo xtask test runs it)"]
fn a_pods_processes_carry_its_pod_and_container_names_from_the_api_server() {
    let Some(root) = cgroup2_root() else { return };
    let tag = std::process::id();
    let uid = format!("5e1f0a2b-3c4d-4e5f-8a9b-{:012x}", tag);
    let cid = format!("{:016x}", 0x4b85_c0de_0000_0000_u64 + tag as u64).repeat(4);
    let image = "registry.local:5000/shop/nginx:1.25";
    let pods = format!(
        r#"{{"kind":"PodList","apiVersion":"v1","metadata":{{"resourceVersion":"100"}},"items":[{}]}}"#,
        pod_json(&format!("web-{tag}"), &uid, "nginx", image, &cid)
    );
    // A second pod, never in the list: only its ADDED watch event names it.
    let uid2 = format!("5e1f0a2b-3c4d-4e5f-8a9b-{:012x}", tag as u64 + (1 << 40));
    let cid2 = format!("{:016x}", 0x3a7c_0000_0000_0000_u64 + tag as u64).repeat(4);
    let api = FakeApi::start(pods);
    let url = format!("http://127.0.0.1:{}", api.port);
    let Some(cap) = Capture::start(&["--chunk-interval", "200ms", "--k8s-api", &url, "--k8s-node", "test-node"]) else {
        return;
    };
    let mut dirs = CgroupDirs(Vec::new());
    let cg = pod_cgroup(&mut dirs, &root, &uid, &cid);
    let cg2 = pod_cgroup(&mut dirs, &root, &uid2, &cid2);
    // The shells join their containers' cgroups, then work for ~6 s; the API server answers only
    // after ~1 s, and the second pod comes through the watch later still, so the names reach
    // already running processes.
    let marker = format!("/dev/null/k8s-{tag}");
    let marker2 = format!("/dev/null/k8s-watch-{tag}");
    let mut sh = worker(&cg, &marker);
    let mut sh2 = worker(&cg2, &marker2);
    std::thread::sleep(Duration::from_millis(1000));
    api.ready.store(true, Ordering::Relaxed);
    // The first watch is told its version expired; the one after the relist gets the new pod.
    let waited = std::time::Instant::now();
    while api.watches.load(Ordering::Relaxed) < 2 && waited.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let added = pod_json(&format!("api-{tag}"), &uid2, "api", "registry.local:5000/shop/api:2.0", &cid2);
    api.events.lock().unwrap().push(format!(r#"{{"type":"ADDED","object":{}}}"#, added.replace('\n', "")));
    let st2 = sh2.wait().unwrap();
    let st = sh.wait().unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let (spool, log) = cap.stop();
    drop(dirs);
    assert!(st.success() && st2.success());
    let urls = api.urls.lock().unwrap().clone();
    let list = "/api/v1/pods?fieldSelector=spec.nodeName%3Dtest-node";
    assert!(urls.iter().any(|u| u == list), "requests: {urls:?}");
    // List, watch from the list's version (expired), list again, watch again.
    let watch = |u: &String| u.starts_with(list) && u.contains("watch=1") && u.contains("resourceVersion=100");
    let first_watch = urls.iter().position(watch).unwrap_or_else(|| panic!("no watch: {urls:?}"));
    let relist = first_watch + urls[first_watch..].iter().position(|u| u == list).expect("relisted after 410");
    assert!(urls[relist..].iter().any(watch), "watched again: {urls:?}");
    // The unavailable API server is logged once (at most once a minute), then its recovery.
    let warnings: Vec<&String> = log.iter().filter(|l| l.contains("WARN") && l.contains("pod metadata from")).collect();
    assert_eq!(warnings.len(), 1, "{log:?}");
    assert!(warnings[0].contains("503"), "{log:?}");
    assert!(log.iter().any(|l| l.contains("answers again")), "{log:?}");
    // An expired version is routine: relisted without a warning.
    assert!(!log.iter().any(|l| l.contains("pod watch")), "{log:?}");

    let fields = "*%k8s.pod.name|%k8s.ns.name|%container.name|%container.image|%container.image.repository|%container.image.tag|%container.id";
    // Before the pod was listed: only the container id; after: the names, up to the end.
    let short = &cid[..12];
    assert_named_later(
        &query(spool.path(), &format!("evt.type in (open, openat) and fd.name = {marker}"), fields),
        &format!(
            "web-{tag}|shop|nginx|registry.local:5000/shop/nginx:1.25|registry.local:5000/shop/nginx|1.25|{short}"
        ),
        &format!("<NA>|<NA>|<NA>|<NA>|<NA>|<NA>|{short}"),
        &format!("capture log: {log:?}"),
    );
    // The pod added after the list: named from the watch event on.
    let short2 = &cid2[..12];
    assert_named_later(
        &query(spool.path(), &format!("evt.type in (open, openat) and fd.name = {marker2}"), fields),
        &format!("api-{tag}|shop|api|registry.local:5000/shop/api:2.0|registry.local:5000/shop/api|2.0|{short2}"),
        &format!("<NA>|<NA>|<NA>|<NA>|<NA>|<NA>|{short2}"),
        &format!("capture log: {log:?}"),
    );

    // Host processes stay `host`, without pod names.
    let out = Command::new(analyze_bin())
        .args(["query", "-f", "container.id = host", "-p", "*%container.name|%k8s.pod.name"])
        .arg(spool.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().next().is_some_and(|l| l == "host|<NA>"), "{text}");
}
