//! `lanner-analyze replay`: rules over archive segments (or `.scap` captures), alerts to the outputs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use lanner_analyze::replay::{replay, Progress, ReplaySummary};
use lanner_analyze::rules::RuleMatching;
use lanner_analyze::scap_input;
use lanner_analyze::segments::{discover_selected, local_paths, Segment, Selection};
use lanner_analyze::shard::Shard;

use super::{close_sinks, DetectArgs, WindowArgs, EXIT_DATA_ERROR, EXIT_USAGE};

/// `lanner-analyze replay`'s arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub detect: DetectArgs,
    /// Alert for the first matching rule per event (Falco's default) or for all of them.
    #[arg(long, value_enum, default_value = "first")]
    pub rule_matching: MatchingArg,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub window: WindowArgs,
    /// Replay only shard K of N (0-based) of the segments, chosen by file name, so that N workers
    /// split a backtest without overlap; `env/N` takes K from JOB_COMPLETION_INDEX (Kubernetes
    /// Indexed Jobs) or AWS_BATCH_JOB_ARRAY_INDEX (AWS Batch array jobs).
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// Also write the summary as JSON (counts per rule, node, container and process; time range;
    /// events; drops), for `lanner-analyze merge`: a file, or an object (`s3://BUCKET/KEY`).
    #[arg(long, value_name = "FILE")]
    pub summary_out: Option<PathBuf>,
    /// Only this node's segments (inputs in object storage).
    #[arg(long)]
    pub node: Option<String>,
    /// Only this cluster's segments (inputs in object storage).
    #[arg(long)]
    pub cluster: Option<String>,
    /// Archive segments (`.lnr`), directories holding them, `.scap` captures, or
    /// `s3://BUCKET/PREFIX` where `lanner-capture --ship` uploads.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// Runs `lanner-analyze replay`.
pub fn run(args: Args) -> Result<ExitCode> {
    let Args { detect, rule_matching, threads, window, shard, summary_out, node, cluster, paths } = args;
    let shard = shard.map(|s| Shard::parse(&s, |v| std::env::var(v).ok())).transpose()?;
    if let Some(n) = threads {
        rayon::ThreadPoolBuilder::new().num_threads(n.max(1)).build_global().context("starting worker threads")?;
    }
    let Some((mut rules, mut sinks)) = detect.open()? else { return Ok(ExitCode::from(EXIT_USAGE)) };
    rules.rule_matching = match rule_matching {
        MatchingArg::First => RuleMatching::First,
        MatchingArg::All => RuleMatching::All,
    };
    let selection = Selection { window: window.into(), node, cluster };
    // A shard keeps the segments (and .scap files) its index owns, by name.
    let mut segments = discover_selected(&paths, &selection)?;
    if let Some(s) = shard {
        segments.retain(|seg| s.owns(&seg.path()));
    }
    // Local .scap captures are imported; everything else is read as it is.
    let local: Vec<PathBuf> = local_paths(&segments).into_iter().map(PathBuf::from).collect();
    let inputs = scap_input::prepare(&local)?;
    let mut imported = inputs.paths.iter();
    let segments: Vec<Segment> = segments
        .into_iter()
        .map(|s| match s {
            Segment::File(_) => Segment::File(imported.next().expect("prepare keeps one path per input").clone()),
            other => other,
        })
        .collect();
    let mut summary = replay(&rules, &segments, window.into(), &mut sinks, &Bar::new())?;
    summary.shard = shard;
    report(&summary);
    if let Some((gets, bytes, size)) = lanner_analyze::segments::object_traffic(&segments) {
        eprintln!(
            "lanner-analyze: object storage: {gets} GET(s), {bytes} bytes read of the {size} bytes of {} segment(s) selected by key",
            segments.len()
        );
    }
    if let Some(out) = summary_out {
        let text = serde_json::to_string_pretty(&summary)? + "\n";
        match out.to_str().filter(|s| lanner_objectstore::StoreUrl::is_store_url(s)) {
            Some(url) => lanner_objectstore::put_url(url, text.into_bytes())?,
            None => std::fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?,
        }
    }
    close_sinks(&mut sinks)?;
    Ok(if summary.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_DATA_ERROR) })
}

/// `--rule-matching` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum MatchingArg {
    /// The first matching rule in file order.
    First,
    /// Every matching rule.
    All,
}

/// Prints the replay summary on stderr.
fn report(s: &ReplaySummary) {
    for w in &s.warnings {
        eprintln!("lanner-analyze: warning: {w}");
    }
    for e in &s.errors {
        eprintln!("lanner-analyze: error: {e}");
    }
    let range = s.t_range.map_or(String::new(), |(a, b)| {
        let f = |t: u64| chrono::DateTime::from_timestamp_nanos(t as i64).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        format!(", {} .. {}", f(a), f(b))
    });
    let pruned = if s.chunks_pruned > 0 {
        format!(" ({} chunk(s) skipped by the index)", s.chunks_pruned)
    } else {
        String::new()
    };
    eprintln!(
        "lanner-analyze: {} events in {} chunk(s){pruned} of {} segment(s){range}; {} alert(s); {} kernel drop(s) recorded",
        s.events,
        s.chunks,
        s.segments,
        s.alerts(),
        s.drops
    );
    let top = |m: Option<&std::collections::BTreeMap<String, u64>>| {
        let mut v: Vec<(&String, &u64)> = m.map(|m| m.iter().collect()).unwrap_or_default();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        v.iter().take(3).map(|(p, n)| format!("{p} {n}")).collect::<Vec<_>>().join(", ")
    };
    for (rule, n) in &s.hits {
        eprintln!(
            "lanner-analyze:   {n:>6}  {rule}  (top processes: {}; containers: {})",
            top(s.hits_by_process.get(rule)),
            top(s.hits_by_container.get(rule))
        );
    }
}

/// A progress bar on a terminal only, never in pipes or files.
struct Bar(indicatif::ProgressBar);

impl Bar {
    fn new() -> Self {
        if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            return Self(indicatif::ProgressBar::hidden());
        }
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {bytes}/{total_bytes} {msg} ({bytes_per_sec}, ETA {eta})",
            )
            .expect("valid template"),
        );
        Self(b)
    }
}

impl Progress for Bar {
    fn start(&self, total_bytes: u64) {
        self.0.set_length(total_bytes);
    }

    fn advance(&self, bytes: u64, events: u64) {
        self.0.inc(bytes);
        self.0.set_message(format!("{events} events"));
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}
