//! Turns events into sealed chunks and rotating segment files in the spool directory, applies
//! retention, and survives a full disk (chunks that cannot be written are counted as lost).
//!
//! The work is split over two threads. The capture loop, which drains the kernel ring buffer,
//! owns the [`Spool`]: the chunk being built and the process states interned into it. Sealing
//! only hands the finished chunk to the [`SpoolWriter`] on its own thread (`spool-writer`),
//! which encodes, compresses and appends chunks in the order they were sealed, rotates segments
//! (continuing the hash chain), applies retention and handles write errors. So the drain waits
//! for zstd and fsync only when the writer is [`HANDOFF_CHUNKS`] chunks behind.

pub mod retention;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use lanner_formats::archive::{segment_file_name, ChunkBuilder, SegmentMeta, SegmentWriter};
use lanner_formats::event::{Chunk, Event, Process, NONE};

use crate::metrics::Metrics;
use crate::state::{EventDraft, ProcessTable};
use retention::RetentionPolicy;

/// How often a failing spool is reported in the log.
const WRITE_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// How often age rotation and retention are checked when no chunk is sealed.
const MAINTAIN_INTERVAL: Duration = Duration::from_secs(1);
/// Sealed chunks that can wait for the writer thread besides the one it is writing. A writer
/// this far behind makes [`Spool::seal`] block the capture loop until a slot is free: the kernel
/// ring buffer then fills and the kernel counts drops (stored in the archive and logged)
/// instead of memory growing. So at most `HANDOFF_CHUNKS + 2` chunks exist at once (waiting,
/// being written, being built), each of at most `--chunk-events` events. Two slots absorb one
/// slow write (an fsync stall, a retention pass) without stopping the drain; more would only
/// delay the back-pressure that a writer slower on average than the event rate needs anyway.
const HANDOFF_CHUNKS: usize = 2;

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

/// What the writer thread has done: the result of [`Spool::close`].
#[derive(Debug, Clone, Default)]
pub struct WriterReport {
    /// Segments finished so far; from [`Spool::close`], every segment of this run that
    /// retention has not deleted, in order.
    pub segments: Vec<PathBuf>,
    /// Events written so far.
    pub events_written: u64,
    /// Events lost because their chunk could not be written.
    pub events_lost: u64,
}

/// What the capture loop sends the writer thread, handled strictly in the order sent.
enum ToWriter {
    /// A sealed chunk to append to the current segment (boxed: the message stays small).
    Chunk(Box<Chunk>),
    /// Rotate the current segment by age and apply retention.
    Maintain,
    /// Answer with a [`WriterReport`] once everything sent before is done.
    #[cfg(test)]
    Report(mpsc::Sender<WriterReport>),
    /// Run a closure on the writer (tests: change a limit, stall the writer).
    #[cfg(test)]
    Run(Box<dyn FnOnce(&mut SpoolWriter) + Send>),
}

/// The writer thread and the sending end of its bounded hand-off.
struct WriterThread {
    tx: SyncSender<ToWriter>,
    thread: JoinHandle<WriterReport>,
}

