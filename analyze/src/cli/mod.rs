//! The `lanner-analyze` command line: one file per subcommand, and here what several share
//! (time window, rules and outputs, exit codes, how problems are reported). The library returns
//! data; printing happens here.

pub mod export;
pub mod follow;
pub mod import;
pub mod merge;
pub mod proctree;
pub mod query;
pub mod replay;
pub mod report;
pub mod rules_check;
pub mod stats;
pub mod timeline;
pub mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use lanner_analyze::replay::Window;
use lanner_analyze::rules::{RuleSet, Source, DEFAULT_RULES};
use lanner_analyze::sinks::{AlertFormat, OutputConfig, OutputKind, OutputSpec};

/// Exit code when some data could not be read (other data was still analyzed).
pub const EXIT_DATA_ERROR: u8 = 1;
/// Exit code for unusable rules or arguments.
pub const EXIT_USAGE: u8 = 2;

/// `--since` / `--until`, shared by the commands that read archives.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct WindowArgs {
    /// Only events at or after this time (RFC 3339, e.g. 2026-11-26T15:00:00Z, or unix ns).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<u64>,
    /// Only events at or before this time (RFC 3339 or unix ns).
    #[arg(long, value_parser = parse_time)]
    pub until: Option<u64>,
}

impl From<WindowArgs> for Window {
    fn from(w: WindowArgs) -> Self {
        Window { since: w.since, until: w.until }
    }
}

/// The opened alert outputs.
pub type Sinks = Vec<Box<dyn lanner_analyze::sinks::Sink>>;

/// Rules and alert outputs, shared by `replay` and `follow`.
#[derive(clap::Args, Debug)]
pub struct DetectArgs {
    /// Rules file (repeatable, loaded in order); default: the built-in ruleset.
    #[arg(long = "rules", short = 'r')]
    pub rules: Vec<PathBuf>,
    /// Load the built-in rules before the --rules files.
    #[arg(long)]
    pub default_rules: bool,
    /// Where alerts go: `stdout`, `file:PATH` or `cloudwatch:GROUP[:STREAM]` (repeatable;
    /// default: stdout unless --config lists outputs).
    #[arg(long = "output", short = 'o')]
    pub outputs: Vec<OutputSpec>,
    /// YAML file with an `outputs:` list (type, format, min_priority and settings per output),
    /// used in addition to --output.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// CloudWatch Logs endpoint URL for cloudwatch outputs that set none (VPC endpoint, emulator).
    #[arg(long, value_name = "URL")]
    pub cloudwatch_endpoint: Option<String>,
    /// Alert format: Falco's JSON lines, or its text lines (`time: Priority output`).
    #[arg(long, value_enum, default_value = "json")]
    pub format: FormatArg,
}

impl DetectArgs {
    /// Loads the rules (`None` when they do not load; errors already printed) and opens the sinks.
    pub fn open(&self) -> Result<Option<(RuleSet, Sinks)>> {
        let Some(rules) = load_rules(&self.rules, self.default_rules)? else { return Ok(None) };
        let format = match self.format {
            FormatArg::Json => AlertFormat::Json,
            FormatArg::Text => AlertFormat::Text,
        };
        let mut outputs: Vec<OutputConfig> = match &self.config {
            Some(path) => lanner_analyze::sinks::config::load(path)?,
            None => Vec::new(),
        };
        outputs.extend(self.outputs.iter().map(OutputSpec::to_config));
        if outputs.is_empty() {
            outputs.push(OutputSpec::Stdout.to_config());
        }
        for o in &mut outputs {
            if let OutputKind::CloudWatch(c) = &mut o.kind {
                if c.endpoint.is_none() {
                    c.endpoint.clone_from(&self.cloudwatch_endpoint);
                }
            }
        }
        let sinks = outputs.iter().map(|o| o.open(format)).collect::<Result<Vec<_>>>()?;
        Ok(Some((rules, sinks)))
    }
}

/// `--format` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum FormatArg {
    /// Falco's JSON alerts.
    Json,
    /// Falco's text alerts.
    Text,
}

/// Parses RFC 3339 (`2026-11-26T15:00:00Z`, `2026-11-26T15:00:00.5+01:00`), `YYYY-MM-DD HH:MM:SS`
/// (UTC) or integer unix nanoseconds.
pub fn parse_time(s: &str) -> Result<u64, String> {
    if let Ok(ns) = s.parse::<u64>() {
        return Ok(ns);
    }
    let dt = chrono::DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&chrono::Utc))
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").map(|n| n.and_utc()))
        .map_err(|_| format!("'{s}' is not a time: use RFC 3339 (2026-11-26T15:00:00Z) or unix nanoseconds"))?;
    dt.timestamp_nanos_opt().map(|n| n.max(0) as u64).ok_or_else(|| format!("'{s}' is out of range"))
}

pub fn read_sources(files: &[PathBuf]) -> Result<Vec<Source>> {
    Ok(if files.is_empty() {
        vec![Source { name: "<default rules>".into(), text: DEFAULT_RULES.into() }]
    } else {
        files
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(f).with_context(|| format!("reading rules file {}", f.display()))?;
                Ok(Source { name: f.display().to_string(), text })
            })
            .collect::<Result<Vec<_>>>()?
    })
}

pub fn load_rules(files: &[PathBuf], with_defaults: bool) -> Result<Option<RuleSet>> {
    let mut sources = read_sources(files)?;
    if with_defaults && !files.is_empty() {
        sources.insert(0, Source { name: "<default rules>".into(), text: DEFAULT_RULES.into() });
    }
    match RuleSet::load(&sources) {
        Ok(rs) => {
            for w in &rs.warnings {
                eprintln!("lanner-analyze: warning: {w}");
            }
            Ok(Some(rs))
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("lanner-analyze: error: {e}");
            }
            eprintln!("lanner-analyze: error: the rules could not be loaded ({} error(s))", errors.len());
            Ok(None)
        }
    }
}

/// Closes every sink (waiting a bounded time for delivery); the first error is returned after
/// all were closed.
pub fn close_sinks(sinks: &mut Sinks) -> Result<()> {
    let mut first = None;
    for s in sinks.iter_mut() {
        if let Err(e) = s.close() {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// Prints read problems; the exit code says whether all data was read.
pub fn report_problems(problems: &[String]) -> ExitCode {
    for p in problems {
        eprintln!("lanner-analyze: error: {p}");
    }
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DATA_ERROR)
    }
}
