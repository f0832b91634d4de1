//! What to do after a failed call, and how long to wait before the next attempt.

use std::time::Duration;

use rand::Rng;

/// How a call failed, independent of the SDK's error types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// No connection could be made (nothing was sent).
    ConnectRefused,
    /// The connection broke or timed out after the request may have been sent.
    Transport,
    /// The service answered with an error `code` and HTTP `status`.
    Service {
        /// Error code (`ThrottlingException`…), when the answer had one.
        code: Option<String>,
        /// HTTP status.
        status: u16,
    },
    /// The response could not be read.
    BadResponse,
    /// The request could not be built (bad configuration, no credentials…).
    Construction,
}

/// A failed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// How it failed.
    pub kind: FailureKind,
    /// The error, for logs.
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What to do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Try again later; `maybe_applied` when the service may have stored the events anyway.
    Retry {
        /// The request may have succeeded (its answer was lost).
        maybe_applied: bool,
    },
    /// The log group or stream is gone: create them and try again.
    Recreate,
    /// The events already arrived (a retry of a call that had succeeded).
    AlreadyAccepted,
    /// Retrying cannot help: drop the batch.
    Drop,
}

/// Error codes worth retrying.
const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalFailure",
    "OperationAbortedException",
];

/// Decides what to do about `f`.
pub fn classify(f: &Failure) -> Action {
    match &f.kind {
        FailureKind::ConnectRefused => Action::Retry { maybe_applied: false },
        FailureKind::Transport | FailureKind::BadResponse => Action::Retry { maybe_applied: true },
        // Usually missing credentials (an instance role or web identity token not available
        // yet): the events wait in the spool.
        FailureKind::Construction => Action::Retry { maybe_applied: false },
        FailureKind::Service { code, status } => match code.as_deref() {
            Some("ResourceNotFoundException") => Action::Recreate,
            Some("DataAlreadyAcceptedException") => Action::AlreadyAccepted,
            Some(c) if RETRYABLE_CODES.contains(&c) => Action::Retry { maybe_applied: *status >= 500 },
            _ if *status == 429 => Action::Retry { maybe_applied: false },
            _ if *status >= 500 => Action::Retry { maybe_applied: true },
            _ => Action::Drop,
        },
    }
}

/// Exponential backoff with jitter: each delay is drawn from the upper half of a window that
/// doubles from `base` up to `cap`.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// Starts at `base`, never waits longer than `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self { base, cap, attempt: 0 }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let window = self.base.saturating_mul(1u32 << self.attempt.min(20)).min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let half = window / 2;
        let jitter_ms = rand::rng().random_range(0..=half.as_millis().max(1) as u64);
        (half + Duration::from_millis(jitter_ms)).min(self.cap)
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Attempts since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}
