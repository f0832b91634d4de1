//! `cargo xtask bench …`: runs a workload under a real capture and measures it.

mod capture_ab;
mod object_storage;
mod report;

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The benchmarks.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Which {
    /// Archive size vs JSON+zstd, decode throughput, zstd level table.
    Archive,
    /// Rule evaluation throughput with the upstream stable rules (needs the pinned reference data, testdata/MANIFEST).
    Rules,
    /// Replay of ≥ 1 GB of archives with the upstream stable rules: 1 and 2 threads, peak RSS.
    Replay,
    /// Lanner vs `sysdig -r` on the same ≥ 2M-event capture (exported to scap), same filter.
    Scap,
    /// Capture overhead on a syscall loop, an exec storm, the first drop rate, and CPU and peak
    /// RSS at the loop's unpaced rate under `--syscalls all` (over 1M events/s).
    Capture,
    /// This build's capture against another build's (`LANNER_BENCH_BASELINE`: a directory with
    /// its lanner-capture and lanner-analyze), alternated in one run: the syscall loop and the
    /// exec storm, and bytes per event of the mixed workload.
    CaptureAb,
    /// Object storage on a local S3 API (moto_server): replay from the bucket vs local disk, and
    /// capture's CPU with and without `--ship` at 500k events/s.
    ObjectStorage,
    /// `report` over a ≥ 1M-event real capture: time against `replay`, page size, and its load
    /// time in headless Chromium.
    Report,
}

