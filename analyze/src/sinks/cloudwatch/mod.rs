//! Alerts to AWS CloudWatch Logs, with nothing lost.
//!
//! `send` appends the alert to a disk spool; `flush` syncs it, after which the alert is
//! accepted. A delivery thread (with its own tokio runtime) reads the spool in order, packs
//! batches within the service's limits, calls PutLogEvents, and only then advances the spool's
//! committed position. Throttling, 5xx and connection errors are retried with backoff for as
//! long as it takes; a missing group or stream is created again. Delivery is at-least-once: a
//! batch whose answer was lost may arrive twice, and such events are counted.

pub mod config;
pub mod request_builder;
pub mod retry;
pub mod service;
pub mod spool;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use lanner_formats::alert::Alert;
use serde::Serialize;

pub use config::{CloudWatchConfig, TimestampSource};
use request_builder::{truncate_message, BatchBuilder, Limits, LogEvent, MAX_MESSAGE_BYTES};
use retry::{Action, Backoff};
use service::{Endpoint, Service};
use spool::{SpoolReader, SpoolRecord, SpoolWriter};

use super::{alert_line, AlertFormat, Sink};

/// Counters of one CloudWatch output, readable while it runs (e.g. by a metrics endpoint).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Events PutLogEvents accepted.
    pub sent: AtomicU64,
    /// Failed calls that were tried again.
    pub retried: AtomicU64,
    /// Events the service refused (too old, too new, expired).
    pub rejected: AtomicU64,
    /// Events dropped after a non-retryable error.
    pub dropped: AtomicU64,
    /// Alerts accepted into the spool by this process.
    pub spooled: AtomicU64,
    /// Events in the spool not yet delivered (gauge).
    pub spool_events: AtomicU64,
    /// Bytes in the spool not yet delivered (gauge).
    pub spool_bytes: AtomicU64,
    /// Events sent again after a call whose outcome was unknown (they may appear twice).
    pub duplicates_possible: AtomicU64,
    /// Messages cut to the service's size limit.
    pub truncated: AtomicU64,
    /// PutLogEvents calls that succeeded.
    pub batches: AtomicU64,
}

/// A copy of [`Metrics`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MetricsSnapshot {
    /// See [`Metrics::sent`].
    pub sent: u64,
    /// See [`Metrics::retried`].
    pub retried: u64,
    /// See [`Metrics::rejected`].
    pub rejected: u64,
    /// See [`Metrics::dropped`].
    pub dropped: u64,
    /// See [`Metrics::spooled`].
    pub spooled: u64,
    /// See [`Metrics::spool_events`].
    pub spool_events: u64,
    /// See [`Metrics::spool_bytes`].
    pub spool_bytes: u64,
    /// See [`Metrics::duplicates_possible`].
    pub duplicates_possible: u64,
    /// See [`Metrics::truncated`].
    pub truncated: u64,
    /// See [`Metrics::batches`].
    pub batches: u64,
}

impl Metrics {
    /// The current values.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MetricsSnapshot {
            sent: g(&self.sent),
            retried: g(&self.retried),
            rejected: g(&self.rejected),
            dropped: g(&self.dropped),
            spooled: g(&self.spooled),
            spool_events: g(&self.spool_events),
            spool_bytes: g(&self.spool_bytes),
            duplicates_possible: g(&self.duplicates_possible),
            truncated: g(&self.truncated),
            batches: g(&self.batches),
        }
    }

    fn add(a: &AtomicU64, n: u64) {
        a.fetch_add(n, Ordering::Relaxed);
    }

    fn set_spool(&self, (events, bytes): (u64, u64)) {
        self.spool_events.store(events, Ordering::Relaxed);
        self.spool_bytes.store(bytes, Ordering::Relaxed);
    }
}

/// Sends alerts to a CloudWatch Logs stream through a disk spool.
pub struct CloudWatchSink {
    writer: SpoolWriter,
    format: AlertFormat,
    timestamp: TimestampSource,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    drain_timeout: Duration,
    label: String,
    spool_dir: std::path::PathBuf,
}

