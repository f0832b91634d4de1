//! `lanner-analyze merge`: the summaries (and alert files) of a split backtest, as one.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use lanner_analyze::replay::ReplaySummary;
use lanner_analyze::shard;

/// `lanner-analyze merge`'s arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Alert files (Falco JSON lines, from `replay -o file:…`) to merge in time order.
    #[arg(long = "alerts", value_name = "FILE")]
    pub alerts: Vec<PathBuf>,
    /// Where the merged alerts go (default: not written).
    #[arg(long, value_name = "FILE")]
    pub alerts_out: Option<PathBuf>,
    /// Where the merged summary goes (default: stdout).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Summaries written by `replay --summary-out`: files, or `s3://BUCKET/PREFIX` for every summary under it.
    #[arg(required = true)]
    pub summaries: Vec<PathBuf>,
}

/// Runs `lanner-analyze merge`.
pub fn run(args: Args) -> Result<ExitCode> {
    let mut parts = Vec::new();
    for p in &args.summaries {
        // s3://BUCKET/PREFIX: every summary a backtest's shards wrote under it.
        let docs = match p.to_str().filter(|s| lanner_objectstore::StoreUrl::is_store_url(s)) {
            Some(url) => lanner_objectstore::get_under(url)?,
            None => vec![(p.display().to_string(), std::fs::read(p).with_context(|| format!("{}", p.display()))?)],
        };
        for (name, bytes) in docs {
            let s: ReplaySummary =
                serde_json::from_slice(&bytes).with_context(|| format!("{name}: not a replay summary"))?;
            parts.push((name, s));
        }
    }
    let merged = shard::merge(&parts)?;
    let text = serde_json::to_string_pretty(&merged)? + "\n";
    match &args.output {
        Some(out) => std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?,
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    if let Some(out) = &args.alerts_out {
        let n = merge_alerts(&args.alerts, out)?;
        eprintln!("lanner-analyze: {n} alert(s) from {} file(s) into {}", args.alerts.len(), out.display());
    } else if !args.alerts.is_empty() {
        bail!("--alerts needs --alerts-out FILE");
    }
    eprintln!(
        "lanner-analyze: {} summaries: {} events in {} segment(s); {} alert(s); {} kernel drop(s) recorded",
        parts.len(),
        merged.events,
        merged.segments,
        merged.alerts(),
        merged.drops
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes every alert of `files` to `out`, in time order (ties keep file order); returns how many.
fn merge_alerts(files: &[PathBuf], out: &std::path::Path) -> Result<usize> {
    let mut alerts: Vec<(String, String)> = Vec::new();
    for f in files {
        let r = std::io::BufReader::new(std::fs::File::open(f).with_context(|| format!("{}", f.display()))?);
        for (i, line) in r.lines().enumerate() {
            let line = line.with_context(|| format!("{}:{}", f.display(), i + 1))?;
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value =
                serde_json::from_str(&line).with_context(|| format!("{}:{}: not a JSON alert", f.display(), i + 1))?;
            let Some(time) = v.get("time").and_then(|t| t.as_str()) else {
                bail!("{}:{}: the alert has no \"time\"", f.display(), i + 1);
            };
            // RFC 3339 in UTC with nanoseconds, as every Lanner alert carries: sorts as text.
            alerts.push((time.to_owned(), line));
        }
    }
    alerts.sort_by(|a, b| a.0.cmp(&b.0));
    let mut w = std::io::BufWriter::new(std::fs::File::create(out).with_context(|| format!("{}", out.display()))?);
    for (_, line) in &alerts {
        writeln!(w, "{line}")?;
    }
    w.flush()?;
    Ok(alerts.len())
}
