//! `cargo xtask bench …`: runs a workload under a real capture and measures it.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The benchmarks.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Which {
    /// Archive size vs JSON+zstd, decode throughput, zstd level table.
    Archive,
    /// Rule evaluation throughput with the upstream stable rules (needs ../shared/testdata).
    Rules,
    /// Replay of ≥ 1 GB of archives with the upstream stable rules: 1 and 2 threads, peak RSS.
    Replay,
    /// Lanner vs `sysdig -r` on the same ≥ 2M-event capture (exported to scap), same filter.
    Scap,
}

/// Runs benchmark `what`.
pub fn run(root: &Path, what: Which) -> Result<()> {
    match what {
        Which::Archive => archive(root),
        Which::Rules => rules(root),
        Which::Replay => replay(root),
        Which::Scap => scap(root),
    }
}

/// Removes a directory on every exit path.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The mixed workload: a C build, `find /usr`, `tar c /usr/share/doc`, an exec storm.
fn mixed_workload(work: &Path) -> Result<()> {
    let registry = std::env::var("CARGO_HOME").map(std::path::PathBuf::from).unwrap_or_else(|_| {
        std::path::PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into())).join(".cargo")
    });
    let zstd_lib = std::fs::read_dir(registry.join("registry/src"))
        .context("cargo registry sources")?
        .filter_map(|e| e.ok())
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().filter_map(|e| e.ok()))
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("zstd-sys-")))
        .map(|p| p.join("zstd/lib"))
        .context("zstd-sys sources (the C project we compile) not found in the cargo registry")?;
    let src = work.join("zstd");
    super::run(Command::new("cp").arg("-r").arg(&zstd_lib).arg(&src))?;
    let steps = [
        (
            "C build (zstd, 2 jobs)",
            "ls common/*.c compress/*.c decompress/*.c | xargs -P2 -n1 sh -c 'gcc -O1 -c \"$0\" -o \"$0.o\"'",
        ),
        ("find /usr", "find /usr > /dev/null"),
        ("tar c /usr/share/doc", "tar c /usr/share/doc 2>/dev/null | cat > /dev/null"),
        ("exec storm (3000 × /bin/true)", "i=0; while [ $i -lt 3000 ]; do /bin/true; i=$((i+1)); done"),
    ];
    for (name, script) in steps {
        eprintln!("xtask: workload: {name}");
        // cargo's LD_LIBRARY_PATH would make the dynamic loader probe dozens of extra paths per exec.
        let st = Command::new("sh").args(["-c", script]).current_dir(&src).env_remove("LD_LIBRARY_PATH").status()?;
        if !st.success() {
            bail!("workload step '{name}' failed ({st})");
        }
    }
    Ok(())
}

fn archive(root: &Path) -> Result<()> {
    if !super::is_root() {
        bail!("the archive benchmark captures a real workload with eBPF: run it as root");
    }
    super::run(super::cargo().args(["build", "--release", "--bins"]))?;
    let tmp = TempDir(std::env::temp_dir().join(format!("lanner-bench-archive-{}", std::process::id())));
    let spool = capture_workload(root, &tmp.0)?;
    super::run(
        super::cargo().args(["bench", "-p", "lanner-formats", "--bench", "archive"]).env("LANNER_BENCH_SPOOL", &spool),
    )
}

/// Captures the mixed workload into `spool`.
fn capture_workload(root: &Path, tmp: &Path) -> Result<std::path::PathBuf> {
    let spool = tmp.join("spool");
    let work = tmp.join("work");
    std::fs::create_dir_all(&work)?;
    let cap = super::start_capture(&root.join("target/release"), &spool, &[])?;
    let res = mixed_workload(&work);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    super::stop_capture(cap)?;
    res?;
    Ok(spool)
}

