//! `lanner-analyze`: runs Falco-compatible rules over Lanner archives. This file only defines
//! the command line's shape and dispatches; each subcommand lives in `cli/`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};

mod cli;

/// Run Falco-compatible detection rules over Lanner archives.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Evaluate rules over archive segments and print alerts as Falco JSON lines.
    ///
    /// Example: `lanner-analyze replay --rules my_rules.yaml /var/lib/lanner/spool`
    Replay(cli::replay::Args),
    /// Print events matching a filter, formatted with %field tokens (like `sysdig -r FILE -p FMT FILTER`).
    ///
    /// Example: `lanner-analyze query -p "%evt.time %proc.name %fd.name" "fd.name startswith /etc" spool/`
    Query(cli::query::Args),
    /// Show who spawned what, with command lines, exec times and exits.
    ///
    /// Example: `lanner-analyze proctree --pid 4242 spool/`
    Proctree(cli::proctree::Args),
    /// Every event of one process (or all), in time order.
    ///
    /// Example: `lanner-analyze timeline --pid 4242 spool/`
    Timeline(cli::timeline::Args),
    /// Event counts by syscall, process and user; time range; drops.
    ///
    /// Example: `lanner-analyze stats --json spool/`
    Stats(cli::stats::Args),
    /// Print a shell completion script.
    ///
    /// Example: `lanner-analyze completions bash > /etc/bash_completion.d/lanner-analyze`
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write man pages (one per command) into a directory.
    #[command(hide = true)]
    Man {
        /// Output directory.
        dir: PathBuf,
    },
    /// Rule file tools.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Follow a live capture spool: evaluate new chunks as they are sealed, across rotation and
    /// retention, with a checkpoint so that a restart resumes where it stopped.
    ///
    /// With file outputs, alerts are delivered exactly once across restarts (the files are cut
    /// back to the checkpoint); stdout is at-least-once. Stops on SIGINT/SIGTERM.
    ///
    /// Example: `lanner-analyze follow -o file:/var/log/lanner/alerts.json /var/lib/lanner/spool`
    Follow(cli::follow::Args),
    /// Check archive integrity: every chunk's hash, and the chain between the segments of a capture.
    ///
    /// Exit status 0 when every segment is ok or only has a torn tail (the writer was killed),
    /// 1 when anything was altered, removed, reordered or truncated.
    ///
    /// Example: `lanner-analyze verify /var/lib/lanner/spool`
    Verify(cli::verify::Args),
    /// Convert Lanner archive segments into a `.scap` capture that sysdig and Falco read.
    ///
    /// Example: `lanner-analyze export --format scap spool/ -o capture.scap`
    Export(cli::export::Args),
    /// Convert a sysdig/Falco `.scap` capture (plain or gzip'd) into a Lanner archive segment.
    ///
    /// Example: `lanner-analyze import capture.scap -o capture.lnr`
    Import(cli::import::Args),
    /// Combine the summaries (and alert files) of a backtest split with `replay --shard K/N`;
    /// fails when a shard is missing or given twice.
    ///
    /// Example: `lanner-analyze merge --alerts a0.json --alerts a1.json --alerts-out alerts.json s0.json s1.json`
    Merge(cli::merge::Args),
    /// Write one self-contained HTML page about an incident: summary, alerts, a timeline, the
    /// process tree, file, network and privilege activity, and the archive's integrity.
    ///
    /// Example: `lanner-analyze report --pid 4242 /var/lib/lanner/spool -o incident.html`
    Report(cli::report::Args),
}

#[derive(Subcommand, Debug)]
enum RulesCommand {
    /// Load rule files and report each rule as ok / disabled / unsupported, with warnings.
    ///
    /// Exit status 0 when the files load, 2 when they do not.
    ///
    /// Example: `lanner-analyze rules check falco_rules.yaml my_overrides.yaml`
    Check {
        /// Print a JSON report instead of text.
        #[arg(long)]
        json: bool,
        /// Rule files, loaded in order (default: the built-in rules).
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    // Like other Unix filters, stop quietly when the reader of our output goes away (`| head`).
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    init_log();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lanner-analyze: error: {e:#}");
            ExitCode::from(cli::EXIT_USAGE)
        }
    }
}

/// The library reports through `log`; its messages print as `lanner-analyze: error: …`,
/// `lanner-analyze: warning: …` or `lanner-analyze: …` on stderr (RUST_LOG changes the level).
fn init_log() {
    use std::io::Write;
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("lanner_analyze=info"))
        .format(|buf, record| match record.level() {
            log::Level::Error => writeln!(buf, "lanner-analyze: error: {}", record.args()),
            log::Level::Warn => writeln!(buf, "lanner-analyze: warning: {}", record.args()),
            _ => writeln!(buf, "lanner-analyze: {}", record.args()),
        })
        .init();
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Replay(args) => cli::replay::run(args),
        Command::Query(args) => cli::query::run(args),
        Command::Proctree(args) => cli::proctree::run(args),
        Command::Timeline(args) => cli::timeline::run(args),
        Command::Stats(args) => cli::stats::run(args),
        Command::Follow(args) => cli::follow::run(args),
        Command::Verify(args) => cli::verify::run(args),
        Command::Export(args) => cli::export::run(args),
        Command::Import(args) => cli::import::run(args),
        Command::Merge(args) => cli::merge::run(args),
        Command::Report(args) => cli::report::run(args),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "lanner-analyze", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), &dir)
                .with_context(|| format!("writing man pages to {}", dir.display()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Rules { command: RulesCommand::Check { json, files } } => {
            let sources = cli::read_sources(&files)?;
            Ok(if cli::rules_check::run(&sources, json) { ExitCode::SUCCESS } else { ExitCode::from(cli::EXIT_USAGE) })
        }
    }
}
