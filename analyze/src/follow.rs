//! Live detection: follows a capture spool as segments grow, rotate and are deleted, with a
//! checkpoint so that a restart resumes exactly after the last chunk whose alerts were written.
//!
//! Exactly-once for file outputs: alerts of a chunk are flushed, then the checkpoint (segment,
//! next chunk, and each output file's length) is replaced atomically. On restart, output files
//! are cut back to the recorded length, dropping alerts written after the last checkpoint.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use lanner_formats::archive::{list_segments, SegmentReader};
use serde::{Deserialize, Serialize};

use crate::engine::Window;
use crate::engine::{evaluate_chunk, ChunkStats};
use crate::rules::RuleSet;
use crate::sinks::Sink;

/// Where `follow` stopped.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Checkpoint {
    /// File name of the segment being followed.
    pub segment: String,
    /// Index of the next chunk to evaluate in it.
    pub next_chunk: usize,
    /// Output files and their lengths when the checkpoint was written.
    pub outputs: Vec<(PathBuf, u64)>,
}

impl Checkpoint {
    /// Reads a checkpoint; a missing file means "from the start".
    pub fn load(path: &Path) -> Result<Option<Self>> {
        match std::fs::read(path) {
            Ok(b) => Ok(Some(
                serde_json::from_slice(&b).with_context(|| format!("{}: not a follow checkpoint", path.display()))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Replaces the checkpoint file atomically (write, sync, rename).
    pub fn store(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("tmp");
        let f = std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        serde_json::to_writer(&f, self)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
    }
}

/// Cuts each output file back to the length recorded in the checkpoint (drops alerts written
/// after it, which will be written again).
pub fn rewind_outputs(cp: &Checkpoint) -> Result<()> {
    for (path, len) in &cp.outputs {
        if let Ok(m) = std::fs::metadata(path) {
            if m.len() > *len {
                let f = std::fs::OpenOptions::new().write(true).open(path)?;
                f.set_len(*len).with_context(|| format!("rewinding {}", path.display()))?;
            }
        }
    }
    Ok(())
}

fn segments(dir: &Path) -> Result<Vec<String>> {
    Ok(list_segments(dir)?
        .into_iter()
        .filter_map(|s| s.path.file_name().and_then(|n| n.to_str()).map(str::to_owned))
        .collect())
}

/// Follows `spool` until `stop` is set, sending alerts to `sinks` and checkpointing to
/// `checkpoint`. Returns the number of alerts sent.
pub fn follow(
    rules: &RuleSet,
    spool: &Path,
    checkpoint: &Path,
    sinks: &mut [Box<dyn Sink>],
    poll: Duration,
    stop: &AtomicBool,
) -> Result<u64> {
    let mut cp = Checkpoint::load(checkpoint)?.unwrap_or_default();
    rewind_outputs(&cp)?;
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let segs = segments(spool)?;
        // Resume at the checkpointed segment, or the first one after it if retention removed it.
        let start = segs.iter().position(|s| *s >= cp.segment).unwrap_or(segs.len());
        if !cp.segment.is_empty() && segs.get(start) != Some(&cp.segment) {
            if let Some(next) = segs.get(start) {
                log_gap(&cp.segment, next);
                cp = Checkpoint { segment: next.clone(), next_chunk: 0, outputs: cp.outputs };
            }
        }
        let mut progressed = false;
        for (k, name) in segs.iter().enumerate().skip(start) {
            if cp.segment != *name {
                cp.segment = name.clone();
                cp.next_chunk = 0;
            }
            let r = match SegmentReader::open(&spool.join(name)) {
                Ok(r) => r,
                // A segment whose header is still being written: try again later.
                Err(_) if k + 1 == segs.len() => break,
                Err(e) => {
                    log::error!("{e}; skipping this segment");
                    continue;
                }
            };
            for c in r.chunks().iter().skip(cp.next_chunk) {
                match r.decode(c) {
                    Ok(d) => {
                        let mut stats = ChunkStats::default();
                        for a in evaluate_chunk(rules, &d, r.meta(), c.first_event, Window::default(), &mut stats) {
                            for s in sinks.iter_mut() {
                                s.send(&a)?;
                            }
                            sent += 1;
                        }
                    }
                    Err(e) => log::error!("{e}"),
                }
                for s in sinks.iter_mut() {
                    s.flush()?;
                }
                cp.next_chunk = c.index + 1;
                cp.outputs = sinks.iter().filter_map(|s| s.durable_position()).collect();
                cp.store(checkpoint)?;
                progressed = true;
            }
            // Only the newest segment can still grow; an older unsealed one lost its writer.
            if k + 1 == segs.len() {
                break;
            }
        }
        if !progressed {
            std::thread::sleep(poll);
        }
    }
    Ok(sent)
}

fn log_gap(from: &str, to: &str) {
    log::warn!("segment {from} is gone (retention?); continuing with {to}: events between them were not analyzed");
}
