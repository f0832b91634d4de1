//! `cargo xtask bench report`: `lanner-analyze report` over a ≥ 1M-event archive of a real
//! capture with many processes: its time against `replay`'s on the same input, the page's size,
//! and how long headless Chromium takes to load it against an empty page.

use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Result};

use super::{prepare, replicate, stats_count};

/// Best wall-clock seconds of `runs` runs of `cmd`, which must exit with one of `ok`.
fn best_of(runs: usize, ok: &[i32], mut cmd: impl FnMut() -> Command) -> Result<f64> {
    let mut best = f64::MAX;
    for _ in 0..runs {
        let t = Instant::now();
        let out = cmd().stdout(Stdio::null()).stderr(Stdio::piped()).output()?;
        let secs = t.elapsed().as_secs_f64();
        if !out.status.code().is_some_and(|c| ok.contains(&c)) {
            bail!("{:?} failed: {}", cmd(), String::from_utf8_lossy(&out.stderr));
        }
        best = best.min(secs);
    }
    Ok(best)
}

/// Headless Chromium opening `url` and printing its DOM once its scripts ran.
fn chromium(url: &str) -> Command {
    let mut c = Command::new("chromium");
    c.args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", url]);
    c
}

/// Runs the benchmark.
pub fn run() -> Result<()> {
    let (tmp, spool, _) = prepare("report")?;
    let analyze = super::super::target_dir().join("release/lanner-analyze");
    let one = stats_count(&analyze, &spool, "events")?;
    let many = tmp.0.join("many");
    // Copies of the same capture until the archive holds at least 1M events.
    let copies = 1_000_000u64.div_ceil(one.max(1));
    replicate(&spool, &many, |_| copies)?;
    let total = stats_count(&analyze, &many, "events")?;
    let html = tmp.0.join("report.html");
    let empty = tmp.0.join("empty.html");
    std::fs::write(&empty, "<!doctype html><title>empty</title><p>empty</p>")?;
    let replay = best_of(3, &[0], || {
        let mut c = Command::new(&analyze);
        c.args(["replay", "-o", &format!("file:{}", tmp.0.join("alerts.json").display())]).arg(&many);
        c
    })?;
    // Exit 1 is expected: `verify` finds the copies of one capture run duplicated (same capture
    // id and sequence), and the page says so in its integrity table.
    let report = best_of(3, &[0, 1], || {
        let mut c = Command::new(&analyze);
        c.arg("report").arg("-o").arg(&html).arg(&many);
        c
    })?;
    let page = std::fs::read_to_string(&html)?;
    // Kept for a look after the run (the temporary directory goes away).
    let kept = super::super::target_dir().join("bench-report.html");
    std::fs::copy(&html, &kept)?;
    eprintln!("xtask: the page is kept at {}", kept.display());
    let (rows, procs) = (page.matches("<tr").count(), page.matches("data-pid=").count());
    let load = best_of(3, &[0], || chromium(&format!("file://{}", html.display())))?;
    let blank = best_of(3, &[0], || chromium(&format!("file://{}", empty.display())))?;
    println!(
        "## `report` on {total} events ({copies} copies of a real {one}-event capture with a C build, find, tar and an exec storm)\n"
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!("| `replay` (built-in rules), best of 3 | {replay:.3} s |");
    println!("| `report`, best of 3 | {report:.3} s ({:.2}× replay) |", report / replay);
    println!("| page size | {} bytes ({rows} table rows, {procs} process references) |", page.len());
    println!("| headless Chromium, report page, best of 3 | {load:.2} s |");
    println!("| headless Chromium, empty page, best of 3 | {blank:.2} s |");
    println!("| the page's own load time (difference) | {:.2} s |", load - blank);
    Ok(())
}
