//! Alerts as JSON lines appended to a file (mode 0600, synced on flush).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use lanner_formats::alert::Alert;

use super::{alert_line, AlertFormat, Sink};

/// Appends alert lines to a file.
pub struct FileSink {
    path: PathBuf,
    out: BufWriter<File>,
    format: AlertFormat,
}

impl FileSink {
    /// Opens (creating if needed) `path` for appending.
    pub fn open(path: &Path, format: AlertFormat) -> Result<Self> {
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("opening alert file {}", path.display()))?;
        Ok(Self { path: path.to_owned(), out: BufWriter::new(f), format })
    }
}

impl Sink for FileSink {
    fn send(&mut self, alert: &Alert) -> Result<()> {
        writeln!(self.out, "{}", alert_line(alert, self.format))
            .with_context(|| format!("writing {}", self.path.display()))
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush().with_context(|| format!("writing {}", self.path.display()))?;
        self.out.get_ref().sync_data().with_context(|| format!("syncing {}", self.path.display()))
    }

    fn durable_position(&self) -> Option<(PathBuf, u64)> {
        let len = self.out.get_ref().metadata().ok()?.len();
        Some((self.path.clone(), len))
    }
}
