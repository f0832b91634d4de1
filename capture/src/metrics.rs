//! Capture counters, and a Prometheus text-format endpoint (`GET /metrics`) serving them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Result};
use lanner_formats::syscall::{type_bits, EventType};

/// Counters shared between the capture loop and the metrics endpoint.
#[derive(Default)]
pub struct Metrics {
    /// Events written to the spool, by event type name (updated once per chunk).
    events: Mutex<BTreeMap<&'static str, u64>>,
    /// Ring-buffer records read from the kernel.
    pub records_read: AtomicU64,
    /// Records the kernel dropped because the ring buffer was full.
    pub kernel_drops: AtomicU64,
    /// 32-bit syscalls of traced kinds that could not be recorded (unreadable `socketcall` blocks).
    pub compat_syscalls: AtomicU64,
    /// 32-bit syscalls recorded as their x86_64 twins.
    pub compat_recorded: AtomicU64,
    /// Program runs the kernel skipped because a capture program was already running on the CPU.
    pub recursion_misses: AtomicU64,
    /// Events lost because their chunk could not be written (disk full, I/O error).
    pub lost_events: AtomicU64,
    /// Chunk writes that failed.
    pub write_errors: AtomicU64,
    /// Bytes of chunk frames written.
    pub bytes_written: AtomicU64,
    /// Chunks written.
    pub chunks_written: AtomicU64,
    /// Segments closed (footer written or left unsealed after an error).
    pub segments_closed: AtomicU64,
    /// Segments deleted by retention.
    pub segments_deleted: AtomicU64,
    /// Bytes deleted by retention.
    pub bytes_deleted: AtomicU64,
    /// Size of the segment being written.
    pub open_segment_bytes: AtomicU64,
    /// Malformed kernel records skipped.
    pub malformed_records: AtomicU64,
    /// Sealed chunks the capture loop had to wait to hand to the spool writer thread.
    pub writer_waits: AtomicU64,
    /// Segments uploaded to object storage.
    pub ship_segments: AtomicU64,
    /// Bytes uploaded to object storage.
    pub ship_bytes: AtomicU64,
    /// Upload attempts that failed (each is retried).
    pub ship_failures: AtomicU64,
    /// Age in seconds of the oldest closed segment not shipped yet (0 when none waits).
    pub ship_lag_seconds: AtomicU64,
    /// Closed segments waiting to be shipped.
    pub ship_queue: AtomicU64,
}

impl Metrics {
    /// Adds the events of one written chunk (stored event types).
    pub fn add_events(&self, etypes: &[u16]) {
        let mut local: BTreeMap<&'static str, u64> = BTreeMap::new();
        for &t in etypes {
            let name = EventType::from_u16(type_bits(t)).map_or("unknown", EventType::name);
            *local.entry(name).or_default() += 1;
        }
        let mut m = self.events.lock().unwrap_or_else(|e| e.into_inner());
        for (k, v) in local {
            *m.entry(k).or_default() += v;
        }
    }