impl CloudWatchSink {
    /// Opens the spool (resuming delivery of what an earlier run left in it) and starts the
    /// delivery thread. Fails on a bad configuration, a missing region or a spool in use.
    pub fn open(cfg: CloudWatchConfig, format: AlertFormat) -> Result<Self> {
        let cfg = cfg.resolve()?;
        let spool_dir = cfg.spool_dir();
        let label = format!("{}/{}", cfg.group, cfg.stream);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the cloudwatch delivery runtime")?;
        let endpoint = Endpoint { region: cfg.region.clone(), url: cfg.endpoint.clone() };
        let svc = rt.block_on(Service::new(&endpoint, cfg.group.clone(), cfg.stream.clone(), cfg.retention_days))?;
        let (writer, reader, recovered) = spool::open(&spool_dir, cfg.spool_max_bytes)?;
        if recovered.records > 0 {
            log::info!(
                "cloudwatch {label}: {} alert(s) ({} bytes) left in spool {} by an earlier run will be delivered",
                recovered.records,
                recovered.bytes,
                spool_dir.display()
            );
        }
        let metrics = Arc::new(Metrics::default());
        metrics.set_spool(writer.pending());
        let stop = Arc::new(AtomicBool::new(false));
        let limits = Limits { max_events: cfg.batch_max_events, ..Limits::default() };
        let thread = {
            let (metrics, stop) = (Arc::clone(&metrics), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("cloudwatch".into())
                .spawn(move || rt.block_on(deliver(reader, svc, metrics, stop, limits)))
                .context("starting the cloudwatch delivery thread")?
        };
        Ok(Self {
            writer,
            format,
            timestamp: cfg.timestamp,
            metrics,
            stop,
            thread: Some(thread),
            drain_timeout: cfg.drain_timeout,
            label,
            spool_dir,
        })
    }

    /// The output's counters.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// Appends one message with its timestamp (ms) to the spool.
    pub fn send_message(&mut self, timestamp_ms: i64, mut message: String) -> Result<()> {
        if message.is_empty() {
            message.push(' ');
        }
        if truncate_message(&mut message, MAX_MESSAGE_BYTES) {
            Metrics::add(&self.metrics.truncated, 1);
        }
        self.writer.append(timestamp_ms, &message)?;
        Metrics::add(&self.metrics.spooled, 1);
        self.metrics.set_spool(self.writer.pending());
        Ok(())
    }

    fn stop_delivery(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!("cloudwatch {}: the delivery thread panicked", self.label);
            }
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn alert_ms(alert: &Alert) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(&alert.time).ok().map(|t| t.timestamp_millis())
}

impl Sink for CloudWatchSink {
    fn send(&mut self, alert: &Alert) -> Result<()> {
        let ts = match self.timestamp {
            TimestampSource::Received => now_ms(),
            TimestampSource::Alert => alert_ms(alert).unwrap_or_else(now_ms),
        };
        self.send_message(ts, alert_line(alert, self.format))
    }

    fn flush(&mut self) -> Result<()> {
        self.writer.sync()?;
        self.metrics.set_spool(self.writer.pending());
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        if self.thread.is_none() {
            return Ok(());
        }
        self.flush()?;
        let (events, bytes) = self.writer.wait_drained(self.drain_timeout);
        self.stop_delivery();
        self.metrics.set_spool((events, bytes));
        let m = self.metrics.snapshot();
        log::info!(
            "cloudwatch {}: sent {} in {} call(s), retried {}, rejected {}, dropped {}, truncated {}, duplicates possible {}, spooled {}; {} alert(s) ({} bytes) still spooled",
            self.label, m.sent, m.batches, m.retried, m.rejected, m.dropped, m.truncated, m.duplicates_possible, m.spooled, events, bytes
        );
        if events > 0 {
            log::warn!(
                "cloudwatch {}: {events} alert(s) were not delivered within {:?}; they stay in {} and are delivered when an output with this spool starts again",
                self.label,
                self.drain_timeout,
                self.spool_dir.display()
            );
        }
        Ok(())
    }

    fn cloudwatch_metrics(&self) -> Option<Arc<Metrics>> {
        Some(self.metrics())
    }
}

impl Drop for CloudWatchSink {
    fn drop(&mut self) {
        if self.thread.is_some() {
            if let Err(e) = self.writer.sync() {
                log::error!("cloudwatch {}: {e:#}", self.label);
            }
            self.stop_delivery();
        }
    }
}

/// One batch read from the spool.
struct Batch {
    events: Vec<LogEvent>,
    end: spool::Pos,
    records: u64,
    bytes: u64,
    maybe_sent: u64,
}

/// Reads the next batch; `carry` holds a record read but not fitting the previous batch.
fn next_batch(reader: &mut SpoolReader, carry: &mut Option<SpoolRecord>, limits: Limits) -> Result<Option<Batch>> {
    let mut b = BatchBuilder::new(limits);
    let (mut end, mut records, mut bytes, mut maybe_sent) = (None, 0, 0, 0);
    loop {
        let rec = match carry.take() {
            Some(r) => r,
            None => match reader.next_record()? {
                Some(r) => r,
                None => break,
            },
        };
        let ev = LogEvent { timestamp_ms: rec.timestamp_ms, message: rec.message };
        match b.push(ev) {
            Ok(()) => {
                end = Some(rec.end);
                records += 1;
                bytes += rec.bytes;
                maybe_sent += rec.maybe_sent as u64;
            }
            Err(ev) => {
                *carry = Some(SpoolRecord { timestamp_ms: ev.timestamp_ms, message: ev.message, ..rec });
                break;
            }
        }
    }
    Ok(end.map(|end| Batch { events: b.finish(), end, records, bytes, maybe_sent }))
}

/// Waits `d`, or less when `stop` is set.
async fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let until = tokio::time::Instant::now() + d;
    while !stop.load(Ordering::Relaxed) && tokio::time::Instant::now() < until {
        tokio::time::sleep((until - tokio::time::Instant::now()).min(Duration::from_millis(100))).await;
    }
}

