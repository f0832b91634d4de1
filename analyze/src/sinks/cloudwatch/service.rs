//! The CloudWatch Logs calls: creating the group and stream, and PutLogEvents.

use std::time::Duration;

use anyhow::{bail, Result};
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_cloudwatchlogs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use aws_sdk_cloudwatchlogs::Client;

use super::request_builder::LogEvent;
use super::retry::{Failure, FailureKind};

/// Events the service refused in an accepted PutLogEvents call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rejected {
    /// Older than the log group's retention or 14 days.
    pub too_old: u64,
    /// More than 2 hours in the future.
    pub too_new: u64,
    /// Older than the retention period.
    pub expired: u64,
}

impl Rejected {
    /// From the indexes of `rejectedLogEventsInfo` in a batch of `n` events.
    pub fn from_indexes(
        n: usize,
        too_new_start: Option<i32>,
        too_old_end: Option<i32>,
        expired_end: Option<i32>,
    ) -> Self {
        let n = n as u64;
        let upto = |i: Option<i32>| i.map_or(0, |i| (i.max(-1) + 1) as u64).min(n);
        let too_new = too_new_start.map_or(0, |i| n.saturating_sub(i.max(0) as u64));
        let too_old = upto(too_old_end);
        let expired = upto(expired_end);
        Self { too_old, too_new, expired }
    }

    /// Distinct events refused (the too-old and expired ranges overlap at the start).
    pub fn total(&self) -> u64 {
        self.too_old.max(self.expired) + self.too_new
    }
}

/// A log group and stream, and a client for them.
pub struct Service {
    client: Client,
    group: String,
    stream: String,
    retention_days: Option<i32>,
}

/// Where and how to connect.
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    /// AWS region (default: the SDK's region chain: AWS_REGION, profile, instance metadata).
    pub region: Option<String>,
    /// Custom endpoint URL (a VPC endpoint, a local emulator).
    pub url: Option<String>,
}

impl Service {
    /// Loads the SDK configuration (standard credential chain: environment, profile, web
    /// identity, container and instance roles). Fails when no region is configured.
    pub async fn new(endpoint: &Endpoint, group: String, stream: String, retention_days: Option<i32>) -> Result<Self> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            // Retries are ours (unbounded while the spool has room), not the SDK's three attempts.
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(30))
                    .build(),
            );
        if let Some(r) = &endpoint.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        if let Some(u) = &endpoint.url {
            loader = loader.endpoint_url(u.clone());
        }
        let conf = loader.load().await;
        if conf.region().is_none() {
            bail!("cloudwatch output: no AWS region: set `region` in the output's config or AWS_REGION");
        }
        Ok(Self { client: Client::new(&conf), group, stream, retention_days })
    }

    /// `group/stream`, for messages.
    pub fn label(&self) -> String {
        format!("{}/{}", self.group, self.stream)
    }

    /// Creates the log group (with its retention) and stream when missing. Without permission
    /// to create the group (it was created beforehand), goes on with the stream.
    pub async fn ensure_destination(&self) -> Result<(), Failure> {
        match self.client.create_log_group().log_group_name(&self.group).send().await {
            Ok(_) => {
                log::info!("cloudwatch: created log group {}", self.group);
                if let Some(days) = self.retention_days {
                    // Not worth holding alerts back for: say so and go on.
                    if let Err(e) = self
                        .client
                        .put_retention_policy()
                        .log_group_name(&self.group)
                        .retention_in_days(days)
                        .send()
                        .await
                    {
                        log::warn!(
                            "cloudwatch: could not set a retention of {days} days on {}: {}",
                            self.group,
                            failure(e)
                        );
                    }
                }
            }
            Err(e) if e.code() == Some("ResourceAlreadyExistsException") => {}
            Err(e) if e.code() == Some("AccessDeniedException") => {
                log::warn!(
                    "cloudwatch: not allowed to create log group {} ({}); assuming it exists",
                    self.group,
                    failure(e)
                );
            }
            Err(e) => return Err(failure(e)),
        }
        match self.client.create_log_stream().log_group_name(&self.group).log_stream_name(&self.stream).send().await {
            Ok(_) => {
                log::info!("cloudwatch: created log stream {}", self.label());
                Ok(())
            }
            Err(e) if e.code() == Some("ResourceAlreadyExistsException") => Ok(()),
            Err(e) => Err(failure(e)),
        }
    }

    /// Sends one batch (already within the limits and sorted).
    pub async fn put(&self, events: &[LogEvent]) -> Result<Rejected, Failure> {
        let input = events
            .iter()
            .map(|e| InputLogEvent::builder().timestamp(e.timestamp_ms).message(e.message.clone()).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Failure { kind: FailureKind::Construction, message: e.to_string() })?;
        let out = self
            .client
            .put_log_events()
            .log_group_name(&self.group)
            .log_stream_name(&self.stream)
            .set_log_events(Some(input))
            .send()
            .await
            .map_err(failure)?;
        Ok(out.rejected_log_events_info().map_or_else(Rejected::default, |r| {
            Rejected::from_indexes(
                events.len(),
                r.too_new_log_event_start_index(),
                r.too_old_log_event_end_index(),
                r.expired_log_event_end_index(),
            )
        }))
    }
}

/// True when an error in `e`'s source chain is a refused connection (nothing was sent).
fn connection_refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

/// Turns an SDK error into a [`Failure`].
fn failure<E, R>(e: SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HasStatus + 'static,
{
    let kind = match &e {
        SdkError::ConstructionFailure(_) => FailureKind::Construction,
        SdkError::TimeoutError(_) => FailureKind::Transport,
        SdkError::DispatchFailure(d) => {
            if d.as_connector_error().is_some_and(|c| connection_refused(c)) {
                FailureKind::ConnectRefused
            } else {
                FailureKind::Transport
            }
        }
        SdkError::ResponseError(_) => FailureKind::BadResponse,
        SdkError::ServiceError(s) => {
            FailureKind::Service { code: e.code().map(str::to_owned), status: s.raw().status_code() }
        }
        _ => FailureKind::Transport,
    };
    let message = match (&kind, e.code()) {
        (FailureKind::Service { status, .. }, Some(code)) => {
            format!("{code}: {} (HTTP {status})", e.message().unwrap_or("no message"))
        }
        _ => error_chain(&e),
    };
    Failure { kind, message }
}

/// An error and its sources, `a: b: c`, without repeats.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// The HTTP status of a raw response.
trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_sdk_cloudwatchlogs::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}
