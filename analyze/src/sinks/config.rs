//! The `--config` file: an `outputs:` list, each with a `type` (stdout, file, cloudwatch), an
//! optional `format` (json, text) and `min_priority`, and the type's own settings.
//!
//! ```yaml
//! outputs:
//!   - type: stdout
//!   - type: file
//!     path: /var/log/lanner/alerts.json
//!     rotate_bytes: 104857600
//!     keep: 5
//!   - type: cloudwatch
//!     group: /aws/containerinsights/${CLUSTER_NAME}/lanner
//!     stream: ${NODE_NAME}
//!     min_priority: warning
//! ```

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use marked_yaml::types::MarkedMappingNode;
use marked_yaml::{Node, Span};

use super::cloudwatch::{CloudWatchConfig, CloudWatchSink};
use super::{AlertFormat, FileConfig, FileSink, MinPriority, Sink, StdoutSink};
use lanner_formats::alert::Priority;

/// One output: where, in which format, from which priority.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputConfig {
    /// The destination and its settings.
    pub kind: OutputKind,
    /// Format (default: the `--format` flag's).
    pub format: Option<AlertFormat>,
    /// Only alerts at least this severe.
    pub min_priority: Option<Priority>,
}

/// The destination of an output.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputKind {
    /// Standard output.
    Stdout,
    /// A file.
    File(FileConfig),
    /// A CloudWatch Logs stream.
    CloudWatch(CloudWatchConfig),
}

impl OutputConfig {
    /// Opens the sink; `default_format` applies when the output sets none.
    pub fn open(&self, default_format: AlertFormat) -> Result<Box<dyn Sink>> {
        let format = self.format.unwrap_or(default_format);
        let sink: Box<dyn Sink> = match &self.kind {
            OutputKind::Stdout => Box::new(StdoutSink::new(format)),
            OutputKind::File(c) => Box::new(FileSink::open_with(c, format)?),
            OutputKind::CloudWatch(c) => Box::new(CloudWatchSink::open(c.clone(), format)?),
        };
        Ok(match self.min_priority {
            Some(p) => Box::new(MinPriority::new(sink, p)),
            None => sink,
        })
    }
}

/// Reads the outputs of a config file.
pub fn load(path: &Path) -> Result<Vec<OutputConfig>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
    parse(&path.display().to_string(), &text)
}

fn at(name: &str, span: &Span) -> String {
    match span.start() {
        Some(m) => format!("{name}:{}:{}", m.line(), m.column()),
        None => name.to_owned(),
    }
}

/// Parses config text; `name` (the file) prefixes error messages with `name:line:column`.
pub fn parse(name: &str, text: &str) -> Result<Vec<OutputConfig>> {
    let node = marked_yaml::parse_yaml(0, text).map_err(|e| anyhow!("{name}:{e}"))?;
    let top = node
        .as_mapping()
        .ok_or_else(|| anyhow!("{}: expected a mapping with an `outputs:` list", at(name, node.span())))?;
    for k in top.keys() {
        if k.as_str() != "outputs" {
            bail!("{}: unknown key `{}` (expected `outputs`)", at(name, k.span()), k.as_str());
        }
    }
    let list = top.get_node("outputs").ok_or_else(|| anyhow!("{}: no `outputs:` list", at(name, top.span())))?;
    let list = list.as_sequence().ok_or_else(|| anyhow!("{}: `outputs` must be a list", at(name, list.span())))?;
    list.iter().map(|item| parse_output(name, item)).collect()
}

fn parse_output(name: &str, item: &Node) -> Result<OutputConfig> {
    let map = item.as_mapping().ok_or_else(|| {
        anyhow!("{}: each output must be a mapping with a `type` (stdout, file or cloudwatch)", at(name, item.span()))
    })?;
    // Where the output starts: its first key (a mapping's own mark is after that key).
    let start = map.keys().next().map_or(*map.span(), |k| *k.span());
    let mut rest: MarkedMappingNode = map.clone();
    let scalar = |key: &str, rest: &mut MarkedMappingNode| -> Result<Option<(String, Span)>> {
        match rest.remove(key) {
            None => Ok(None),
            Some(Node::Scalar(s)) => Ok(Some((s.as_str().to_owned(), *s.span()))),
            Some(other) => bail!("{}: `{key}` must be a single value", at(name, other.span())),
        }
    };
    let (kind, kind_span) = scalar("type", &mut rest)?
        .ok_or_else(|| anyhow!("{}: output has no `type` (stdout, file or cloudwatch)", at(name, &start)))?;
    let format = match scalar("format", &mut rest)? {
        None => None,
        Some((f, span)) => Some(match f.to_ascii_lowercase().as_str() {
            "json" => AlertFormat::Json,
            "text" => AlertFormat::Text,
            _ => bail!("{}: unknown format '{f}' (expected json or text)", at(name, &span)),
        }),
    };
    let min_priority = match scalar("min_priority", &mut rest)? {
        None => None,
        Some((p, span)) => Some(Priority::parse(&p).ok_or_else(|| {
            anyhow!(
                "{}: unknown priority '{p}' (expected emergency, alert, critical, error, warning, notice, informational or debug)",
                at(name, &span)
            )
        })?),
    };
    let located = |e: marked_yaml::FromNodeError| {
        let span = e.start_mark().map_or(start, Span::new_start);
        anyhow!("{}: {} output: {e}", at(name, &span), kind)
    };
    let rest_node = Node::Mapping(rest);
    let kind = match kind.as_str() {
        "stdout" => {
            if let Some(k) = rest_node.as_mapping().and_then(|m| m.keys().next()) {
                bail!("{}: unknown key `{}` for a stdout output", at(name, k.span()), k.as_str());
            }
            OutputKind::Stdout
        }
        "file" => OutputKind::File(marked_yaml::from_node(&rest_node).map_err(located)?),
        "cloudwatch" => {
            let c: CloudWatchConfig = marked_yaml::from_node(&rest_node).map_err(located)?;
            c.clone().resolve().map_err(|e| anyhow!("{}: {e:#}", at(name, &start)))?;
            OutputKind::CloudWatch(c)
        }
        other => bail!("{}: unknown output type '{other}' (expected stdout, file or cloudwatch)", at(name, &kind_span)),
    };
    Ok(OutputConfig { kind, format, min_priority })
}
