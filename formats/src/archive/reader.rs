//! Reads a segment through a memory map: finds its chunks (footer index, or a scan when the
//! segment was never sealed), verifies and decodes them one at a time.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use rkyv::util::AlignedVec;

use super::error::ArchiveError;
use super::layout::*;
use crate::event::{ArchivedChunk, PathIndex, NONE};

/// Where a chunk is and what its frame header says.
#[derive(Debug, Clone, Copy)]
pub struct ChunkRef {
    /// Chunk number within the segment.
    pub index: usize,
    /// Byte offset of the frame.
    pub offset: u64,
    /// The frame header (the chunk's index entry).
    pub header: FrameHeader,
    /// Events before this chunk in its capture run (`evt.num` of its first event is this + 1):
    /// the segment's `first_event` plus the events of the chunks before it.
    pub first_event: u64,
    /// Chain value of the preceding frame (or the segment seed).
    prev_chain: [u8; 32],
}

impl ChunkRef {
    /// Bytes the chunk's frame takes in the segment: its header and its compressed payload.
    pub fn frame_len(&self) -> u64 {
        super::layout::FRAME_HEADER_LEN as u64 + self.header.payload_len as u64
    }
}

/// Bytes after the last complete chunk of a segment that was not closed cleanly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// Offset of the first byte that is not part of a complete chunk.
    pub offset: u64,
    /// How many bytes follow it.
    pub bytes: u64,
}

/// Where a segment's index lies, judged from its first bytes, for readers that fetch byte ranges
/// (object storage) and want the index without the chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexLocation {
    /// The first `0..n` bytes are needed to tell (the header is longer than what was given).
    NeedHead(u64),
    /// A sealed segment: the header is `0..header`, the footer index and trailer `footer`.
    Footer {
        /// Length of the header (fixed part and metadata).
        header: u64,
        /// The footer's byte range, to the end of the file.
        footer: std::ops::Range<u64>,
    },
    /// Not sealed, or not as long as sealed: the chunks are found by reading the whole file.
    Whole,
}

/// The first bytes a ranged reader should fetch before calling [`index_location`].
pub const HEAD_BYTES: u64 = 8 << 10;

/// Where the index of a segment of `file_len` bytes lies, given its first bytes `head`.
pub fn index_location(head: &[u8], file_len: u64) -> IndexLocation {
    if head.len() < FIXED_HEADER_LEN || &head[0..8] != SEGMENT_MAGIC {
        return IndexLocation::Whole;
    }
    let header = FIXED_HEADER_LEN as u64 + le_u32(&head[32..36]) as u64;
    if header > head.len() as u64 && header <= file_len {
        return IndexLocation::NeedHead(header);
    }
    let sealed_len = le_u64(&head[16..24]);
    let footer_offset = le_u64(&head[24..32]);
    if sealed_len == 0 || sealed_len != file_len || footer_offset < header || footer_offset >= file_len {
        return IndexLocation::Whole;
    }
    IndexLocation::Footer { header, footer: footer_offset..file_len }
}

/// An open segment file.
pub struct SegmentReader {
    path: PathBuf,
    map: Backing,
    meta: SegmentMeta,
    version: (u16, u16),
    sealed: bool,
    chunks: Vec<ChunkRef>,
    torn: Option<TornTail>,
    warnings: Vec<String>,
    seed: [u8; 32],
    truncated: Option<(u64, u64)>,
}

/// The bytes of a segment: a read-only map of the file, or a buffer.
enum Backing {
    Map(Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Backing {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Backing::Map(m) => m,
            Backing::Owned(v) => v,
        }
    }
}

/// A verified, decompressed chunk: zero-copy access into its buffer, plus its expanded paths.
pub struct DecodedChunk {
    bytes: AlignedVec<16>,
    paths: PathIndex,
}

impl DecodedChunk {
    /// Encodes and validates an in-memory chunk (for tests and tools that build chunks).
    pub fn from_chunk(c: &crate::event::Chunk) -> Result<Self, String> {
        let raw = rkyv::to_bytes::<rkyv::rancor::BoxedError>(c).map_err(|e| e.to_string())?;
        let payload = zstd::bulk::compress(&raw, 1).map_err(|e| e.to_string())?;
        decode_payload(&payload, raw.len() as u32)
    }

    /// The chunk's event paths, by id.
    pub fn paths(&self) -> &PathIndex {
        &self.paths
    }

