//! Disk-backed queue of events awaiting delivery, so that accepted alerts survive an endpoint
//! outage and a process restart.
//!
//! Events are appended to numbered segment files (`00000000000000000001.seg`…) as frames:
//! message length (u32 LE), checksum (u32 LE, FNV-1a over timestamp and message), timestamp
//! (i64 LE, ms), message. The `committed` file holds the position up to which events were
//! delivered; segments before it are deleted. A torn tail (the writer was killed mid-frame) is
//! cut off when the spool is opened. One process at a time: the directory is locked.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Bytes before each message.
pub const FRAME_HEADER: u64 = 16;
/// A segment is closed and a new one started beyond this size.
const SEGMENT_BYTES: u64 = 8 << 20;
/// The writer syncs on its own at least this often while alerts arrive.
const SYNC_INTERVAL: Duration = Duration::from_millis(200);
/// … or when this many bytes were written since the last sync.
const SYNC_BYTES: u64 = 1 << 20;
/// Largest message a frame may hold (anything larger is corruption).
const MAX_FRAME_MESSAGE: u32 = 16 << 20;

/// A position in the spool: segment number and byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct Pos {
    /// Segment number.
    pub segment: u64,
    /// Byte offset in the segment.
    pub offset: u64,
}

/// The `committed` file.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct CommitFile {
    committed: Pos,
    /// End of a batch being sent when this was written: after a crash, those events may have
    /// been delivered already.
    #[serde(default)]
    inflight_end: Option<Pos>,
}

/// What writer and reader share.
#[derive(Debug)]
struct State {
    /// End of the data the writer has synced.
    durable: Pos,
    /// Bytes (frames) spooled and not yet delivered, synced or not.
    pending_bytes: u64,
    /// Events spooled and not yet delivered.
    pending_records: u64,
    /// False once the reader is gone (delivery stopped): a full spool then fails instead of waiting.
    reader_alive: bool,
}

struct Shared {
    state: Mutex<State>,
    cond: Condvar,
    /// Held (flock) while the spool is open.
    _lock: File,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What opening a spool found.
#[derive(Debug, Clone, Copy, Default)]
pub struct Recovered {
    /// Events left from an earlier run.
    pub records: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Bytes of a torn tail cut off.
    pub torn_bytes: u64,
}

/// One spooled event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolRecord {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The message.
    pub message: String,
    /// Position just after this record.
    pub end: Pos,
    /// Bytes this record takes in the spool.
    pub bytes: u64,
    /// It was part of a batch being sent when an earlier run stopped (may be a duplicate).
    pub maybe_sent: bool,
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:020}.seg"))
}

