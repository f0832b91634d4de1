//! `lanner-capture`: records syscall activity with eBPF into a spool of archive segments.
//!
//! Design: the kernel side only copies raw arguments and strings; all state (process table,
//! fd table, cwd, parent chain) is rebuilt here, then events are written into self-contained
//! chunks so the analyzer can process any chunk alone. The loop below only drains the ring
//! buffer and builds chunks; a spool writer thread compresses and writes the sealed ones.

mod btf;
mod config;
mod containers;
mod decode;
mod k8s;
mod kernel_support;
mod loader;
mod metrics;
mod procfs;
mod retention;
mod runtime;
mod spool;
mod state;

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};
use lanner_formats::archive::SegmentMeta;

use crate::loader::Probes;
use crate::metrics::Metrics;
use crate::retention::RetentionPolicy;
use crate::spool::{now_ns, Spool, SpoolLimits};
use crate::state::ProcessTable;

/// The syscall sets `--syscalls` selects.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum SyscallSet {
    /// The forensic set.
    Forensic,
    /// Every syscall Lanner knows.
    All,
}

/// Record syscall activity into compressed, verifiable Lanner archives.
///
/// Example: `lanner-capture --spool /var/lib/lanner/spool --duration 10s`
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Directory the archive segments (`*.lnr`) are written to.
    #[arg(long, required_unless_present_any = ["config", "probe"])]
    spool: Option<PathBuf>,
    /// Check this kernel and exit: print each eBPF feature capture uses (present or not, the
    /// kernel version that brought it, what capture does without it), then load every program
    /// without attaching it and print the instructions the verifier processed for each.
    #[arg(long)]
    probe: bool,
    /// The kernel's BTF, read for kernel struct member offsets; without it, capture falls back to
    /// per-syscall tracepoints and records no socket addresses, terminal or login uid.
    #[arg(long, value_name = "PATH", default_value = btf::VMLINUX_BTF)]
    btf: PathBuf,
    /// Which syscalls to record: `forensic` (processes, files, sockets, fd state, identity,
    /// signals, ptrace, mounts, bpf) or `all` (also read, write, send*, recv*: high volume).
    #[arg(long, value_enum, default_value = "forensic")]
    syscalls: SyscallSet,
    /// YAML file with any of these settings (keys named like the flags, e.g. `retain-bytes: 10GiB`);
    /// flags given on the command line override it.
    #[arg(long)]
    config: Option<PathBuf>,
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
    /// Start a new segment once the current one reaches this many bytes (e.g. `268435456`, `256MiB`).
    #[arg(long, default_value_t = 256 << 20, value_parser = config::parse_bytes)]
    segment_bytes: u64,
    /// Also start a new segment once the current one is this old (e.g. `1h`).
    #[arg(long, value_parser = humantime::parse_duration)]
    segment_age: Option<Duration>,
    /// Retention: delete the oldest closed segments while the spool is larger than this (e.g. `10GiB`;
    /// the open segment is never deleted, so the spool can exceed it by that one). With a --retain-*
    /// limit set, a full disk also deletes the oldest closed segment to make room.
    #[arg(long, value_parser = config::parse_bytes)]
    retain_bytes: Option<u64>,
    /// Retention: delete closed segments whose newest data is older than this (e.g. `7days`).
    #[arg(long, value_parser = humantime::parse_duration)]
    retain_age: Option<Duration>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. `127.0.0.1:9464`).
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
    /// Kubernetes API server to read this node's pods from, for pod and container names
    /// (e.g. `https://10.96.0.1:443`; default in a pod: from KUBERNETES_SERVICE_HOST/_PORT).
    #[arg(long, value_name = "URL")]
    k8s_api: Option<String>,
    /// This node's name, for --k8s-api (default: env NODE_NAME).
    #[arg(long, value_name = "NAME")]
    k8s_node: Option<String>,
    /// Container runtime socket (Docker-compatible Engine API) to read container names and
    /// images from; repeatable, asked in order (default: /var/run/docker.sock and
    /// /run/podman/podman.sock, where present).
    #[arg(long, value_name = "PATH")]
    container_socket: Option<Vec<PathBuf>>,
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
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Err(e) = run(cli, &matches) {
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

fn run(mut cli: Cli, matches: &ArgMatches) -> Result<()> {
    if let Some(path) = cli.config.clone() {
        config::merge(&mut cli, matches, config::load(&path)?);
    }
    let load_options = loader::LoadOptions {
        ring_bytes: cli.ring_buffer_bytes,
        all_syscalls: cli.syscalls == SyscallSet::All,
        btf_path: cli.btf.clone(),
    };
    if cli.probe {
        // The features first, so that a kernel capture refuses still shows what it has.
        let support = kernel_support::KernelSupport::probe(&load_options.btf_path);
        print!("{}", support.report());
        let programs = loader::verify_all(&load_options, support)?;
        for p in programs {
            let insns = p.insns.map_or("unknown (needs Linux 5.16+)".to_owned(), |n| n.to_string());
            println!(
                "program  {:<20} {:<10} verified, {insns} instructions processed (budget {})",
                p.name,
                p.kind,
                loader::COMPLEXITY_BUDGET
            );
        }
        println!("capture can run on this kernel");
        return Ok(());
    }
    let spool_dir = cli.spool.clone().context("no spool directory: give --spool or `spool:` in the --config file")?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing signal handler")?;
    }
    let k8s = k8s::ApiConfig::resolve(cli.k8s_api.as_deref(), cli.k8s_node.as_deref(), |k| std::env::var(k).ok())?;
    let mut probes = Probes::load(&load_options)?;
    let boot_to_wall = clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_BOOTTIME);
    let mut table = ProcessTable::new(boot_to_wall);
    table.seed(procfs::snapshot());
    if let Some(cfg) = k8s {
        log::info!("pod metadata from {} for node {}", cfg.api, cfg.node);
        table.set_pod_metadata(k8s::PodMetadata::start(cfg)?);
    }
    let sockets = cli.container_socket.clone().unwrap_or_else(|| runtime::DEFAULT_SOCKETS.map(PathBuf::from).to_vec());
    if !sockets.is_empty() {
        log::debug!("container names from runtime sockets {sockets:?}");
        table.set_runtime_metadata(runtime::RuntimeMetadata::start(sockets)?);
    }
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
        users: procfs::users(),
    };
    let limits = SpoolLimits {
        chunk_events: cli.chunk_events.max(1),
        chunk_interval: if cli.live { Duration::from_millis(200) } else { cli.chunk_interval },
        segment_bytes: cli.segment_bytes,
        segment_age: cli.segment_age,
        retention: RetentionPolicy { max_bytes: cli.retain_bytes, max_age: cli.retain_age },
        zstd_level: cli.zstd_level,
    };
    if cli.retain_bytes.is_some_and(|r| r < cli.segment_bytes) {
        log::warn!(
            "--retain-bytes is below --segment-bytes: the open segment alone can exceed it (it is never deleted)"
        );
    }
    let metrics = Arc::new(Metrics::default());
    if let Some(addr) = cli.metrics_addr {
        metrics::serve(addr, Arc::clone(&metrics))?;
    }
    let mut spool = Spool::new(&spool_dir, limits, meta, Arc::clone(&metrics))?;
    log::info!(
        "recording to {} ({} tracepoints attached, {} processes in the /proc snapshot, ring buffer {} bytes)",
        spool_dir.display(),
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
                    metrics.malformed_records.fetch_add(1, Ordering::Relaxed);
                    log::warn!("skipping malformed kernel record: {e}");
                }
            }
            // Under sustained load the ring never empties: stop draining once a chunk is due, so
            // chunks are sealed and handed to the spool writer thread (the rest is read next round).
            if drained.is_multiple_of(1024) && !finishing && spool.due() {
                break;
            }
        }
        metrics.records_read.fetch_add(drained as u64, Ordering::Relaxed);
        // Read after the drain: drops counted so far happened among the records drained into the
        // open chunk or, when the drain was cut short, just after them; the open chunk (sealed
        // even with no events) marks where the gap is.
        let now = probes.counters();
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
            break;
        }
    }
    drop(probes);
    // Waits for the writer thread to write the last chunk and the segment footer.
    let written = spool.close();
    log::info!(
        "stopped: {} events in {} segment(s); lost (spool not writable) {}, kernel drops {}, unpaired exits {}, 32-bit syscalls recorded {} and not recorded {}, program recursion misses {}, malformed records {bad_records}, unknown syscalls {}",
        written.events_written,
        written.segments.len(),
        written.events_lost,
        seen.drops,
        seen.unpaired,
        seen.compat_recorded,
        seen.compat,
        seen.recursion_misses,
        table.unknown_records
    );
    for s in &written.segments {
        println!("{}", s.display());
    }
    Ok(())
}
