//! Real eBPF with pod metadata: a fake Kubernetes API server on loopback lists one pod, a shell
//! runs in a cgroup named like the kubelet's (systemd driver) for that pod's container, and the
//! archive's events of that shell carry the pod's and container's names. Needs root; skips with
//! a message elsewhere, except under `CI=true`, where a skip is a failure.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;

use common::{analyze_bin, cgroup2_root, Capture, CgroupDirs};

/// A fake API server: answers `GET /api/v1/pods…` with 503 until `ready`, then with `pods`;
/// records the request URLs.
struct FakeApi {
    port: u16,
    ready: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    urls: Arc<Mutex<Vec<String>>>,
}

impl FakeApi {
    fn start(pods: String) -> FakeApi {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let (ready, stop, urls) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
            Arc::new(Mutex::new(Vec::<String>::new())),
        );
        let (r, s, u) = (Arc::clone(&ready), Arc::clone(&stop), Arc::clone(&urls));
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(50)) else { continue };
                let url = req.url().to_owned();
                u.lock().unwrap().push(url.clone());
                if !url.starts_with("/api/v1/pods") {
                    let _ = req.respond(tiny_http::Response::from_string("not found").with_status_code(404));
                    continue;
                }
                let resp = if r.load(Ordering::Relaxed) {
                    tiny_http::Response::from_string(pods.clone())
                } else {
                    tiny_http::Response::from_string(r#"{"kind":"Status","status":"Failure","code":503}"#)
                        .with_status_code(503)
                };
                let _ = req.respond(resp);
            }
        });
        FakeApi { port, ready, stop, urls }
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn a_pods_processes_carry_its_pod_and_container_names_from_the_api_server() {
    let Some(root) = cgroup2_root() else { return };
    let tag = std::process::id();
    let uid = format!("5e1f0a2b-3c4d-4e5f-8a9b-{:012x}", tag);
    let cid = format!("{:016x}", 0x4b85_c0de_0000_0000_u64 + tag as u64).repeat(4);
    let pods = format!(
        r#"{{"kind":"PodList","apiVersion":"v1","items":[{{
            "metadata":{{"name":"web-{tag}","namespace":"shop","uid":"{uid}"}},
            "spec":{{"nodeName":"test-node","containers":[{{"name":"nginx","image":"registry.local:5000/shop/nginx:1.25"}}]}},
            "status":{{"phase":"Running","containerStatuses":[{{"name":"nginx","image":"registry.local:5000/shop/nginx:1.25",
              "imageID":"registry.local:5000/shop/nginx@sha256:{cid}","containerID":"containerd://{cid}","ready":true}}]}}}}]}}"#
    );
    let api = FakeApi::start(pods);
    let url = format!("http://127.0.0.1:{}", api.port);
    let Some(cap) = Capture::start(&["--chunk-interval", "200ms", "--k8s-api", &url, "--k8s-node", "test-node"]) else {
        return;
    };
    // The kubelet's systemd-driver layout for a burstable pod's containerd container.
    let mut dirs = CgroupDirs(Vec::new());
    let cg = dirs.create(
        &root,
        &[
            "kubepods.slice".to_owned(),
            "kubepods-burstable.slice".to_owned(),
            format!("kubepods-burstable-pod{}.slice", uid.replace('-', "_")),
            format!("cri-containerd-{cid}.scope"),
        ],
    );
    // The shell joins the container's cgroup, then works for ~4 s; the API server answers only
    // after ~1 s, so the names reach its already running process later.
    let marker = format!("/dev/null/k8s-{tag}");
    let script = format!(
        "echo $$ > {}/cgroup.procs && for i in $(seq 20); do cat {marker} 2>/dev/null; sleep 0.2; done; exit 0",
        cg.display()
    );
    let mut sh = Command::new("sh").args(["-c", &script]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    api.ready.store(true, Ordering::Relaxed);
    let st = sh.wait().unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let (spool, log) = cap.stop();
    drop(dirs);
    assert!(st.success());
    let urls = api.urls.lock().unwrap().clone();
    assert!(
        urls.iter().any(|u| u.starts_with("/api/v1/pods?fieldSelector=spec.nodeName%3Dtest-node")),
        "requests: {urls:?}"
    );
    // The unavailable API server is logged once (at most once a minute), then its recovery.
    let warnings: Vec<&String> = log.iter().filter(|l| l.contains("WARN") && l.contains("pod metadata from")).collect();
    assert_eq!(warnings.len(), 1, "{log:?}");
    assert!(warnings[0].contains("503"), "{log:?}");
    assert!(log.iter().any(|l| l.contains("answers again")), "{log:?}");

    let fields = "*%k8s.pod.name|%k8s.ns.name|%container.name|%container.image|%container.image.repository|%container.image.tag|%container.id";
    let out = Command::new(analyze_bin())
        .args(["query", "-f", &format!("evt.type in (open, openat) and fd.name = {marker}"), "-p", fields])
        .arg(spool.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    let short = &cid[..12];
    let named =
        format!("web-{tag}|shop|nginx|registry.local:5000/shop/nginx:1.25|registry.local:5000/shop/nginx|1.25|{short}");
    let unnamed = format!("<NA>|<NA>|<NA>|<NA>|<NA>|<NA>|{short}");
    assert!(lines.len() >= 10, "opens of {marker}: {lines:?}; capture log: {log:?}");
    assert!(lines.iter().all(|l| *l == named || *l == unnamed), "{lines:?}");
    // Before the pod was listed: only the container id; after: the names, up to the end.
    let first_named = lines.iter().position(|l| *l == named).unwrap_or_else(|| panic!("never named: {lines:?}"));
    assert!(first_named > 0, "named before the API server listed the pod: {lines:?}");
    assert!(lines[first_named..].iter().all(|l| *l == named), "{lines:?}");

    // Host processes stay `host`, without pod names.
    let out = Command::new(analyze_bin())
        .args(["query", "-f", "container.id = host", "-p", "*%container.name|%k8s.pod.name"])
        .arg(spool.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().next().is_some_and(|l| l == "host|<NA>"), "{text}");
}
