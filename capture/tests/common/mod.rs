//! Shared by the real-eBPF test files: skipping (a failure under `CI=true`), starting
//! `lanner-capture` and collecting its log, and the `lanner-analyze` binary.
#![allow(dead_code)] // each test file uses a different part

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Skips the calling test with `reason`, or fails it when `CI=true`.
pub fn skip_or_fail(reason: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("eBPF integration test cannot run: {reason} (CI=true: a skip is a failure)");
    }
    eprintln!("SKIPPED: eBPF integration test: {reason}");
}

/// Whether the tests run as root (needed to load eBPF programs).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `lanner-analyze`, built next to `lanner-capture`.
pub fn analyze_bin() -> PathBuf {
    let analyze = Path::new(env!("CARGO_BIN_EXE_lanner-capture")).with_file_name("lanner-analyze");
    assert!(analyze.exists(), "{} missing: build all binaries first (cargo build --bins)", analyze.display());
    analyze
}

/// Starts `lanner-capture --spool spool --duration duration EXTRA...` and waits until it records;
/// its stderr lines keep arriving in the returned log. `None` (after [`skip_or_fail`]) when it
/// cannot run here.
pub fn launch(spool: &Path, duration: &str, extra: &[&str]) -> Option<(Child, Arc<Mutex<Vec<String>>>)> {
    launch_with(Command::new(env!("CARGO_BIN_EXE_lanner-capture")), spool, duration, extra)
}

/// As [`launch`], with `capture` as the command (`lanner-capture`, or a wrapper that ends by
/// running it with the arguments appended).
pub fn launch_with(
    mut capture: Command,
    spool: &Path,
    duration: &str,
    extra: &[&str],
) -> Option<(Child, Arc<Mutex<Vec<String>>>)> {
    if !is_root() {
        skip_or_fail("not running as root");
        return None;
    }
    let mut child = capture
        .arg("--spool")
        .arg(spool)
        .args(["--duration", duration])
        .args(extra)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let log = Arc::new(Mutex::new(Vec::new()));
    loop {
        match lines.next() {
            Some(Ok(l)) if l.contains("recording to") => break,
            Some(Ok(l)) => log.lock().unwrap().push(l),
            _ => {
                let status = child.wait().unwrap();
                let log = log.lock().unwrap().join("\n");
                skip_or_fail(&format!("lanner-capture could not start ({status}): {log}"));
                return None;
            }
        }
    }
    let sink = Arc::clone(&log);
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(|l| sink.lock().unwrap().push(l)));
    Some((child, log))
}

/// A running `lanner-capture` writing into its own temporary spool.
pub struct Capture {
    /// The capture process.
    pub child: Child,
    /// Its spool.
    pub spool: tempfile::TempDir,
    /// Its log so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Capture {
    /// Starts capture for up to 60 s and waits until it records.
    pub fn start(extra: &[&str]) -> Option<Capture> {
        let spool = tempfile::tempdir().unwrap();
        let (child, log) = launch(spool.path(), "60s", extra)?;
        Some(Capture { child, spool, log })
    }

    /// As [`Capture::start`], with `hosts` bind-mounted on `/etc/hosts` in a mount namespace of
    /// the capture's own: the names it resolves (`--resolve`) then have the addresses in `hosts`,
    /// as in a pod given `hostAliases`, and nothing else on the machine changes.
    pub fn start_with_hosts(hosts: &Path, extra: &[&str]) -> Option<Capture> {
        let spool = tempfile::tempdir().unwrap();
        let mut wrapper = Command::new("unshare");
        wrapper
            .args(["--mount", "--propagation", "private", "sh", "-c", "mount --bind \"$0\" /etc/hosts && exec \"$@\""])
            .arg(hosts)
            .arg(env!("CARGO_BIN_EXE_lanner-capture"));
        let (child, log) = launch_with(wrapper, spool.path(), "60s", extra)?;
        Some(Capture { child, spool, log })
    }

    /// The capture's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGINT, wait for a clean exit; returns the spool and the log.
    pub fn stop(mut self) -> (tempfile::TempDir, Vec<String>) {
        // SAFETY: kill(2) on our child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let st = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let log = self.log.lock().unwrap().clone();
        assert!(st.success(), "capture exited with {st}: {log:?}");
        (self.spool, log)
    }
}

/// Where the cgroup v2 hierarchy is mounted; `None` (after [`skip_or_fail`]) when it is not.
pub fn cgroup2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let root = mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
    });
    if root.is_none() {
        skip_or_fail("no cgroup v2 hierarchy mounted");
    }
    root
}

/// cgroup directories a test made, removed (innermost first) when dropped.
pub struct CgroupDirs(pub Vec<PathBuf>);

impl CgroupDirs {
    /// Creates each missing directory of `root`/`parts` in turn; returns the innermost.
    pub fn create(&mut self, root: &Path, parts: &[String]) -> PathBuf {
        let mut cg = root.to_path_buf();
        for part in parts {
            cg.push(part);
            if !cg.exists() {
                std::fs::create_dir(&cg).unwrap();
                self.0.push(cg.clone());
            }
        }
        cg
    }
}

impl Drop for CgroupDirs {
    fn drop(&mut self) {
        for d in self.0.iter().rev() {
            // A cgroup whose last process just exited can be busy for a moment.
            for _ in 0..50 {
                if std::fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// `lanner-analyze query -f FILTER -p FORMAT SPOOL`'s output lines (the query must succeed).
pub fn query(spool: &Path, filter: &str, format: &str) -> Vec<String> {
    let out = Command::new(analyze_bin()).args(["query", "-f", filter, "-p", format]).arg(spool).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

/// Asserts that at least 10 `lines` came, each `unnamed` or `named`: `unnamed` first (what was
/// recorded before the metadata arrived), then `named` up to the end. `context` goes into the
/// failure messages.
pub fn assert_named_later(lines: &[String], named: &str, unnamed: &str, context: &str) {
    assert!(lines.len() >= 10, "too few lines: {lines:?}; {context}");
    assert!(lines.iter().all(|l| l == named || l == unnamed), "{lines:?}");
    let first_named = lines.iter().position(|l| l == named).unwrap_or_else(|| panic!("never named: {lines:?}"));
    assert!(first_named > 0, "named before the metadata arrived: {lines:?}");
    assert!(lines[first_named..].iter().all(|l| l == named), "{lines:?}");
}

/// `lanner-analyze replay --rules R… spool`: the alerts it printed, parsed.
pub fn replay_alerts(spool: &Path, rules: &[&Path]) -> Vec<serde_json::Value> {
    let mut cmd = Command::new(analyze_bin());
    cmd.arg("replay");
    for r in rules {
        cmd.arg("--rules").arg(r);
    }
    let out = cmd.arg(spool).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}
