//! Reads sysdig/Falco `.scap` captures (plain or gzip'd) and imports them as Lanner events.
//!
//! Key decision: a `.scap` file is parsed into its tables (machine, threads, fds, users) and a
//! borrowed stream of raw events; [`import`] then replays libsinsp's state tracking (thread and
//! fd tables updated by clone, execve, open, close, socket events) and pairs each syscall's
//! enter and exit events into one Lanner event, so the rule engine and every `lanner-analyze`
//! command work on scap input unchanged.

mod blocks;
pub mod event_table;
pub mod export;
pub mod import;
pub mod params;
pub mod reader;
pub mod writer;

pub use export::{export, ExportStats};
pub use import::{import, ImportStats};
pub use params::ParamType;
pub use reader::{FdInfo, FdKind, RawEvent, ScapFile, ThreadInfo};

/// Whether `bytes` (a file's first bytes) look like a scap capture: the section header block
/// type, or a gzip stream (the caller should then try [`ScapFile::from_bytes`]).
pub fn looks_like_scap(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) || bytes.starts_with(&[0x1f, 0x8b])
}

/// A problem with a capture file, at a byte offset of the decompressed stream.
#[derive(Debug, thiserror::Error)]
pub enum ScapError {
    /// The file is malformed at `offset`.
    #[error("offset {offset}: {message}")]
    Format {
        /// Byte offset in the decompressed capture.
        offset: usize,
        /// What is wrong.
        message: String,
    },
    /// The file could not be read.
    #[error("{0}")]
    Io(String),
}

impl ScapError {
    pub(crate) fn at(offset: usize, message: impl Into<String>) -> Self {
        Self::Format { offset, message: message.into() }
    }

    pub(crate) fn io(message: String) -> Self {
        Self::Io(message)
    }
}