/// Segment numbers in `dir`, ascending.
fn segments(dir: &Path) -> Result<Vec<u64>> {
    let mut v: Vec<u64> = std::fs::read_dir(dir)
        .with_context(|| format!("reading spool directory {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".seg")?.parse().ok())
        .collect();
    v.sort_unstable();
    Ok(v)
}

fn checksum(ts: i64, msg: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in ts.to_le_bytes().iter().chain(msg) {
        h ^= *b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("syncing directory {}", dir.display()))
}

/// Reads one frame. `Ok(None)` at a clean end; `Err` text for a torn or corrupt frame.
fn read_frame(r: &mut impl Read) -> std::io::Result<Result<Option<(i64, String)>, String>> {
    let mut head = [0u8; FRAME_HEADER as usize];
    let mut got = 0;
    while got < head.len() {
        match r.read(&mut head[got..])? {
            0 if got == 0 => return Ok(Ok(None)),
            0 => return Ok(Err("incomplete frame header".into())),
            n => got += n,
        }
    }
    let len = u32::from_le_bytes(head[0..4].try_into().expect("4 bytes"));
    let sum = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes"));
    let ts = i64::from_le_bytes(head[8..16].try_into().expect("8 bytes"));
    if len == 0 || len > MAX_FRAME_MESSAGE {
        return Ok(Err(format!("bad frame length {len}")));
    }
    let mut msg = vec![0u8; len as usize];
    if let Err(e) = r.read_exact(&mut msg) {
        return if e.kind() == std::io::ErrorKind::UnexpectedEof { Ok(Err("incomplete frame".into())) } else { Err(e) };
    }
    if checksum(ts, &msg) != sum {
        return Ok(Err("checksum mismatch".into()));
    }
    match String::from_utf8(msg) {
        Ok(s) => Ok(Ok(Some((ts, s)))),
        Err(_) => Ok(Err("message is not UTF-8".into())),
    }
}

/// Counts the good frames of segment `path` from `from`; cuts the file at the first bad one.
/// Returns (records, bytes kept after `from`, bytes cut).
fn scan_segment(path: &Path, from: u64) -> Result<(u64, u64, u64)> {
    let f =
        OpenOptions::new().read(true).write(true).open(path).with_context(|| format!("opening {}", path.display()))?;
    let len = f.metadata()?.len();
    let mut r = BufReader::new(&f);
    r.seek(SeekFrom::Start(from))?;
    let (mut records, mut pos) = (0u64, from);
    loop {
        match read_frame(&mut r).with_context(|| format!("reading {}", path.display()))? {
            Ok(Some((_, m))) => {
                records += 1;
                pos += FRAME_HEADER + m.len() as u64;
            }
            Ok(None) => return Ok((records, pos.saturating_sub(from), 0)),
            Err(why) => {
                log::warn!(
                    "cloudwatch spool {}: {why} at byte {pos} ({} byte(s) cut off; a writer was killed mid-write)",
                    path.display(),
                    len - pos
                );
                f.set_len(pos).with_context(|| format!("cutting {}", path.display()))?;
                f.sync_all()?;
                return Ok((records, pos.saturating_sub(from), len - pos));
            }
        }
    }
}

/// Opens (creating if needed) the spool in `dir`, holding at most `max_bytes` of undelivered
/// events. Fails when another process has it open.
pub fn open(dir: &Path, max_bytes: u64) -> Result<(SpoolWriter, SpoolReader, Recovered)> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating spool directory {}", dir.display()))?;
    let lock_path = dir.join("lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        bail!("spool directory {} is in use by another lanner-analyze process", dir.display());
    }
    let commit_path = dir.join("committed");
    let cf: CommitFile = match std::fs::read(&commit_path) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
            // E.g. emptied by a power loss: resend everything kept, counted as possible duplicates.
            log::warn!("{} is damaged ({e}); every alert still in the spool will be sent again", commit_path.display());
            CommitFile { committed: Pos::default(), inflight_end: Some(Pos { segment: u64::MAX, offset: 0 }) }
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => CommitFile::default(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", commit_path.display())),
    };
    let mut rec = Recovered::default();
    let segs = segments(dir)?;
    for &s in &segs {
        let path = segment_path(dir, s);
        if s < cf.committed.segment {
            std::fs::remove_file(&path).with_context(|| format!("removing delivered segment {}", path.display()))?;
            continue;
        }
        let from = if s == cf.committed.segment { cf.committed.offset } else { 0 };
        let (n, bytes, torn) = scan_segment(&path, from)?;
        rec.records += n;
        rec.bytes += bytes;
        rec.torn_bytes += torn;
    }
    let next = segs.last().map_or(cf.committed.segment, |l| l + 1).max(cf.committed.segment + 1);
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            durable: Pos { segment: next, offset: 0 },
            pending_bytes: rec.bytes,
            pending_records: rec.records,
            reader_alive: true,
        }),
        cond: Condvar::new(),
        _lock: lock,
    });
    let out = create_segment(dir, next)?;
    let writer = SpoolWriter {
        dir: dir.to_owned(),
        shared: Arc::clone(&shared),
        segment: next,
        offset: 0,
        out,
        unsynced: 0,
        last_sync: Instant::now(),
        max_bytes,
        last_full_log: None,
    };
    let reader = SpoolReader {
        dir: dir.to_owned(),
        shared,
        pos: cf.committed,
        committed: cf.committed,
        file: None,
        maybe_sent_until: cf.inflight_end.filter(|e| *e > cf.committed),
        commit_path,
    };
    Ok((writer, reader, rec))
}

