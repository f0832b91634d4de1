//! Turns events into sealed chunks and rotating segment files in the spool directory, applies
//! retention, and survives a full disk (chunks that cannot be written are counted as lost).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use lanner_formats::archive::{ChunkBuilder, SegmentMeta, SegmentWriter, SEGMENT_EXTENSION};
use lanner_formats::event::{Chunk, Event, Process, NONE};

use crate::metrics::Metrics;
use crate::retention::{self, RetentionPolicy};
use crate::state::{EventDraft, ProcessTable};

/// How often a failing spool is reported in the log.
const WRITE_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// How often age rotation and retention are checked when no chunk is sealed.
const MAINTAIN_INTERVAL: Duration = Duration::from_secs(1);

/// When to seal chunks and rotate segments.
#[derive(Debug, Clone)]
pub struct SpoolLimits {
    /// Seal a chunk after this many events.
    pub chunk_events: usize,
    /// Seal a non-empty chunk after this long.
    pub chunk_interval: Duration,
    /// Start a new segment once the current one reaches this size.
    pub segment_bytes: u64,
    /// Start a new segment once the current one is this old.
    pub segment_age: Option<Duration>,
    /// Which old segments to delete.
    pub retention: RetentionPolicy,
    /// zstd level.
    pub zstd_level: i32,
}

/// Writes one capture run into a spool directory.
pub struct Spool {
    dir: PathBuf,
    limits: SpoolLimits,
    meta: SegmentMeta,
    builder: ChunkBuilder,
    in_chunk: HashMap<(u32, u64), u32>,
    chunk_opened: Instant,
    writer: Option<SegmentWriter>,
    segment_opened: Instant,
    last_maintain: Instant,
    metrics: Arc<Metrics>,
    /// When the last write error was logged, and events lost since.
    write_error_logged: Option<Instant>,
    lost_since_log: u64,
    recovery_logged: Option<Instant>,
    lost_since_recovery: u64,
    failing: bool,
    /// Segments finished so far.
    pub finished: Vec<PathBuf>,
    /// Events written so far.
    pub events_written: u64,
    /// Events lost because their chunk could not be written.
    pub events_lost: u64,
}

