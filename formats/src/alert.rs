//! The alert record, in Falco's JSON shape so existing Fluent Bit / falcosidekick pipelines
//! consume Lanner's alerts unchanged.

use serde::{Deserialize, Serialize};

/// One alert: a rule matched an event.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Alert {
    /// Event time, RFC 3339 with nanoseconds, UTC (`2026-11-26T15:00:00.123456789Z`).
    pub time: String,
    /// Rule name.
    pub rule: String,
    /// Falco priority name (`Emergency` … `Debug`).
    pub priority: String,
    /// `"<HH:MM:SS.nnnnnnnnn>: <Priority> <formatted rule output>"`, as Falco prints it.
    pub output: String,
    /// Value of every `%field` of the rule's output, keyed by field name.
    pub output_fields: serde_json::Map<String, serde_json::Value>,
    /// Event source; always `syscall` for now.
    pub source: String,
    /// The rule's tags.
    pub tags: Vec<String>,
    /// Host the event was recorded on.
    pub hostname: String,
    /// The cluster of that host, when capture was given one (`--cluster`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

/// Falco priorities, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// `Emergency`
    Emergency,
    /// `Alert`
    Alert,
    /// `Critical`
    Critical,
    /// `Error`
    Error,
    /// `Warning`
    Warning,
    /// `Notice`
    Notice,
    /// `Informational` (also `Info`)
    Informational,
    /// `Debug`
    Debug,
}

impl Priority {
    /// Parses a priority name, case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "emergency" => Self::Emergency,
            "alert" => Self::Alert,
            "critical" => Self::Critical,
            "error" => Self::Error,
            "warning" => Self::Warning,
            "notice" => Self::Notice,
            "informational" | "info" => Self::Informational,
            "debug" => Self::Debug,
            _ => return None,
        })
    }

    /// The name Falco prints.
    pub fn name(self) -> &'static str {
        match self {
            Self::Emergency => "Emergency",
            Self::Alert => "Alert",
            Self::Critical => "Critical",
            Self::Error => "Error",
            Self::Warning => "Warning",
            Self::Notice => "Notice",
            Self::Informational => "Informational",
            Self::Debug => "Debug",
        }
    }
}
