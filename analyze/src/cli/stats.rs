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
        println!("events: {}  drops: {}  first: {}  last: {}", v["events"], v["drops"], v["first"], v["last"]);
        for (title, key) in [
            ("by syscall", "by_syscall"),
            ("by process", "by_process"),
            ("by container", "by_container"),
            ("by uid", "by_uid"),
        ] {
            println!("{title}:");
            for row in v[key].as_array().into_iter().flatten().take(20) {
                println!("  {:>10}  {}", row["events"], row["name"].as_str().unwrap_or(""));
            }
        }
    }
    Ok(report_problems(&problems))
}
