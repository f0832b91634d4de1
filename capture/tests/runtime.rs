//! Real eBPF with container runtime metadata: a fake Docker Engine API on a unix socket answers
//! `GET /containers/<id>/json`, a shell runs in a cgroup named like docker's (systemd driver), and
//! the archive's events of that shell carry the container's name and image. Needs root; skips
//! with a message elsewhere, except under `CI=true`, where a skip is a failure.

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;

use common::{assert_named_later, cgroup2_root, query, Capture, CgroupDirs};

/// A fake Engine API on `path`: answers `GET /containers/<id>/json` for container `id` (first 12
/// characters, as capture asks) once `release` is set (waiting at most 1.5 s, within capture's
/// time limit), 404 for any other; records the request lines.
fn fake_engine(path: &Path, id: String, body: String, release: Arc<AtomicBool>) -> Arc<Mutex<Vec<String>>> {
    let listener = UnixListener::bind(path).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(n) if n > 0 => req.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
            let line = String::from_utf8_lossy(&req).lines().next().unwrap_or("").to_owned();
            s.lock().unwrap().push(line.clone());
            let resp = if line == format!("GET /containers/{id}/json HTTP/1.1") {
                let held = std::time::Instant::now();
                while !release.load(Ordering::Relaxed) && held.elapsed() < Duration::from_millis(1500) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
            } else {
                let msg = r#"{"message":"No such container"}"#;
                format!("HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\n\r\n{msg}", msg.len())
            };
            let _ = conn.write_all(resp.as_bytes());
        }
    });
    seen
}

#[test]
#[ignore = "needs root: loads eBPF programs (cargo xtask test runs it)"]
fn a_docker_containers_processes_carry_its_name_and_image_from_the_engine_api() {
    let Some(root) = cgroup2_root() else { return };
    let tag = std::process::id();
    let id = format!("{:016x}", 0xd0c6_e500_0000_0000_u64 + tag as u64).repeat(4);
    let short = id[..12].to_owned();
    let image = "registry.local:5000/team/api:2.1";
    let body = format!(
        r#"{{"Id":"{id}","Created":"2026-11-27T05:00:00Z","Name":"/api-{tag}","Image":"sha256:{id}",
            "State":{{"Status":"running","Pid":{tag},"StartedAt":"2026-11-27T05:00:01.5Z"}},
            "HostConfig":{{"Privileged":true}},
            "Mounts":[{{"Type":"bind","Source":"/proc","Destination":"/host/proc","Mode":"ro","RW":false,"Propagation":"rprivate"}}],
            "Config":{{"Hostname":"{short}","Image":"{image}","Labels":{{}}}}}}"#
    );
    let dir = tempfile::tempdir().unwrap();
    let engine = dir.path().join("docker.sock");
    // The lookup is held until the shell has worked a while: its first events come without names.
    let release = Arc::new(AtomicBool::new(false));
    let seen = fake_engine(&engine, short.clone(), body, Arc::clone(&release));
    // A socket file nobody listens on (refuses: logged once) and a path with nothing (silent).
    let refusing = dir.path().join("refusing.sock");
    drop(UnixListener::bind(&refusing).unwrap());
    let absent = dir.path().join("absent.sock");
    let sockets = [&absent, &refusing, &engine].map(|p| p.display().to_string());
    let mut args = vec!["--chunk-interval", "200ms"];
    for s in &sockets {
        args.extend(["--container-socket", s]);
    }
    let Some(cap) = Capture::start(&args) else { return };
    let mut dirs = CgroupDirs(Vec::new());
    let cg = dirs.create(&root, &[format!("docker-{id}.scope")]);
    let marker = format!("/dev/null/runtime-{tag}");
    let ours = format!("GET /containers/{short}/json HTTP/1.1");
    let script = format!(
        "echo $$ > {}/cgroup.procs && for i in $(seq 20); do cat {marker} 2>/dev/null; sleep 0.2; done; exit 0",
        cg.display()
    );
    let mut sh = Command::new("sh").args(["-c", &script]).spawn().unwrap();
    // The shell works on while the lookup is held; then the runtime answers.
    let asked = std::time::Instant::now();
    while !seen.lock().unwrap().contains(&ours) && asked.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(600));
    release.store(true, Ordering::Relaxed);
    let st = sh.wait().unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let (spool, log) = cap.stop();
    drop(dirs);
    assert!(st.success());

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.iter().filter(|l| **l == ours).count(), 1, "one lookup of the container: {seen:?}");
    let warnings: Vec<&String> = log.iter().filter(|l| l.contains("WARN") && l.contains("container runtime")).collect();
    assert!(!warnings.is_empty() && warnings.iter().all(|w| w.contains("refusing.sock")), "{log:?}");
    assert_eq!(warnings.len(), 1, "logged once: {log:?}");
    assert!(warnings[0].contains("cannot connect"), "{log:?}");
    assert!(!log.iter().any(|l| l.contains("absent.sock")), "{log:?}");

    // Before the lookup answered: only the container id; after: the names, up to the end.
    assert_named_later(
        &query(
            spool.path(),
            &format!("evt.type in (open, openat) and fd.name = {marker}"),
            "*%container.id %container.name %container.image %container.image.repository %container.image.tag",
        ),
        &format!("{short} api-{tag} {image} registry.local:5000/team/api 2.1"),
        &format!("{short} <NA> <NA> <NA> <NA>"),
        &format!("capture log: {log:?}"),
    );
    // The runtime's privilege, start and mounts arrive with the names.
    assert_named_later(
        &query(
            spool.path(),
            &format!("evt.type in (open, openat) and fd.name = {marker}"),
            "*%container.privileged %container.start_ts %container.mount.dest[/proc*] %container.mounts",
        ),
        "true 1795755601500000000 /host/proc /proc:/host/proc:ro:false:rprivate",
        "<NA> <NA> <NA> <NA>",
        &format!("capture log: {log:?}"),
    );
}

