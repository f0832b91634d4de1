//! Integrity verification of segments and of the chain that links the segments of a capture.

use std::path::{Path, PathBuf};

use super::reader::SegmentReader;

/// One finding about a segment or about the link between two segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Every chunk verified; the segment was closed cleanly (or is still being written).
    Ok {
        /// The segment.
        path: PathBuf,
        /// Chunks verified.
        chunks: usize,
        /// Events in them.
        events: u64,
        /// Footer present.
        sealed: bool,
    },
    /// The writer stopped mid-chunk; everything before `offset` verified.
    TornTail {
        /// The segment.
        path: PathBuf,
        /// First byte not part of a complete chunk.
        offset: u64,
        /// Bytes from there to the end of the file.
        bytes: u64,
    },
    /// The segment cannot be read (not a segment, bad header, newer version), or was truncated
    /// after it was sealed (its complete chunks are still verified).
    Unreadable {
        /// The segment.
        path: PathBuf,
        /// Why, with the byte offset.
        what: String,
    },
    /// A damaged footer index (the chunks were found by scanning instead).
    DamagedFooter {
        /// The segment.
        path: PathBuf,
        /// What was wrong.
        what: String,
    },
    /// A chunk whose bytes do not match its hash or do not decode.
    CorruptChunk {
        /// The segment.
        path: PathBuf,
        /// Chunk number.
        index: usize,
        /// Byte offset of its frame.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// Two consecutive segments of one capture do not link up.
    ChainBroken {
        /// The earlier segment (in the order given).
        before: PathBuf,
        /// The later segment.
        after: PathBuf,
        /// What is wrong (segment missing, reordered, altered).
        what: String,
    },
}

impl Finding {
    /// True for findings that mean data was altered or lost (not "ok" and not "torn tail").
    pub fn is_problem(&self) -> bool {
        !matches!(self, Finding::Ok { .. } | Finding::TornTail { .. })
    }

    /// The segment the finding is about (for a broken chain, the later one).
    pub fn path(&self) -> &std::path::Path {
        match self {
            Finding::Ok { path, .. }
            | Finding::TornTail { path, .. }
            | Finding::Unreadable { path, .. }
            | Finding::DamagedFooter { path, .. }
            | Finding::CorruptChunk { path, .. } => path,
            Finding::ChainBroken { after, .. } => after,
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::Ok { path, chunks, events, sealed } => write!(
                f,
                "{}: ok ({chunks} chunks, {events} events, {})",
                path.display(),
                if *sealed { "sealed" } else { "not sealed: still being written or the writer stopped between chunks" }
            ),
            Finding::TornTail { path, offset, bytes } => write!(
                f,
                "{}: torn tail at byte offset {offset} ({bytes} bytes after the last complete chunk; the writer was stopped mid-chunk), every complete chunk before it verified",
                path.display()
            ),
            Finding::Unreadable { path: _, what } => write!(f, "{what}"),
            Finding::DamagedFooter { path: _, what } => write!(f, "{what}"),
            Finding::CorruptChunk { path, index, offset, what } => {
                write!(f, "{}: corrupted chunk {index} at byte offset {offset}: {what}", path.display())
            }
            Finding::ChainBroken { before, after, what } => {
                write!(f, "chain broken between {} and {}: {what}", before.display(), after.display())
            }
        }
    }
}

struct Link {
    path: PathBuf,
    capture_id: String,
    sequence: u64,
    prev_chain: String,
    last_chain: String,
}

/// Verifies `paths` (in the order given): every chunk of every segment, and the chain between
/// consecutive segments of the same capture.
pub fn verify(paths: &[PathBuf]) -> Vec<Finding> {
    verify_opened(paths.iter().map(|p| (p.clone(), SegmentReader::open(p))))
}

