//! Packs spooled events into PutLogEvents batches within the service's limits: at most 10,000
//! events and 1,048,576 bytes (message UTF-8 bytes + 26 per event), spanning less than 24 hours,
//! sorted by timestamp; a message longer than 256 KiB - 26 bytes is cut at a char boundary.

/// Most events in one PutLogEvents call.
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// Most bytes in one PutLogEvents call (messages plus [`EVENT_OVERHEAD`] per event).
pub const MAX_BATCH_BYTES: usize = 1_048_576;
/// Bytes the service counts for each event on top of its message.
pub const EVENT_OVERHEAD: usize = 26;
/// Longest message, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 262_144 - EVENT_OVERHEAD;
/// A batch must span strictly less than this (24 h, in ms).
pub const MAX_BATCH_SPAN_MS: i64 = 24 * 3600 * 1000;
/// Appended to a message that was cut.
pub const TRUNCATION_MARKER: &str = "…[truncated]";

/// One log event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The message (UTF-8).
    pub message: String,
}

impl LogEvent {
    /// Bytes the service counts for this event.
    pub fn size(&self) -> usize {
        self.message.len() + EVENT_OVERHEAD
    }
}

/// Cuts `msg` to at most `max` bytes at a char boundary, ending it with [`TRUNCATION_MARKER`].
/// Returns whether it was cut.
pub fn truncate_message(msg: &mut String, max: usize) -> bool {
    if msg.len() <= max {
        return false;
    }
    let mut cut = max.saturating_sub(TRUNCATION_MARKER.len());
    while !msg.is_char_boundary(cut) {
        cut -= 1;
    }
    msg.truncate(cut);
    if TRUNCATION_MARKER.len() <= max {
        msg.push_str(TRUNCATION_MARKER);
    }
    true
}

/// Limits of one batch (the service's by default; smaller in tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most events.
    pub max_events: usize,
    /// Most bytes, counting [`EVENT_OVERHEAD`] per event.
    pub max_bytes: usize,
    /// The batch's newest minus oldest timestamp stays below this.
    pub max_span_ms: i64,
    /// Longest message.
    pub max_message_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_events: MAX_BATCH_EVENTS,
            max_bytes: MAX_BATCH_BYTES,
            max_span_ms: MAX_BATCH_SPAN_MS,
            max_message_bytes: MAX_MESSAGE_BYTES,
        }
    }
}

/// Collects events until the next one would break a limit.
#[derive(Debug)]
pub struct BatchBuilder {
    limits: Limits,
    events: Vec<LogEvent>,
    bytes: usize,
    min_ts: i64,
    max_ts: i64,
    truncated: u64,
}

impl BatchBuilder {
    /// An empty batch.
    pub fn new(limits: Limits) -> Self {
        Self { limits, events: Vec::new(), bytes: 0, min_ts: i64::MAX, max_ts: i64::MIN, truncated: 0 }
    }

    /// Adds `ev`, or hands it back when it does not fit (the batch is then complete). The first
    /// event always fits (cut to the longest message if needed).
    pub fn push(&mut self, mut ev: LogEvent) -> Result<(), LogEvent> {
        if truncate_message(&mut ev.message, self.limits.max_message_bytes) {
            self.truncated += 1;
        }
        if !self.events.is_empty() {
            let min = self.min_ts.min(ev.timestamp_ms);
            let max = self.max_ts.max(ev.timestamp_ms);
            if self.events.len() >= self.limits.max_events
                || self.bytes + ev.size() > self.limits.max_bytes
                || max - min >= self.limits.max_span_ms
            {
                return Err(ev);
            }
        }
        self.min_ts = self.min_ts.min(ev.timestamp_ms);
        self.max_ts = self.max_ts.max(ev.timestamp_ms);
        self.bytes += ev.size();
        self.events.push(ev);
        Ok(())
    }

    /// Events so far.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True when no event was added.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Bytes so far, as the service counts them.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Messages cut while building this batch.
    pub fn truncated(&self) -> u64 {
        self.truncated
    }

    /// The events, sorted by timestamp (stable: equal timestamps keep their order).
    pub fn finish(self) -> Vec<LogEvent> {
        let mut v = self.events;
        v.sort_by_key(|e| e.timestamp_ms);
        v
    }
}
