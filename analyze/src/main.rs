//! `lanner-analyze`: runs Falco-compatible rules over Lanner archives.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};

mod commands;
use lanner_analyze::inspect;
use lanner_analyze::replay::{discover, replay, ReplaySummary, Window};
use lanner_analyze::rules::output::OutputFormat;
use lanner_analyze::rules::{RuleMatching, RuleSet, Source, DEFAULT_RULES};
use lanner_analyze::scap_input;
use lanner_analyze::sinks::{AlertFormat, OutputConfig, OutputKind, OutputSpec};
use lanner_formats::archive::verify;

/// Exit code when some data could not be read (other data was still analyzed).
const EXIT_DATA_ERROR: u8 = 1;
/// Exit code for unusable rules or arguments.
const EXIT_USAGE: u8 = 2;

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
    Replay {
        #[command(flatten)]
        detect: DetectArgs,
        /// Alert for the first matching rule per event (Falco's default) or for all of them.
        #[arg(long, value_enum, default_value = "first")]
        rule_matching: MatchingArg,
        /// Worker threads (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
        #[command(flatten)]
        window: WindowArgs,
        /// Archive segments (`.lnr`) or directories holding them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Print events matching a filter, formatted with %field tokens (like `sysdig -r FILE -p FMT FILTER`).
    ///
    /// Example: `lanner-analyze query -p "%evt.time %proc.name %fd.name" "fd.name startswith /etc" spool/`
    Query {
        /// Output format with %field tokens. As with sysdig, an event is printed only when
        /// every field has a value, unless the format starts with `*`.
        #[arg(short = 'p', long = "print")]
        format: Option<String>,
        /// Filter in the rule condition language (macros and lists from --rules files).
        #[arg(short = 'f', long)]
        filter: Option<String>,
        /// Rule files whose macros and lists the filter may use.
        #[arg(long = "rules", short = 'r')]
        rules: Vec<PathBuf>,
        #[command(flatten)]
        window: WindowArgs,
        /// `[FILTER] PATH...`: archive segments, directories or `.scap` captures, optionally
        /// preceded by the filter (as with `sysdig -r FILE FILTER`) when `-f` is not given.
        #[arg(required = true, value_name = "[FILTER] PATH")]
        paths: Vec<PathBuf>,
    },
    /// Show who spawned what, with command lines, exec times and exits.
    ///
    /// Example: `lanner-analyze proctree --pid 4242 spool/`
    Proctree {
        /// Only this process and its descendants.
        #[arg(long)]
        pid: Option<u32>,
        #[command(flatten)]
        window: WindowArgs,
        /// Archive segments or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Every event of one process (or all), in time order.
    ///
    /// Example: `lanner-analyze timeline --pid 4242 spool/`
    Timeline {
        /// Only this process.
        #[arg(long)]
        pid: Option<u32>,
        /// Only this container (`host` for processes outside containers).
        #[arg(long)]
        container: Option<String>,
        #[command(flatten)]
        window: WindowArgs,
        /// Archive segments or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Event counts by syscall, process and user; time range; drops.
    ///
    /// Example: `lanner-analyze stats --json spool/`
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        window: WindowArgs,
        /// Archive segments or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
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
    Follow {
        #[command(flatten)]
        detect: DetectArgs,
        /// Checkpoint file (default: SPOOL/.lanner-follow.checkpoint).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// How often to look for new chunks.
        #[arg(long, default_value = "50ms", value_parser = humantime::parse_duration)]
        poll: std::time::Duration,
        /// The capture's spool directory.
        spool: PathBuf,
    },
    /// Check archive integrity: every chunk's hash, and the chain between the segments of a capture.
    ///
    /// Exit status 0 when every segment is ok or only has a torn tail (the writer was killed),
    /// 1 when anything was altered, removed, reordered or truncated.
    ///
    /// Example: `lanner-analyze verify /var/lib/lanner/spool`
    Verify {
        /// Archive segments or directories, in capture order (directories are read in name order).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Convert Lanner archive segments into a `.scap` capture that sysdig and Falco read.
    ///
    /// Example: `lanner-analyze export --format scap spool/ -o capture.scap`
    Export {
        /// Output format (only `scap` for now).
        #[arg(long, value_enum, default_value = "scap")]
        format: ExportFormat,
        /// The file to write (must not exist).
        #[arg(short, long)]
        output: PathBuf,
        /// Archive segments or directories, in capture order.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Convert a sysdig/Falco `.scap` capture (plain or gzip'd) into a Lanner archive segment.
    ///
    /// Example: `lanner-analyze import capture.scap -o capture.lnr`
    Import {
        /// The capture to convert.
        input: PathBuf,
        /// The segment to write (must not exist).
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// `--since` / `--until`, shared by the commands that read archives.
#[derive(clap::Args, Debug, Clone, Copy)]
struct WindowArgs {
    /// Only events at or after this time (RFC 3339, e.g. 2026-11-26T15:00:00Z, or unix ns).
    #[arg(long, value_parser = parse_time)]
    since: Option<u64>,
    /// Only events at or before this time (RFC 3339 or unix ns).
    #[arg(long, value_parser = parse_time)]
    until: Option<u64>,
}

impl From<WindowArgs> for Window {
    fn from(w: WindowArgs) -> Self {
        Window { since: w.since, until: w.until }
    }
}

/// The opened alert outputs.
type Sinks = Vec<Box<dyn lanner_analyze::sinks::Sink>>;

/// Rules and alert outputs, shared by `replay` and `follow`.
#[derive(clap::Args, Debug)]
struct DetectArgs {
    /// Rules file (repeatable, loaded in order); default: the built-in ruleset.
    #[arg(long = "rules", short = 'r')]
    rules: Vec<PathBuf>,
    /// Load the built-in rules before the --rules files.
    #[arg(long)]
    default_rules: bool,
    /// Where alerts go: `stdout`, `file:PATH` or `cloudwatch:GROUP[:STREAM]` (repeatable;
    /// default: stdout unless --config lists outputs).
    #[arg(long = "output", short = 'o')]
    outputs: Vec<OutputSpec>,
    /// YAML file with an `outputs:` list (type, format, min_priority and settings per output),
    /// used in addition to --output.
    #[arg(long)]
    config: Option<PathBuf>,
    /// CloudWatch Logs endpoint URL for cloudwatch outputs that set none (VPC endpoint, emulator).
    #[arg(long, value_name = "URL")]
    cloudwatch_endpoint: Option<String>,
    /// Alert format: Falco's JSON lines, or its text lines (`time: Priority output`).
    #[arg(long, value_enum, default_value = "json")]
    format: FormatArg,
}

impl DetectArgs {
    /// Loads the rules (`None` when they do not load; errors already printed) and opens the sinks.
    fn open(&self) -> Result<Option<(RuleSet, Sinks)>> {
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
enum FormatArg {
    /// Falco's JSON alerts.
    Json,
    /// Falco's text alerts.
    Text,
}

/// `--rule-matching` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum MatchingArg {
    /// The first matching rule in file order.
    First,
    /// Every matching rule.
    All,
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

/// Parses RFC 3339 (`2026-11-26T15:00:00Z`, `2026-11-26T15:00:00.5+01:00`), `YYYY-MM-DD HH:MM:SS`
/// (UTC) or integer unix nanoseconds.
fn parse_time(s: &str) -> Result<u64, String> {
    if let Ok(ns) = s.parse::<u64>() {
        return Ok(ns);
    }
    let dt = chrono::DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&chrono::Utc))
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").map(|n| n.and_utc()))
        .map_err(|_| format!("'{s}' is not a time: use RFC 3339 (2026-11-26T15:00:00Z) or unix nanoseconds"))?;
    dt.timestamp_nanos_opt().map(|n| n.max(0) as u64).ok_or_else(|| format!("'{s}' is out of range"))
}

fn main() -> ExitCode {
    // Like other Unix filters, stop quietly when the reader of our output goes away (`| head`).
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lanner-analyze: error: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn read_sources(files: &[PathBuf]) -> Result<Vec<Source>> {
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

fn load_rules(files: &[PathBuf], with_defaults: bool) -> Result<Option<RuleSet>> {
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

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Query { format, mut filter, rules, window, mut paths } => {
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
                    let mut sources = if rules.is_empty() { Vec::new() } else { read_sources(&rules)? };
                    sources.push(Source { name: "<filter>".into(), text: query_rule(&f) });
                    let rs = match RuleSet::load(&sources) {
                        Ok(rs) => rs,
                        Err(errors) => {
                            for e in errors.iter().filter(|d| d.code.is_error()) {
                                eprintln!("lanner-analyze: error: {e}");
                            }
                            return Ok(ExitCode::from(EXIT_USAGE));
                        }
                    };
                    rs.rules.into_iter().find(|r| r.name == QUERY_RULE).map(|r| r.filter)
                }
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let (n, problems) = inspect::query(&paths, window.into(), filter.as_ref(), &fmt, require_all, &mut out)?;
            drop(out);
            eprintln!("lanner-analyze: {n} matching event(s)");
            Ok(report_problems(&problems))
        }
        Command::Proctree { pid, window, paths } => {
            let inputs = scap_input::prepare(&paths)?;
            let paths = inputs.paths.clone();
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let problems = inspect::proctree(&paths, window.into(), pid, &mut out)?;
            Ok(report_problems(&problems))
        }
        Command::Timeline { pid, container, window, paths } => {
            let inputs = scap_input::prepare(&paths)?;
            let paths = inputs.paths.clone();
            let fmt =
                OutputFormat::parse("%evt.time %proc.pid %proc.name %evt.type %evt.res %evt.args").expect("valid");
            let mut conds = Vec::new();
            if let Some(p) = pid {
                conds.push(format!("proc.pid = {p}"));
            }
            if let Some(c) = &container {
                conds.push(format!("container.id = {}", serde_json::to_string(c)?));
            }
            let filter = (!conds.is_empty()).then(|| {
                let text = query_rule(&conds.join(" and "));
                let rs = RuleSet::from_yaml("<timeline>", &text).expect("valid filter");
                rs.rules.into_iter().next().expect("one rule").filter
            });
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let (_, problems) = inspect::query(&paths, window.into(), filter.as_ref(), &fmt, false, &mut out)?;
            Ok(report_problems(&problems))
        }
        Command::Stats { json, window, paths } => {
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
        Command::Follow { detect, checkpoint, poll, spool } => {
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
            let sources = read_sources(&files)?;
            Ok(if commands::rules_check::run(&sources, json) { ExitCode::SUCCESS } else { ExitCode::from(EXIT_USAGE) })
        }
        Command::Export { format: ExportFormat::Scap, output, paths } => {
            if output.exists() {
                anyhow::bail!("{} already exists; not overwriting it", output.display());
            }
            let files = discover(&paths)?;
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
        Command::Import { input, output } => {
            if output.exists() {
                anyhow::bail!("{} already exists; not overwriting it", output.display());
            }
            let stats = scap_input::import_file(&input, &output)?;
            scap_input::report(&input, &stats);
            eprintln!("lanner-analyze: wrote {}", output.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { paths } => {
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
        Command::Replay { detect, rule_matching, threads, window, paths } => {
            if let Some(n) = threads {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n.max(1))
                    .build_global()
                    .context("starting worker threads")?;
            }
            let Some((mut rules, mut sinks)) = detect.open()? else { return Ok(ExitCode::from(EXIT_USAGE)) };
            rules.rule_matching = match rule_matching {
                MatchingArg::First => RuleMatching::First,
                MatchingArg::All => RuleMatching::All,
            };
            let inputs = scap_input::prepare(&paths)?;
            let summary = replay(&rules, &inputs.paths, window.into(), &mut sinks)?;
            report(&summary);
            close_sinks(&mut sinks)?;
            Ok(if summary.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_DATA_ERROR) })
        }
    }
}

/// Formats `export` writes.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ExportFormat {
    /// sysdig/Falco capture file.
    Scap,
}

/// Closes every sink (waiting a bounded time for delivery); the first error is returned after
/// all were closed.
fn close_sinks(sinks: &mut Sinks) -> Result<()> {
    let mut first = None;
    for s in sinks.iter_mut() {
        if let Err(e) = s.close() {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// Name of the rule a `query` filter is wrapped in.
const QUERY_RULE: &str = "lanner query filter";

/// Wraps a filter in a one-rule YAML document so it is compiled like any condition.
fn query_rule(filter: &str) -> String {
    let cond = serde_json::to_string(filter).expect("string");
    format!("- rule: {QUERY_RULE}\n  desc: query\n  condition: {cond}\n  output: q\n  priority: debug\n  warn_evttypes: false\n")
}

/// Prints read problems; the exit code says whether all data was read.
fn report_problems(problems: &[String]) -> ExitCode {
    for p in problems {
        eprintln!("lanner-analyze: error: {p}");
    }
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DATA_ERROR)
    }
}

fn report(s: &ReplaySummary) {
    for w in &s.warnings {
        eprintln!("lanner-analyze: warning: {w}");
    }
    for e in &s.errors {
        eprintln!("lanner-analyze: error: {e}");
    }
    let range = s.t_range.map_or(String::new(), |(a, b)| {
        let f = |t: u64| chrono::DateTime::from_timestamp_nanos(t as i64).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        format!(", {} .. {}", f(a), f(b))
    });
    let pruned = if s.chunks_pruned > 0 {
        format!(" ({} chunk(s) skipped by the index)", s.chunks_pruned)
    } else {
        String::new()
    };
    eprintln!(
        "lanner-analyze: {} events in {} chunk(s){pruned} of {} segment(s){range}; {} alert(s); {} kernel drop(s) recorded",
        s.events,
        s.chunks,
        s.segments,
        s.alerts(),
        s.drops
    );
    let top = |m: Option<&std::collections::BTreeMap<String, u64>>| {
        let mut v: Vec<(&String, &u64)> = m.map(|m| m.iter().collect()).unwrap_or_default();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        v.iter().take(3).map(|(p, n)| format!("{p} {n}")).collect::<Vec<_>>().join(", ")
    };
    for (rule, n) in &s.hits {
        eprintln!(
            "lanner-analyze:   {n:>6}  {rule}  (top processes: {}; containers: {})",
            top(s.hits_by_process.get(rule)),
            top(s.hits_by_container.get(rule))
        );
    }
}
