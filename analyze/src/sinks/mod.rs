//! Where alerts go: one module per sink, all behind the [`Sink`] trait.

pub mod cloudwatch;
pub mod config;
mod file;
mod stdout;

use std::path::PathBuf;

use anyhow::{bail, Result};
use lanner_formats::alert::Alert;

pub use cloudwatch::CloudWatchSink;
pub use config::{OutputConfig, OutputKind};
pub use file::{FileConfig, FileSink};
use lanner_formats::alert::Priority;
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
    /// Flushes and finishes delivery before the process exits (bounded in time).
    fn close(&mut self) -> Result<()> {
        self.flush()
    }
    /// For CloudWatch outputs: their counters (for a metrics endpoint).
    fn cloudwatch_metrics(&self) -> Option<std::sync::Arc<cloudwatch::Metrics>> {
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
    /// `cloudwatch:GROUP[:STREAM]`
    CloudWatch {
        /// Log group.
        group: String,
        /// Log stream (default `${HOSTNAME}`).
        stream: Option<String>,
    },
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
        if let Some(rest) = s.strip_prefix("cloudwatch:") {
            let (group, stream) = match rest.split_once(':') {
                Some((g, st)) => (g, Some(st)),
                None => (rest, None),
            };
            if group.is_empty() || stream == Some("") {
                bail!("output '{s}' needs a log group and optionally a stream, e.g. cloudwatch:/lanner/alerts:${{HOSTNAME}}");
            }
            return Ok(Self::CloudWatch { group: group.into(), stream: stream.map(str::to_owned) });
        }
        bail!("unknown output '{s}': expected 'stdout', 'file:PATH' or 'cloudwatch:GROUP[:STREAM]'")
    }
}

impl OutputSpec {
    /// The output as a config entry.
    pub fn to_config(&self) -> OutputConfig {
        let kind = match self {
            Self::Stdout => OutputKind::Stdout,
            Self::File(p) => OutputKind::File(FileConfig::new(p)),
            Self::CloudWatch { group, stream } => {
                OutputKind::CloudWatch(cloudwatch::CloudWatchConfig::new(group, stream.as_deref()))
            }
        };
        OutputConfig { kind, format: None, min_priority: None }
    }

    /// Opens the sink.
    pub fn open(&self, format: AlertFormat) -> Result<Box<dyn Sink>> {
        self.to_config().open(format)
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

/// An alert as one line in `format` (no trailing newline).
pub fn alert_line(alert: &Alert, format: AlertFormat) -> String {
    match format {
        AlertFormat::Json => serde_json::to_string(alert).expect("alerts serialize"),
        AlertFormat::Text => alert.output.clone(),
    }
}

/// Passes on only alerts at least as severe as a minimum priority.
pub struct MinPriority {
    inner: Box<dyn Sink>,
    min: Priority,
}

impl MinPriority {
    /// Wraps `inner`.
    pub fn new(inner: Box<dyn Sink>, min: Priority) -> Self {
        Self { inner, min }
    }
}

impl Sink for MinPriority {
    fn send(&mut self, alert: &Alert) -> Result<()> {
        // An unknown priority name is passed on rather than lost.
        match Priority::parse(&alert.priority) {
            Some(p) if p > self.min => Ok(()),
            _ => self.inner.send(alert),
        }
    }

    fn flush(&mut self) -> Result<()> {
        self.inner.flush()
    }

    fn durable_position(&self) -> Option<(PathBuf, u64)> {
        self.inner.durable_position()
    }

    fn close(&mut self) -> Result<()> {
        self.inner.close()
    }

    fn cloudwatch_metrics(&self) -> Option<std::sync::Arc<cloudwatch::Metrics>> {
        self.inner.cloudwatch_metrics()
    }
}