/// Runs benchmark `what`.
pub fn run(what: Which) -> Result<()> {
    match what {
        Which::Archive => archive(),
        Which::Rules => rules(),
        Which::Replay => replay(),
        Which::Scap => scap(),
        Which::Capture => capture(),
        Which::CaptureAb => capture_ab::run(),
        Which::ObjectStorage => object_storage::run(),
        Which::Report => report::run(),
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

fn archive() -> Result<()> {
    if !super::is_root() {
        bail!("the archive benchmark captures a real workload with eBPF: run it as root");
    }
    super::run(super::cargo().args(["build", "--release", "--bins"]))?;
    let tmp = TempDir(std::env::temp_dir().join(format!("lanner-bench-archive-{}", std::process::id())));
    let spool = capture_workload(&tmp.0)?;
    super::run(
        super::cargo().args(["bench", "-p", "lanner-formats", "--bench", "archive"]).env("LANNER_BENCH_SPOOL", &spool),
    )
}

/// Captures the mixed workload into `spool`.
fn capture_workload(tmp: &Path) -> Result<std::path::PathBuf> {
    let spool = tmp.join("spool");
    let work = tmp.join("work");
    std::fs::create_dir_all(&work)?;
    let cap = super::start_capture(&super::target_dir().join("release"), &spool, &[])?;
    let res = mixed_workload(&work);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    super::stop_capture(cap)?;
    res?;
    Ok(spool)
}

/// Runs a release `lanner-analyze replay`; returns (seconds, events, alerts, peak RSS in KiB).
fn timed_replay(threads: usize, rules: &[&Path], input: &Path) -> Result<(f64, u64, u64, i64)> {
    let err_path = std::env::temp_dir().join(format!("lanner-bench-replay-{}.stderr", std::process::id()));
    let mut cmd = Command::new(super::target_dir().join("release/lanner-analyze"));
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
fn prepare(what: &str) -> Result<(TempDir, std::path::PathBuf, std::path::PathBuf)> {
    if !super::is_root() {
        bail!("the {what} benchmark captures a real workload with eBPF: run it as root");
    }
    let stable = match lanner_testdata::find("falcosecurity-rules/current/falco_rules.yaml") {
        Ok(p) => p,
        Err(e) => bail!("the upstream stable rules: {e:?}"),
    };
    super::run(super::cargo().args(["build", "--release", "--bins"]))?;
    let tmp = TempDir(std::env::temp_dir().join(format!("lanner-bench-{what}-{}", std::process::id())));
    let spool = capture_workload(&tmp.0)?;
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

fn rules() -> Result<()> {
    let (tmp, spool, stable) = prepare("rules")?;
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
            let (secs, events, alerts, _) = timed_replay(threads, &rules, &many)?;
            println!("| {label} | {threads} | {events} | {alerts} | {secs:.2} | {:.2} |", events as f64 / secs / 1e6);
        }
    }
    Ok(())
}

fn replay() -> Result<()> {
    let (tmp, spool, stable) = prepare("replay")?;
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
        let (secs, events, alerts, rss) = timed_replay(threads, &[stable.as_path()], &many)?;
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

fn scap() -> Result<()> {
    let (tmp, spool, _) = prepare("scap")?;
    let analyze = super::target_dir().join("release/lanner-analyze");
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
        let (secs, _, _, _) = timed_replay(n, &[rules.as_path()], &many)?;
        println!(
            "| `lanner-analyze replay` (.lnr) | {n} | {secs:.2} | {:.2}M | {:.1}× |",
            syscalls as f64 / secs / 1e6,
            sysdig_secs / secs
        );
    }
    let (secs, _, _, _) = timed_replay(1, &[rules.as_path()], &scap_file)?;
    println!(
        "| `lanner-analyze replay capture.scap` (import included) | 1 | {secs:.2} | {:.2}M | {:.1}× |",
        syscalls as f64 / secs / 1e6,
        sysdig_secs / secs
    );
    Ok(())
}

/// The load generator of `bench capture` (compiled with gcc at bench time):
/// `loop N FILE` opens, reads and closes FILE N times; `storm N PROG` forks and execs PROG N
/// times, one at a time, printing each child's pid; `paced RATE SECONDS FILE` does the loop at
/// RATE iterations per second for SECONDS and prints how many it did; `paced RATE SECONDS -`
/// makes `close(-1)` calls instead (one recorded event each, failing with EBADF: the cheapest
/// recorded syscall, to reach rates one core's open/read/close cannot).
/// Compiles the load generator into `dir`, with the 64-byte file its loop opens: (program, file,
/// the file's path as text).
fn build_load(dir: &Path) -> Result<(std::path::PathBuf, std::path::PathBuf, String)> {
    let src = dir.join("lbload.c");
    std::fs::write(&src, LOAD_C)?;
    let load = dir.join("lbload");
    super::run(Command::new("gcc").args(["-O2", "-Wall", "-o"]).arg(&load).arg(&src))?;
    let file = dir.join("target-file");
    std::fs::write(&file, [b'x'; 64])?;
    let file_s = file.to_str().context("temp path is not UTF-8")?.to_owned();
    Ok((load, file, file_s))
}

const LOAD_C: &str = r#"
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void open_read_close(const char *path) {
    char buf[64];
    int fd = open(path, O_RDONLY);
    if (fd < 0) { perror(path); exit(1); }
    if (read(fd, buf, sizeof buf) < 0) { perror("read"); exit(1); }
    close(fd);
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "loop")) {
        long n = atol(argv[2]);
        for (long i = 0; i < n; i++) open_read_close(argv[3]);
        return 0;
    }
    if (argc == 4 && !strcmp(argv[1], "storm")) {
        long n = atol(argv[2]);
        char *args[] = { argv[3], NULL };
        for (long i = 0; i < n; i++) {
            pid_t pid = fork();
            if (pid < 0) { perror("fork"); return 1; }
            if (pid == 0) { execve(argv[3], args, environ); _exit(127); }
            int st;
            if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                fprintf(stderr, "child %d failed\n", (int)pid);
                return 1;
            }
            printf("%d\n", (int)pid);
        }
        return 0;
    }
    if (argc == 5 && !strcmp(argv[1], "paced")) {
        double rate = atof(argv[2]), secs = atof(argv[3]);
        long step = (long)(rate / 1000) + 1;
        double t0 = now();
        long done = 0;
        for (;;) {
            double el = now() - t0;
            if (el >= secs) break;
            long due = (long)(rate * el);
            if (done >= due) { usleep(100); continue; }
            if (due - done > step) due = done + step;
            if (!strcmp(argv[4], "-")) {
                while (done < due) { close(-1); done++; }
            } else {
                while (done < due) { open_read_close(argv[4]); done++; }
            }
        }
        printf("%ld\n", done);
        return 0;
    }
    fprintf(stderr, "usage: %s loop N FILE | storm N PROG | paced RATE SECONDS FILE|-\n", argv[0]);
    return 2;
}
"#;

