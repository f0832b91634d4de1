//! The CloudWatch output's settings, and `${VAR}` substitution in group and stream names.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use serde::Deserialize;

use super::request_builder::MAX_BATCH_EVENTS;

/// Default spool limit: 256 MiB of undelivered alerts.
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 256 << 20;

/// Which time a log event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestampSource {
    /// When the alert was raised (like Fluent Bit's ingestion time); replays of old archives
    /// are accepted by the service.
    #[default]
    Received,
    /// The event time in the alert (`time`); CloudWatch rejects events older than 14 days or
    /// the group's retention.
    Alert,
}

/// Settings of one CloudWatch Logs output, as written in the `outputs:` config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudWatchConfig {
    /// Log group name; `${VAR}` and `${VAR:-default}` are replaced from the environment.
    pub group: String,
    /// Log stream name (default `${HOSTNAME}`), with the same substitution.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// AWS region (default: the SDK's chain, e.g. AWS_REGION).
    #[serde(default)]
    pub region: Option<String>,
    /// Custom endpoint URL (VPC endpoint, local emulator).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Retention set on a log group this output creates.
    #[serde(default)]
    pub retention_days: Option<i32>,
    /// Spool directory (default: under the state directory, one per group and stream).
    #[serde(default)]
    pub spool_dir: Option<PathBuf>,
    /// Most bytes of undelivered alerts kept; when full, new alerts wait for delivery.
    #[serde(default = "default_spool_max_bytes")]
    pub spool_max_bytes: u64,
    /// How long closing the output waits for delivery (humantime, e.g. `30s`).
    #[serde(default = "default_drain_timeout", deserialize_with = "de_duration")]
    pub drain_timeout: Duration,
    /// Most events per PutLogEvents call (1..=10000).
    #[serde(default = "default_batch_max_events")]
    pub batch_max_events: usize,
    /// Which time each log event carries.
    #[serde(default)]
    pub timestamp: TimestampSource,
}

fn default_stream() -> String {
    "${HOSTNAME}".into()
}

fn default_spool_max_bytes() -> u64 {
    DEFAULT_SPOOL_MAX_BYTES
}

fn default_drain_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_batch_max_events() -> usize {
    MAX_BATCH_EVENTS
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| serde::de::Error::custom(format!("'{s}' is not a duration: {e}")))
}

impl CloudWatchConfig {
    /// Settings for `group` and `stream` with every other setting at its default.
    pub fn new(group: &str, stream: Option<&str>) -> Self {
        Self {
            group: group.into(),
            stream: stream.map_or_else(default_stream, str::to_owned),
            region: None,
            endpoint: None,
            retention_days: None,
            spool_dir: None,
            spool_max_bytes: DEFAULT_SPOOL_MAX_BYTES,
            drain_timeout: default_drain_timeout(),
            batch_max_events: MAX_BATCH_EVENTS,
            timestamp: TimestampSource::Received,
        }
    }

    /// Checks the values and replaces `${VAR}` in group and stream names.
    pub fn resolve(mut self) -> Result<Self> {
        self.group = expand_env(&self.group).map_err(|e| anyhow::anyhow!("cloudwatch group '{}': {e}", self.group))?;
        self.stream =
            expand_env(&self.stream).map_err(|e| anyhow::anyhow!("cloudwatch stream '{}': {e}", self.stream))?;
        check_name("log group", &self.group, 512, |c| c.is_ascii_alphanumeric() || "_-/.#".contains(c))?;
        check_name("log stream", &self.stream, 512, |c| c != ':' && c != '*')?;
        if !(1..=MAX_BATCH_EVENTS).contains(&self.batch_max_events) {
            bail!("cloudwatch batch_max_events must be 1..={MAX_BATCH_EVENTS}, not {}", self.batch_max_events);
        }
        if let Some(d) = self.retention_days {
            const VALID: &[i32] = &[
                1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
            ];
            if !VALID.contains(&d) {
                bail!("cloudwatch retention_days {d} is not one CloudWatch accepts ({VALID:?})");
            }
        }
        if self.spool_max_bytes < 1 << 20 {
            bail!("cloudwatch spool_max_bytes must be at least 1 MiB (1048576), not {}", self.spool_max_bytes);
        }
        Ok(self)
    }

    /// The spool directory: the configured one, or `STATE/cloudwatch/GROUP_STREAM` where STATE
    /// is $LANNER_STATE_DIR, /var/lib/lanner for root, else ~/.local/state/lanner.
    pub fn spool_dir(&self) -> PathBuf {
        if let Some(d) = &self.spool_dir {
            return d.clone();
        }
        let state = std::env::var_os("LANNER_STATE_DIR").map(PathBuf::from).unwrap_or_else(|| {
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } == 0 {
                PathBuf::from("/var/lib/lanner")
            } else {
                std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from).join(".local/state/lanner")
            }
        });
        let name: String = format!("{}_{}", self.group, self.stream)
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' })
            .collect();
        state.join("cloudwatch").join(name.trim_start_matches('_'))
    }
}

fn check_name(what: &str, name: &str, max: usize, ok: impl Fn(char) -> bool) -> Result<()> {
    if name.is_empty() || name.len() > max {
        bail!("{what} name '{name}' must be 1 to {max} characters");
    }
    if let Some(c) = name.chars().find(|&c| !ok(c)) {
        bail!("{what} name '{name}' has a character CloudWatch does not allow: {c:?}");
    }
    Ok(())
}

/// Replaces `${VAR}` (and `${VAR:-default}`) with environment variables. `${HOSTNAME}` falls
/// back to the host's name when the variable is not exported.
pub fn expand_env(s: &str) -> Result<String> {
    expand_with(s, |k| std::env::var(k).ok().or_else(|| (k == "HOSTNAME").then(hostname).flatten()))
}

/// [`expand_env`] with a custom lookup.
pub fn expand_with(s: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find('}') else { bail!("unclosed '${{' at byte {}", s.len() - rest.len() + i) };
        let inner = &rest[i + 2..i + j];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("'${{{inner}}}' is not a variable reference (expected ${{NAME}} or ${{NAME:-default}})");
        }
        match lookup(name).filter(|v| !v.is_empty()).or_else(|| default.map(str::to_owned)) {
            Some(v) => out.push_str(&v),
            None => bail!("environment variable {name} is not set"),
        }
        rest = &rest[i + j + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it on success.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8(buf[..end].to_vec()).ok()
}
