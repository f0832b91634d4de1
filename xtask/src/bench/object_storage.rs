//! `cargo xtask bench object-storage`: Lanner against a real S3 API on loopback (moto_server).
//! Replay of the same archive from the bucket and from local disk, and capture's CPU with and
//! without `--ship` under the same paced load.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lanner_formats::archive::SegmentReader;
use lanner_objectstore::{segment_key, Connection, Store, StoreUrl};

use super::{paced_pair, prepare, replicate, spool_drops, stats_count, timed_replay, under_capture};

/// moto_server on a free loopback port, killed on drop.
struct Moto(Child, u16);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_moto() -> Result<Moto> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new("python3")
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting moto_server (cargo xtask setup installs it)")?;
    let moto = Moto(child, port);
    let end = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > end {
            bail!("moto_server did not start");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(moto)
}

/// Runs the benchmark.
pub fn run() -> Result<()> {
    let (tmp, spool, stable) = prepare("object-storage")?;
    let moto = start_moto()?;
    let endpoint = format!("http://127.0.0.1:{}", moto.1);
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_ENDPOINT_URL_S3", endpoint.as_str()),
    ] {
        // SAFETY (edition 2021: safe fn): set before any thread of this process reads them.
        std::env::set_var(k, v);
    }
    let url = StoreUrl::parse("s3://bench/lanner")?;
    let store = Store::connect(&url, &Connection { endpoint: Some(endpoint.clone()), ..Default::default() })?;
    store.create_bucket(None)?;

    // 1. Replay: the same ~256 MiB archive from local disk and from the bucket.
    let many = tmp.0.join("many");
    let (one, copies) = replicate(&spool, &many, |one| (256u64 << 20).div_ceil(one))?;
    let mut segs: Vec<_> = std::fs::read_dir(&many)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    segs.sort();
    let t = Instant::now();
    for p in &segs {
        let meta = SegmentReader::open(p)?.meta().clone();
        let name = p.file_name().and_then(|n| n.to_str()).context("segment name")?;
        store.put_file(&segment_key(&url, "bench", &meta.hostname, meta.created_ns, name), p)?;
    }
    let upload = t.elapsed().as_secs_f64();
    let total = one * copies;
    println!(
        "## Object storage on a local S3 API (moto_server): {:.0} MiB archive ({copies} copies of a {:.1} MiB real capture), upstream stable rules\n",
        total as f64 / (1u64 << 20) as f64,
        one as f64 / (1u64 << 20) as f64
    );
    println!(
        "Upload of {} segments: {upload:.2} s ({:.0} MiB/s)\n",
        segs.len(),
        total as f64 / upload / (1 << 20) as f64
    );
    println!("| input | threads | events | alerts | seconds | M events/s | vs local disk |");
    println!("|---|---|---|---|---|---|---|");
    let (local_secs, events, alerts, _) = timed_replay(2, &[stable.as_path()], &many)?;
    println!(
        "| local disk | 2 | {events} | {alerts} | {local_secs:.2} | {:.2} | 1.00 |",
        events as f64 / local_secs / 1e6
    );
    let (s3_secs, s3_events, s3_alerts, _) = timed_replay(2, &[stable.as_path()], Path::new(&url.to_string()))?;
    println!(
        "| {url} | 2 | {s3_events} | {s3_alerts} | {s3_secs:.2} | {:.2} | {:.2} |\n",
        s3_events as f64 / s3_secs / 1e6,
        local_secs / s3_secs
    );
    if (s3_events, s3_alerts) != (events, alerts) {
        bail!("the bucket replay saw {s3_events} events / {s3_alerts} alerts, local disk {events} / {alerts}");
    }

    // 2. Capture CPU at ~500k events/s (250k open+close iterations/s), without and with --ship.
    let analyze = super::super::target_dir().join("release/lanner-analyze");
    let (load, _file, file_s) = super::build_load(&tmp.0)?;
    let secs = 10.0;
    let base = ["--segment-bytes", "16MiB", "--segment-age", "2s"];
    let ship = [&base[..], &["--ship", "s3://bench/ship", "--cluster", "bench"]].concat();
    println!("| capture | events/s recorded | drops | capture CPU | segments shipped |");
    println!("|---|---|---|---|---|");
    let mut cpu = Vec::new();
    for round in 0..2 {
        for (label, extra) in [("no --ship", &base[..]), ("--ship s3://bench/ship", &ship[..])] {
            let name = format!("{}-{round}", if extra.len() > base.len() { "ship" } else { "noship" });
            let (cap, _) = under_capture(&tmp.0, &name, extra, || paced_pair(&load, 250_000.0, secs, &file_s))?;
            let events = stats_count(&analyze, &cap.spool, "events")?;
            let drops = spool_drops(&analyze, &cap.spool)?;
            let shipped = std::fs::read_dir(&cap.spool)?
                .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".shipped")))
                .count();
            let pct = cap.cpu_secs / secs * 100.0;
            cpu.push((label, pct));
            println!(
                "| {label} (round {}) | {:.0}k | {drops} | {pct:.1} % of a core | {} |",
                round + 1,
                events as f64 / secs / 1e3,
                if extra.len() > base.len() { shipped.to_string() } else { "–".into() }
            );
        }
    }
    let mean = |l: &str| {
        let v: Vec<f64> = cpu.iter().filter(|(x, _)| *x == l).map(|(_, p)| *p).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let (off, on) = (mean("no --ship"), mean("--ship s3://bench/ship"));
    println!("\nCapture CPU with --ship / without: {:.3}× (mean of 2 rounds each, alternated)", on / off);
    drop(tmp);
    Ok(())
}
