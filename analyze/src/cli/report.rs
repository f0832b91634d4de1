//! `lanner-analyze report`: one self-contained HTML page about an incident.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use lanner_analyze::report::{self, Selection};
use lanner_analyze::scap_input;

use super::{load_rules, WindowArgs, EXIT_DATA_ERROR, EXIT_USAGE};

/// `lanner-analyze report`'s arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Rules file (repeatable, loaded in order); default: the built-in ruleset.
    #[arg(long = "rules", short = 'r')]
    pub rules: Vec<PathBuf>,
    /// Load the built-in rules before the --rules files.
    #[arg(long)]
    pub default_rules: bool,
    #[command(flatten)]
    pub window: WindowArgs,
    /// Only this process and its descendants.
    #[arg(long, conflicts_with_all = ["container", "alert"])]
    pub pid: Option<u32>,
    /// Only the processes of this container (id or prefix).
    #[arg(long, conflicts_with = "alert")]
    pub container: Option<String>,
    /// Only the processes that fired this rule, and their descendants.
    #[arg(long, value_name = "RULE")]
    pub alert: Option<String>,
    /// The HTML file to write.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Archive segments (`.lnr`), directories holding them, or `.scap` captures.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// Runs `lanner-analyze report`.
pub fn run(args: Args) -> Result<ExitCode> {
    let Some(rules) = load_rules(&args.rules, args.default_rules)? else { return Ok(ExitCode::from(EXIT_USAGE)) };
    let (selection, title) = match (&args.pid, &args.container, &args.alert) {
        (Some(p), _, _) => (Selection::Pid(*p), format!("process {p} and its descendants")),
        (_, Some(c), _) => (Selection::Container(c.clone()), format!("container {c}")),
        (_, _, Some(r)) => (Selection::Alert(r.clone()), format!("the processes that fired \u{201c}{r}\u{201d}")),
        _ => (Selection::All, "everything recorded".to_owned()),
    };
    let inputs = scap_input::prepare(&args.paths)?;
    let report = report::collect(&rules, &inputs.paths, args.window.into(), &selection)?;
    let names: Vec<String> = args.paths.iter().map(|p| p.display().to_string()).collect();
    let page = report::render(&report, &format!("{title}, from {}", names.join(", ")));
    std::fs::write(&args.output, page).with_context(|| format!("writing {}", args.output.display()))?;
    for p in &report.problems {
        eprintln!("lanner-analyze: warning: {p}");
    }
    eprintln!(
        "lanner-analyze: wrote {}: {} events, {} alert(s), {} process(es), {} kernel drop(s)",
        args.output.display(),
        report.events,
        report.alerts_total,
        report.processes.len(),
        report.drops
    );
    let damaged = report.integrity.iter().any(|s| !s.ok);
    Ok(if damaged { ExitCode::from(EXIT_DATA_ERROR) } else { ExitCode::SUCCESS })
}
