//! Shipping: uploads every closed segment of the spool to object storage, on its own thread.
//!
//! The shipper only reads the spool directory: a segment is closed when it is sealed, when it
//! belongs to an earlier capture run (a run that was killed leaves its last segment unsealed), or
//! when a later segment of the same run exists. So a restart resumes where shipping stopped, with
//! no state but the `.shipped` markers ([`ledger`]). Uploads stream from disk, so memory stays
//! bounded whatever the segment size. Failures are retried with exponential backoff; while they
//! last, segments wait on disk and retention keeps them (see `spool::retention`).

pub mod ledger;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use lanner_formats::archive::{capture_of_file_name, list_segments, SegmentReader};
use lanner_objectstore::{segment_key, Connection, Store, StoreUrl};

use crate::metrics::Metrics;

/// How often the spool is looked at for newly closed segments.
const POLL: Duration = Duration::from_millis(500);
/// The first retry delay after a failed upload; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Shipping is "behind" (a loud warning) when a closed segment has waited this long.
const BEHIND_AFTER: Duration = Duration::from_secs(300);

/// Where and as whom segments are shipped.
#[derive(Debug, Clone)]
pub struct ShipConfig {
    /// The bucket and prefix (`--ship s3://BUCKET/PREFIX`).
    pub url: StoreUrl,
    /// Endpoint, addressing and region.
    pub connection: Connection,
    /// The cluster name in keys (`--cluster`).
    pub cluster: String,
    /// The node name in keys (the segment's hostname when `None`).
    pub node: Option<String>,
}

/// The shipping thread; [`Shipper::finish`] ships what is left and stops it.
pub struct Shipper {
    stop: Arc<AtomicBool>,
    draining: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Shipper {
    /// Connects to the store and starts shipping the closed segments of `dir`. `capture_id` is
    /// this run's: its newest segment is the one being written.
    pub fn start(dir: &Path, cfg: ShipConfig, capture_id: String, metrics: Arc<Metrics>) -> Result<Self> {
        let store = Store::connect(&cfg.url, &cfg.connection).with_context(|| format!("--ship {}", cfg.url))?;
        let stop = Arc::new(AtomicBool::new(false));
        let draining = Arc::new(AtomicBool::new(false));
        let mut worker = Worker {
            dir: dir.to_owned(),
            cfg,
            store,
            capture_id,
            metrics,
            stop: Arc::clone(&stop),
            draining: Arc::clone(&draining),
            backoff: FIRST_BACKOFF,
            warned: None,
        };
        let thread = std::thread::Builder::new().name("ship".into()).spawn(move || worker.run())?;
        Ok(Self { stop, draining, thread: Some(thread) })
    }

    /// Capture has stopped and closed its last segment: ships everything still waiting, giving
    /// up after `timeout` (what is left ships on the next start).
    pub fn finish(mut self, timeout: Duration) {
        self.draining.store(true, Relaxed);
        let deadline = Instant::now() + timeout;
        if let Some(t) = self.thread.take() {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if !t.is_finished() {
                log::warn!("ship: segments still waiting after {timeout:?}; they ship when capture starts again");
            }
            self.stop.store(true, Relaxed);
            let _ = t.join();
        }
    }
}

impl Drop for Shipper {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
    }
}

/// A closed segment not shipped yet.
struct Pending {
    path: PathBuf,
    modified: SystemTime,
}

struct Worker {
    dir: PathBuf,
    cfg: ShipConfig,
    store: Store,
    capture_id: String,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    draining: Arc<AtomicBool>,
    backoff: Duration,
    warned: Option<Instant>,
}

