//! `lanner-analyze verify`: checks every chunk's hash and the chain between a capture's segments.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use lanner_analyze::replay::discover;
use lanner_formats::archive::verify;

use super::EXIT_DATA_ERROR;

/// `lanner-analyze verify`'s arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Archive segments or directories, in capture order (directories are read in name order).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// Runs `lanner-analyze verify`.
pub fn run(args: Args) -> Result<ExitCode> {
    let Args { paths } = args;
    let files = discover(&paths)?;
    let findings = verify(&files);
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
