//! `lanner-capture`: records syscall activity with eBPF into a spool of archive segments.
//!
//! Design: the kernel side only copies raw arguments and strings; all state (process table,
//! fd table, cwd, parent chain) is rebuilt here, then events are written into self-contained
//! chunks so the analyzer can process any chunk alone.

mod containers;
mod decode;
mod loader;
mod procfs;
mod spool;
mod state;

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use lanner_formats::archive::SegmentMeta;

use crate::loader::Probes;
use crate::spool::{now_ns, Spool, SpoolLimits};
use crate::state::ProcessTable;

/// Record syscall activity into compressed, verifiable Lanner archives.
///
/// Example: `lanner-capture --spool /var/lib/lanner/spool --duration 10s`
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Directory the archive segments (`*.lnr`) are written to.
    #[arg(long)]
    spool: PathBuf,
    /// Stop after this long (e.g. `10s`, `5m`); default: until SIGINT/SIGTERM.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Seal the open chunk after this long.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    chunk_interval: Duration,
    /// Live mode for `lanner-analyze follow`: seal chunks every 200 ms (overrides --chunk-interval).
    #[arg(long)]
    live: bool,
    /// Seal the open chunk after this many events.
    #[arg(long, default_value_t = 65536)]
    chunk_events: usize,
    /// Start a new segment once the current one reaches this many bytes.
    #[arg(long, default_value_t = 256 << 20)]
    segment_bytes: u64,
    /// zstd compression level.
    #[arg(long, default_value_t = 3)]
    zstd_level: i32,
    /// Size of the kernel ring buffer in bytes (a power of two, a multiple of the page size);
    /// records that find it full are counted as drops in the archive.
    #[arg(long, default_value_t = loader::DEFAULT_RING_BUFFER_BYTES, value_parser = loader::parse_ring_buffer_bytes)]
    ring_buffer_bytes: u32,
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("lanner-capture: error: {e:#}");
        std::process::exit(1);
    }
}

fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_owned()).unwrap_or_default()
}

fn run(cli: Cli) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing signal handler")?;
    }
    let mut probes = Probes::load(cli.ring_buffer_bytes)?;
    let boot_to_wall = clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_BOOTTIME);
    let mut table = ProcessTable::new(boot_to_wall);
    table.seed(procfs::snapshot());
    let created_ns = now_ns();
    let meta = SegmentMeta {
        hostname: read_trimmed("/proc/sys/kernel/hostname"),
        boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
        kernel: read_trimmed("/proc/sys/kernel/osrelease"),
        capture_id: format!("{:016x}", created_ns ^ ((std::process::id() as u64) << 40)),
        sequence: 0,
        created_ns,
        prev_chain: String::new(),
        writer: format!("lanner-capture {}", env!("CARGO_PKG_VERSION")),
    };
    let limits = SpoolLimits {
        chunk_events: cli.chunk_events.max(1),
        chunk_interval: if cli.live { Duration::from_millis(200) } else { cli.chunk_interval },
        segment_bytes: cli.segment_bytes,
        zstd_level: cli.zstd_level,
    };
    let mut spool = Spool::new(&cli.spool, limits, meta)?;
    log::info!(
        "recording to {} ({} tracepoints attached, {} processes in the /proc snapshot, ring buffer {} bytes)",
        cli.spool.display(),
        probes.attached,
        table.len(),
        cli.ring_buffer_bytes
    );
    let deadline = cli.duration.map(|d| Instant::now() + d);
    // The maps are new: everything counted so far (drops while the /proc snapshot was taken
    // included) belongs to this capture and goes into its first chunk.
    let mut seen = loader::KernelCounters::default();
    let mut bad_records = 0u64;
    let mut unlogged_drops = 0u64;
    let fd = probes.ring.as_raw_fd();
    loop {
        let finishing = stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d);
        if finishing {
            // Nothing is recorded after this point: the last drain below sees every record.
            probes.detach();
        } else {
            let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd. EINTR (a signal) just ends the wait early.
            unsafe { libc::poll(&mut pfd, 1, 20) };
        }
        // Bounded while recording, so a ring that refills as fast as it drains still gets its
        // chunks sealed and its drops counted; the last drain empties it.
        let budget = if finishing { usize::MAX } else { cli.chunk_events.max(1) };
        let mut drained = 0usize;
        while drained < budget {
            let Some(item) = probes.ring.next() else { break };
            drained += 1;
            match decode::decode(&item) {
                Ok(rec) => {
                    if let Some(ev) = table.apply(rec) {
                        spool.push(&ev, &table);
                    }
                }
                Err(e) => {
                    bad_records += 1;
                    log::warn!("skipping malformed kernel record: {e}");
                }
            }
        }
        // Read after the drain: drops counted so far happened among the records drained into the
        // open chunk or, when the drain was cut short, just after them; the open chunk (sealed
        // even with no events) marks where the gap is.
        let now = probes.counters();
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
            spool.seal()?;
            table.purge_exited(now_ns(), 60_000_000_000);
        }
        if finishing {
            break;
        }
    }
    drop(probes);
    let events = spool.events_written;
    let segments = spool.close()?;
    log::info!(
        "stopped: {events} events in {} segment(s); kernel drops {}, unpaired exits {}, malformed records {bad_records}, unknown syscalls {}",
        segments.len(),
        seen.drops,
        seen.unpaired,
        table.unknown_records
    );
    for s in &segments {
        println!("{}", s.display());
    }
    Ok(())
}
