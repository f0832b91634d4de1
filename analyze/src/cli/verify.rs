//! `lanner-analyze verify`: checks every chunk's hash and the chain between a capture's segments.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use lanner_analyze::segments::{discover_selected, Selection};
use lanner_formats::archive::verify_opened;

use super::EXIT_DATA_ERROR;

/// `lanner-analyze verify`'s arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only this node's segments (inputs in object storage).
    #[arg(long)]
    pub node: Option<String>,
    /// Only this cluster's segments (inputs in object storage).
    #[arg(long)]
    pub cluster: Option<String>,
    /// Archive segments or directories, in capture order (directories are read in name order),
    /// or `s3://BUCKET/PREFIX` (each node's chain is checked in key order).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// Runs `lanner-analyze verify`.
pub fn run(args: Args) -> Result<ExitCode> {
    let Args { node, cluster, paths } = args;
    let files = discover_selected(&paths, &Selection { node, cluster, ..Default::default() })?;
    // One segment is held at a time: a bucket's segments are fetched as they are checked.
    let findings = verify_opened(files.iter().map(|s| (s.path(), s.open())));
    let mut problems = 0;
    for f in &findings {
        if f.is_problem() {
            problems += 1;
            println!("FAIL  {f}");
        } else {
            println!("ok    {f}");
        }
    }
    println!("{} segment(s) checked, {problems} problem(s)", files.len());
    Ok(if problems == 0 { ExitCode::SUCCESS } else { ExitCode::from(EXIT_DATA_ERROR) })
}