impl Worker {
    fn run(&mut self) {
        loop {
            if self.stop.load(Relaxed) {
                return;
            }
            // Read before the pass: when draining, the last segment is already closed, so one
            // clean pass that finds nothing left means done.
            let draining = self.draining.load(Relaxed);
            let pending = self.pending();
            self.report(&pending);
            if pending.is_empty() {
                if draining {
                    return;
                }
                self.sleep(POLL);
                continue;
            }
            for p in &pending {
                if self.stop.load(Relaxed) {
                    return;
                }
                match self.ship(&p.path) {
                    Ok(bytes) => {
                        self.backoff = FIRST_BACKOFF;
                        self.metrics.ship_segments.fetch_add(1, Relaxed);
                        self.metrics.ship_bytes.fetch_add(bytes, Relaxed);
                    }
                    Err(e) => {
                        self.metrics.ship_failures.fetch_add(1, Relaxed);
                        log::warn!("ship: {e:#}; retrying in {:?}", self.backoff);
                        self.sleep(self.backoff);
                        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                        break;
                    }
                }
            }
        }
    }

    /// Sleeps `d`, waking early to stop.
    fn sleep(&self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end && !self.stop.load(Relaxed) {
            std::thread::sleep(Duration::from_millis(50).min(end - Instant::now()));
        }
    }

    /// The closed segments without a `.shipped` marker, oldest first.
    fn pending(&self) -> Vec<Pending> {
        let segments = match list_segments(&self.dir) {
            Ok(s) => s,
            Err(e) => {
                log::warn!("ship: {e}");
                return Vec::new();
            }
        };
        let run_of = |s: &lanner_formats::archive::SegmentFile| {
            s.path.file_name().and_then(|n| n.to_str()).and_then(capture_of_file_name).map(str::to_owned)
        };
        let runs: Vec<Option<String>> = segments.iter().map(run_of).collect();
        let ours = self.capture_id.get(..8).unwrap_or(&self.capture_id);
        let mut out = Vec::new();
        for (i, s) in segments.iter().enumerate() {
            if ledger::is_shipped(&s.path) {
                continue;
            }
            let earlier_run = runs[i].as_deref() != Some(ours);
            let later_of_same_run = runs[i + 1..].contains(&runs[i]);
            // The open segment of this run is the only one whose header must be read.
            let closed = earlier_run || later_of_same_run || SegmentReader::open(&s.path).is_ok_and(|r| r.is_sealed());
            if closed {
                out.push(Pending { path: s.path.clone(), modified: s.modified });
            }
        }
        out
    }

    /// Updates the queue and lag gauges, and warns (at most once a minute) when behind.
    fn report(&mut self, pending: &[Pending]) {
        self.metrics.ship_queue.store(pending.len() as u64, Relaxed);
        let lag = pending
            .iter()
            .map(|p| SystemTime::now().duration_since(p.modified).unwrap_or_default())
            .max()
            .unwrap_or_default();
        self.metrics.ship_lag_seconds.store(lag.as_secs(), Relaxed);
        if lag >= BEHIND_AFTER && self.warned.is_none_or(|w| w.elapsed() >= Duration::from_secs(60)) {
            self.warned = Some(Instant::now());
            log::warn!(
                "ship: BEHIND: {} closed segment(s) wait to be shipped to {}, the oldest for {}s; retention keeps them until they are shipped",
                pending.len(),
                self.cfg.url,
                lag.as_secs()
            );
        }
    }

    /// Uploads one segment to its key and marks it shipped; returns its size.
    fn ship(&self, path: &Path) -> Result<u64> {
        let r = SegmentReader::open(path).with_context(|| path.display().to_string())?;
        let meta = r.meta();
        let node = self.cfg.node.as_deref().unwrap_or(&meta.hostname);
        let name = path.file_name().and_then(|n| n.to_str()).context("segment file name is not UTF-8")?;
        let key = segment_key(&self.cfg.url, &self.cfg.cluster, node, meta.created_ns, name);
        drop(r);
        let bytes = self.store.put_file(&key, path)?;
        ledger::mark_shipped(path).with_context(|| format!("writing {}", ledger::marker(path).display()))?;
        log::info!("ship: {} -> {} ({bytes} bytes)", path.display(), self.store.url.object_url(&key));
        Ok(bytes)
    }
}