impl Spool {
    /// Prepares a spool in `dir` (created if missing) for a capture described by `meta`.
    pub fn new(dir: &Path, limits: SpoolLimits, meta: SegmentMeta, metrics: Arc<Metrics>) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating spool directory {}", dir.display()))?;
        let mut spool = Self {
            dir: dir.to_owned(),
            limits,
            meta,
            builder: ChunkBuilder::new(),
            in_chunk: HashMap::new(),
            chunk_opened: Instant::now(),
            writer: None,
            segment_opened: Instant::now(),
            last_maintain: Instant::now(),
            metrics,
            write_error_logged: None,
            lost_since_log: 0,
            recovery_logged: None,
            lost_since_recovery: 0,
            failing: false,
            finished: Vec::new(),
            events_written: 0,
            events_lost: 0,
        };
        // The first segment exists from the start, so a capture killed before its first chunk
        // still leaves a verifiable (empty) archive behind.
        if let Err(e) = spool.open_segment() {
            spool.report_write_error(&e);
        }
        Ok(spool)
    }

    /// Adds one event; its process (and ancestors) are copied into the chunk on first use.
    pub fn push(&mut self, d: &EventDraft, table: &ProcessTable) {
        if self.builder.is_empty() {
            self.chunk_opened = Instant::now();
        }
        let process = self.intern_process(d.pid, table);
        let path = self.builder.intern_path_opt(d.path.as_deref());
        let path2 = self.builder.intern_path_opt(d.path2.as_deref());
        self.builder.push(Event {
            ts_ns: d.ts_ns,
            tid: d.tid,
            process,
            etype: d.etype as u16,
            ret: d.ret,
            flags: d.flags,
            mode: d.mode,
            dirfd: d.dirfd,
            path,
            path2,
        });
    }

    /// Records kernel drops in the open chunk.
    pub fn add_drops(&mut self, n: u64) {
        if n > 0 {
            if self.builder.is_empty() {
                self.chunk_opened = Instant::now();
            }
            self.builder.add_drops(n);
        }
    }

    fn intern_process(&mut self, pid: u32, table: &ProcessTable) -> u32 {
        // Walk up to the oldest ancestor not yet in the chunk, then add downwards.
        let mut chain = Vec::new();
        let mut cur = pid;
        let mut parent_idx = NONE;
        while let Some(p) = table.get(cur) {
            if let Some(&idx) = self.in_chunk.get(&(p.pid, p.version)) {
                parent_idx = idx;
                break;
            }
            chain.push(p);
            if p.ppid == 0 || p.ppid == p.pid || chain.len() >= 64 {
                break;
            }
            cur = p.ppid;
        }
        if chain.is_empty() && parent_idx == NONE {
            // Unknown process: keep the event, with a minimal entry.
            let empty = self.builder.intern("");
            let idx = self.builder.add_process(Process {
                pid,
                ppid: 0,
                parent: NONE,
                uid: 0,
                gid: 0,
                name: empty,
                exe: empty,
                exepath: empty,
                args: empty,
                cwd: empty,
                start_ns: 0,
                container_id: empty,
                tty: 0,
                loginuid: u32::MAX,
                container_name: NONE,
                container_image: NONE,
                k8s_pod: NONE,
                k8s_ns: NONE,
            });
            return idx;
        }
        let mut idx = parent_idx;
        for p in chain.into_iter().rev() {
            let b = &mut self.builder;
            let name = b.intern(&p.comm);
            let exe = b.intern(&p.exe);
            let exepath = b.intern(&p.exepath);
            let args = b.intern(&p.args.join("\0"));
            let cwd = b.intern(&p.cwd);
            let container_id = b.intern(&p.container_id);
            let mut opt = |s: &str| if s.is_empty() { NONE } else { b.intern(s) };
            let (container_name, container_image) = (opt(&p.container_name), opt(&p.container_image));
            let (k8s_pod, k8s_ns) = (opt(&p.k8s_pod), opt(&p.k8s_ns));
            idx = b.add_process(Process {
                pid: p.pid,
                ppid: p.ppid,
                parent: idx,
                uid: p.uid,
                gid: p.gid,
                name,
                exe,
                exepath,
                args,
                cwd,
                start_ns: p.start_ns,
                container_id,
                tty: p.tty,
                loginuid: p.loginuid,
                container_name,
                container_image,
                k8s_pod,
                k8s_ns,
            });
            self.in_chunk.insert((p.pid, p.version), idx);
        }
        idx
    }

    /// True when the open chunk should be sealed now.
    pub fn due(&self) -> bool {
        !self.builder.is_empty()
            && (self.builder.len() >= self.limits.chunk_events
                || self.chunk_opened.elapsed() >= self.limits.chunk_interval)
    }

    /// Seals the open chunk (if any) into the current segment, then rotates the segment by size
    /// or age and applies retention. A chunk that cannot be written (after retention made room
    /// on a full disk) is counted as lost, in the next chunk's drops and in the metrics.
    pub fn seal(&mut self) {
        if self.builder.is_empty() {
            return;
        }
        let chunk = self.builder.take();
        self.in_chunk.clear();
        let mut result = self.write_chunk(&chunk);
        if let Err(e) = &result {
            self.report_write_error(e);
            // Free space one segment at a time until the chunk fits or nothing is left to delete.
            while result.as_ref().is_err_and(is_disk_full) && self.make_room() {
                result = self.write_chunk(&chunk);
            }
        }
        match result {
            Ok(()) => {
                if self.failing && self.recovery_logged.is_none_or(|t| t.elapsed() >= WRITE_ERROR_LOG_INTERVAL) {
                    log::info!(
                        "spool writable again; {} event(s) lost since the last message (logged at most once a minute)",
                        self.lost_since_recovery
                    );
                    self.recovery_logged = Some(Instant::now());
                    self.lost_since_recovery = 0;
                }
                self.failing = false;
            }
            Err(_) => {
                let lost = chunk.events.len() as u64;
                self.events_lost += lost;
                self.lost_since_log += lost;
                self.lost_since_recovery += lost;
                self.metrics.lost_events.fetch_add(lost, Relaxed);
                // The next chunk written carries the loss (and this chunk's kernel drops).
                self.add_drops(lost + chunk.drops);
            }
        }
        if self.rotation_due() {
            self.close_segment();
            self.apply_retention();
        }
    }

    /// Periodic work between chunks: rotates an idle segment by age and applies retention.
    pub fn maintain(&mut self) {
        if self.last_maintain.elapsed() < MAINTAIN_INTERVAL {
            return;
        }
        self.last_maintain = Instant::now();
        if self.rotation_due() {
            self.close_segment();
        }
        self.apply_retention();
    }

    fn rotation_due(&self) -> bool {
        self.writer.as_ref().is_some_and(|w| {
            w.len() >= self.limits.segment_bytes
                || self.limits.segment_age.is_some_and(|a| self.segment_opened.elapsed() >= a)
        })
    }

    fn write_chunk(&mut self, chunk: &Chunk) -> Result<()> {
        if self.writer.is_none() {
            self.open_segment()?;
        }
        let w = self.writer.as_mut().expect("segment open");
        let before = w.len();
        w.append(chunk).context("writing chunk")?;
        let m = &self.metrics;
        m.bytes_written.fetch_add(w.len() - before, Relaxed);
        m.chunks_written.fetch_add(1, Relaxed);
        m.open_segment_bytes.store(w.len(), Relaxed);
        m.add_events(&chunk.events.etype);
        self.events_written += chunk.events.len() as u64;
        Ok(())
    }

    fn report_write_error(&mut self, e: &anyhow::Error) {
        self.metrics.write_errors.fetch_add(1, Relaxed);
        self.failing = true;
        if self.write_error_logged.is_some_and(|t| t.elapsed() < WRITE_ERROR_LOG_INTERVAL) {
            return;
        }
        self.write_error_logged = Some(Instant::now());
        let what = if is_disk_full(e) { "disk full" } else { "write error" };
        log::error!(
            "{what} in spool {}: {e:#}; capture continues, chunks that cannot be written are counted as lost ({} event(s) lost since the last message; logged at most once a minute)",
            self.dir.display(),
            self.lost_since_log
        );
        self.lost_since_log = 0;
    }

    /// Frees space on a full disk: retention first, then (when retention is configured) the
    /// oldest segment other than the open one. True when something was deleted.
    fn make_room(&mut self) -> bool {
        if !self.limits.retention.is_enabled() {
            return false;
        }
        if self.apply_retention() > 0 {
            return true;
        }
        let open = self.writer.as_ref().map(|w| w.path().to_owned());
        match retention::free_oldest(&self.dir, open.as_deref()) {
            Ok(Some(bytes)) => {
                self.metrics.segments_deleted.fetch_add(1, Relaxed);
                self.metrics.bytes_deleted.fetch_add(bytes, Relaxed);
                true
            }
            Ok(None) => false,
            Err(e) => {
                log::warn!("retention: {e:#}");
                false
            }
        }
    }

    /// Deletes what the retention policy says; returns the number of segments deleted.
    fn apply_retention(&mut self) -> u64 {
        let open = self.writer.as_ref().map(|w| w.path().to_owned());
        match retention::apply(&self.dir, open.as_deref(), &self.limits.retention) {
            Ok((bytes, files)) => {
                self.metrics.segments_deleted.fetch_add(files, Relaxed);
                self.metrics.bytes_deleted.fetch_add(bytes, Relaxed);
                files
            }
            Err(e) => {
                log::warn!("retention: {e:#}");
                0
            }
        }
    }

    fn open_segment(&mut self) -> Result<()> {
        let start = chrono::DateTime::from_timestamp_nanos(self.meta.created_ns as i64);
        let name = format!(
            "lanner-{}-{}-{:06}.{SEGMENT_EXTENSION}",
            start.format("%Y%m%dT%H%M%SZ"),
            &self.meta.capture_id[..8.min(self.meta.capture_id.len())],
            self.meta.sequence
        );
        let path = self.dir.join(name);
        self.writer = Some(SegmentWriter::create(&path, &self.meta, self.limits.zstd_level)?);
        self.segment_opened = Instant::now();
        Ok(())
    }

    /// Finishes the current segment; the next one continues its hash chain. Without room for
    /// the footer the segment stays unsealed (still readable and verifiable).
    fn close_segment(&mut self) {
        if let Some(w) = self.writer.take() {
            let chain = w.chain_hex();
            let path = w.path().to_owned();
            if let Err(e) = w.finish() {
                self.metrics.write_errors.fetch_add(1, Relaxed);
                log::error!("{}: footer not written ({e}); the segment stays unsealed", path.display());
            }
            self.finished.push(path);
            self.metrics.segments_closed.fetch_add(1, Relaxed);
            self.metrics.open_segment_bytes.store(0, Relaxed);
            self.meta.sequence += 1;
            self.meta.prev_chain = chain;
            self.meta.created_ns = now_ns();
        }
    }

    /// Seals the open chunk and the current segment (footer written); returns the segments of
    /// this run that retention has not deleted.
    pub fn close(mut self) -> Vec<PathBuf> {
        self.seal();
        self.close_segment();
        self.finished.retain(|p| p.exists());
        self.finished
    }
}

