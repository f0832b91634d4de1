//! moto_server for the analyzer's tests, and reading CloudWatch Logs streams back from it.
#![allow(dead_code)]

mod server;

use aws_sdk_cloudwatchlogs::Client;
pub use server::*;

impl Moto {
    /// Every message of `group`/`stream` (none if they do not exist), read with GetLogEvents
    /// from the head, following nextForwardToken until it stops changing.
    pub fn read_stream(&self, group: &str, stream: &str) -> Vec<String> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let client = self.client().await;
            let mut out = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let resp = match client
                    .get_log_events()
                    .log_group_name(group)
                    .log_stream_name(stream)
                    .start_from_head(true)
                    .set_next_token(token.clone())
                    .send()
                    .await
                {
                    Ok(r) => r,
                    // Not created yet: nothing delivered.
                    Err(e)
                        if token.is_none()
                            && e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) =>
                    {
                        return out;
                    }
                    Err(e) => panic!("GetLogEvents: {}", aws_sdk_cloudwatchlogs::error::DisplayErrorContext(e)),
                };
                out.extend(resp.events().iter().map(|e| e.message().unwrap_or_default().to_owned()));
                let next = resp.next_forward_token().map(str::to_owned);
                if next.is_none() || next == token {
                    break;
                }
                token = next;
            }
            out
        })
    }

    /// The retention (days) of `group`, if it exists and has one.
    pub fn retention_days(&self, group: &str) -> Option<i32> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let resp = self.client().await.describe_log_groups().log_group_name_prefix(group).send().await.unwrap();
            resp.log_groups().iter().find(|g| g.log_group_name() == Some(group))?.retention_in_days()
        })
    }

    /// A client for this server.
    pub async fn client(&self) -> Client {
        set_env();
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(self.url())
            .load()
            .await;
        Client::new(&conf)
    }
}