/// A finished capture of `bench capture`: its spool and what its process cost.
struct Captured {
    spool: std::path::PathBuf,
    /// User + system CPU seconds of the capture process while the load ran.
    cpu_secs: f64,
    /// Peak resident set of the capture process, KiB.
    peak_rss_kib: u64,
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_secs(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat.rsplit_once(')').context("/proc/PID/stat format")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    let ticks: u64 = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok(ticks as f64 / hz)
}

/// Peak resident set (VmHWM) of a process, KiB.
fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).context("no VmHWM")?;
    Ok(line.split_whitespace().nth(1).context("VmHWM value")?.parse()?)
}

/// How long a capture is left running after its load, to drain the ring buffer, before it is
/// measured and stopped.
const DRAIN_WAIT: std::time::Duration = std::time::Duration::from_millis(1500);

/// Runs `load` under a fresh capture (with `extra` arguments) into `dir/name` and measures the
/// capture process.
fn under_capture<T>(dir: &Path, name: &str, extra: &[&str], load: impl FnOnce() -> Result<T>) -> Result<(Captured, T)> {
    let spool = dir.join(name);
    let cap = super::start_capture(&super::target_dir().join("release"), &spool, extra)?;
    let pid = cap.id();
    let cpu0 = cpu_secs(pid)?;
    let res = load();
    // Let the capture drain what the load left in the ring buffer before measuring it.
    std::thread::sleep(DRAIN_WAIT);
    let cpu = cpu_secs(pid)? - cpu0;
    let rss = peak_rss_kib(pid)?;
    super::stop_capture(cap)?;
    Ok((Captured { spool, cpu_secs: cpu, peak_rss_kib: rss }, res?))
}

/// Kernel drops recorded in a spool (`lanner-analyze stats --json`).
fn spool_drops(analyze: &Path, spool: &Path) -> Result<u64> {
    stats_count(analyze, spool, "drops")
}