/// Runs a release `lanner-analyze replay`; returns (seconds, events, alerts, peak RSS in KiB).
fn timed_replay(root: &Path, threads: usize, rules: &[&Path], input: &Path) -> Result<(f64, u64, u64, i64)> {
    let err_path = std::env::temp_dir().join(format!("lanner-bench-replay-{}.stderr", std::process::id()));
    let mut cmd = Command::new(root.join("target/release/lanner-analyze"));
    cmd.arg("replay").arg("--threads").arg(threads.to_string());
    for r in rules {
        cmd.arg("--rules").arg(r);
    }
    cmd.arg(input).stdout(std::process::Stdio::null()).stderr(std::fs::File::create(&err_path)?);
    let t = std::time::Instant::now();
    let child = cmd.spawn()?;
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, with valid out-pointers; the Child is not waited on again.
    let r = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    let secs = t.elapsed().as_secs_f64();
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = std::fs::remove_file(&err_path);
    if r < 0 || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("replay failed: {err}");
    }
    let summary = err.lines().find(|l| l.contains(" events in ")).context("no replay summary")?;
    let num = |after: &str| -> u64 {
        summary.split(after).next().and_then(|s| s.split_whitespace().last()).and_then(|n| n.parse().ok()).unwrap_or(0)
    };
    Ok((secs, num(" events in "), num(" alert(s)"), ru.ru_maxrss))
}

/// Checks the prerequisites, builds, captures the workload; returns (temp dir, spool, stable rules).
fn prepare(root: &Path, what: &str) -> Result<(TempDir, std::path::PathBuf, std::path::PathBuf)> {
    if !super::is_root() {
        bail!("the {what} benchmark captures a real workload with eBPF: run it as root");
    }
    let stable = root.join("../shared/testdata/falcosecurity-rules/current/falco_rules.yaml");
    if !stable.exists() {
        bail!("{} not found", stable.display());
    }
    super::run(super::cargo().args(["build", "--release", "--bins"]))?;
    let tmp = TempDir(std::env::temp_dir().join(format!("lanner-bench-{what}-{}", std::process::id())));
    let spool = capture_workload(root, &tmp.0)?;
    Ok((tmp, spool, stable))
}

/// Copies the captured segments `copies` times into `dir` (the same real capture, repeated until
/// a run is long enough to time); returns the bytes of one copy.
fn replicate(spool: &Path, dir: &Path, copies: impl Fn(u64) -> u64) -> Result<(u64, u64)> {
    std::fs::create_dir_all(dir)?;
    let segs: Vec<_> = std::fs::read_dir(spool)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    let one: u64 = segs.iter().map(|s| std::fs::metadata(s).map(|m| m.len()).unwrap_or(0)).sum();
    let n = copies(one.max(1));
    for i in 0..n {
        for (j, s) in segs.iter().enumerate() {
            std::fs::copy(s, dir.join(format!("copy-{i:05}-{j:03}.lnr")))?;
        }
    }
    Ok((one, n))
}

fn rules(root: &Path) -> Result<()> {
    let (tmp, spool, stable) = prepare(root, "rules")?;
    let many = tmp.0.join("many");
    replicate(&spool, &many, |_| 100)?;
    let trivial = tmp.0.join("trivial.yaml");
    std::fs::write(&trivial, "- rule: t\n  desc: d\n  condition: evt.type = openat and proc.name = no-such-process\n  output: o\n  priority: debug\n")?;
    println!("## Rule evaluation throughput (mixed workload capture × 100 copies)\n");
    println!("| rules | threads | events | alerts | seconds | M events/s |");
    println!("|---|---|---|---|---|---|");
    for (label, rules) in [
        ("one trivial rule (decode + index)", vec![trivial.as_path()]),
        ("upstream stable (falco_rules.yaml)", vec![stable.as_path()]),
    ] {
        for threads in [1, 2] {
            let (secs, events, alerts, _) = timed_replay(root, threads, &rules, &many)?;
            println!("| {label} | {threads} | {events} | {alerts} | {secs:.2} | {:.2} |", events as f64 / secs / 1e6);
        }
    }
    Ok(())
}

fn replay(root: &Path) -> Result<()> {
    let (tmp, spool, stable) = prepare(root, "replay")?;
    let many = tmp.0.join("many");
    let (one, copies) = replicate(&spool, &many, |one| (1u64 << 30).div_ceil(one))?;
    let total = one * copies;
    println!(
        "## Replay of {:.2} GiB ({copies} copies of a {:.1} MiB real capture), upstream stable rules\n",
        total as f64 / (1u64 << 30) as f64,
        one as f64 / (1u64 << 20) as f64
    );
    println!("| threads | events | alerts | seconds | M events/s | peak RSS |");
    println!("|---|---|---|---|---|---|");
    let mut rates = Vec::new();
    for threads in [1, 2] {
        let (secs, events, alerts, rss) = timed_replay(root, threads, &[stable.as_path()], &many)?;
        rates.push(events as f64 / secs);
        println!(
            "| {threads} | {events} | {alerts} | {secs:.2} | {:.2} | {:.0} MiB |",
            events as f64 / secs / 1e6,
            rss as f64 / 1024.0
        );
    }
    println!("\nScaling 1 → 2 threads: {:.2}×", rates[1] / rates[0]);
    Ok(())
}

