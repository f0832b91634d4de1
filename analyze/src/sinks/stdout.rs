//! Alerts as JSON lines on standard output (the Fluent Bit / container-log path).

use std::io::{BufWriter, Stdout, Write};

use anyhow::Result;
use lanner_formats::alert::Alert;

use super::{json_line, Sink};

/// Writes JSON lines to stdout.
pub struct StdoutSink {
    out: BufWriter<Stdout>,
}

impl StdoutSink {
    /// A sink on this process's stdout.
    pub fn new() -> Self {
        Self { out: BufWriter::new(std::io::stdout()) }
    }
}

impl Default for StdoutSink {
    fn default() -> Self {
        Self::new()
    }
}

impl Sink for StdoutSink {
    fn send(&mut self, alert: &Alert) -> Result<()> {
        writeln!(self.out, "{}", json_line(alert))?;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush()?;
        Ok(())
    }
}
