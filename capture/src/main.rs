//! `lanner-capture`, the binary: command line and configuration file, then the library's
//! pieces wired together (see the `lanner_capture` crate docs for the design).

mod config;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};
use lanner_capture::drain::{self, Stop};
use lanner_capture::kernel::{btf, loader, support as kernel_support};
use lanner_capture::metadata::{k8s, names, procfs, runtime};
use lanner_capture::metrics::{self, Metrics};
use lanner_capture::ship::{ShipConfig, Shipper};
use lanner_capture::spool::retention::RetentionPolicy;
use lanner_capture::spool::{now_ns, Spool, SpoolLimits};
use lanner_capture::state::ProcessTable;
use lanner_formats::archive::SegmentMeta;
use loader::Probes;

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
    /// Host name to resolve on this host every 10 s while capturing, repeatable: each chunk
    /// records every address the name had while it was open, for rules that compare
    /// `fd.sip.name` and the other `fd.*.name` fields with it (`lanner-analyze rules check` lists
    /// the names a rules file needs).
    #[arg(long, value_name = "NAME")]
    resolve: Option<Vec<String>>,
    /// zstd compression level.
    #[arg(long, default_value_t = 3)]
    zstd_level: i32,
    /// Size of the kernel ring buffer in bytes (a power of two, a multiple of the page size);
    /// records that find it full are counted as drops in the archive.
    #[arg(long, default_value_t = loader::DEFAULT_RING_BUFFER_BYTES, value_parser = loader::parse_ring_buffer_bytes)]
    ring_buffer_bytes: u32,
    /// Upload every closed segment to object storage, at
    /// `s3://BUCKET/PREFIX/<cluster>/<node>/<YYYY>/<MM>/<DD>/<HH>/<segment>` (credentials: the AWS
    /// SDK's chain: environment, profile, IRSA web identity, instance role). Retention then
    /// deletes only segments already shipped.
    #[arg(long, value_name = "s3://BUCKET/PREFIX", value_parser = parse_store_url)]
    ship: Option<String>,
    /// The cluster this node belongs to: recorded in every segment (alerts carry it) and used in
    /// shipped keys (default: env LANNER_CLUSTER; keys then say `default`).
    #[arg(long, env = "LANNER_CLUSTER")]
    cluster: Option<String>,
    /// Endpoint of an S3-compatible store or a VPC endpoint for --ship (also AWS_ENDPOINT_URL_S3).
    #[arg(long, value_name = "URL")]
    ship_endpoint: Option<String>,
    /// Path-style addressing for --ship (default: on with --ship-endpoint).
    #[arg(long)]
    ship_path_style: bool,
    /// Let retention delete segments that have not been shipped yet (by default they are kept, and
    /// the spool grows past the --retain-* limits while shipping is down).
    #[arg(long)]
    ship_may_delete_unshipped: bool,
    /// After capture stops, keep shipping the segments still waiting for at most this long.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    ship_drain_timeout: Duration,
}

fn parse_store_url(s: &str) -> Result<String, String> {
    lanner_objectstore::StoreUrl::parse(s).map(|_| s.to_owned()).map_err(|e| e.to_string())
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
        // A report for the terminal or a pipe: stop quietly when the reader goes away (`| head`).
        // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
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
        cluster: cli.cluster.clone().unwrap_or_default(),
        boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
        kernel: read_trimmed("/proc/sys/kernel/osrelease"),
        capture_id: format!("{:016x}", created_ns ^ ((std::process::id() as u64) << 40)),
        sequence: 0,
        created_ns,
        prev_chain: String::new(),
        writer: format!("lanner-capture {}", env!("CARGO_PKG_VERSION")),
        users: procfs::users(),
        groups: procfs::groups(),
        first_event: 0,
    };
    let limits = SpoolLimits {
        chunk_events: cli.chunk_events.max(1),
        chunk_interval: if cli.live { Duration::from_millis(200) } else { cli.chunk_interval },
        segment_bytes: cli.segment_bytes,
        segment_age: cli.segment_age,
        retention: RetentionPolicy {
            max_bytes: cli.retain_bytes,
            max_age: cli.retain_age,
            keep_unshipped: cli.ship.is_some() && !cli.ship_may_delete_unshipped,
        },
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
    let capture_id = meta.capture_id.clone();
    let mut spool = Spool::new(&spool_dir, limits, meta, Arc::clone(&metrics))?;
    let names = cli.resolve.clone().unwrap_or_default();
    if let Some(r) = names::NameResolver::start(&names).context("starting the name resolver thread")? {
        log::info!("resolving {} every {:?}", names.join(", "), names::REFRESH);
        spool.resolve_names(r);
    }
    let shipper = match &cli.ship {
        Some(url) => {
            let cfg = ShipConfig {
                url: lanner_objectstore::StoreUrl::parse(url)?,
                connection: lanner_objectstore::Connection {
                    endpoint: cli.ship_endpoint.clone(),
                    path_style: cli.ship_path_style.then_some(true),
                    region: None,
                },
                cluster: cli.cluster.clone().unwrap_or_else(|| "default".to_owned()),
                node: None,
            };
            log::info!("shipping closed segments to {url} (cluster {})", cfg.cluster);
            Some(Shipper::start(&spool_dir, cfg, capture_id, Arc::clone(&metrics))?)
        }
        None => None,
    };
    log::info!(
        "recording to {} ({} tracepoints attached, {} processes in the /proc snapshot, ring buffer {} bytes)",
        spool_dir.display(),
        probes.attached,
        table.len(),
        cli.ring_buffer_bytes
    );
    let deadline = cli.duration.map(|d| Instant::now() + d);
    let report =
        drain::run(&mut probes, &mut table, &mut spool, &metrics, Stop { flag: &stop, deadline }, cli.chunk_events);
    let (seen, bad_records) = (report.counters, report.malformed);
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
    if let Some(shipper) = shipper {
        shipper.finish(cli.ship_drain_timeout);
    }
    for s in &written.segments {
        println!("{}", s.display());
    }
    Ok(())
}
