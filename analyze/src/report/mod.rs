//! `lanner-analyze report`: one self-contained HTML page about an incident, to open in any
//! browser and attach to a ticket.
//!
//! Key design decision: the page is built from aggregates (the alerts, one entry per process,
//! capped activity tables, the integrity verdicts), never from every raw event, so its size
//! follows the number of processes and findings rather than the archive's event count.
//! Collecting ([`collect`]) and drawing ([`html`]) are apart: the page gets typed data only.

pub mod collect;
pub mod html;

pub use collect::{collect, Activity, AlertRow, Proc, Report, SegmentIntegrity, Selection};
pub use html::render;
