//! `lanner-analyze stats`: event counts by syscall, process, container and user; time range; drops.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use lanner_analyze::inspect;
use lanner_analyze::scap_input;

use super::{report_problems, WindowArgs};

/// `lanner-analyze stats`'s arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub window: WindowArgs,
    /// Archive segments or directories.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// Runs `lanner-analyze stats`.
pub fn run(args: Args) -> Result<ExitCode> {
    let Args { json, window, paths } = args;
    let inputs = scap_input::prepare(&paths)?;
    let paths = inputs.paths.clone();
    let (v, problems) = inspect::stats(&paths, window.into())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        // Times as JSON values (quoted, or null), as this line has always printed them.
        let (first, last) = (serde_json::to_string(&v.first)?, serde_json::to_string(&v.last)?);
        println!("events: {}  drops: {}  first: {first}  last: {last}", v.events, v.drops);
        for (title, rows) in [
            ("by syscall", &v.by_syscall),
            ("by process", &v.by_process),
            ("by container", &v.by_container),
            ("by uid", &v.by_uid),
        ] {
            println!("{title}:");
            for row in rows.iter().take(20) {
                println!("  {:>10}  {}", row.events, row.name);
            }
        }
    }
    Ok(report_problems(&problems))
}