impl WriterThread {
    /// Ends the hand-off and waits for the writer to write everything sent and close its
    /// segment (footer written); re-raises a panic of the writer thread.
    fn close(self) -> WriterReport {
        drop(self.tx);
        self.thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

/// Writes one capture run into a spool directory: builds chunks on the calling thread (the
/// capture loop) and writes them on a [`SpoolWriter`] thread.
pub struct Spool {
    chunk_events: usize,
    chunk_interval: Duration,
    builder: ChunkBuilder,
    in_chunk: HashMap<(u32, u64), u32>,
    chunk_opened: Instant,
    last_maintain: Instant,
    metrics: Arc<Metrics>,
    /// The accounts of the containers of the open chunk's processes.
    accounts: Vec<Arc<lanner_formats::event::ContainerAccounts>>,
    /// The host names each sealed chunk records the addresses of (`--resolve`).
    names: Option<crate::metadata::names::NameResolver>,
    /// `None` once closed.
    writer: Option<WriterThread>,
}

impl Spool {
    /// Prepares a spool in `dir` (created if missing) for a capture described by `meta`, opens
    /// its first segment and starts the writer thread.
    pub fn new(dir: &Path, limits: SpoolLimits, meta: SegmentMeta, metrics: Arc<Metrics>) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating spool directory {}", dir.display()))?;
        let (chunk_events, chunk_interval) = (limits.chunk_events, limits.chunk_interval);
        let writer = SpoolWriter::new(dir, limits, meta, Arc::clone(&metrics));
        let (tx, rx) = mpsc::sync_channel(HANDOFF_CHUNKS);
        let thread = std::thread::Builder::new()
            .name("spool-writer".into())
            .spawn(move || writer.run(rx))
            .context("starting the spool writer thread")?;
        Ok(Self {
            chunk_events,
            chunk_interval,
            builder: ChunkBuilder::new(),
            in_chunk: HashMap::new(),
            chunk_opened: Instant::now(),
            last_maintain: Instant::now(),
            metrics,
            accounts: Vec::new(),
            names: None,
            writer: Some(WriterThread { tx, thread }),
        })
    }

    /// Records in every chunk sealed from now on the addresses `names` resolved to while it was
    /// open.
    pub fn resolve_names(&mut self, names: crate::metadata::names::NameResolver) {
        self.names = Some(names);
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
                task: lanner_formats::event::TaskFacts::UNKNOWN,
                container: lanner_formats::event::ContainerFacts::UNKNOWN,
            });
            return idx;
        }
        let mut idx = parent_idx;
        for p in chain.into_iter().rev() {
            let id = &p.image.container_id;
            if id != crate::metadata::containers::HOST && !self.accounts.iter().any(|a| &a.container_id == id) {
                if let Some(a) = table.container_accounts(id) {
                    self.accounts.push(Arc::clone(a));
                }
            }
            let b = &mut self.builder;
            let name = b.intern(&p.image.comm);
            let exe = b.intern(&p.image.exe);
            let exepath = b.intern(&p.image.exepath);
            let args = b.intern(&p.image.args.join("\0"));
            let cwd = b.intern(&p.image.cwd);
            let container_id = b.intern(&p.image.container_id);
            let mut opt = |s: &str| if s.is_empty() { NONE } else { b.intern(s) };
            let (container_name, container_image) = (opt(&p.container_name), opt(&p.container_image));
            let (k8s_pod, k8s_ns) = (opt(&p.k8s_pod), opt(&p.k8s_ns));
            let env = p.image.env.as_ref().map_or(NONE, |e| b.intern(&e.join("\0")));
            let task = lanner_formats::event::TaskFacts::from_wire(&p.image.task, env);
            let info = &p.container_info;
            let container = lanner_formats::event::ContainerFacts {
                privileged: info.privileged.map_or(0, |v| 1 + v as u8),
                start_ns: info.started_ns.unwrap_or(0),
                mounts: info.mounts.as_deref().map_or(NONE, |m| b.intern(m)),
            };
            idx = b.add_process(Process {
                pid: p.pid,
                ppid: p.ppid,
                parent: idx,
                uid: p.image.uid,
                gid: p.image.gid,
                name,
                exe,
                exepath,
                args,
                cwd,
                start_ns: p.image.start_ns,
                container_id,
                tty: p.image.tty,
                loginuid: p.image.loginuid,
                container_name,
                container_image,
                k8s_pod,
                k8s_ns,
                task,
                container,
            });
            self.in_chunk.insert((p.pid, p.version), idx);
        }
        idx
    }

    /// True when the open chunk should be sealed now.
    pub fn due(&self) -> bool {
        !self.builder.is_empty()
            && (self.builder.len() >= self.chunk_events || self.chunk_opened.elapsed() >= self.chunk_interval)
    }

    /// Seals the open chunk (if any) and hands it to the writer thread, which appends it to the
    /// current segment, then rotates the segment by size or age and applies retention. Returns
    /// at once unless the writer is [`HANDOFF_CHUNKS`] chunks behind; then it waits for a free
    /// slot (counted in `lanner_capture_writer_waits_total`).
    pub fn seal(&mut self) {
        if self.builder.is_empty() {
            return;
        }
        let mut chunk = self.builder.take();
        if let Some(names) = &self.names {
            chunk.resolved = names.take_for_chunk();
        }
        self.accounts.sort_by(|a, b| a.container_id.cmp(&b.container_id));
        chunk.accounts = self.accounts.drain(..).map(|a| (*a).clone()).collect();
        self.in_chunk.clear();
        if self.hand_over(ToWriter::Chunk(Box::new(chunk))) {
            self.metrics.writer_waits.fetch_add(1, Relaxed);
        }
    }

    /// Periodic work between chunks: asks the writer thread, about once a second, to rotate an
    /// idle segment by age and apply retention. Never waits: when the hand-off is full the
    /// writer is busy with chunks (it rotates after each) and the next call asks again.
    pub fn maintain(&mut self) {
        if self.last_maintain.elapsed() < MAINTAIN_INTERVAL {
            return;
        }
        let writer = self.writer.as_ref().expect("spool writer runs until close");
        match writer.tx.try_send(ToWriter::Maintain) {
            Ok(()) => self.last_maintain = Instant::now(),
            Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Disconnected(_)) => self.writer_stopped(),
        }
    }

    /// Sends `msg` to the writer thread, waiting while the hand-off is full; true when it had
    /// to wait.
    fn hand_over(&mut self, msg: ToWriter) -> bool {
        let writer = self.writer.as_ref().expect("spool writer runs until close");
        match writer.tx.try_send(msg) {
            Ok(()) => return false,
            Err(TrySendError::Full(msg)) => {
                if writer.tx.send(msg).is_ok() {
                    return true;
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
        self.writer_stopped()
    }

    /// The writer thread ends early only by panicking: re-raise its panic on this thread, as
    /// when writing happened here.
    fn writer_stopped(&mut self) -> ! {
        let report = self.writer.take().expect("spool writer runs until close").close();
        panic!("spool writer thread stopped early ({} events written)", report.events_written)
    }

    /// Seals the open chunk, waits for the writer thread to write everything and close the
    /// current segment (footer written); returns what it wrote, with the segments of this run
    /// that retention has not deleted.
    pub fn close(mut self) -> WriterReport {
        self.seal();
        self.writer.take().expect("spool writer runs until close").close()
    }

    /// Waits until the writer thread has handled everything sent so far; returns its report.
    #[cfg(test)]
    fn flush(&mut self) -> WriterReport {
        let (tx, rx) = mpsc::channel();
        self.hand_over(ToWriter::Report(tx));
        rx.recv().expect("spool writer answers")
    }

    /// Runs `f` on the writer thread, after everything sent before.
    #[cfg(test)]
    fn on_writer(&mut self, f: impl FnOnce(&mut SpoolWriter) + Send + 'static) {
        self.hand_over(ToWriter::Run(Box::new(f)));
    }
}

impl Drop for Spool {
    /// A spool dropped without [`Spool::close`] (an early return) still gets everything handed
    /// over written and its segment closed.
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            if !std::thread::panicking() {
                writer.close();
            }
        }
    }
}