/// One count of `lanner-analyze stats --json` over `input` (`events`, `drops`).
fn stats_count(analyze: &Path, input: &Path, key: &str) -> Result<u64> {
    let out = Command::new(analyze).args(["stats", "--json"]).arg(input).output()?;
    if !out.status.success() {
        bail!("lanner-analyze stats failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("stats --json")?;
    v[key].as_u64().with_context(|| format!("stats --json: no {key}"))
}

/// `lanner-analyze query -p FORMAT -f FILTER spool`, one line per matching event.
fn query_lines(analyze: &Path, spool: &Path, format: &str, filter: &str) -> Result<Vec<String>> {
    let out = Command::new(analyze).args(["query", "-p", format, "-f", filter]).arg(spool).output()?;
    if !out.status.success() {
        bail!("lanner-analyze query failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect())
}

/// Recorded `openat` events of `file`, by process id.
fn opens_by_pid(analyze: &Path, spool: &Path, file: &Path) -> Result<std::collections::HashMap<u32, u64>> {
    let mut by_pid = std::collections::HashMap::new();
    for l in query_lines(analyze, spool, "%proc.pid", &format!("evt.type = openat and fd.name = {}", file.display()))? {
        *by_pid.entry(l.trim().parse::<u32>().context("query: pid")?).or_default() += 1;
    }
    Ok(by_pid)
}

/// Recorded events matching `filter`, by event type (streamed: the loop makes millions).
fn events_by_type(analyze: &Path, spool: &Path, filter: &str) -> Result<std::collections::BTreeMap<String, u64>> {
    use std::io::BufRead;
    let mut child = Command::new(analyze)
        .args(["query", "-p", "%evt.type", "-f", filter])
        .arg(spool)
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut by_type = std::collections::BTreeMap::new();
    for l in std::io::BufReader::new(child.stdout.take().context("piped")?).lines() {
        *by_type.entry(l?.trim().to_owned()).or_default() += 1;
    }
    if !child.wait()?.success() {
        bail!("lanner-analyze query failed");
    }
    Ok(by_type)
}

/// Prints a FAIL line for a failed check and remembers it.
fn fail(failures: &mut Vec<String>, msg: String) {
    println!("FAIL: {msg}\n");
    failures.push(msg);
}

/// One step of paced generators under a capture of its own.
struct PacedStep {
    /// Iterations the generators made.
    done: u64,
    /// What capture recorded of them (as the step counts it).
    recorded: u64,
    /// Drops recorded in the spool.
    drops: u64,
    /// Iterations per second achieved.
    achieved: f64,
    /// Capture's CPU, percent of a core.
    cpu: f64,
    /// Capture's peak RSS, MiB.
    rss: f64,
}

/// Runs [`paced_pair`] at `rate` for `secs` under a capture named `name`; `recorded` counts, in
/// the spool, what was recorded of the generators (given their pids).
#[allow(clippy::too_many_arguments)]
fn paced_step(
    tmp: &Path,
    name: &str,
    load: &Path,
    analyze: &Path,
    rate: f64,
    secs: f64,
    what: &str,
    recorded: impl Fn(&Path, &[u32]) -> Result<u64>,
) -> Result<PacedStep> {
    let (cap, (done, pids)) = under_capture(tmp, name, &[], || paced_pair(load, rate, secs, what))?;
    Ok(PacedStep {
        done,
        recorded: recorded(&cap.spool, &pids)?,
        drops: spool_drops(analyze, &cap.spool)?,
        achieved: done as f64 / secs,
        cpu: cap.cpu_secs / secs * 100.0,
        rss: cap.peak_rss_kib as f64 / 1024.0,
    })
}

/// Runs two paced generators (`paced RATE/2 SECONDS WHAT`) side by side; returns how many
/// iterations they made together and their pids.
fn paced_pair(load: &Path, rate: f64, secs: f64, what: &str) -> Result<(u64, Vec<u32>)> {
    let (half, secs) = (format!("{}", rate / 2.0), format!("{secs}"));
    let gens: Vec<_> = (0..2)
        .map(|_| Command::new(load).args(["paced", &half, &secs, what]).stdout(std::process::Stdio::piped()).spawn())
        .collect::<std::io::Result<_>>()?;
    let pids = gens.iter().map(|g| g.id()).collect();
    let mut done = 0u64;
    for g in gens {
        let out = g.wait_with_output()?;
        if !out.status.success() {
            bail!("paced generator failed ({})", out.status);
        }
        done += String::from_utf8_lossy(&out.stdout).trim().parse::<u64>()?;
    }
    Ok((done, pids))
}

/// Runs the generator to completion; returns (seconds, pid, stdout).
/// bpftrace programs the syscall loop also runs under: the floor of the hook capture uses (an
/// empty `raw_syscalls:sys_exit` probe) and a peer that only counts syscalls.
const BPFTRACE_PEERS: [(&str, &str); 2] = [
    ("hook floor: bpftrace, empty raw_syscalls:sys_exit probe", "tracepoint:raw_syscalls:sys_exit { }"),
    ("peer: bpftrace counting syscalls per command", "tracepoint:raw_syscalls:sys_exit { @[comm] = count(); }"),
];

/// Runs `load` while `bpftrace -e script` is attached.
fn under_bpftrace<T>(script: &str, load: impl FnOnce() -> Result<T>) -> Result<T> {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new("bpftrace")
        .args(["-e", script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("starting bpftrace (cargo xtask setup installs it)")?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.starts_with("Attaching") => break,
            Some(Ok(_)) => {}
            _ => bail!("bpftrace exited before attaching ({:?})", child.wait()?),
        }
    }
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).count());
    let res = load();
    // SAFETY: plain kill(2) on our child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    child.wait()?;
    let _ = drain.join();
    res
}

fn run_load(load: &Path, args: &[&str]) -> Result<(f64, u32, String)> {
    let t = std::time::Instant::now();
    let child = Command::new(load).args(args).stdout(std::process::Stdio::piped()).spawn()?;
    let pid = child.id();
    let out = child.wait_with_output()?;
    let secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("load generator {args:?} failed ({})", out.status);
    }
    Ok((secs, pid, String::from_utf8_lossy(&out.stdout).into_owned()))
}

fn capture() -> Result<()> {
    if !super::is_root() {
        bail!("the capture benchmark loads eBPF programs: run it as root");
    }
    let quick = std::env::var("LANNER_BENCH_QUICK").is_ok_and(|v| v == "1");
    let (iterations, execs, runs, step_secs): (u64, u64, usize, f64) =
        if quick { (100_000, 200, 1, 2.0) } else { (1_000_000, 2_000, 3, 5.0) };
    super::run(super::cargo().args(["build", "--release", "-p", "lanner-capture", "-p", "lanner-analyze"]))?;
    let analyze = super::target_dir().join("release/lanner-analyze");
    let tmp = TempDir(std::env::temp_dir().join(format!("lanner-bench-capture-{}", std::process::id())));
    std::fs::create_dir_all(&tmp.0)?;
    let (load, file, file_s) = build_load(&tmp.0)?;
    let mut failures: Vec<String> = Vec::new();
    if quick {
        println!("**Quick run (LANNER_BENCH_QUICK=1): shortened workloads, not the reference figures.**\n");
    }

    // 1. Syscall loop, uncaptured vs captured.
    let n = iterations.to_string();
    let loop_args = ["loop", n.as_str(), file_s.as_str()];
    let mut plain = f64::MAX;
    for _ in 0..runs {
        plain = plain.min(run_load(&load, &loop_args)?.0);
    }
    let (cap, timed) = under_capture(&tmp.0, "loop", &[], || {
        (0..runs).map(|_| run_load(&load, &loop_args).map(|(s, pid, _)| (s, pid))).collect::<Result<Vec<_>>>()
    })?;
    let captured = timed.iter().map(|t| t.0).fold(f64::MAX, f64::min);
    let opens = opens_by_pid(&analyze, &cap.spool, &file)?;
    let drops = spool_drops(&analyze, &cap.spool)?;
    let recorded: Vec<u64> = timed.iter().map(|(_, pid)| opens.get(pid).copied().unwrap_or(0)).collect();
    println!(
        "## Capture overhead: syscall loop ({iterations} × open/read/close of one file, one process, best of {runs})\n"
    );
    println!("| run | seconds | vs uncaptured | openat recorded per run | drops |");
    println!("|---|---|---|---|---|");
    println!("| uncaptured | {plain:.3} | 1.00× | – | – |");
    let ratio = captured / plain;
    let rec = recorded.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
    println!("| captured (lanner-capture defaults) | {captured:.3} | {ratio:.2}× | {rec} | {drops} |");
    // The same loop, in this run, under the hook's floor and a peer: bpftrace on the same
    // tracepoint doing nothing, then counting syscalls per command.
    for (label, script) in BPFTRACE_PEERS {
        let secs = under_bpftrace(script, || {
            (0..runs).map(|_| run_load(&load, &loop_args).map(|t| t.0)).try_fold(f64::MAX, |b, s| s.map(|s| b.min(s)))
        })?;
        println!("| {label} | {secs:.3} | {:.2}× | – | – |", secs / plain);
    }
    println!(
        "\nOverhead ratio {ratio:.2} (judged against the hook floor and the peer above, same run); capture CPU {:.2} s, peak RSS {:.0} MiB\n",
        cap.cpu_secs,
        cap.peak_rss_kib as f64 / 1024.0
    );
    for (i, r) in recorded.iter().enumerate() {
        if *r != iterations {
            fail(
                &mut failures,
                format!("syscall loop run {}: {r} openat events recorded, expected {iterations}", i + 1),
            );
        }
    }

    // 2. Exec storm: every child's execve recorded once, with the storm driver as its parent.
    let m = execs.to_string();
    let storm_args = ["storm", m.as_str(), "/bin/true"];
    let plain_storm = run_load(&load, &storm_args)?.0;
    let (cap, (storm_secs, driver, children)) = under_capture(&tmp.0, "storm", &[], || run_load(&load, &storm_args))?;
    let children: Vec<u32> = children.lines().map(|l| l.trim().parse()).collect::<Result<_, _>>()?;
    let mut seen: std::collections::HashMap<u32, Vec<(u32, String)>> = std::collections::HashMap::new();
    for l in query_lines(
        &analyze,
        &cap.spool,
        "%proc.pid %proc.ppid %proc.pname",
        "evt.type = execve and proc.exepath = /bin/true",
    )? {
        let mut f = l.split_whitespace();
        let (Some(pid), Some(ppid), Some(pname)) = (f.next(), f.next(), f.next()) else { continue };
        seen.entry(pid.parse()?).or_default().push((ppid.parse()?, pname.to_owned()));
    }
    let storm_drops = spool_drops(&analyze, &cap.spool)?;
    let mut recorded_execs = 0u64;
    let mut right_parent = 0u64;
    for c in &children {
        let evs = seen.get(c).map(Vec::as_slice).unwrap_or_default();
        recorded_execs += evs.len() as u64;
        right_parent += evs.iter().filter(|(ppid, pname)| *ppid == driver && pname == "lbload").count() as u64;
    }
    println!("## Exec storm ({execs} × fork + execve /bin/true + waitpid from one driver)\n");
    println!("| run | seconds | vs uncaptured | execve recorded | with the driver as parent | drops |");
    println!("|---|---|---|---|---|---|");
    println!("| uncaptured | {plain_storm:.3} | 1.00× | – | – | – |");
    println!(
        "| captured | {storm_secs:.3} | {:.2}× | {recorded_execs} | {right_parent} | {storm_drops} |\n",
        storm_secs / plain_storm
    );
    if children.len() as u64 != execs || recorded_execs != execs || right_parent != execs {
        fail(&mut failures, format!(
            "exec storm: {} children, {recorded_execs} execve recorded, {right_parent} with the right parent; expected {execs}",
            children.len()
        ));
    }

    // 3. Ramp: the sustained open rate at which the first drop appears (two paced generators).
    println!(
        "## Sustained event rate ramp (2 paced generators, {step_secs:.0} s per step, default 32 MiB ring buffer)\n"
    );
    println!("| target events/s | achieved events/s | openat recorded | drops | capture CPU | capture peak RSS |");
    println!("|---|---|---|---|---|---|");
    let mut best: Option<(f64, f64, f64)> = None;
    let mut first_drop: Option<f64> = None;
    let mut rate = 125_000f64;
    while rate <= 4_000_000f64 {
        let PacedStep { done, recorded, drops, achieved, cpu, rss } =
            paced_step(&tmp.0, &format!("ramp-{rate}"), &load, &analyze, rate, step_secs, &file_s, |spool, _| {
                Ok(opens_by_pid(&analyze, spool, &file)?.values().sum())
            })?;
        println!(
            "| {:.0}k | {:.0}k | {recorded} | {drops} | {cpu:.0} % of a core | {rss:.0} MiB |",
            rate / 1e3,
            achieved / 1e3
        );
        if drops == 0 && recorded != done {
            fail(&mut failures, format!("ramp at {rate:.0}/s: {done} opens, {recorded} recorded, no drop counted"));
        }
        if drops > 0 {
            first_drop = Some(achieved);
            break;
        }
        if best.is_none_or(|(r, _, _)| achieved > r) {
            best = Some((achieved, cpu, rss));
        }
        if achieved < 0.9 * rate {
            break;
        }
        rate *= 2.0;
    }
    println!();
    match first_drop {
        Some(r) => println!("First drop at a sustained {:.0}k events/s.", r / 1e3),
        None => println!("No drop up to the generators' limit on this machine."),
    }
    if let Some((r, cpu, rss)) = best {
        println!(
            "Highest drop-free rate: {:.0}k events/s, capture CPU {cpu:.0} % of a core, peak RSS {:.0} MiB \
             (target: ≤ 150 MiB at 1M events/s).",
            r / 1e3,
            rss
        );
    }

    // 4. Peak rate: the open/read/close loop as fast as it goes under `--syscalls all` (openat,
    // read and close recorded: over 1M events/s here), for capture's CPU and peak RSS there.
    let peak_iterations = 3 * iterations;
    let p = peak_iterations.to_string();
    let peak_args = ["loop", p.as_str(), file_s.as_str()];
    let (cap, (loop_secs, loop_pid, _)) =
        under_capture(&tmp.0, "peak", &["--syscalls", "all"], || run_load(&load, &peak_args))?;
    let by_type = events_by_type(&analyze, &cap.spool, &format!("proc.pid = {loop_pid}"))?;
    let events: u64 = by_type.values().sum();
    let drops = spool_drops(&analyze, &cap.spool)?;
    let rate = events as f64 / loop_secs;
    let rss = cap.peak_rss_kib as f64 / 1024.0;
    println!(
        "\n## Peak event rate (the syscall loop unpaced, {peak_iterations} × open/read/close under \
         `--syscalls all`, default 32 MiB ring buffer)\n"
    );
    println!(
        "| loop seconds | events recorded (loop pid) | recorded events/s | drops | capture CPU | capture peak RSS |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {loop_secs:.3} | {events} | {:.0}k | {drops} | {:.2} s, {:.0} % of a core | {rss:.0} MiB |\n",
        rate / 1e3,
        cap.cpu_secs,
        cap.cpu_secs / loop_secs * 100.0
    );
    println!(
        "Recorded by type: {}. Capture CPU includes the {:.1} s it is given after the loop to drain.",
        by_type.iter().map(|(t, n)| format!("{t} {n}")).collect::<Vec<_>>().join(", "),
        DRAIN_WAIT.as_secs_f64()
    );
    if rate >= 1e6 {
        println!(
            "Peak RSS at {:.2}M events/s: {rss:.0} MiB (target ≤ 150 MiB at 1M events/s: {}).",
            rate / 1e6,
            if rss <= 150.0 { "met" } else { "not met" }
        );
    } else {
        println!(
            "Recorded rate {:.0}k events/s is below 1M events/s: the RSS target is not measured by this run.",
            rate / 1e3
        );
    }
    for t in ["openat", "read", "close"] {
        let n = by_type.get(t).copied().unwrap_or(0);
        if drops == 0 && n < peak_iterations {
            fail(
                &mut failures,
                format!("peak rate: {n} {t} events recorded for the loop, {peak_iterations} made, no drop counted"),
            );
        }
    }

    // 5. A million events per second and up: one core's open/read/close loop cannot make them
    // next to capture on this 2-core machine, so two paced generators make `close(-1)` calls
    // (recorded, failing with EBADF) for capture's CPU, peak RSS and first drop at those rates.
    println!(
        "\n## A million events per second and up (2 paced generators of `close(-1)`, {step_secs:.0} s per step, \
         default 32 MiB ring buffer)\n"
    );
    println!("| target events/s | achieved events/s | close recorded (generators) | drops | capture CPU | capture peak RSS |");
    println!("|---|---|---|---|---|---|");
    let mut at_million: Option<(f64, f64)> = None;
    for rate in [1_000_000f64, 1_500_000f64, 2_000_000f64] {
        let PacedStep { done, recorded, drops, achieved, cpu, rss } =
            paced_step(&tmp.0, &format!("million-{rate}"), &load, &analyze, rate, step_secs, "-", |spool, pids| {
                let mut recorded = 0;
                for pid in pids {
                    // (Not the generator's own closes at startup: the dynamic loader's.)
                    let filter = format!("proc.pid = {pid} and evt.type = close and evt.res = EBADF");
                    recorded += events_by_type(&analyze, spool, &filter)?.get("close").copied().unwrap_or(0);
                }
                Ok(recorded)
            })?;
        println!(
            "| {:.2}M | {:.2}M | {recorded} | {drops} | {cpu:.0} % of a core | {rss:.0} MiB |",
            rate / 1e6,
            achieved / 1e6
        );
        if drops == 0 && recorded != done {
            fail(&mut failures, format!("{rate:.0}/s: {done} close(-1) made, {recorded} recorded, no drop counted"));
        }
        if drops == 0 && achieved >= 1e6 {
            at_million = Some(at_million.map_or((achieved, rss), |(a, r)| (a.max(achieved), r.max(rss))));
        }
        if drops > 0 || achieved < 0.9 * rate {
            println!(
                "\n{} at a target of {:.2}M events/s (achieved {:.2}M).",
                if drops > 0 { "First drop" } else { "Generators' limit" },
                rate / 1e6,
                achieved / 1e6
            );
            break;
        }
    }
    match at_million {
        Some((r, rss)) => println!(
            "\nDrop-free up to {:.2}M events/s; peak RSS at ≥ 1M events/s: {rss:.0} MiB (target ≤ 150 MiB: {}).",
            r / 1e6,
            if rss <= 150.0 { "met" } else { "not met" }
        ),
        None => println!("\nNo drop-free step reached 1M events/s: the RSS target is not measured by this run."),
    }
    if !failures.is_empty() {
        bail!("{} check(s) failed: {}", failures.len(), failures.join("; "));
    }
    Ok(())
}
