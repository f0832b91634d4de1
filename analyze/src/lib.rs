//! Lanner's analyzer: Falco rules over live or archived traces, alerts to sinks.
//!
//! The key decision: one engine for every input. A sealed chunk is a chunk whether it was
//! written a millisecond or a month ago, so replay evaluates chunks independently (in parallel)
//! and only the hand-off to sinks is sequential, in archive order.

pub mod engine;
pub mod follow;
pub mod inspect;
pub mod replay;
pub mod report;
/// The rule language lives in its own crate; this path keeps `lanner_analyze::rules::…` working.
pub use lanner_rules as rules;
pub mod scap_input;
pub mod segments;
pub mod shard;
pub mod sinks;
