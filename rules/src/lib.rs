//! The Falco rule language: YAML items, the libsinsp condition grammar, fields, outputs.
//!
//! Loading is two-phase, as in Falco: every file is read into items first (so a rule may use a
//! macro or list defined anywhere, and `append` items extend earlier ones in order), then each
//! enabled rule is compiled into a [`Filter`] over resolved [`Field`]s and indexed by event type.

mod compile;
pub mod condition;
pub mod fields;
mod filter;
pub mod loader;
pub mod output;
mod program;

pub use compile::{CompiledRule, Priority, RuleMatching, RuleSet, RuleStatus};
pub use fields::{End, Field, FieldValue};
pub use filter::Filter;
pub use loader::{Code, Diagnostic, Pos, RuleError, Source};
pub use program::{ChunkState, Program};

/// The built-in default ruleset, used when no `--rules` file is given.
pub const DEFAULT_RULES: &str = include_str!("../default_rules.yaml");