/// True when `e` comes from a full disk or an exceeded quota.
fn is_disk_full(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
            .is_some_and(|n| n == libc::ENOSPC || n == libc::EDQUOT)
    })
}

/// Wall-clock now, unix ns.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use lanner_formats::archive::{verify, SegmentReader};
    use lanner_formats::syscall::EventType;

    use super::*;

    fn limits(segment_bytes: u64, segment_age: Option<Duration>, retention: RetentionPolicy) -> SpoolLimits {
        SpoolLimits {
            chunk_events: 1000,
            chunk_interval: Duration::from_secs(3600),
            segment_bytes,
            segment_age,
            retention,
            zstd_level: 1,
        }
    }

    fn spool(dir: &Path, limits: SpoolLimits) -> Spool {
        let meta = SegmentMeta {
            hostname: "h".into(),
            boot_id: "b".into(),
            kernel: "k".into(),
            capture_id: "0123456789abcdef".into(),
            sequence: 0,
            created_ns: now_ns(),
            prev_chain: String::new(),
            writer: "test".into(),
            users: Default::default(),
        };
        Spool::new(dir, limits, meta, Arc::new(Metrics::default())).unwrap()
    }

    fn push(s: &mut Spool, n: usize) {
        let table = ProcessTable::new(0);
        for i in 0..n {
            let d = EventDraft {
                ts_ns: now_ns(),
                tid: 1,
                pid: 1,
                etype: EventType::from_name("openat").unwrap(),
                ret: 3,
                flags: 0,
                mode: 0,
                dirfd: -100,
                path: Some(format!("/etc/file-{i}")),
                path2: None,
            };
            s.push(&d, &table);
        }
    }

    fn assert_verifies(paths: &[PathBuf]) {
        let findings = verify(paths);
        assert!(findings.iter().all(|f| !f.is_problem()), "{findings:?}");
    }

    #[test]
    fn size_rotation_starts_a_new_segment_once_the_limit_is_reached_and_keeps_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spool(dir.path(), limits(1, None, RetentionPolicy::default()));
        for _ in 0..3 {
            push(&mut s, 10);
            s.seal();
        }
        let m = Arc::clone(&s.metrics);
        let segs = s.close();
        // Every chunk makes the segment exceed 1 byte: one segment per chunk.
        assert_eq!(segs.len(), 3);
        for (i, p) in segs.iter().enumerate() {
            let r = SegmentReader::open(p).unwrap();
            assert!(r.is_sealed());
            assert_eq!((r.meta().sequence, r.chunks().len()), (i as u64, 1));
        }
        assert_verifies(&segs);
        assert_eq!(m.segments_closed.load(Relaxed), 3);
        assert!(m.render().contains("lanner_capture_events_total{syscall=\"openat\"} 30\n"));
    }

    #[test]
    fn age_rotation_closes_a_segment_once_it_is_old_even_without_new_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spool(dir.path(), limits(u64::MAX, Some(Duration::from_millis(300)), RetentionPolicy::default()));
        push(&mut s, 5);
        s.seal();
        push(&mut s, 5);
        s.seal();
        assert!(s.finished.is_empty(), "young segment rotated early");
        std::thread::sleep(Duration::from_millis(1100));
        // No new chunk: the periodic check rotates it.
        s.maintain();
        assert_eq!(s.finished.len(), 1);
        assert!(SegmentReader::open(&s.finished[0]).unwrap().is_sealed());
        push(&mut s, 5);
        s.seal();
        let segs = s.close();
        assert_eq!(segs.len(), 2);
        assert_eq!(SegmentReader::open(&segs[0]).unwrap().chunks().len(), 2);
        assert_verifies(&segs);
    }

    #[test]
    fn retention_after_rotation_keeps_the_spool_under_its_size_and_never_deletes_the_open_segment() {
        let dir = tempfile::tempdir().unwrap();
        let retention = RetentionPolicy { max_bytes: Some(1), max_age: None };
        let mut s = spool(dir.path(), limits(1, None, retention));
        for _ in 0..4 {
            push(&mut s, 10);
            s.seal();
        }
        // Each seal rotated, then retention deleted every closed segment (over 1 byte) but the
        // newest, which is kept whatever its size.
        assert_eq!(retention::list_segments(dir.path()).unwrap().len(), 1);
        push(&mut s, 10);
        // Open segment: rotation disabled by a huge size so it stays open.
        s.limits.segment_bytes = u64::MAX;
        s.seal();
        let left = retention::list_segments(dir.path()).unwrap();
        // The open segment and, until the next retention pass, the newest closed one.
        assert_eq!(left.len(), 2, "{left:?}");
        assert_eq!(s.metrics.segments_deleted.load(Relaxed), 3);
        // A retention pass between chunks (forced: maintain runs at most once per interval)
        // deletes that closed one, never the open one, however far over the limit it is.
        s.last_maintain = Instant::now() - MAINTAIN_INTERVAL;
        s.maintain();
        let left = retention::list_segments(dir.path()).unwrap();
        assert_eq!(left.len(), 1, "the open segment is kept: {left:?}");
        assert_eq!(s.metrics.segments_deleted.load(Relaxed), 4);
        let segs = s.close();
        // The segment that was open is the newest; what is left still verifies (the chain simply
        // starts later).
        assert_eq!(segs.last(), Some(&left[0].path));
        assert_eq!(SegmentReader::open(segs.last().unwrap()).unwrap().meta().sequence, 4);
        assert_verifies(&segs);
    }
}
