//! The segment file: header → sealed chunks → footer index (layout in `formats/FORMAT.md`).
//!
//! Each chunk is a zstd-compressed rkyv [`crate::event::Chunk`] in a frame whose header carries
//! the index entry (time range, event count, event types) and a hash chained to the previous
//! frame, so a footer can be rebuilt by scanning and any chunk can be verified and decoded alone.

mod builder;
mod error;
mod layout;
pub mod legacy;
mod reader;
mod spool;
mod verify;
mod writer;

pub use builder::ChunkBuilder;
pub use error::ArchiveError;
pub use layout::{FrameHeader, SegmentMeta, FORMAT_MAJOR, FORMAT_MINOR, FRAME_HEADER_LEN, SEGMENT_EXTENSION};
pub use reader::{
    decode_payload, decode_payload_of, index_location, ChunkRef, DecodedChunk, IndexLocation, SegmentReader, TornTail,
    HEAD_BYTES,
};
pub use spool::{
    capture_of_file_name, is_segment_file_name, list_segments, segment_file_name, start_of_file_name, SegmentFile,
};
pub use verify::{verify, verify_checked, verify_opened, Finding};
pub use writer::SegmentWriter;

#[cfg(test)]
mod tests;