fn create_segment(dir: &Path, n: u64) -> Result<BufWriter<File>> {
    let path = segment_path(dir, n);
    let f = OpenOptions::new()
        .create_new(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating spool segment {}", path.display()))?;
    sync_dir(dir)?;
    Ok(BufWriter::with_capacity(256 << 10, f))
}

/// Appends events to the spool.
pub struct SpoolWriter {
    dir: PathBuf,
    shared: Arc<Shared>,
    segment: u64,
    offset: u64,
    out: BufWriter<File>,
    unsynced: u64,
    last_sync: Instant,
    max_bytes: u64,
    /// When "spool full" was last logged.
    last_full_log: Option<Instant>,
}

impl SpoolWriter {
    /// Appends one event; syncs now and then so delivery can start. When the spool is full,
    /// waits for delivery to make room (never drops an event).
    pub fn append(&mut self, timestamp_ms: i64, message: &str) -> Result<()> {
        let size = FRAME_HEADER + message.len() as u64;
        if message.is_empty() || message.len() as u64 > MAX_FRAME_MESSAGE as u64 {
            bail!("cannot spool a message of {} bytes", message.len());
        }
        if self.is_full(size) {
            self.sync()?;
            self.wait_for_room(size)?;
        }
        if self.offset >= SEGMENT_BYTES {
            self.roll()?;
        }
        let seg = segment_path(&self.dir, self.segment);
        let mut head = [0u8; FRAME_HEADER as usize];
        head[0..4].copy_from_slice(&(message.len() as u32).to_le_bytes());
        head[4..8].copy_from_slice(&checksum(timestamp_ms, message.as_bytes()).to_le_bytes());
        head[8..16].copy_from_slice(&timestamp_ms.to_le_bytes());
        self.out
            .write_all(&head)
            .and_then(|_| self.out.write_all(message.as_bytes()))
            .with_context(|| format!("writing spool segment {}", seg.display()))?;
        self.offset += size;
        self.unsynced += size;
        {
            let mut st = self.shared.lock();
            st.pending_bytes += size;
            st.pending_records += 1;
        }
        if self.unsynced >= SYNC_BYTES || self.last_sync.elapsed() >= SYNC_INTERVAL {
            self.sync()?;
        }
        Ok(())
    }

    fn is_full(&self, size: u64) -> bool {
        let st = self.shared.lock();
        st.pending_bytes > 0 && st.pending_bytes + size > self.max_bytes
    }

    fn wait_for_room(&mut self, size: u64) -> Result<()> {
        let mut st = self.shared.lock();
        // During a long outage the spool fills again after every delivered batch: say so once
        // a minute, not every time.
        let log = self.last_full_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(60));
        if log {
            self.last_full_log = Some(Instant::now());
            log::warn!(
            "cloudwatch spool {} is full ({} bytes of undelivered alerts, limit {}): waiting for delivery before accepting more alerts",
            self.dir.display(),
            st.pending_bytes,
                self.max_bytes
            );
        }
        let started = Instant::now();
        while st.pending_bytes > 0 && st.pending_bytes + size > self.max_bytes {
            if !st.reader_alive {
                bail!("cloudwatch spool {} is full and delivery has stopped", self.dir.display());
            }
            st = self.shared.cond.wait_timeout(st, Duration::from_millis(500)).unwrap_or_else(|e| e.into_inner()).0;
        }
        if log {
            log::info!(
                "cloudwatch spool {} has room again after {:.1} s",
                self.dir.display(),
                started.elapsed().as_secs_f64()
            );
        }
        Ok(())
    }

    /// Makes everything appended so far durable (fsync) and visible to delivery.
    pub fn sync(&mut self) -> Result<()> {
        let seg = segment_path(&self.dir, self.segment);
        self.out.flush().with_context(|| format!("writing spool segment {}", seg.display()))?;
        self.out.get_ref().sync_data().with_context(|| format!("syncing spool segment {}", seg.display()))?;
        self.unsynced = 0;
        self.last_sync = Instant::now();
        let mut st = self.shared.lock();
        st.durable = Pos { segment: self.segment, offset: self.offset };
        self.shared.cond.notify_all();
        Ok(())
    }

    fn roll(&mut self) -> Result<()> {
        self.sync()?;
        self.out = create_segment(&self.dir, self.segment + 1)?;
        self.segment += 1;
        self.offset = 0;
        let mut st = self.shared.lock();
        st.durable = Pos { segment: self.segment, offset: 0 };
        Ok(())
    }

    /// Events and bytes spooled and not yet delivered.
    pub fn pending(&self) -> (u64, u64) {
        let st = self.shared.lock();
        (st.pending_records, st.pending_bytes)
    }

    /// Waits until everything is delivered, delivery stops, or `timeout` passes; returns what
    /// remains (events, bytes).
    pub fn wait_drained(&self, timeout: Duration) -> (u64, u64) {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        while st.pending_records > 0 && st.reader_alive {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            st = self
                .shared
                .cond
                .wait_timeout(st, left.min(Duration::from_millis(200)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        (st.pending_records, st.pending_bytes)
    }
}

/// Reads events in order and records delivery.
pub struct SpoolReader {
    dir: PathBuf,
    shared: Arc<Shared>,
    /// Where the next record starts.
    pos: Pos,
    /// Everything before this was delivered.
    committed: Pos,
    file: Option<BufReader<File>>,
    maybe_sent_until: Option<Pos>,
    commit_path: PathBuf,
}

impl SpoolReader {
    /// The next synced event, if any.
    pub fn next_record(&mut self) -> Result<Option<SpoolRecord>> {
        loop {
            let durable = self.shared.lock().durable;
            if self.pos >= durable {
                return Ok(None);
            }
            if self.file.is_none() {
                let path = segment_path(&self.dir, self.pos.segment);
                match File::open(&path) {
                    Ok(f) => {
                        let mut r = BufReader::with_capacity(256 << 10, f);
                        r.seek(SeekFrom::Start(self.pos.offset))?;
                        self.file = Some(r);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        self.next_segment(durable)?;
                        continue;
                    }
                    Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
                }
            }
            let r = self.file.as_mut().expect("opened above");
            let path = || segment_path(&self.dir, self.pos.segment);
            match read_frame(r).with_context(|| format!("reading {}", path().display()))? {
                Ok(Some((ts, message))) => {
                    let bytes = FRAME_HEADER + message.len() as u64;
                    self.pos.offset += bytes;
                    let end = self.pos;
                    let maybe_sent = self.maybe_sent_until.is_some_and(|u| end <= u);
                    return Ok(Some(SpoolRecord { timestamp_ms: ts, message, end, bytes, maybe_sent }));
                }
                Ok(None) if self.pos.segment < durable.segment => self.next_segment(durable)?,
                Ok(None) => return Ok(None),
                Err(why) => {
                    if self.pos.segment == durable.segment {
                        bail!("spool segment {} is corrupt at byte {}: {why}", path().display(), self.pos.offset);
                    }
                    log::error!(
                        "cloudwatch spool segment {} is corrupt at byte {}: {why}; skipping the rest of it",
                        path().display(),
                        self.pos.offset
                    );
                    self.next_segment(durable)?;
                }
            }
        }
    }

    fn next_segment(&mut self, durable: Pos) -> Result<()> {
        let next = segments(&self.dir)?.into_iter().find(|&s| s > self.pos.segment).unwrap_or(durable.segment);
        self.pos = Pos { segment: next, offset: 0 };
        self.file = None;
        Ok(())
    }

    fn write_commit(&self, cf: &CommitFile, durable: bool) -> Result<()> {
        let tmp = self.commit_path.with_extension("tmp");
        let mut f = File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        serde_json::to_writer(&mut f, cf)?;
        if durable {
            f.sync_all().with_context(|| format!("syncing {}", tmp.display()))?;
        }
        std::fs::rename(&tmp, &self.commit_path).with_context(|| format!("replacing {}", self.commit_path.display()))
    }

    /// Notes that events up to `end` are being sent (after a crash they count as maybe sent).
    pub fn mark_inflight(&self, end: Pos) -> Result<()> {
        self.write_commit(&CommitFile { committed: self.committed, inflight_end: Some(end) }, false)
    }

    /// Records that events up to `end` (`records` events, `bytes` bytes) were delivered or
    /// dropped, and deletes segments no longer needed.
    pub fn commit(&mut self, end: Pos, records: u64, bytes: u64) -> Result<()> {
        self.write_commit(&CommitFile { committed: end, inflight_end: None }, true)?;
        self.committed = end;
        for s in segments(&self.dir)?.into_iter().take_while(|&s| s < end.segment) {
            let p = segment_path(&self.dir, s);
            std::fs::remove_file(&p).with_context(|| format!("removing delivered segment {}", p.display()))?;
        }
        if self.maybe_sent_until.is_some_and(|u| end >= u) {
            self.maybe_sent_until = None;
        }
        let mut st = self.shared.lock();
        st.pending_records = st.pending_records.saturating_sub(records);
        st.pending_bytes = st.pending_bytes.saturating_sub(bytes);
        self.shared.cond.notify_all();
        Ok(())
    }

    /// Events and bytes spooled and not yet delivered.
    pub fn pending(&self) -> (u64, u64) {
        let st = self.shared.lock();
        (st.pending_records, st.pending_bytes)
    }
}

impl Drop for SpoolReader {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.reader_alive = false;
        self.shared.cond.notify_all();
    }
}