#[test]
#[ignore = "needs root: loads eBPF programs (cargo xtask test runs it)"]
fn a_process_in_a_cgroup_v1_docker_cgroup_gets_its_container_from_proc() {
    // The cgroupfs driver's layout on a v1 (or hybrid) host: /sys/fs/cgroup/<controller>/docker/<id>.
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let Some(cpu) = mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let v1_cpu = f.get(2) == Some(&"cgroup") && f.get(3).is_some_and(|o| o.split(',').any(|o| o == "cpu"));
        v1_cpu.then(|| PathBuf::from(f[1]))
    }) else {
        // Not applicable (a cgroup v2-only host has no v1 paths to read), not a skip.
        eprintln!("no cgroup v1 cpu hierarchy mounted: nothing to test here");
        return;
    };
    let tag = std::process::id();
    let id = format!("{:016x}", 0x0c61_0000_0000_0000_u64 + tag as u64).repeat(4);
    let short = id[..12].to_owned();
    let dir = tempfile::tempdir().unwrap();
    let engine = dir.path().join("docker.sock");
    let body = format!(r#"{{"Id":"{id}","Name":"/v1-{tag}","Config":{{"Image":"busybox:1.36"}}}}"#);
    let seen = fake_engine(&engine, short.clone(), body, Arc::new(AtomicBool::new(true)));
    let socket = engine.display().to_string();
    let Some(cap) = Capture::start(&["--chunk-interval", "200ms", "--container-socket", &socket]) else { return };
    let mut dirs = CgroupDirs(Vec::new());
    let cg = dirs.create(&cpu, &["docker".to_owned(), id.clone()]);
    // The shell joins the v1 cgroup only (its v2 cgroup, the id the kernel gives, stays the
    // test's); each `sh -c` it starts execs in the container's cgroup and lives 0.2 s, so capture
    // reads its /proc cgroup file while it exists (a process gone before that keeps its parent's
    // ids: the documented limit on v1 hosts), and its cat inherits the ids.
    let marker = format!("/dev/null/v1-{tag}");
    let script = format!(
        "echo $$ > {}/cgroup.procs && for i in 1 2 3; do sh -c 'sleep 0.2; cat {marker} 2>/dev/null'; done; exit 0",
        cg.display()
    );
    let st = Command::new("sh").args(["-c", &script]).status().unwrap();
    let _ = Command::new("sh").args(["-c", &format!("cat {marker}-host 2>/dev/null; exit 0")]).status();
    std::thread::sleep(Duration::from_millis(400));
    let (spool, log) = cap.stop();
    drop(dirs);
    assert!(st.success());
    assert!(seen.lock().unwrap().contains(&format!("GET /containers/{short}/json HTTP/1.1")), "{log:?}");
    let lines = query(
        spool.path(),
        &format!("evt.type in (open, openat) and fd.name startswith {marker}"),
        "*%fd.name %container.id %container.name %container.image",
    );
    let inside: Vec<&String> = lines.iter().filter(|l| l.starts_with(&format!("{marker} "))).collect();
    assert_eq!(inside.len(), 3, "{lines:?}; capture log: {log:?}");
    // The lookup runs in the background: the last open comes 0.4 s after the first.
    assert_eq!(inside[2], &format!("{marker} {short} v1-{tag} busybox:1.36"), "{lines:?}");
    assert!(inside.iter().all(|l| l.starts_with(&format!("{marker} {short} "))), "{lines:?}");
    assert_eq!(lines.iter().filter(|l| **l == format!("{marker}-host host host <NA>")).count(), 1, "{lines:?}");
}
