//! Where the segments a command reads come from: local files and directories, or object storage
//! (`s3://BUCKET/PREFIX`, laid out by `lanner-objectstore`). Every command that reads archives
//! lists its inputs here and opens each through [`Segment`], so a bucket reads like a directory.
//!
//! A segment in object storage is read with ranged GETs: its header and footer index first, then
//! only the chunks a replay keeps after pruning by time and event type. The bytes not fetched are
//! never touched, so the buffer that holds a segment costs memory only for what was read.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use lanner_formats::archive::{
    index_location, list_segments, start_of_file_name, ArchiveError, ChunkRef, IndexLocation, SegmentReader,
    HEAD_BYTES, SEGMENT_EXTENSION,
};
use lanner_objectstore::keys::{listing_prefix, parse_segment_key};
use lanner_objectstore::{Connection, SegmentKey, Store, StoreUrl};

use crate::engine::Window;

/// Which segments to read, beyond the paths given.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Segments whose time range misses this window are skipped (object storage: by key).
    pub window: Window,
    /// Only this node's segments (object storage).
    pub node: Option<String>,
    /// Only this cluster's segments (object storage).
    pub cluster: Option<String>,
}

/// One segment to read.
pub enum Segment {
    /// A local file.
    File(PathBuf),
    /// An object in a bucket.
    Object(ObjectSegment),
}

/// Byte ranges of a segment fetched so far: (offset, bytes).
type Fetched = Vec<(u64, Vec<u8>)>;

/// A segment in object storage.
pub struct ObjectSegment {
    store: Arc<Store>,
    /// Its key and what the key says (cluster, node, name).
    pub key: SegmentKey,
    /// Its size in bytes.
    pub size: u64,
    /// The header and footer bytes, fetched once.
    index: Mutex<Option<Fetched>>,
}

impl Segment {
    /// The name used in messages: the file's path, or `s3://BUCKET/KEY`.
    pub fn path(&self) -> PathBuf {
        match self {
            Segment::File(p) => p.clone(),
            Segment::Object(o) => PathBuf::from(o.store.url.object_url(&o.key.key)),
        }
    }

    /// The cluster, for a segment from object storage.
    pub fn cluster(&self) -> Option<&str> {
        match self {
            Segment::File(_) => None,
            Segment::Object(o) => Some(&o.key.cluster),
        }
    }

    /// Opens the whole segment (object storage: one GET).
    pub fn open(&self) -> Result<SegmentReader, ArchiveError> {
        match self {
            Segment::File(p) => SegmentReader::open(p),
            Segment::Object(o) => {
                let bytes = o.store.get_all(&o.key.key).map_err(|e| o.io_error(e))?;
                SegmentReader::from_bytes(&self.path(), bytes)
            }
        }
    }

    /// Opens the segment to list its chunks (object storage: the header and footer only).
    pub fn open_index(&self) -> Result<SegmentReader, ArchiveError> {
        self.open_chunks(&[])
    }

    /// Opens the segment to decode `chunks` (object storage: the header, the footer and those
    /// chunks' bytes only; other chunks must not be decoded from this reader).
    pub fn open_chunks(&self, chunks: &[ChunkRef]) -> Result<SegmentReader, ArchiveError> {
        match self {
            Segment::File(p) => SegmentReader::open(p),
            Segment::Object(o) => {
                let Some(mut parts) = o.index_parts()? else { return self.open() };
                let mut ranges = coalesce(chunks);
                // Most of the object wanted: one GET of everything between the header and the
                // footer (already fetched) costs less than many.
                if ranges.iter().map(|r| r.end - r.start).sum::<u64>() * 2 > o.size {
                    let head_end = parts.iter().find(|(at, _)| *at == 0).map_or(0, |(_, b)| b.len() as u64);
                    let footer_start = parts.iter().map(|(at, _)| *at).filter(|&at| at > 0).min().unwrap_or(o.size);
                    ranges = Vec::new();
                    if head_end < footer_start {
                        ranges.push(head_end..footer_start);
                    }
                }
                for r in ranges {
                    let bytes = o.store.get_range(&o.key.key, r.clone()).map_err(|e| o.io_error(e))?;
                    parts.push((r.start, bytes));
                }
                let mut buf = vec![0u8; o.size as usize];
                for (at, bytes) in parts {
                    buf[at as usize..at as usize + bytes.len()].copy_from_slice(&bytes);
                }
                SegmentReader::from_bytes(&self.path(), buf)
            }
        }
    }
}

