//! `lanner-analyze query`: events matching a filter, printed with %field tokens (as `sysdig -r FILE -p FMT FILTER`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use lanner_analyze::inspect;
use lanner_analyze::rules::output::OutputFormat;
use lanner_analyze::rules::RuleSet;
use lanner_analyze::scap_input;

use super::{read_sources, report_problems, WindowArgs, EXIT_USAGE};

/// `lanner-analyze query`'s arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output format with %field tokens. As with sysdig, an event is printed only when
    /// every field has a value, unless the format starts with `*`.
    #[arg(short = 'p', long = "print")]
    pub format: Option<String>,
    /// Filter in the rule condition language (macros and lists from --rules files).
    #[arg(short = 'f', long)]
    pub filter: Option<String>,
    /// Rule files whose macros and lists the filter may use.
    #[arg(long = "rules", short = 'r')]
    pub rules: Vec<PathBuf>,
    #[command(flatten)]
    pub window: WindowArgs,
    /// `[FILTER] PATH...`: archive segments, directories or `.scap` captures, optionally
    /// preceded by the filter (as with `sysdig -r FILE FILTER`) when `-f` is not given.
    #[arg(required = true, value_name = "[FILTER] PATH")]
    pub paths: Vec<PathBuf>,
}

/// Runs `lanner-analyze query`.
pub fn run(args: Args) -> Result<ExitCode> {
    let Args { format, mut filter, rules, window, mut paths } = args;
    // sysdig's order: a first argument that is not a file is the filter.
    if filter.is_none() && paths.len() >= 2 && !paths[0].exists() {
        filter = Some(paths.remove(0).to_string_lossy().into_owned());
    }
    let inputs = scap_input::prepare(&paths)?;
    let paths = inputs.paths.clone();
    let require_all = format.as_deref().is_some_and(|f| !f.starts_with('*'));
    let format = format.unwrap_or_else(|| inspect::DEFAULT_QUERY_FORMAT.to_owned());
    let fmt = OutputFormat::parse(format.strip_prefix('*').unwrap_or(&format))
        .map_err(|e| anyhow::anyhow!("-p format: {e}"))?;
    let filter = match filter {
        None => None,
        Some(f) => {
            let sources = if rules.is_empty() { Vec::new() } else { read_sources(&rules)? };
            match RuleSet::compile_filter(&sources, "<filter>", &f) {
                Ok(filter) => Some(filter),
                Err(errors) => {
                    for e in errors.iter().filter(|d| d.code.is_error()) {
                        eprintln!("lanner-analyze: error: {e}");
                    }
                    return Ok(ExitCode::from(EXIT_USAGE));
                }
            }
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (n, problems) = inspect::query(&paths, window.into(), filter.as_ref(), &fmt, require_all, &mut out)?;
    drop(out);
    eprintln!("lanner-analyze: {n} matching event(s)");
    Ok(report_problems(&problems))
}
