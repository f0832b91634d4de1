//! Replays archives: finds segments, splits the work by chunk across rayon threads, and hands
//! alerts to the sinks in archive order, whatever the thread count.

use std::collections::BTreeMap;

use anyhow::Result;
use lanner_formats::alert::Alert;
use lanner_formats::archive::{ChunkRef, SegmentReader};
use rayon::prelude::*;

pub use crate::engine::Window;
use crate::engine::{evaluate_chunk, ChunkStats};
use crate::rules::RuleSet;
use crate::segments::Segment;
use crate::sinks::Sink;

/// What a replay saw (written by `replay --summary-out`, combined by `merge`).
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReplaySummary {
    /// The shard this replay covered, when the work was split (`replay --shard`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::shard::Shard>,
    /// Segments read.
    pub segments: usize,
    /// Chunks evaluated.
    pub chunks: usize,
    /// Chunks skipped without decompressing (time window or event types from the index).
    pub chunks_pruned: usize,
    /// Events evaluated.
    pub events: u64,
    /// Alerts per rule.
    pub hits: BTreeMap<String, u64>,
    /// Alerts per rule and process name.
    pub hits_by_process: BTreeMap<String, BTreeMap<String, u64>>,
    /// Alerts per rule and container id.
    pub hits_by_container: BTreeMap<String, BTreeMap<String, u64>>,
    /// Alerts per rule and node (the recording host).
    #[serde(default)]
    pub hits_by_node: BTreeMap<String, BTreeMap<String, u64>>,
    /// Time range covered (unix ns).
    pub t_range: Option<(u64, u64)>,
    /// Kernel drops recorded in the archives.
    pub drops: u64,
    /// Problems that did not stop the replay but lost no good data (torn tails…).
    pub warnings: Vec<String>,
    /// Data that could not be read (corrupt chunks, unreadable segments).
    pub errors: Vec<String>,
}

impl ReplaySummary {
    /// Total alerts.
    pub fn alerts(&self) -> u64 {
        self.hits.values().sum()
    }

    /// Adds what `other` saw (another shard, or another part of the archive).
    pub fn absorb(&mut self, other: &ReplaySummary) {
        self.segments += other.segments;
        self.chunks += other.chunks;
        self.chunks_pruned += other.chunks_pruned;
        self.events += other.events;
        self.drops += other.drops;
        for (rule, n) in &other.hits {
            *self.hits.entry(rule.clone()).or_default() += n;
        }
        for (mine, theirs) in [
            (&mut self.hits_by_process, &other.hits_by_process),
            (&mut self.hits_by_container, &other.hits_by_container),
            (&mut self.hits_by_node, &other.hits_by_node),
        ] {
            for (rule, by) in theirs {
                let m = mine.entry(rule.clone()).or_default();
                for (k, n) in by {
                    *m.entry(k.clone()).or_default() += n;
                }
            }
        }
        if let Some((a, b)) = other.t_range {
            self.t_range = Some(self.t_range.map_or((a, b), |(x, y)| (x.min(a), y.max(b))));
        }
        self.warnings.extend(other.warnings.iter().cloned());
        self.errors.extend(other.errors.iter().cloned());
    }
}

/// What evaluating one chunk produced.
struct ChunkResult {
    alerts: Vec<Alert>,
    stats: ChunkStats,
    drops: u64,
}

/// Told how far a replay has come (the binary draws a progress bar with it); every method does
/// nothing by default.
pub trait Progress {
    /// The replay will read `total_bytes` of chunk frames.
    fn start(&self, _total_bytes: u64) {}
    /// `bytes` more were read; `events` have been evaluated so far.
    fn advance(&self, _bytes: u64, _events: u64) {}
    /// The replay is done.
    fn finish(&self) {}
}

/// No progress reporting.
pub struct NoProgress;

impl Progress for NoProgress {}