    /// The archived chunk.
    pub fn chunk(&self) -> &ArchivedChunk {
        // SAFETY: `bytes` was validated with `rkyv::access` (bytecheck) when this value was
        // built in `SegmentReader::decode` and is never mutated afterwards.
        unsafe { rkyv::access_unchecked::<ArchivedChunk>(&self.bytes) }
    }
}

impl SegmentReader {
    /// Opens and indexes `path`; fails only when nothing in it can be trusted.
    pub fn open(path: &Path) -> Result<Self, ArchiveError> {
        let io = |source| ArchiveError::Io { path: path.to_owned(), source };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len < FIXED_HEADER_LEN as u64 {
            // Too short to map usefully; the in-memory path reports what is wrong.
            return Self::from_bytes(path, std::fs::read(path).map_err(io)?);
        }
        // SAFETY: the map is read-only; segments are append-only while being written and we
        // never read beyond the length observed here.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        Self::index(path, Backing::Map(map))
    }

    /// Indexes a segment held in memory (`name` is used in messages).
    pub fn from_bytes(name: &Path, bytes: Vec<u8>) -> Result<Self, ArchiveError> {
        let len = bytes.len() as u64;
        if len < FIXED_HEADER_LEN as u64 {
            if len >= 8 && &bytes[..8] != SEGMENT_MAGIC {
                return Err(ArchiveError::NotASegment { path: name.to_owned() });
            }
            return Err(ArchiveError::BadHeader {
                path: name.to_owned(),
                offset: len,
                what: format!("file ends at byte offset {len}, inside the {FIXED_HEADER_LEN}-byte header"),
            });
        }
        Self::index(name, Backing::Owned(bytes))
    }

    fn index(path: &Path, map: Backing) -> Result<Self, ArchiveError> {
        let len = map.len() as u64;
        let b = &map[..];
        if &b[0..8] != SEGMENT_MAGIC {
            return Err(ArchiveError::NotASegment { path: path.to_owned() });
        }
        let bad = |offset: u64, what: String| ArchiveError::BadHeader { path: path.to_owned(), offset, what };
        let major = le_u16(&b[8..10]);
        let minor = le_u16(&b[10..12]);
        if major > FORMAT_MAJOR {
            return Err(ArchiveError::UnsupportedVersion {
                path: path.to_owned(),
                major,
                minor,
                supported: FORMAT_MAJOR,
            });
        }
        if major < FORMAT_MAJOR && !(3..FORMAT_MAJOR).contains(&major) {
            // Version 1 process records lack the terminal and login uid; version 2 stored event
            // columns as plain arrays (both 2026-11-27); version 3 process records lack the
            // task's ids, capabilities, executable inode and environment (2026-12-07), and are
            // still read: each chunk is converted (`legacy`) with those facts unknown.
            return Err(bad(
                8,
                format!(
                    "format version {major}.{minor} is older than this reader's {FORMAT_MAJOR}.x and is no longer read"
                ),
            ));
        }
        let header_len = le_u32(&b[12..16]) as u64;
        let sealed_len = le_u64(&b[16..24]);
        let footer_offset = le_u64(&b[24..32]);
        let meta_len = le_u32(&b[32..36]) as u64;
        if header_len != FIXED_HEADER_LEN as u64 + meta_len {
            return Err(bad(12, format!("header length {header_len} does not match metadata length {meta_len}")));
        }
        if header_len > len {
            return Err(bad(len, format!("file ends at byte offset {len}, inside the {header_len}-byte header")));
        }
        let meta_json = &b[FIXED_HEADER_LEN..header_len as usize];
        let meta: SegmentMeta = serde_json::from_slice(meta_json)
            .map_err(|e| bad(FIXED_HEADER_LEN as u64 + e.column() as u64, format!("metadata is not valid: {e}")))?;
        let seed = chain_seed(meta_json);
        let mut r = Self {
            path: path.to_owned(),
            map,
            meta,
            version: (major, minor),
            sealed: sealed_len != 0,
            chunks: Vec::new(),
            torn: None,
            warnings: Vec::new(),
            seed,
            truncated: None,
        };
        if sealed_len != 0 && len < sealed_len {
            // Sealed, then cut short: the footer is gone; complete chunks are still usable.
            r.truncated = Some((sealed_len, len));
            r.scan(header_len, len, seed);
            r.torn = None;
        } else if sealed_len != 0 {
            match r.read_footer(header_len, footer_offset, sealed_len, seed) {
                Ok(chunks) => r.chunks = chunks,
                Err(e) => {
                    r.warnings.push(format!("{e}; chunk index rebuilt by scanning"));
                    r.scan(header_len, footer_offset.clamp(header_len, len), seed);
                }
            }
        } else {
            r.scan(header_len, len, seed);
        }
        let mut before = r.meta.first_event;
        for c in &mut r.chunks {
            c.first_event = before;
            before += c.header.event_count as u64;
        }
        Ok(r)
    }

