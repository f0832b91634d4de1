//! `lanner-analyze follow`: evaluates a live spool as chunks are sealed, with a checkpoint to resume from.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::{close_sinks, DetectArgs, EXIT_USAGE};

/// `lanner-analyze follow`'s arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub detect: DetectArgs,
    /// Checkpoint file (default: SPOOL/.lanner-follow.checkpoint).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// How often to look for new chunks.
    #[arg(long, default_value = "50ms", value_parser = humantime::parse_duration)]
    pub poll: std::time::Duration,
    /// The capture's spool directory.
    pub spool: PathBuf,
}

/// Runs `lanner-analyze follow`.
pub fn run(args: Args) -> Result<ExitCode> {
    let Args { detect, checkpoint, poll, spool } = args;
    let checkpoint = checkpoint.unwrap_or_else(|| spool.join(".lanner-follow.checkpoint"));
    // Rewind file outputs before opening them for appending.
    if let Some(cp) = lanner_analyze::follow::Checkpoint::load(&checkpoint)? {
        lanner_analyze::follow::rewind_outputs(&cp)?;
    }
    let Some((rules, mut sinks)) = detect.open()? else { return Ok(ExitCode::from(EXIT_USAGE)) };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, std::sync::Arc::clone(&stop))?;
    }
    eprintln!("lanner-analyze: following {} (checkpoint {})", spool.display(), checkpoint.display());
    let n = lanner_analyze::follow::follow(&rules, &spool, &checkpoint, &mut sinks, poll, &stop)?;
    eprintln!("lanner-analyze: stopped after {n} alert(s)");
    close_sinks(&mut sinks)?;
    Ok(ExitCode::SUCCESS)
}
