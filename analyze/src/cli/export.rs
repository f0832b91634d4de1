//! `lanner-analyze export`: Lanner archive segments as a `.scap` capture that sysdig and Falco read.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use lanner_analyze::segments::{discover, Segment};

/// `lanner-analyze export`'s arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output format (only `scap` for now).
    #[arg(long, value_enum, default_value = "scap")]
    pub format: ExportFormat,
    /// The file to write (must not exist).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Archive segments or directories, in capture order.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// Runs `lanner-analyze export`.
pub fn run(args: Args) -> Result<ExitCode> {
    let Args { format: ExportFormat::Scap, output, paths } = args;
    if output.exists() {
        anyhow::bail!("{} already exists; not overwriting it", output.display());
    }
    let mut files = Vec::new();
    for s in discover(&paths)? {
        match s {
            Segment::File(p) => files.push(p),
            Segment::Object(_) => anyhow::bail!("{}: export reads local segments only", s.path().display()),
        }
    }
    let out = std::fs::File::create_new(&output).with_context(|| format!("creating {}", output.display()))?;
    let stats = lanner_scap::export(&files, std::io::BufWriter::new(out))
        .map_err(|e| anyhow::anyhow!("exporting to {}: {e}", output.display()))?;
    eprintln!(
        "lanner-analyze: wrote {} ({} events as {} scap events, {} threads)",
        output.display(),
        stats.events,
        stats.scap_events,
        stats.threads
    );
    Ok(ExitCode::SUCCESS)
}

/// Formats `export` writes.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ExportFormat {
    /// sysdig/Falco capture file.
    Scap,
}