/// The filter `scap` times: three stable-rule-like conditions, as one sysdig filter and as rules.
const SCAP_CONDITIONS: [&str; 3] = [
    "evt.type in (open, openat, openat2) and evt.dir=< and fd.name startswith /etc/shadow",
    "evt.type = execve and evt.dir=< and proc.name in (nc, ncat, socat)",
    "evt.type in (unlink, unlinkat) and evt.dir=< and proc.name = shred",
];

fn scap(root: &Path) -> Result<()> {
    let (tmp, spool, _) = prepare(root, "scap")?;
    let analyze = root.join("target/release/lanner-analyze");
    let stats = Command::new(&analyze).args(["stats", "--json"]).arg(&spool).output()?;
    let v: serde_json::Value = serde_json::from_slice(&stats.stdout).context("stats --json")?;
    let per_copy = v["events"].as_u64().context("event count")?.max(1);
    let many = tmp.0.join("many");
    let (_, copies) = replicate(&spool, &many, |_| (2_000_000u64).div_ceil(per_copy))?;
    let scap_file = tmp.0.join("capture.scap");
    let out = Command::new(&analyze).arg("export").arg("-o").arg(&scap_file).arg(&many).output()?;
    if !out.status.success() {
        bail!("export failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    // "wrote FILE (N events as M scap events, T threads)"
    let report = String::from_utf8_lossy(&out.stderr);
    let scap_events: u64 = report
        .split(" events as ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .context("export report")?;
    let rules = tmp.0.join("rules.yaml");
    let mut text = String::new();
    for (i, c) in SCAP_CONDITIONS.iter().enumerate() {
        text.push_str(&format!(
            "- rule: r{i}\n  desc: d\n  condition: {c}\n  output: \"%proc.name %fd.name\"\n  priority: warning\n"
        ));
    }
    std::fs::write(&rules, text)?;
    let filter = SCAP_CONDITIONS.iter().map(|c| format!("({c})")).collect::<Vec<_>>().join(" or ");
    let syscalls = per_copy * copies;
    println!(
        "## Replay speed: Lanner vs sysdig 0.29.3 ({syscalls} syscalls: {copies} copies of a real capture; \
         the scap export holds {scap_events} enter+exit events, {:.0} MiB)\n",
        std::fs::metadata(&scap_file)?.len() as f64 / (1u64 << 20) as f64
    );
    println!("| reader | threads | seconds | syscalls/s | vs sysdig |");
    println!("|---|---|---|---|---|");
    let t = std::time::Instant::now();
    let out =
        Command::new("sysdig").arg("-r").arg(&scap_file).arg(&filter).stdout(std::process::Stdio::null()).status()?;
    if !out.success() {
        bail!("sysdig failed on {}", scap_file.display());
    }
    let sysdig_secs = t.elapsed().as_secs_f64();
    println!(
        "| `sysdig -r capture.scap FILTER` | 1 | {sysdig_secs:.2} | {:.2}M | 1.0× |",
        syscalls as f64 / sysdig_secs / 1e6
    );
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    for n in [1, threads] {
        // Replay may count fewer events than `stats`: chunks whose event types no rule can
        // match are skipped without decompressing. The rate is over every syscall of the input.
        let (secs, _, _, _) = timed_replay(root, n, &[rules.as_path()], &many)?;
        println!(
            "| `lanner-analyze replay` (.lnr) | {n} | {secs:.2} | {:.2}M | {:.1}× |",
            syscalls as f64 / secs / 1e6,
            sysdig_secs / secs
        );
    }
    let (secs, _, _, _) = timed_replay(root, 1, &[rules.as_path()], &scap_file)?;
    println!(
        "| `lanner-analyze replay capture.scap` (import included) | 1 | {secs:.2} | {:.2}M | {:.1}× |",
        syscalls as f64 / secs / 1e6,
        sysdig_secs / secs
    );
    Ok(())
}
