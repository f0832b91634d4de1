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
}