    fn read_footer(
        &self,
        header_len: u64,
        off: u64,
        sealed_len: u64,
        seed: [u8; 32],
    ) -> Result<Vec<ChunkRef>, ArchiveError> {
        let b = &self.map[..];
        let bad = |offset: u64, what: &str| ArchiveError::BadFooter {
            path: self.path.clone(),
            offset,
            what: what.to_owned(),
        };
        // Every offset and length here comes from the file: no arithmetic may overflow.
        if off < header_len || off.checked_add(16).is_none_or(|e| e > sealed_len) {
            return Err(bad(24, "footer offset out of range"));
        }
        let o = off as usize;
        if &b[o..o + 8] != FOOTER_MAGIC {
            return Err(bad(off, "bad footer magic"));
        }
        let count = le_u32(&b[o + 8..o + 12]) as u64;
        let body_end = off + 16 + count * FOOTER_ENTRY_LEN as u64;
        if body_end.checked_add(32 + TRAILER_LEN as u64) != Some(sealed_len) {
            return Err(bad(off + 8, "chunk count does not match the footer length"));
        }
        let body_end = body_end as usize;
        if blake3::hash(&b[o..body_end]).as_bytes() != &b[body_end..body_end + 32] {
            return Err(bad(off, "footer checksum mismatch"));
        }
        let t = body_end + 32;
        if le_u64(&b[t..t + 8]) != off || &b[t + 8..t + 16] != TRAILER_MAGIC {
            return Err(bad(t as u64, "bad trailer"));
        }
        let mut prev = seed;
        let mut out = Vec::with_capacity(count as usize);
        for i in 0..count as usize {
            let e = o + 16 + i * FOOTER_ENTRY_LEN;
            let offset = le_u64(&b[e..e + 8]);
            let header = FrameHeader::decode(&b[e + 8..e + FOOTER_ENTRY_LEN])
                .ok_or_else(|| bad(e as u64 + 8, "bad frame magic in index entry"))?;
            out.push(ChunkRef { index: i, offset, header, first_event: 0, prev_chain: prev });
            prev = header.chain;
        }
        Ok(out)
    }