/// Verifies segments opened by the caller (from object storage, say), one at a time in the
/// order given: each is dropped before the next is opened.
pub fn verify_opened(
    segments: impl IntoIterator<Item = (PathBuf, Result<SegmentReader, super::ArchiveError>)>,
) -> Vec<Finding> {
    verify_checked(segments, |_, r, c| r.decode(c).map(|d| d.chunk().events.len() as u64))
}

/// As [`verify_opened`], with each chunk checked by `check` (segment number, reader, chunk):
/// its event count, or why it does not decode. A caller that has already decoded some chunks
/// (the report, say) answers for those from what it kept instead of decoding them twice.
pub fn verify_checked(
    segments: impl IntoIterator<Item = (PathBuf, Result<SegmentReader, super::ArchiveError>)>,
    mut check: impl FnMut(usize, &SegmentReader, &super::reader::ChunkRef) -> Result<u64, super::ArchiveError>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut last_of_capture: Vec<Link> = Vec::new();
    for (seg, (path, opened)) in segments.into_iter().enumerate() {
        let p = &path;
        let r = match opened {
            Ok(r) => r,
            Err(e) => {
                out.push(Finding::Unreadable { path: p.clone(), what: e.to_string() });
                continue;
            }
        };
        let before = out.len();
        for w in r.warnings() {
            out.push(Finding::DamagedFooter { path: p.clone(), what: format!("{}: {w}", p.display()) });
        }
        let mut events = 0u64;
        for c in r.chunks() {
            match check(seg, &r, c) {
                Ok(n) => events += n,
                Err(e) => out.push(Finding::CorruptChunk {
                    path: p.clone(),
                    index: c.index,
                    offset: c.offset,
                    what: corrupt_what(&e),
                }),
            }
        }
        if let Some(t) = r.truncation() {
            out.push(Finding::Unreadable {
                path: p.clone(),
                what: format!("{t}; the {} complete chunk(s) before the cut were verified", r.chunks().len()),
            });
        } else if let Some(t) = r.torn_tail() {
            out.push(Finding::TornTail { path: p.clone(), offset: t.offset, bytes: t.bytes });
        } else if out.len() == before {
            out.push(Finding::Ok { path: p.clone(), chunks: r.chunks().len(), events, sealed: r.is_sealed() });
        }
        let link = Link {
            path: p.clone(),
            capture_id: r.meta().capture_id.clone(),
            sequence: r.meta().sequence,
            prev_chain: r.meta().prev_chain.clone(),
            last_chain: r.last_chain_hex(),
        };
        if let Some(prev) = last_of_capture.iter_mut().find(|l| l.capture_id == link.capture_id) {
            if let Some(what) = link_problem(prev, &link) {
                out.push(Finding::ChainBroken { before: prev.path.clone(), after: p.clone(), what });
            }
            *prev = link;
        } else {
            last_of_capture.push(link);
        }
    }
    out
}

fn corrupt_what(e: &super::ArchiveError) -> String {
    match e {
        super::ArchiveError::CorruptChunk { what, .. } => what.clone(),
        other => other.to_string(),
    }
}

fn link_problem(a: &Link, b: &Link) -> Option<String> {
    let name = |p: &Path| p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned());
    if b.sequence <= a.sequence {
        return Some(format!(
            "{} (sequence {}) comes after {} (sequence {}): segments reordered or duplicated",
            name(&b.path),
            b.sequence,
            name(&a.path),
            a.sequence
        ));
    }
    if b.sequence > a.sequence + 1 {
        let missing = if b.sequence == a.sequence + 2 {
            format!("segment {} is", a.sequence + 1)
        } else {
            format!("segments {}..={} are", a.sequence + 1, b.sequence - 1)
        };
        return Some(format!("{missing} missing from capture {} (removed)", a.capture_id));
    }
    if b.prev_chain != a.last_chain {
        return Some(format!(
            "{} does not continue the hash chain of {} (a segment was altered or replaced)",
            name(&b.path),
            name(&a.path)
        ));
    }
    None
}