/// Byte ranges covering `chunks`, neighbours merged (fewer GETs for a run of chunks).
fn coalesce(chunks: &[ChunkRef]) -> Vec<std::ops::Range<u64>> {
    let mut v: Vec<std::ops::Range<u64>> = chunks.iter().map(|c| c.offset..c.offset + c.frame_len()).collect();
    v.sort_by_key(|r| r.start);
    let mut out: Vec<std::ops::Range<u64>> = Vec::new();
    for r in v {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

impl ObjectSegment {
    fn io_error(&self, e: anyhow::Error) -> ArchiveError {
        ArchiveError::Io {
            path: PathBuf::from(self.store.url.object_url(&self.key.key)),
            source: std::io::Error::other(format!("{e:#}")),
        }
    }

    /// The header and footer bytes at their offsets; `None` when the segment must be read whole
    /// (not sealed, or cut short).
    fn index_parts(&self) -> Result<Option<Fetched>, ArchiveError> {
        let mut cached = self.index.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(parts) = &*cached {
            return Ok(Some(parts.clone()));
        }
        let get = |r: std::ops::Range<u64>| self.store.get_range(&self.key.key, r).map_err(|e| self.io_error(e));
        let mut head = get(0..HEAD_BYTES.min(self.size))?;
        let mut loc = index_location(&head, self.size);
        if let IndexLocation::NeedHead(n) = loc {
            head = get(0..n)?;
            loc = index_location(&head, self.size);
        }
        let IndexLocation::Footer { footer, .. } = loc else { return Ok(None) };
        // A small segment's first bytes may already hold its footer.
        let foot = match head.get(footer.start as usize..footer.end as usize) {
            Some(b) => b.to_vec(),
            None => get(footer.clone())?,
        };
        let parts = vec![(0, head), (footer.start, foot)];
        *cached = Some(parts.clone());
        Ok(Some(parts))
    }
}

/// Expands the command-line inputs: files as given, directories to their `*.lnr` files (sorted),
/// `s3://BUCKET/PREFIX` to its segments (by cluster, node, then time).
pub fn discover(paths: &[PathBuf]) -> Result<Vec<Segment>> {
    discover_selected(paths, &Selection::default())
}

/// [`discover`], keeping only what `sel` selects (object storage is pruned by key before any
/// segment is read).
pub fn discover_selected(paths: &[PathBuf], sel: &Selection) -> Result<Vec<Segment>> {
    let mut out = Vec::new();
    for p in paths {
        if let Some(url) = p.to_str().filter(|s| StoreUrl::is_store_url(s)) {
            out.extend(list_bucket(&StoreUrl::parse(url)?, sel)?);
            continue;
        }
        let meta = std::fs::metadata(p).with_context(|| format!("{}", p.display()))?;
        if meta.is_dir() {
            let v: Vec<PathBuf> = list_segments(p)?.into_iter().map(|s| s.path).collect();
            if v.is_empty() {
                bail!("{}: no .{SEGMENT_EXTENSION} archive segments in this directory", p.display());
            }
            out.extend(v.into_iter().map(Segment::File));
        } else {
            out.push(Segment::File(p.clone()));
        }
    }
    Ok(out)
}

/// What reading object storage cost: GET requests, bytes received, and the total size of the
/// objects read from; `None` when no input was in object storage.
pub fn object_traffic(segments: &[Segment]) -> Option<(u64, u64, u64)> {
    let mut stores: Vec<&Arc<Store>> = Vec::new();
    let mut size = 0;
    for s in segments {
        if let Segment::Object(o) = s {
            size += o.size;
            if !stores.iter().any(|x| Arc::ptr_eq(x, &o.store)) {
                stores.push(&o.store);
            }
        }
    }
    if stores.is_empty() {
        return None;
    }
    let (mut gets, mut bytes) = (0, 0);
    for s in stores {
        let t = s.traffic();
        gets += t.gets.load(std::sync::atomic::Ordering::Relaxed);
        bytes += t.get_bytes.load(std::sync::atomic::Ordering::Relaxed);
    }
    Some((gets, bytes, size))
}

/// The local paths among `segments` (for inputs only files can be: `.scap` captures).
pub fn local_paths(segments: &[Segment]) -> Vec<&Path> {
    segments
        .iter()
        .filter_map(|s| match s {
            Segment::File(p) => Some(p.as_path()),
            Segment::Object(_) => None,
        })
        .collect()
}

/// The segments under `url` that `sel` selects. A node's keys sort in the order its segments
/// were written, and a segment ends before the next one starts: so a segment is skipped when it
/// starts after the window, or when the next one starts before the window does.
fn list_bucket(url: &StoreUrl, sel: &Selection) -> Result<Vec<Segment>> {
    let store = Arc::new(Store::connect(url, &Connection::from_env())?);
    let prefix = listing_prefix(url, sel.cluster.as_deref(), sel.node.as_deref());
    let objects = store.list(&prefix)?;
    let mut keys: Vec<(SegmentKey, u64)> = objects
        .into_iter()
        .filter_map(|o| parse_segment_key(url, &o.key).map(|k| (k, o.size)))
        .filter(|(k, _)| sel.node.as_deref().is_none_or(|n| k.node == n))
        .filter(|(k, _)| sel.cluster.as_deref().is_none_or(|c| k.cluster == c))
        .collect();
    if keys.is_empty() {
        bail!("{url}: no .{SEGMENT_EXTENSION} archive segments under this prefix{}", describe(sel));
    }
    keys.sort_by(|a, b| (&a.0.cluster, &a.0.node, &a.0.name).cmp(&(&b.0.cluster, &b.0.node, &b.0.name)));
    let starts: Vec<Option<u64>> = keys.iter().map(|(k, _)| start_of_file_name(&k.name)).collect();
    let mut out = Vec::new();
    for (i, (k, size)) in keys.iter().enumerate() {
        let start = starts[i];
        let same_node_next = keys.get(i + 1).filter(|(n, _)| n.cluster == k.cluster && n.node == k.node);
        // Names carry the start to the second: the next segment began before its name's second ended.
        let ends_before = same_node_next.and(starts.get(i + 1).copied().flatten()).map(|t| t + 1_000_000_000);
        let after_window = sel.window.until.zip(start).is_some_and(|(u, s)| s > u);
        let before_window = sel.window.since.zip(ends_before).is_some_and(|(s, e)| e <= s);
        if !after_window && !before_window {
            out.push(Segment::Object(ObjectSegment {
                store: Arc::clone(&store),
                key: k.clone(),
                size: *size,
                index: Mutex::new(None),
            }));
        }
    }
    Ok(out)
}

fn describe(sel: &Selection) -> String {
    let mut s = String::new();
    if let Some(c) = &sel.cluster {
        s += &format!(" for cluster {c}");
    }
    if let Some(n) = &sel.node {
        s += &format!(" for node {n}");
    }
    s
}
