//! Byte layouts of the segment header, chunk frames and footer (all little-endian).

use serde::{Deserialize, Serialize};

/// File extension of segment files.
pub const SEGMENT_EXTENSION: &str = "lnr";
/// Major format version written by this build; readers refuse larger majors.
pub const FORMAT_MAJOR: u16 = 5;
/// Minor format version written by this build.
pub const FORMAT_MINOR: u16 = 0;

pub(crate) const SEGMENT_MAGIC: &[u8; 8] = b"LANNERSG";
pub(crate) const FIXED_HEADER_LEN: usize = 64;
pub(crate) const OFF_SEALED_LEN: u64 = 16;
pub(crate) const FRAME_MAGIC: &[u8; 4] = b"LNRC";
/// Bytes of a chunk frame's header; the compressed payload follows it.
pub const FRAME_HEADER_LEN: usize = 88;
pub(crate) const FOOTER_MAGIC: &[u8; 8] = b"LNRFOOT1";
pub(crate) const FOOTER_ENTRY_LEN: usize = 8 + FRAME_HEADER_LEN;
pub(crate) const TRAILER_MAGIC: &[u8; 8] = b"LNREND!!";
pub(crate) const TRAILER_LEN: usize = 16;
pub(crate) const CODEC_ZSTD: u16 = 1;
/// Largest decompressed chunk a reader accepts (guards against hostile sizes).
pub(crate) const MAX_RAW_CHUNK: u32 = 1 << 30;

/// Segment metadata, stored as JSON after the fixed header.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct SegmentMeta {
    /// Host the capture ran on.
    pub hostname: String,
    /// The cluster the host belongs to (capture's `--cluster`; empty when not given).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    /// `/proc/sys/kernel/random/boot_id` of that host.
    pub boot_id: String,
    /// Kernel release.
    pub kernel: String,
    /// Identifier shared by all segments of one capture run.
    pub capture_id: String,
    /// Position of this segment in its capture run (0-based).
    pub sequence: u64,
    /// Wall-clock creation time (unix ns).
    pub created_ns: u64,
    /// Last chain hash of the previous segment of this capture (hex), empty for the first.
    pub prev_chain: String,
    /// Version of the writer.
    pub writer: String,
    /// Events the capture run wrote before this segment: its first event is `evt.num`
    /// `first_event + 1`. (0 in archives written before the field existed: their numbering
    /// starts again in each segment.)
    #[serde(default)]
    pub first_event: u64,
    /// User names by uid on the recording host (`/etc/passwd` when capture started), for
    /// `user.name`: resolving them where the archive is analyzed would name the wrong users.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub users: std::collections::BTreeMap<u32, String>,
    /// Group names by gid on the recording host (`/etc/group` when capture started), for
    /// `group.name`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub groups: std::collections::BTreeMap<u32, String>,
}

/// Header of one chunk frame: the index entry plus the chain hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Compression codec (1 = zstd).
    pub codec: u16,
    /// Compressed payload length.
    pub payload_len: u32,
    /// Decompressed (rkyv) length.
    pub raw_len: u32,
    /// Number of events.
    pub event_count: u32,
    /// Kernel drops recorded in this chunk (saturated to u32).
    pub drops: u32,
    /// First event time (unix ns).
    pub t_first: u64,
    /// Last event time (unix ns).
    pub t_last: u64,
    /// Bit `n` set when an event of type `n` occurs.
    pub event_types: u128,
    /// `blake3(previous chain || frame header bytes 0..56 || payload)`.
    pub chain: [u8; 32],
}

impl FrameHeader {
    pub(crate) fn encode(&self) -> [u8; FRAME_HEADER_LEN] {
        let mut b = [0u8; FRAME_HEADER_LEN];
        b[0..4].copy_from_slice(FRAME_MAGIC);
        b[4..6].copy_from_slice(&self.codec.to_le_bytes());
        b[8..12].copy_from_slice(&self.payload_len.to_le_bytes());
        b[12..16].copy_from_slice(&self.raw_len.to_le_bytes());
        b[16..20].copy_from_slice(&self.event_count.to_le_bytes());
        b[20..24].copy_from_slice(&self.drops.to_le_bytes());
        b[24..32].copy_from_slice(&self.t_first.to_le_bytes());
        b[32..40].copy_from_slice(&self.t_last.to_le_bytes());
        b[40..56].copy_from_slice(&self.event_types.to_le_bytes());
        b[56..88].copy_from_slice(&self.chain);
        b
    }

    /// Parses a frame header; `None` when the magic is wrong.
    pub(crate) fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < FRAME_HEADER_LEN || &b[0..4] != FRAME_MAGIC {
            return None;
        }
        Some(Self {
            codec: le_u16(&b[4..6]),
            payload_len: le_u32(&b[8..12]),
            raw_len: le_u32(&b[12..16]),
            event_count: le_u32(&b[16..20]),
            drops: le_u32(&b[20..24]),
            t_first: le_u64(&b[24..32]),
            t_last: le_u64(&b[32..40]),
            event_types: u128::from_le_bytes(b[40..56].try_into().expect("16 bytes")),
            chain: b[56..88].try_into().expect("32 bytes"),
        })
    }

    /// Computes the chain hash for a frame whose header fields (all but `chain`) are set.
    pub(crate) fn chain_hash(&self, prev: &[u8; 32], payload: &[u8]) -> [u8; 32] {
        let enc = self.encode();
        let mut h = blake3::Hasher::new();
        h.update(prev);
        h.update(&enc[..56]);
        h.update(payload);
        *h.finalize().as_bytes()
    }

    /// True when event type `t` occurs in the chunk.
    pub fn has_event_type(&self, t: u16) -> bool {
        t < 128 && self.event_types & (1u128 << t) != 0
    }
}

/// The chain value a segment's first chunk is chained to.
pub(crate) fn chain_seed(meta_json: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"lanner-chain-v1");
    h.update(meta_json);
    *h.finalize().as_bytes()
}

pub(crate) fn le_u16(b: &[u8]) -> u16 {
    u16::from_le_bytes(b[..2].try_into().expect("2 bytes"))
}
pub(crate) fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().expect("4 bytes"))
}
pub(crate) fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}