/// The writer side of a spool, running on its own thread: appends sealed chunks to the current
/// segment, rotates segments (continuing the hash chain), applies retention, and keeps capture
/// going on a full disk (a chunk that cannot be written is counted as lost and carried as drops
/// into the next chunk written).
struct SpoolWriter {
    dir: PathBuf,
    limits: SpoolLimits,
    meta: SegmentMeta,
    writer: Option<SegmentWriter>,
    segment_opened: Instant,
    metrics: Arc<Metrics>,
    /// Events lost and kernel drops of chunks that could not be written, for the next chunk.
    carried_drops: u64,
    /// When the last write error was logged, and events lost since.
    write_error_logged: Option<Instant>,
    lost_since_log: u64,
    recovery_logged: Option<Instant>,
    lost_since_recovery: u64,
    failing: bool,
    /// Segments finished so far.
    finished: Vec<PathBuf>,
    /// Events written so far.
    events_written: u64,
    /// Events lost because their chunk could not be written.
    events_lost: u64,
}

impl SpoolWriter {
    /// Opens the first segment in `dir` (which exists), so a capture killed before its first
    /// chunk still leaves a verifiable (empty) archive behind.
    fn new(dir: &Path, limits: SpoolLimits, meta: SegmentMeta, metrics: Arc<Metrics>) -> Self {
        let mut w = Self {
            dir: dir.to_owned(),
            limits,
            meta,
            writer: None,
            segment_opened: Instant::now(),
            metrics,
            carried_drops: 0,
            write_error_logged: None,
            lost_since_log: 0,
            recovery_logged: None,
            lost_since_recovery: 0,
            failing: false,
            finished: Vec::new(),
            events_written: 0,
            events_lost: 0,
        };
        if let Err(e) = w.open_segment() {
            w.report_write_error(&e);
        }
        w
    }