    /// Renders every metric in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut s = String::new();
        s.push_str("# HELP lanner_capture_events_total Events written to the spool, by syscall.\n");
        s.push_str("# TYPE lanner_capture_events_total counter\n");
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for (name, n) in &events {
            let _ = writeln!(s, "lanner_capture_events_total{{syscall=\"{name}\"}} {n}");
        }
        let scalars: [(&str, &str, &str, &AtomicU64); 20] = [
            ("records_read_total", "counter", "Ring-buffer records read from the kernel.", &self.records_read),
            ("kernel_drops_total", "counter", "Records the kernel dropped (ring buffer full).", &self.kernel_drops),
            (
                "compat_syscalls_total",
                "counter",
                "32-bit syscalls of traced kinds that capture could not record (a socketcall with an unreadable argument block).",
                &self.compat_syscalls,
            ),
            (
                "recursion_misses_total",
                "counter",
                "Program runs the kernel skipped because a capture program was already running on that CPU.",
                &self.recursion_misses,
            ),
            (
                "compat_syscalls_recorded_total",
                "counter",
                "32-bit syscalls recorded as their x86_64 twins.",
                &self.compat_recorded,
            ),
            (
                "lost_events_total",
                "counter",
                "Events lost because their chunk could not be written (disk full, I/O error).",
                &self.lost_events,
            ),
            ("write_errors_total", "counter", "Chunk or segment writes that failed.", &self.write_errors),
            ("bytes_written_total", "counter", "Bytes of chunk frames written to the spool.", &self.bytes_written),
            ("chunks_written_total", "counter", "Chunks written to the spool.", &self.chunks_written),
            (
                "segments_closed_total",
                "counter",
                "Segments finished (rotated or closed at exit).",
                &self.segments_closed,
            ),
            ("segments_deleted_total", "counter", "Segments deleted by retention.", &self.segments_deleted),
            ("bytes_deleted_total", "counter", "Bytes deleted by retention.", &self.bytes_deleted),
            ("open_segment_bytes", "gauge", "Size of the segment being written.", &self.open_segment_bytes),
            ("malformed_records_total", "counter", "Malformed kernel records skipped.", &self.malformed_records),
            (
                "writer_waits_total",
                "counter",
                "Sealed chunks the capture loop waited to hand to the spool writer thread (it was behind).",
                &self.writer_waits,
            ),
            ("ship_segments_total", "counter", "Segments uploaded to object storage.", &self.ship_segments),
            ("ship_bytes_total", "counter", "Bytes uploaded to object storage.", &self.ship_bytes),
            ("ship_failures_total", "counter", "Segment uploads that failed (each is retried).", &self.ship_failures),
            (
                "ship_lag_seconds",
                "gauge",
                "Age of the oldest closed segment not shipped yet (0 when none waits).",
                &self.ship_lag_seconds,
            ),
            ("ship_queue_length", "gauge", "Closed segments waiting to be shipped.", &self.ship_queue),
        ];
        for (name, kind, help, v) in scalars {
            let _ = writeln!(s, "# HELP lanner_capture_{name} {help}");
            let _ = writeln!(s, "# TYPE lanner_capture_{name} {kind}");
            let _ = writeln!(s, "lanner_capture_{name} {}", v.load(Relaxed));
        }
        s
    }
}

/// Serves `metrics` at `http://addr/metrics` on its own thread; fails when `addr` cannot be bound.
pub fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<()> {
    let server = tiny_http::Server::http(addr).map_err(|e| anyhow!("--metrics-addr {addr}: cannot listen: {e}"))?;
    let content_type = tiny_http::Header::from_bytes("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        .map_err(|()| anyhow!("bad content type header"))?;
    std::thread::Builder::new().name("metrics".into()).spawn(move || {
        for req in server.incoming_requests() {
            let path = req.url().split('?').next().unwrap_or("");
            let resp = if *req.method() == tiny_http::Method::Get && path == "/metrics" {
                tiny_http::Response::from_string(metrics.render()).with_header(content_type.clone())
            } else {
                tiny_http::Response::from_string("only GET /metrics is served\n").with_status_code(404)
            };
            if let Err(e) = req.respond(resp) {
                log::debug!("metrics: response not sent: {e}");
            }
        }
    })?;
    log::info!("metrics at http://{addr}/metrics");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_has_per_syscall_events_and_every_counter() {
        let m = Metrics::default();
        let openat = EventType::from_name("openat").unwrap() as u16;
        let execve = EventType::from_name("execve").unwrap() as u16;
        m.add_events(&[openat, openat, execve]);
        m.add_events(&[openat]);
        m.kernel_drops.store(7, Relaxed);
        let text = m.render();
        assert!(text.contains("lanner_capture_events_total{syscall=\"openat\"} 3\n"), "{text}");
        assert!(text.contains("lanner_capture_events_total{syscall=\"execve\"} 1\n"), "{text}");
        assert!(text.contains("lanner_capture_kernel_drops_total 7\n"), "{text}");
        assert!(text.contains("# TYPE lanner_capture_open_segment_bytes gauge\n"), "{text}");
        // Every sample line is `name{labels} value`.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = l.rsplit_once(' ').unwrap();
            assert!(name.starts_with("lanner_capture_"), "{l}");
            value.parse::<u64>().unwrap_or_else(|e| panic!("{l}: {e}"));
        }
    }

    #[test]
    fn endpoint_serves_metrics_and_404_elsewhere() {
        let m = Arc::new(Metrics::default());
        m.bytes_written.store(1234, Relaxed);
        // Find a free port, then serve on it.
        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        serve(addr, Arc::clone(&m)).unwrap();
        let get = |path: &str| {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        let ok = get("/metrics");
        assert!(ok.starts_with("HTTP/1.0 200") || ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.contains("lanner_capture_bytes_written_total 1234\n"), "{ok}");
        assert!(get("/").contains(" 404 "));
        // A second server on the same address fails with the address in the message.
        let e = serve(addr, m).unwrap_err().to_string();
        assert!(e.contains(&addr.to_string()), "{e}");
    }
}
