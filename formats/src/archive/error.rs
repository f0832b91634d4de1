//! Errors reading or writing segment files; each names the file and the byte offset.

use std::path::PathBuf;

/// Why a segment (or part of it) cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The operating system refused an operation.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file does not start with the segment magic.
    #[error("{path}: not a Lanner archive segment (bad magic at byte offset 0)")]
    NotASegment {
        /// The file.
        path: PathBuf,
    },
    /// The file was written by a newer, incompatible format version.
    #[error("{path}: archive format version {major}.{minor} is newer than this build supports ({supported}.x); upgrade Lanner to read it")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Major version found.
        major: u16,
        /// Minor version found.
        minor: u16,
        /// Major version this build reads.
        supported: u16,
    },
    /// The header is damaged.
    #[error("{path}: bad segment header at byte offset {offset}: {what}")]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// A sealed segment is shorter than its header says.
    #[error("{path}: truncated: the segment was sealed at {expected} bytes but the file ends at byte offset {actual}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Sealed length.
        expected: u64,
        /// Actual length.
        actual: u64,
    },
    /// The footer index is damaged.
    #[error("{path}: bad footer index at byte offset {offset}: {what}")]
    BadFooter {
        /// The file.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// A chunk handed to the writer cannot be stored (nothing was written).
    #[error("{path}: chunk not written: {what}")]
    InvalidChunk {
        /// The segment.
        path: PathBuf,
        /// What is wrong with the chunk.
        what: String,
    },
    /// One chunk is damaged; the others are still usable.
    #[error("{path}: chunk {index} at byte offset {offset}: {what}")]
    CorruptChunk {
        /// The file.
        path: PathBuf,
        /// Chunk number in the segment (0-based).
        index: usize,
        /// Byte offset of the chunk frame.
        offset: u64,
        /// What is wrong.
        what: String,
    },
}
