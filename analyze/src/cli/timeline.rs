//! `lanner-analyze timeline`: every event of one process (or all), in time order.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use lanner_analyze::inspect;
use lanner_analyze::rules::output::OutputFormat;
use lanner_analyze::rules::RuleSet;
use lanner_analyze::scap_input;

use super::{report_problems, WindowArgs};

/// `lanner-analyze timeline`'s arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only this process.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Only this container (`host` for processes outside containers).
    #[arg(long)]
    pub container: Option<String>,
    #[command(flatten)]
    pub window: WindowArgs,
    /// Archive segments or directories.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// Runs `lanner-analyze timeline`.
pub fn run(args: Args) -> Result<ExitCode> {
    let Args { pid, container, window, paths } = args;
    let inputs = scap_input::prepare(&paths)?;
    let paths = inputs.paths.clone();
    let fmt = OutputFormat::parse("%evt.time %proc.pid %proc.name %evt.type %evt.res %evt.args").expect("valid");
    let mut conds = Vec::new();
    if let Some(p) = pid {
        conds.push(format!("proc.pid = {p}"));
    }
    if let Some(c) = &container {
        conds.push(format!("container.id = {}", serde_json::to_string(c)?));
    }
    let filter = (!conds.is_empty())
        .then(|| RuleSet::compile_filter(&[], "<timeline>", &conds.join(" and ")).expect("a valid filter"));
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (_, problems) = inspect::query(&paths, window.into(), filter.as_ref(), &fmt, false, &mut out)?;
    Ok(report_problems(&problems))
}
