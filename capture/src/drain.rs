//! The drain loop, the centre of capture: records from the kernel become process state and events,
//! events become chunks, and the kernel's counters (drops, recursion misses, 32-bit calls) are
//! folded in after each drain. Where the records come from is a [`RecordSource`], the kernel's
//! ring buffer in production and a list of records in tests, so the loop runs without root.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::kernel::decode;
use crate::kernel::loader::KernelCounters;
use crate::metrics::Metrics;
use crate::spool::{now_ns, Spool};
use crate::state::ProcessTable;

/// Where records come from.
pub trait RecordSource {
    /// Waits up to `timeout` for records to arrive (returns early when they do).
    fn wait(&mut self, timeout: Duration);
    /// Hands each available record to `f`, until `f` breaks or none is left; returns how many.
    /// (Generic, not `dyn`: this is the event path.)
    fn drain(&mut self, f: impl FnMut(&[u8]) -> ControlFlow<()>) -> usize;
    /// The kernel's counters so far.
    fn counters(&self) -> KernelCounters;
    /// Stops recording; what was recorded stays readable for the last drain.
    fn detach(&mut self);
}

/// When the loop stops: a flag (set by SIGINT/SIGTERM) or a deadline.
pub struct Stop<'a> {
    /// Set to end the capture.
    pub flag: &'a AtomicBool,
    /// Ends the capture when reached.
    pub deadline: Option<Instant>,
}

/// What the loop saw, for the stop line.
#[derive(Debug, Default, Clone, Copy)]
pub struct DrainReport {
    /// The kernel's counters at the end.
    pub counters: KernelCounters,
    /// Records that did not decode (skipped, counted).
    pub malformed: u64,
}

