//! `lanner-analyze proctree`: who spawned what, with command lines, exec times and exits.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use lanner_analyze::inspect;
use lanner_analyze::scap_input;

use super::{report_problems, WindowArgs};

/// `lanner-analyze proctree`'s arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only this process and its descendants.
    #[arg(long)]
    pub pid: Option<u32>,
    #[command(flatten)]
    pub window: WindowArgs,
    /// Archive segments or directories.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// Runs `lanner-analyze proctree`.
pub fn run(args: Args) -> Result<ExitCode> {
    let Args { pid, window, paths } = args;
    let inputs = scap_input::prepare(&paths)?;
    let paths = inputs.paths.clone();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let problems = inspect::proctree(&paths, window.into(), pid, &mut out)?;
    Ok(report_problems(&problems))
}