/// Runs `fut` to completion, or gives up (returns `None`) once `stop` is set.
async fn unless_stopped<F: std::future::Future>(fut: F, stop: &AtomicBool) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    loop {
        match tokio::time::timeout(Duration::from_millis(100), &mut fut).await {
            Ok(v) => return Some(v),
            Err(_) if stop.load(Ordering::Relaxed) => return None,
            Err(_) => {}
        }
    }
}

/// The delivery loop: spool → batches → PutLogEvents → commit, until `stop`.
async fn deliver(mut reader: SpoolReader, svc: Service, metrics: Arc<Metrics>, stop: Arc<AtomicBool>, limits: Limits) {
    let label = svc.label();
    let mut carry = None;
    let mut ready = false;
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
    while !stop.load(Ordering::Relaxed) {
        let batch = match next_batch(&mut reader, &mut carry, limits) {
            Ok(Some(b)) => b,
            Ok(None) => {
                sleep_unless_stopped(Duration::from_millis(50), &stop).await;
                continue;
            }
            Err(e) => {
                log::error!("cloudwatch {label}: reading the spool: {e:#}; delivery stops");
                return;
            }
        };
        // Set when an attempt may have stored the batch although it failed.
        let mut maybe_applied = false;
        loop {
            if !ready {
                match unless_stopped(svc.ensure_destination(), &stop).await {
                    None => return,
                    Some(Ok(())) => ready = true,
                    Some(Err(f)) => {
                        let delay = backoff.next_delay();
                        Metrics::add(&metrics.retried, 1);
                        log::warn!(
                            "cloudwatch {label}: creating the log group/stream failed: {f}; retrying in {delay:.1?}"
                        );
                        sleep_unless_stopped(delay, &stop).await;
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        continue;
                    }
                }
            }
            if let Err(e) = reader.mark_inflight(batch.end) {
                log::warn!("cloudwatch {label}: {e:#}");
            }
            let outcome = match unless_stopped(svc.put(&batch.events), &stop).await {
                None => return,
                Some(o) => o,
            };
            let (delivered, rejected) = match outcome {
                Ok(rej) => (true, rej),
                Err(f) => match retry::classify(&f) {
                    Action::Retry { maybe_applied: m } => {
                        maybe_applied |= m;
                        let delay = backoff.next_delay();
                        Metrics::add(&metrics.retried, 1);
                        log::warn!(
                            "cloudwatch {label}: PutLogEvents of {} event(s) failed (attempt {}): {f}; retrying in {delay:.1?}",
                            batch.records,
                            backoff.attempts()
                        );
                        sleep_unless_stopped(delay, &stop).await;
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        continue;
                    }
                    Action::Recreate => {
                        Metrics::add(&metrics.retried, 1);
                        log::warn!("cloudwatch {label}: log group or stream is missing ({f}); creating them again");
                        if ready {
                            ready = false;
                        } else {
                            sleep_unless_stopped(backoff.next_delay(), &stop).await;
                        }
                        continue;
                    }
                    Action::AlreadyAccepted => (true, service::Rejected::default()),
                    Action::Drop => {
                        log::error!(
                            "cloudwatch {label}: PutLogEvents refused {} event(s) and retrying cannot help: {f}; dropping them",
                            batch.records
                        );
                        Metrics::add(&metrics.dropped, batch.records);
                        (false, service::Rejected::default())
                    }
                },
            };
            if let Err(e) = reader.commit(batch.end, batch.records, batch.bytes) {
                log::error!("cloudwatch {label}: {e:#}; delivery stops");
                return;
            }
            backoff.reset();
            metrics.set_spool(reader.pending());
            if delivered {
                let n = rejected.total();
                if n > 0 {
                    log::warn!(
                        "cloudwatch {label}: the service rejected {n} of {} event(s): {} too old, {} too new, {} expired",
                        batch.records, rejected.too_old, rejected.too_new, rejected.expired
                    );
                    Metrics::add(&metrics.rejected, n);
                }
                Metrics::add(&metrics.sent, batch.records - n.min(batch.records));
                Metrics::add(&metrics.batches, 1);
                let dup = if maybe_applied { batch.records } else { batch.maybe_sent };
                Metrics::add(&metrics.duplicates_possible, dup);
            }
            break;
        }
    }
}