/// Replays `segments` with `rules`, sending alerts to every sink in archive order and telling
/// `progress` how far it has come.
pub fn replay(
    rules: &RuleSet,
    segments: &[Segment],
    window: Window,
    sinks: &mut [Box<dyn Sink>],
    progress: &dyn Progress,
) -> Result<ReplaySummary> {
    let mut summary = ReplaySummary::default();
    // Index every segment (header and footer only), then unmap it: a mapped segment keeps the
    // pages the kernel faulted in around what was read. Segments are mapped again while their
    // chunks are evaluated and unmapped when done, so memory stays bounded by the batch.
    let mut files: Vec<&Segment> = Vec::new();
    let wanted_types = rules.event_type_mask();
    let mut jobs: Vec<(usize, ChunkRef)> = Vec::new();
    // Indexed in parallel; each segment is unmapped before the next step.
    let indexed: Vec<Indexed> = segments.par_iter().map(index_segment).collect();
    for (p, ix) in segments.iter().zip(indexed) {
        summary.warnings.extend(ix.warnings);
        summary.errors.extend(ix.errors);
        let Some(chunks) = ix.chunks else { continue };
        let i = files.len();
        for c in &chunks {
            let h = &c.header;
            // Chunks holding only drop records carry no events but must still be counted.
            let keep = (h.event_count == 0 && h.drops > 0)
                || (window.overlaps(h.t_first, h.t_last) && h.event_types & wanted_types != 0);
            if keep {
                jobs.push((i, *c));
            } else {
                summary.chunks_pruned += 1;
            }
        }
        files.push(p);
    }
    summary.segments = files.len();
    let mut readers: Vec<Option<SegmentReader>> = (0..files.len()).map(|_| None).collect();
    progress.start(jobs.iter().map(|(_, c)| c.frame_len()).sum());
    // Bounded windows keep memory flat; order inside a window is preserved by `collect`.
    let batch_len = rayon::current_num_threads().max(1) * 32;
    let mut last_job = vec![0usize; readers.len()];
    // Each segment's chunks to evaluate, grouped once: a segment is opened for all of them.
    let mut chunks_of: Vec<Vec<ChunkRef>> = vec![Vec::new(); readers.len()];
    for (k, (i, c)) in jobs.iter().enumerate() {
        last_job[*i] = k;
        chunks_of[*i].push(*c);
    }
    for (b, batch) in jobs.chunks(batch_len).enumerate() {
        let mut to_open: Vec<usize> = batch.iter().map(|(i, _)| *i).filter(|&i| readers[i].is_none()).collect();
        to_open.dedup();
        // A segment is opened once, at its first chunk, for all of its chunks: from object
        // storage, only those are fetched.
        let reopened: Vec<_> = to_open.par_iter().map(|&i| (i, files[i].open_chunks(&chunks_of[i]))).collect();
        for (i, res) in reopened {
            // Indexed a moment ago; a segment that vanished or changed since is reported.
            match res {
                Ok(r) => readers[i] = Some(r),
                Err(e) => summary.errors.push(e.to_string()),
            }
        }
        let results: Vec<Result<ChunkResult, String>> = batch
            .par_iter()
            .map(|(i, c)| {
                let r = readers[*i]
                    .as_ref()
                    .ok_or_else(|| format!("{}: could not be reopened", files[*i].path().display()))?;
                let decoded = r.decode(c).map_err(|e| e.to_string())?;
                let mut stats = ChunkStats::default();
                let alerts = evaluate_chunk(rules, &decoded, r.meta(), c.first_event, window, &mut stats);
                Ok(ChunkResult { alerts, stats, drops: decoded.chunk().drops.to_native() })
            })
            .collect();
        let batch_bytes: u64 = batch.iter().map(|(_, c)| c.frame_len()).sum();
        let done = (b + 1) * batch_len;
        for res in results {
            match res {
                Ok(ChunkResult { alerts, stats, drops }) => {
                    summary.chunks += 1;
                    summary.events += stats.events;
                    summary.drops += drops;
                    if let Some((a, b)) = stats.t_range {
                        summary.t_range = Some(summary.t_range.map_or((a, b), |(x, y)| (x.min(a), y.max(b))));
                    }
                    for (a, (proc_name, container)) in alerts.iter().zip(&stats.alert_procs) {
                        *summary.hits.entry(a.rule.clone()).or_default() += 1;
                        let by_proc = summary.hits_by_process.entry(a.rule.clone()).or_default();
                        *by_proc.entry(proc_name.clone()).or_default() += 1;
                        let by_container = summary.hits_by_container.entry(a.rule.clone()).or_default();
                        *by_container.entry(container.clone()).or_default() += 1;
                        let by_node = summary.hits_by_node.entry(a.rule.clone()).or_default();
                        *by_node.entry(a.hostname.clone()).or_default() += 1;
                        for s in sinks.iter_mut() {
                            s.send(a)?;
                        }
                    }
                }
                Err(e) => summary.errors.push(e),
            }
        }
        progress.advance(batch_bytes, summary.events);
        // Alerts become durable / visible window by window (and file outputs rotate).
        for s in sinks.iter_mut() {
            s.flush()?;
        }
        for (i, r) in readers.iter_mut().enumerate() {
            if r.is_some() && last_job[i] < done {
                *r = None;
            }
        }
    }
    progress.finish();
    for s in sinks.iter_mut() {
        s.flush()?;
    }
    Ok(summary)
}

/// What indexing one segment found.
struct Indexed {
    chunks: Option<Vec<ChunkRef>>,
    warnings: Vec<String>,
    errors: Vec<String>,
}

/// Opens a segment, lists its chunks and problems, and unmaps it.
fn index_segment(s: &Segment) -> Indexed {
    let mut ix = Indexed { chunks: None, warnings: Vec::new(), errors: Vec::new() };
    let p = &s.path();
    match s.open_index() {
        Ok(r) => {
            ix.warnings.extend(r.warnings().iter().cloned());
            if let Some(e) = r.truncation() {
                ix.errors.push(format!("{e}; the {} complete chunk(s) before the cut were read", r.chunks().len()));
            } else if let Some(t) = r.torn_tail() {
                ix.warnings.push(format!(
                    "{}: torn tail at byte offset {} ({} bytes after the last complete chunk were not decoded; the writer did not close this segment, e.g. it was killed); the {} complete chunk(s) before it were read",
                    p.display(),
                    t.offset,
                    t.bytes,
                    r.chunks().len()
                ));
            }
            ix.chunks = Some(r.chunks().to_vec());
        }
        Err(e) => ix.errors.push(e.to_string()),
    }
    ix
}
