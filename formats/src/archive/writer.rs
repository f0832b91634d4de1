//! Writes a segment: header, then one frame per sealed chunk, then the footer on close.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::error::ArchiveError;
use super::layout::*;
use crate::event::Chunk;

/// Appends chunks to a new segment file; each `append` leaves a readable file behind.
pub struct SegmentWriter {
    file: File,
    path: PathBuf,
    offset: u64,
    chain: [u8; 32],
    entries: Vec<(u64, FrameHeader)>,
    level: i32,
}

impl SegmentWriter {
    /// Creates `path` (mode 0600, must not exist) and writes the header.
    pub fn create(path: &Path, meta: &SegmentMeta, zstd_level: i32) -> Result<Self, ArchiveError> {
        let io = |source| ArchiveError::Io { path: path.to_owned(), source };
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io)?;
        let meta_json = serde_json::to_vec(meta).expect("metadata serializes");
        let header_len = FIXED_HEADER_LEN + meta_json.len();
        let mut h = vec![0u8; FIXED_HEADER_LEN];
        h[0..8].copy_from_slice(SEGMENT_MAGIC);
        h[8..10].copy_from_slice(&FORMAT_MAJOR.to_le_bytes());
        h[10..12].copy_from_slice(&FORMAT_MINOR.to_le_bytes());
        h[12..16].copy_from_slice(&(header_len as u32).to_le_bytes());
        // 16..24 sealed length and 24..32 footer offset stay 0 until `finish`.
        h[32..36].copy_from_slice(&(meta_json.len() as u32).to_le_bytes());
        h.extend_from_slice(&meta_json);
        if let Err(e) = file.write_all(&h).and_then(|()| file.sync_all()) {
            // Leave no half-written header behind (the disk may be full): a retry can reuse the name.
            drop(file);
            let _ = std::fs::remove_file(path);
            return Err(io(e));
        }
        Ok(Self {
            file,
            path: path.to_owned(),
            offset: header_len as u64,
            chain: chain_seed(&meta_json),
            entries: Vec::new(),
            level: zstd_level,
        })
    }

    /// Path of the segment.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.offset
    }

    /// True when no chunk has been written.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Last chain hash (hex), to link the next segment of the same capture.
    pub fn chain_hex(&self) -> String {
        self.chain.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Seals `chunk`: serializes, compresses and appends it as one frame, then syncs.
    pub fn append(&mut self, chunk: &Chunk) -> Result<FrameHeader, ArchiveError> {
        let io = |source| ArchiveError::Io { path: self.path.clone(), source };
        let raw = rkyv::to_bytes::<rkyv::rancor::BoxedError>(chunk)
            .map_err(|e| ArchiveError::InvalidChunk { path: self.path.clone(), what: e.to_string() })?;
        let payload = zstd::bulk::compress(&raw, self.level).map_err(io)?;
        let mut types = 0u128;
        for &t in &chunk.events.etype {
            let t = crate::syscall::type_bits(t);
            if t < 128 {
                types |= 1u128 << t;
            }
        }
        let mut fh = FrameHeader {
            codec: CODEC_ZSTD,
            payload_len: payload.len() as u32,
            raw_len: raw.len() as u32,
            event_count: chunk.events.len() as u32,
            drops: chunk.drops.min(u32::MAX as u64) as u32,
            t_first: chunk.events.iter().map(|e| e.ts_ns).min().unwrap_or(0),
            t_last: chunk.events.iter().map(|e| e.ts_ns).max().unwrap_or(0),
            event_types: types,
            chain: [0; 32],
        };
        fh.chain = fh.chain_hash(&self.chain, &payload);
        let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
        frame.extend_from_slice(&fh.encode());
        frame.extend_from_slice(&payload);
        // One write per frame: a killed writer leaves whole frames or a detectable torn tail.
        if let Err(e) = self.file.write_all(&frame).and_then(|()| self.file.sync_data()) {
            // A failed write (e.g. disk full) is cut off again so the segment stays whole and
            // later frames can still be appended after the last complete one.
            let _ = self.file.set_len(self.offset);
            let _ = self.file.seek(SeekFrom::Start(self.offset));
            return Err(io(e));
        }
        self.entries.push((self.offset, fh));
        self.offset += frame.len() as u64;
        self.chain = fh.chain;
        Ok(fh)
    }

    /// Writes the footer index and marks the segment sealed.
    pub fn finish(mut self) -> Result<PathBuf, ArchiveError> {
        let path = self.path.clone();
        let io = |source| ArchiveError::Io { path: path.clone(), source };
        let footer_offset = self.offset;
        let mut f = Vec::with_capacity(16 + self.entries.len() * FOOTER_ENTRY_LEN + 32 + TRAILER_LEN);
        f.extend_from_slice(FOOTER_MAGIC);
        f.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        f.extend_from_slice(&[0u8; 4]);
        for (off, fh) in &self.entries {
            f.extend_from_slice(&off.to_le_bytes());
            f.extend_from_slice(&fh.encode());
        }
        let hash = blake3::hash(&f);
        f.extend_from_slice(hash.as_bytes());
        f.extend_from_slice(&footer_offset.to_le_bytes());
        f.extend_from_slice(TRAILER_MAGIC);
        self.file.seek(SeekFrom::Start(footer_offset)).map_err(io)?;
        if let Err(e) = self.file.write_all(&f).and_then(|()| self.file.sync_data()) {
            // Without room for the footer the segment stays unsealed, ending after its last frame.
            let _ = self.file.set_len(footer_offset);
            return Err(io(e));
        }
        let sealed_len = footer_offset + f.len() as u64;
        let mut seal = [0u8; 16];
        seal[0..8].copy_from_slice(&sealed_len.to_le_bytes());
        seal[8..16].copy_from_slice(&footer_offset.to_le_bytes());
        self.file.write_all_at(&seal, OFF_SEALED_LEN).map_err(io)?;
        self.file.sync_all().map_err(io)?;
        Ok(path)
    }
}
