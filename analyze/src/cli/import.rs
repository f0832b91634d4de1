//! `lanner-analyze import`: a sysdig/Falco `.scap` capture (plain or gzip'd) as a Lanner archive segment.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use lanner_analyze::scap_input;

/// `lanner-analyze import`'s arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The capture to convert.
    pub input: PathBuf,
    /// The segment to write (must not exist).
    #[arg(short, long)]
    pub output: PathBuf,
}

/// Runs `lanner-analyze import`.
pub fn run(args: Args) -> Result<ExitCode> {
    let Args { input, output } = args;
    if output.exists() {
        anyhow::bail!("{} already exists; not overwriting it", output.display());
    }
    let stats = scap_input::import_file(&input, &output)?;
    eprintln!("lanner-analyze: {}", scap_input::describe(&input, &stats));
    eprintln!("lanner-analyze: wrote {}", output.display());
    Ok(ExitCode::SUCCESS)
}