    fn scan(&mut self, start: u64, end: u64, seed: [u8; 32]) {
        let b = &self.map[..end as usize];
        let mut pos = start as usize;
        let mut prev = seed;
        while pos < b.len() {
            let fh = match FrameHeader::decode(&b[pos..]) {
                Some(fh) if pos + FRAME_HEADER_LEN + fh.payload_len as usize <= b.len() => fh,
                _ => {
                    self.torn = Some(TornTail { offset: pos as u64, bytes: (b.len() - pos) as u64 });
                    return;
                }
            };
            let index = self.chunks.len();
            self.chunks.push(ChunkRef { index, offset: pos as u64, header: fh, first_event: 0, prev_chain: prev });
            prev = fh.chain;
            pos += FRAME_HEADER_LEN + fh.payload_len as usize;
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Segment metadata.
    pub fn meta(&self) -> &SegmentMeta {
        &self.meta
    }

    /// Format version (major, minor) of the file.
    pub fn version(&self) -> (u16, u16) {
        self.version
    }

    /// True when the writer closed the segment (footer written).
    pub fn is_sealed(&self) -> bool {
        self.sealed
    }

    /// The chunks found.
    pub fn chunks(&self) -> &[ChunkRef] {
        &self.chunks
    }

    /// Bytes after the last complete chunk, when the writer did not close the segment.
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.torn.as_ref()
    }

    /// When a sealed segment was cut short: the error describing it (its complete chunks are
    /// still listed in [`Self::chunks`]).
    pub fn truncation(&self) -> Option<ArchiveError> {
        self.truncated.map(|(expected, actual)| ArchiveError::Truncated { path: self.path.clone(), expected, actual })
    }

    /// Non-fatal problems found while opening (e.g. a damaged footer that was rebuilt).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Chain value after the last complete chunk (hex): what the next segment must link to.
    pub fn last_chain_hex(&self) -> String {
        let last = self.chunks.last().map_or(self.seed, |c| c.header.chain);
        last.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Size of the file in bytes.
    pub fn file_len(&self) -> u64 {
        self.map.len() as u64
    }

    /// Verifies the chain hash of chunk `r`, decompresses and validates it.
    pub fn decode(&self, r: &ChunkRef) -> Result<DecodedChunk, ArchiveError> {
        let corrupt = |what: String| ArchiveError::CorruptChunk {
            path: self.path.clone(),
            index: r.index,
            offset: r.offset,
            what,
        };
        let start = r.offset as usize;
        let end = start
            .checked_add(FRAME_HEADER_LEN + r.header.payload_len as usize)
            .filter(|&e| e <= self.map.len())
            .ok_or_else(|| corrupt("frame extends past the end of the file".into()))?;
        let fh = FrameHeader::decode(&self.map[start..end]).ok_or_else(|| corrupt("bad frame magic".into()))?;
        if fh != r.header {
            return Err(corrupt("frame header differs from the footer index".into()));
        }
        let payload = &self.map[start + FRAME_HEADER_LEN..end];
        if fh.chain_hash(&r.prev_chain, payload) != fh.chain {
            return Err(corrupt("checksum mismatch: the chunk was altered or damaged".into()));
        }
        if fh.codec != CODEC_ZSTD {
            return Err(corrupt(format!("unknown compression codec {}", fh.codec)));
        }
        decode_payload_of(payload, fh.raw_len, self.version.0).map_err(corrupt)
    }
}

thread_local! {
    /// One zstd decompression context per thread, reused from chunk to chunk (each frame
    /// starts from a reset context).
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Decompresses a zstd chunk payload of `raw_len` bytes and validates it (rkyv bytecheck and
/// every cross-reference), so that the result can be read without further checks.
pub fn decode_payload(payload: &[u8], raw_len: u32) -> Result<DecodedChunk, String> {
    decode_payload_of(payload, raw_len, FORMAT_MAJOR)
}

/// As [`decode_payload`], for a chunk of format `major` (3 and 4 are converted to this build's
/// format).
pub fn decode_payload_of(payload: &[u8], raw_len: u32, major: u16) -> Result<DecodedChunk, String> {
    if raw_len > MAX_RAW_CHUNK {
        return Err(format!("declared size {raw_len} exceeds the {MAX_RAW_CHUNK}-byte limit"));
    }
    let mut bytes = AlignedVec::<16>::with_capacity(raw_len as usize);
    bytes.resize(raw_len as usize, 0);
    let n = DECOMPRESSOR
        .with(|cell| {
            let mut slot = cell.borrow_mut();
            let d = match slot.as_mut() {
                Some(d) => d,
                None => slot.insert(zstd::bulk::Decompressor::new()?),
            };
            d.decompress_to_buffer(payload, &mut bytes[..])
        })
        .map_err(|e| format!("zstd: {e}"))?;
    if n != raw_len as usize {
        return Err(format!("decompressed to {n} bytes, header says {raw_len}"));
    }
    if major < FORMAT_MAJOR {
        bytes = super::legacy::upgrade(&bytes, major)?;
    }
    let chunk = rkyv::access::<ArchivedChunk, rkyv::rancor::BoxedError>(&bytes)
        .map_err(|e| format!("invalid chunk data: {e}"))?;
    check_references(chunk)?;
    let paths = chunk.paths.expand()?;
    Ok(DecodedChunk { bytes, paths })
}

/// Checks every cross-reference inside a chunk so later indexing cannot go out of bounds.
fn check_references(c: &ArchivedChunk) -> Result<(), String> {
    let nstr = c.strings.len() as u32;
    let nproc = c.processes.len() as u32;
    let s_ok = |id: u32| id == NONE || id < nstr;
    for (i, p) in c.processes.iter().enumerate() {
        let parent = p.parent.to_native();
        if parent != NONE && parent >= i as u32 {
            return Err(format!("process {i} has invalid parent index {parent}"));
        }
        for id in [
            p.name,
            p.exe,
            p.exepath,
            p.args,
            p.cwd,
            p.container_id,
            p.container_name,
            p.container_image,
            p.k8s_pod,
            p.k8s_ns,
            p.task.env,
            p.container.mounts,
        ] {
            if !s_ok(id.to_native()) {
                return Err(format!("process {i} references missing string {}", id.to_native()));
            }
        }
    }
    c.events.validate(nproc, c.paths.len() as u32)
}