/// Runs the loop until `stop`: drains `source` (at most `chunk_events` records a round while
/// recording, everything at the end), applies each record to `table` and pushes its event to
/// `spool`, seals due chunks, and keeps `metrics` current.
pub fn run(
    source: &mut impl RecordSource,
    table: &mut ProcessTable,
    spool: &mut Spool,
    metrics: &Metrics,
    stop: Stop<'_>,
    chunk_events: usize,
) -> DrainReport {
    // The maps are new: everything counted so far (drops while the /proc snapshot was taken
    // included) belongs to this capture and goes into its first chunk.
    let mut seen = KernelCounters::default();
    let mut malformed = 0u64;
    let mut unlogged_drops = 0u64;
    loop {
        let finishing = stop.flag.load(Ordering::Relaxed) || stop.deadline.is_some_and(|d| Instant::now() >= d);
        if finishing {
            // Nothing is recorded after this point: the last drain below sees every record.
            source.detach();
        } else {
            source.wait(Duration::from_millis(20));
        }
        // Bounded while recording, so a ring that refills as fast as it drains still gets its
        // chunks sealed and its drops counted; the last drain empties it.
        let budget = if finishing { usize::MAX } else { chunk_events.max(1) };
        let mut drained = 0usize;
        source.drain(|bytes| {
            drained += 1;
            match decode::decode(bytes) {
                Ok(rec) => {
                    if let Some(ev) = table.apply(rec) {
                        spool.push(&ev, table);
                    }
                }
                Err(e) => {
                    malformed += 1;
                    metrics.malformed_records.fetch_add(1, Ordering::Relaxed);
                    log::warn!("skipping malformed kernel record: {e}");
                }
            }
            // Under sustained load the ring never empties: stop draining once a chunk is due, so
            // chunks are sealed and handed to the spool writer thread (the rest is read next round).
            if drained >= budget || (drained.is_multiple_of(1024) && !finishing && spool.due()) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        metrics.records_read.fetch_add(drained as u64, Ordering::Relaxed);
        // Read after the drain: drops counted so far happened among the records drained into the
        // open chunk or, when the drain was cut short, just after them; the open chunk (sealed
        // even with no events) marks where the gap is.
        let now = source.counters();
        metrics.kernel_drops.store(now.drops, Ordering::Relaxed);
        metrics.compat_syscalls.store(now.compat, Ordering::Relaxed);
        metrics.compat_recorded.store(now.compat_recorded, Ordering::Relaxed);
        metrics.recursion_misses.store(now.recursion_misses, Ordering::Relaxed);
        if now.recursion_misses > seen.recursion_misses {
            log::warn!(
                "the kernel skipped {} program runs because a capture program was already running on that CPU \
                 (events lost before any record; lanner_capture_recursion_misses_total)",
                now.recursion_misses - seen.recursion_misses
            );
        }
        if now.compat > 0 && seen.compat == 0 {
            log::warn!(
                "a 32-bit process made a socketcall whose argument block capture could not read: the call is not \
                 recorded (counted in lanner_capture_compat_syscalls_total and at stop)"
            );
        }
        if now.drops > seen.drops {
            spool.add_drops(now.drops - seen.drops);
            unlogged_drops += now.drops - seen.drops;
        }
        seen = now;
        if spool.due() || finishing {
            if unlogged_drops > 0 {
                log::warn!(
                    "kernel ring buffer full: {unlogged_drops} records lost in this chunk ({} in total); \
                     consider a larger --ring-buffer-bytes",
                    seen.drops
                );
                unlogged_drops = 0;
            }
            spool.seal();
            table.purge_exited(now_ns(), 60_000_000_000);
        }
        spool.maintain();
        if finishing {
            return DrainReport { counters: seen, malformed };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::retention::RetentionPolicy;
    use crate::spool::SpoolLimits;
    use lanner_formats::archive::{SegmentMeta, SegmentReader};
    use lanner_formats::event::Chunk;
    use lanner_formats::wire::{RecordHeader, RecordKind};

    /// Records from a list, with counters the test sets.
    struct Recorded {
        records: std::collections::VecDeque<Vec<u8>>,
        counters: KernelCounters,
        detached: bool,
    }

    impl RecordSource for Recorded {
        fn wait(&mut self, _: Duration) {}
        fn drain(&mut self, mut f: impl FnMut(&[u8]) -> ControlFlow<()>) -> usize {
            let mut n = 0;
            while let Some(r) = self.records.pop_front() {
                n += 1;
                if f(&r).is_break() {
                    break;
                }
            }
            n
        }
        fn counters(&self) -> KernelCounters {
            self.counters
        }
        fn detach(&mut self) {
            self.detached = true;
        }
    }

    /// A successful openat of `path` by this test's own process (known to /proc).
    fn openat(path: &str, ts: u64) -> Vec<u8> {
        let pid = std::process::id() as u64;
        let h = RecordHeader {
            kind: RecordKind::SyscallExit as u16,
            blob_lens: [path.len() as u16 + 1, 0],
            _pad: 0,
            nr: libc::SYS_openat as u32,
            _pad2: 0,
            ts_boot_ns: ts,
            pid_tgid: (pid << 32) | pid,
            uid_gid: 0,
            ret: 3,
            args: [libc::AT_FDCWD as u64, 0, 0, 0, 0, 0],
            comm: *b"drain-test\0\0\0\0\0\0",
            cgroup_id: 0,
            tty: 0,
            loginuid: u32::MAX,
        };
        let mut b = h.to_bytes().to_vec();
        b.extend_from_slice(path.as_bytes());
        b.push(0);
        b
    }

    #[test]
    fn records_become_chunks_with_their_drops_and_malformed_records_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = std::sync::Arc::new(Metrics::default());
        let limits = SpoolLimits {
            chunk_events: 1000,
            chunk_interval: Duration::from_secs(3600),
            segment_bytes: 1 << 30,
            segment_age: None,
            retention: RetentionPolicy::default(),
            zstd_level: 1,
        };
        let meta =
            SegmentMeta { capture_id: "0123456789abcdef".into(), created_ns: now_ns(), ..SegmentMeta::default() };
        let mut spool = Spool::new(dir.path(), limits, meta, std::sync::Arc::clone(&metrics)).unwrap();
        let mut table = ProcessTable::new(0);
        let mut source = Recorded {
            records: [openat("/etc/hostname", 1_000), vec![1, 2, 3], openat("/etc/passwd", 2_000)].into(),
            counters: KernelCounters { drops: 2, ..KernelCounters::default() },
            detached: false,
        };
        let stop = AtomicBool::new(true);
        let report = run(&mut source, &mut table, &mut spool, &metrics, Stop { flag: &stop, deadline: None }, 1000);
        assert!(source.detached && source.records.is_empty(), "the last drain empties the source after detaching");
        assert_eq!((report.malformed, report.counters.drops), (1, 2));
        assert_eq!(metrics.records_read.load(Ordering::Relaxed), 3);
        let written = spool.close();
        assert_eq!(written.events_written, 2);
        let r = SegmentReader::open(&written.segments[0]).unwrap();
        let (mut paths, mut drops) = (Vec::new(), 0);
        for c in r.chunks() {
            let d = r.decode(c).unwrap();
            let chunk: Chunk = rkyv::deserialize::<Chunk, rkyv::rancor::Error>(d.chunk()).unwrap();
            drops += chunk.drops;
            paths.extend(chunk.events.iter().map(|e| chunk.paths.to_vec()[e.path as usize].clone()));
        }
        assert_eq!(paths, ["/etc/hostname", "/etc/passwd"]);
        assert_eq!(drops, 2, "the kernel's drops are recorded in the chunk they happened in");
    }
}
