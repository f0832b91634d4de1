//! `cargo xtask bench capture-ab`: this build's capture against another build's, in one run.
//! The loop and the exec storm alternate the two captures round by round (so drift on a noisy
//! VM hits both), and the mixed workload is recorded once by each for bytes per event. The
//! baseline is a directory holding another build's `lanner-capture` and `lanner-analyze`
//! (`LANNER_BENCH_BASELINE`), each build's archive read by its own analyze.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::{mixed_workload, run_load, stats_count, TempDir, DRAIN_WAIT};

/// Seconds of `load args` under a capture from `bin` (with its spool left in `spool`).
fn timed_under(bin: &Path, spool: &Path, load: &Path, args: &[&str]) -> Result<f64> {
    let cap = super::super::start_capture(bin, spool, &[])?;
    let secs = run_load(load, args).map(|t| t.0);
    std::thread::sleep(DRAIN_WAIT);
    super::super::stop_capture(cap)?;
    secs
}

/// Bytes of every file in `dir`.
fn dir_bytes(dir: &Path) -> Result<u64> {
    let mut n = 0;
    for e in std::fs::read_dir(dir)? {
        n += e?.metadata()?.len();
    }
    Ok(n)
}

/// Runs the benchmark.
pub fn run() -> Result<()> {
    if !super::super::is_root() {
        bail!("the capture benchmark loads eBPF programs: run it as root");
    }
    let baseline =
        PathBuf::from(std::env::var("LANNER_BENCH_BASELINE").context(
            "set LANNER_BENCH_BASELINE to a directory with another build's lanner-capture and lanner-analyze",
        )?);
    for b in ["lanner-capture", "lanner-analyze"] {
        if !baseline.join(b).is_file() {
            bail!("{}: no {b} there", baseline.display());
        }
    }
    super::super::run(super::super::cargo().args([
        "build",
        "--release",
        "-p",
        "lanner-capture",
        "-p",
        "lanner-analyze",
    ]))?;
    let this = super::super::target_dir().join("release");
    let tmp = TempDir(std::env::temp_dir().join(format!("lanner-bench-ab-{}", std::process::id())));
    std::fs::create_dir_all(&tmp.0)?;
    let (load, _file, file_s) = super::build_load(&tmp.0)?;
    let builds = [("this build", this.as_path()), ("baseline", baseline.as_path())];
    println!("## Capture A/B: this build against {} (alternated rounds, best of 3)\n", baseline.display());
    println!("| workload | uncaptured | this build | baseline | this ÷ baseline |");
    println!("|---|---|---|---|---|");
    let workloads: [(&str, Vec<&str>); 2] = [
        ("syscall loop (1M × open/read/close)", vec!["loop", "1000000", file_s.as_str()]),
        ("exec storm (2,000 × fork + execve /bin/true)", vec!["storm", "2000", "/bin/true"]),
    ];
    for (w, (name, args)) in workloads.iter().enumerate() {
        let mut plain = f64::MAX;
        let mut best = [f64::MAX; 2];
        for round in 0..3 {
            plain = plain.min(run_load(&load, args)?.0);
            // Alternate which build goes first.
            for k in [round % 2, 1 - round % 2] {
                let spool = tmp.0.join(format!("w{w}-r{round}-b{k}"));
                best[k] = best[k].min(timed_under(builds[k].1, &spool, &load, args)?);
                std::fs::remove_dir_all(&spool)?;
            }
        }
        println!(
            "| {name} | {plain:.3} s | {:.3} s ({:.2}×) | {:.3} s ({:.2}×) | **{:.3}** |",
            best[0],
            best[0] / plain,
            best[1],
            best[1] / plain,
            best[0] / best[1]
        );
    }
    println!("\n| mixed workload (C build, find, tar, 3,000 execs) | events | archive bytes | bytes/event |");
    println!("|---|---|---|---|");
    let mut per_event = [0f64; 2];
    for (k, (label, bin)) in builds.iter().enumerate() {
        let spool = tmp.0.join(format!("mixed-{k}"));
        let work = tmp.0.join(format!("work-{k}"));
        std::fs::create_dir_all(&work)?;
        let cap = super::super::start_capture(bin, &spool, &[])?;
        let res = mixed_workload(&work);
        std::thread::sleep(DRAIN_WAIT);
        super::super::stop_capture(cap)?;
        res?;
        let events = stats_count(&bin.join("lanner-analyze"), &spool, "events")?;
        let bytes = dir_bytes(&spool)?;
        per_event[k] = bytes as f64 / events.max(1) as f64;
        println!("| {label} | {events} | {bytes} | {:.3} |", per_event[k]);
    }
    println!("\nbytes/event, this ÷ baseline: **{:.3}**", per_event[0] / per_event[1]);
    Ok(())
}
