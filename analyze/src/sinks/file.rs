//! Alerts as lines appended to a file (mode 0600, synced on flush), rotated by size and age,
//! reopened on SIGHUP (for logrotate's `postrotate`).
//!
//! Rotation and reopening happen in `flush`, right after the sync: `follow` checkpoints after
//! each flush, so the checkpointed length always refers to the file now at the path and a
//! restart cuts back exactly what was written after the checkpoint.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use lanner_formats::alert::Alert;
use serde::Deserialize;

use super::{alert_line, AlertFormat, Sink};

/// Settings of a file output.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The file.
    pub path: PathBuf,
    /// Rotate once the file reaches this many bytes.
    #[serde(default)]
    pub rotate_bytes: Option<u64>,
    /// Rotate files older than this (humantime, e.g. `1h`).
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub rotate_interval: Option<Duration>,
    /// Rotated files kept (`PATH.1` newest … `PATH.N`).
    #[serde(default = "default_keep")]
    pub keep: usize,
}

fn default_keep() -> usize {
    5
}

fn de_opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("'{s}' is not a duration: {e}")))
}

impl FileConfig {
    /// A file output without rotation.
    pub fn new(path: &Path) -> Self {
        Self { path: path.to_owned(), rotate_bytes: None, rotate_interval: None, keep: default_keep() }
    }
}

/// Counts SIGHUPs: a file sink that sees a new count reopens its file at the next flush.
fn hup_count() -> usize {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        // SAFETY: the handler only increments an atomic, which is async-signal-safe.
        if let Err(e) = unsafe {
            signal_hook::low_level::register(signal_hook::consts::SIGHUP, || {
                COUNT.fetch_add(1, Ordering::SeqCst);
            })
        } {
            log::warn!("cannot handle SIGHUP (file outputs will not reopen): {e}");
        }
    });
    COUNT.load(Ordering::SeqCst)
}

/// Appends alert lines to a file.
pub struct FileSink {
    cfg: FileConfig,
    out: BufWriter<File>,
    format: AlertFormat,
    len: u64,
    opened: Instant,
    /// SIGHUPs seen.
    hups: usize,
}

fn open_append(path: &Path) -> Result<(BufWriter<File>, u64)> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("opening alert file {}", path.display()))?;
    let len = f.metadata().with_context(|| format!("reading {}", path.display()))?.len();
    Ok((BufWriter::new(f), len))
}

fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl FileSink {
    /// Opens (creating if needed) `path` for appending, without rotation.
    pub fn open(path: &Path, format: AlertFormat) -> Result<Self> {
        Self::open_with(&FileConfig::new(path), format)
    }

    /// Opens the file of `cfg` for appending.
    pub fn open_with(cfg: &FileConfig, format: AlertFormat) -> Result<Self> {
        let hups = hup_count();
        let (out, len) = open_append(&cfg.path)?;
        Ok(Self { cfg: cfg.clone(), out, format, len, opened: Instant::now(), hups })
    }

    fn reopen(&mut self) -> Result<()> {
        let (out, len) = open_append(&self.cfg.path)?;
        self.out = out;
        self.len = len;
        self.opened = Instant::now();
        Ok(())
    }

    /// Moves `PATH` to `PATH.1` (shifting older ones, keeping `keep`) and starts a new file.
    fn rotate(&mut self) -> Result<()> {
        let path = &self.cfg.path.clone();
        if self.cfg.keep == 0 {
            std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
        } else {
            let _ = std::fs::remove_file(numbered(path, self.cfg.keep));
            for i in (1..self.cfg.keep).rev() {
                let from = numbered(path, i);
                if from.exists() {
                    std::fs::rename(&from, numbered(path, i + 1))
                        .with_context(|| format!("rotating {}", from.display()))?;
                }
            }
            std::fs::rename(path, numbered(path, 1)).with_context(|| format!("rotating {}", path.display()))?;
        }
        self.reopen()?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("syncing {}", dir.display()))?;
        }
        Ok(())
    }

    fn due_for_rotation(&self) -> bool {
        self.len > 0
            && (self.cfg.rotate_bytes.is_some_and(|max| self.len >= max)
                || self.cfg.rotate_interval.is_some_and(|d| self.opened.elapsed() >= d))
    }
}

impl Sink for FileSink {
    fn send(&mut self, alert: &Alert) -> Result<()> {
        let line = alert_line(alert, self.format);
        writeln!(self.out, "{line}").with_context(|| format!("writing {}", self.cfg.path.display()))?;
        self.len += line.len() as u64 + 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let path = &self.cfg.path;
        self.out.flush().with_context(|| format!("writing {}", path.display()))?;
        self.out.get_ref().sync_data().with_context(|| format!("syncing {}", path.display()))?;
        let hups = hup_count();
        if hups != self.hups {
            self.hups = hups;
            self.reopen()?;
        }
        if self.due_for_rotation() {
            self.rotate()?;
        }
        Ok(())
    }

    fn durable_position(&self) -> Option<(PathBuf, u64)> {
        let len = self.out.get_ref().metadata().ok()?.len();
        Some((self.cfg.path.clone(), len))
    }
}
