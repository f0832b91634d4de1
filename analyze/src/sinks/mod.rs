//! Where alerts go: one module per sink, all behind the [`Sink`] trait.

mod file;
mod stdout;

use std::path::PathBuf;

use anyhow::{bail, Result};
use lanner_formats::alert::Alert;

pub use file::FileSink;
pub use stdout::StdoutSink;

/// A destination for alerts.
pub trait Sink {
    /// Accepts one alert.
    fn send(&mut self, alert: &Alert) -> Result<()>;
    /// Makes everything accepted so far durable / visible.
    fn flush(&mut self) -> Result<()>;
    /// For sinks that write a file: the file and its length after the last flush, so a
    /// checkpoint can record it and a restart can cut off anything written after it.
    fn durable_position(&self) -> Option<(PathBuf, u64)> {
        None
    }
}

/// A parsed `--output` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSpec {
    /// `stdout`
    Stdout,
    /// `file:PATH`
    File(PathBuf),
}

impl std::str::FromStr for OutputSpec {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        if s == "stdout" || s == "-" {
            return Ok(Self::Stdout);
        }
        if let Some(p) = s.strip_prefix("file:") {
            if p.is_empty() {
                bail!("output 'file:' needs a path, e.g. file:/var/log/lanner/alerts.json");
            }
            return Ok(Self::File(PathBuf::from(p)));
        }
        bail!("unknown output '{s}': expected 'stdout' or 'file:PATH'")
    }
}

/// How alerts are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AlertFormat {
    /// Falco's JSON alert, one per line.
    #[default]
    Json,
    /// Falco's text line: `<time>: <Priority> <output>`.
    Text,
}

impl OutputSpec {
    /// Opens the sink.
    pub fn open(&self, format: AlertFormat) -> Result<Box<dyn Sink>> {
        Ok(match self {
            Self::Stdout => Box::new(StdoutSink::new(format)),
            Self::File(p) => Box::new(FileSink::open(p, format)?),
        })
    }
}

/// An alert as one line in `format` (no trailing newline).
pub fn alert_line(alert: &Alert, format: AlertFormat) -> String {
    match format {
        AlertFormat::Json => serde_json::to_string(alert).expect("alerts serialize"),
        AlertFormat::Text => alert.output.clone(),
    }
}