    /// The thread's body: handles messages in order until the capture loop closes the
    /// hand-off, then closes the current segment.
    fn run(mut self, rx: Receiver<ToWriter>) -> WriterReport {
        for msg in rx {
            match msg {
                ToWriter::Chunk(chunk) => self.write(*chunk),
                ToWriter::Maintain => self.maintain(),
                #[cfg(test)]
                ToWriter::Report(answer) => {
                    let _ = answer.send(self.report());
                }
                #[cfg(test)]
                ToWriter::Run(f) => f(&mut self),
            }
        }
        self.close()
    }

    fn report(&self) -> WriterReport {
        WriterReport {
            segments: self.finished.clone(),
            events_written: self.events_written,
            events_lost: self.events_lost,
        }
    }

    /// Appends `chunk` (with the drops carried from chunks that could not be written) to the
    /// current segment, then rotates the segment by size or age and applies retention. A chunk
    /// that cannot be written (after retention made room on a full disk) is counted as lost, in
    /// the next chunk's drops and in the metrics.
    fn write(&mut self, mut chunk: Chunk) {
        chunk.drops += std::mem::take(&mut self.carried_drops);
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
                self.carried_drops += lost + chunk.drops;
            }
        }
        if self.rotation_due() {
            self.close_segment();
            self.apply_retention();
        }
    }

    /// Writes the carried drops as a chunk of their own, when there are any.
    fn write_carried_drops(&mut self) {
        if self.carried_drops > 0 {
            let mut b = ChunkBuilder::new();
            b.add_drops(std::mem::take(&mut self.carried_drops));
            self.write(b.take());
        }
    }

    /// Periodic work between chunks: writes drops still carried (no chunk came since the
    /// failed one), rotates an idle segment by age and applies retention.
    fn maintain(&mut self) {
        self.write_carried_drops();
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
        match retention::free_oldest(&self.dir, open.as_deref(), self.limits.retention.keep_unshipped) {
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
        let path = self.dir.join(segment_file_name(&self.meta));
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
            // The next segment's events are numbered on from this run's (evt.num).
            self.meta.first_event = self.events_written;
            self.meta.created_ns = now_ns();
        }
    }

    /// Writes drops still carried, finishes the current segment (footer written) and returns
    /// what was written, with the segments of this run that retention has not deleted.
    fn close(mut self) -> WriterReport {
        self.write_carried_drops();
        self.close_segment();
        self.finished.retain(|p| p.exists());
        self.report()
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
            cluster: String::new(),
            boot_id: "b".into(),
            kernel: "k".into(),
            capture_id: "0123456789abcdef".into(),
            sequence: 0,
            created_ns: now_ns(),
            prev_chain: String::new(),
            writer: "test".into(),
            users: Default::default(),
            groups: Default::default(),
            first_event: 0,
        };
        Spool::new(dir, limits, meta, Arc::new(Metrics::default())).unwrap()
    }

    fn push(s: &mut Spool, n: usize) {
        push_stamped(s, n, None);
    }

    /// Pushes `n` openat events stamped `ts_ns` (default: now).
    fn push_stamped(s: &mut Spool, n: usize, ts_ns: Option<u64>) {
        let table = ProcessTable::new(0);
        for i in 0..n {
            let d = EventDraft {
                ts_ns: ts_ns.unwrap_or_else(now_ns),
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
        let segs = s.close().segments;
        // Every chunk makes the segment exceed 1 byte: one segment per chunk.
        assert_eq!(segs.len(), 3);
        for (i, p) in segs.iter().enumerate() {
            let r = SegmentReader::open(p).unwrap();
            assert!(r.is_sealed());
            assert_eq!((r.meta().sequence, r.chunks().len()), (i as u64, 1));
            // Events are numbered on across segments (evt.num): 10 per chunk before this one.
            assert_eq!((r.meta().first_event, r.chunks()[0].first_event), (10 * i as u64, 10 * i as u64));
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
        assert!(s.flush().segments.is_empty(), "young segment rotated early");
        std::thread::sleep(Duration::from_millis(1100));
        // No new chunk: the periodic check rotates it.
        s.maintain();
        let finished = s.flush().segments;
        assert_eq!(finished.len(), 1);
        assert!(SegmentReader::open(&finished[0]).unwrap().is_sealed());
        push(&mut s, 5);
        s.seal();
        let segs = s.close().segments;
        assert_eq!(segs.len(), 2);
        assert_eq!(SegmentReader::open(&segs[0]).unwrap().chunks().len(), 2);
        assert_verifies(&segs);
    }

    #[test]
    fn retention_after_rotation_keeps_the_spool_under_its_size_and_never_deletes_the_open_segment() {
        let dir = tempfile::tempdir().unwrap();
        let retention = RetentionPolicy { max_bytes: Some(1), ..Default::default() };
        let mut s = spool(dir.path(), limits(1, None, retention));
        for _ in 0..4 {
            push(&mut s, 10);
            s.seal();
        }
        s.flush();
        // Each seal rotated, then retention deleted every closed segment (over 1 byte) but the
        // newest, which is kept whatever its size.
        assert_eq!(retention::list_segments(dir.path()).unwrap().len(), 1);
        push(&mut s, 10);
        // Open segment: rotation disabled by a huge size so it stays open.
        s.on_writer(|w| w.limits.segment_bytes = u64::MAX);
        s.seal();
        s.flush();
        let left = retention::list_segments(dir.path()).unwrap();
        // The open segment and, until the next retention pass, the newest closed one.
        assert_eq!(left.len(), 2, "{left:?}");
        assert_eq!(s.metrics.segments_deleted.load(Relaxed), 3);
        // A retention pass between chunks (forced: maintain runs at most once per interval)
        // deletes that closed one, never the open one, however far over the limit it is.
        s.last_maintain = Instant::now() - MAINTAIN_INTERVAL;
        s.maintain();
        s.flush();
        let left = retention::list_segments(dir.path()).unwrap();
        assert_eq!(left.len(), 1, "the open segment is kept: {left:?}");
        assert_eq!(s.metrics.segments_deleted.load(Relaxed), 4);
        let segs = s.close().segments;
        // The segment that was open is the newest; what is left still verifies (the chain simply
        // starts later).
        assert_eq!(segs.last(), Some(&left[0].path));
        assert_eq!(SegmentReader::open(segs.last().unwrap()).unwrap().meta().sequence, 4);
        assert_verifies(&segs);
    }

    #[test]
    fn sealing_does_not_wait_for_the_write_until_the_hand_off_is_full() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spool(dir.path(), limits(u64::MAX, None, RetentionPolicy::default()));
        // Stall the writer thread, as a very slow disk would, until `release` says go on.
        let (release, stalled) = mpsc::channel::<()>();
        let (stalling, writer_stalled) = mpsc::channel::<()>();
        s.on_writer(move |_| {
            stalling.send(()).unwrap();
            let _ = stalled.recv();
        });
        writer_stalled.recv().unwrap();
        // The capture loop's side, on its own thread so a seal that waits shows up as a timeout.
        let (progress_tx, progress) = mpsc::channel();
        let drain = std::thread::spawn(move || {
            for _ in 0..HANDOFF_CHUNKS {
                push(&mut s, 10);
                s.seal();
            }
            // Events keep being added while the sealed chunks wait for the writer.
            push(&mut s, 10);
            progress_tx.send(s.builder.len()).unwrap();
            // The hand-off is full: this seal waits for the writer.
            s.seal();
            progress_tx.send(s.builder.len()).unwrap();
            s
        });
        let building = progress.recv_timeout(Duration::from_secs(10)).expect("sealing waited for the stalled writer");
        assert_eq!(building, 10);
        let segs = retention::list_segments(dir.path()).unwrap();
        assert_eq!(segs.len(), 1);
        assert_eq!(SegmentReader::open(&segs[0].path).unwrap().chunks().len(), 0, "the writer wrote while stalled");
        assert!(
            progress.recv_timeout(Duration::from_millis(300)).is_err(),
            "a chunk beyond the hand-off's {HANDOFF_CHUNKS} slots was accepted while the writer was stalled"
        );
        release.send(()).unwrap();
        assert_eq!(progress.recv_timeout(Duration::from_secs(10)).expect("sealing resumed"), 0);
        let s = drain.join().unwrap();
        let m = Arc::clone(&s.metrics);
        assert_eq!(m.writer_waits.load(Relaxed), 1);
        let report = s.close();
        assert_eq!(report.events_written, 30);
        assert_eq!(report.segments.len(), 1);
        let r = SegmentReader::open(&report.segments[0]).unwrap();
        assert_eq!(r.chunks().iter().map(|c| c.header.event_count).collect::<Vec<_>>(), [10, 10, 10]);
        assert_verifies(&report.segments);
    }

    #[test]
    fn chunks_are_written_in_the_order_sealed_across_many_seals_and_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spool(dir.path(), limits(4096, None, RetentionPolicy::default()));
        const CHUNKS: u64 = 300;
        // Chunk i holds i % 7 + 1 events stamped i, sealed back to back (the hand-off fills).
        for i in 0..CHUNKS {
            push_stamped(&mut s, (i % 7 + 1) as usize, Some(1_000 + i));
            s.seal();
        }
        let segs = s.close().segments;
        assert!(segs.len() > 3, "{} segments: rotation not exercised", segs.len());
        let mut written = Vec::new();
        for (n, p) in segs.iter().enumerate() {
            let r = SegmentReader::open(p).unwrap();
            assert!(r.is_sealed());
            assert_eq!(r.meta().sequence, n as u64);
            written.extend(r.chunks().iter().map(|c| (c.header.t_first, c.header.t_last, c.header.event_count as u64)));
        }
        let sealed: Vec<(u64, u64, u64)> = (0..CHUNKS).map(|i| (1_000 + i, 1_000 + i, i % 7 + 1)).collect();
        assert_eq!(written, sealed);
        // The hash chain runs through every chunk and across segments (prev_chain).
        assert_verifies(&segs);
    }
}
