//! Alerts as JSON lines on standard output (the Fluent Bit / container-log path).

use std::io::{BufWriter, Stdout, Write};

use anyhow::Result;
use lanner_formats::alert::Alert;

use super::{alert_line, AlertFormat, Sink};

/// Writes alert lines to stdout.
pub struct StdoutSink {
    out: BufWriter<Stdout>,
    format: AlertFormat,
}

impl StdoutSink {
    /// A sink on this process's stdout.
    pub fn new(format: AlertFormat) -> Self {
        Self { out: BufWriter::new(std::io::stdout()), format }
    }
}

impl Sink for StdoutSink {
    fn send(&mut self, alert: &Alert) -> Result<()> {
        writeln!(self.out, "{}", alert_line(alert, self.format))?;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush()?;
        Ok(())
    }
}
