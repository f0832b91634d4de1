//! A blocking S3 client over `aws-sdk-s3`: whole-file and multipart uploads streamed from disk,
//! listings, and ranged reads, each counted in [`Traffic`].

use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;

use crate::url::StoreUrl;

/// Files above this size are uploaded in parts.
pub const MULTIPART_THRESHOLD: u64 = 16 << 20;
/// The size of each part of a multipart upload (S3's minimum is 5 MiB).
pub const PART_BYTES: u64 = 8 << 20;

/// How to reach the store.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// Endpoint URL of an S3-compatible store or a VPC endpoint (default: the SDK's, which also
    /// honours `AWS_ENDPOINT_URL_S3`).
    pub endpoint: Option<String>,
    /// Path-style addressing (`ENDPOINT/BUCKET/KEY`); default: on with a custom endpoint.
    pub path_style: Option<bool>,
    /// The region (default: the SDK's chain, then `us-east-1` with a custom endpoint).
    pub region: Option<String>,
}

impl Connection {
    /// Settings from the environment: the SDK's own (`AWS_ENDPOINT_URL_S3`, region, credentials
    /// are read by the SDK), and `LANNER_S3_PATH_STYLE=true|false` to force the addressing style.
    pub fn from_env() -> Self {
        let path_style = std::env::var("LANNER_S3_PATH_STYLE").ok().map(|v| v == "true" || v == "1");
        Connection { endpoint: None, path_style, region: None }
    }
}

/// Requests and bytes moved, for metrics and for tests that bound what a query reads.
#[derive(Debug, Default)]
pub struct Traffic {
    /// GET requests (whole or ranged).
    pub gets: AtomicU64,
    /// Bytes received by GETs.
    pub get_bytes: AtomicU64,
    /// Upload requests (whole objects and parts).
    pub puts: AtomicU64,
    /// Bytes uploaded.
    pub put_bytes: AtomicU64,
    /// LIST requests.
    pub lists: AtomicU64,
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A bucket to read and write, with its own single-threaded runtime (calls block).
pub struct Store {
    rt: tokio::runtime::Runtime,
    client: Client,
    /// The bucket and prefix.
    pub url: StoreUrl,
    traffic: Arc<Traffic>,
}

fn sdk<E: std::error::Error>(what: String) -> impl FnOnce(E) -> anyhow::Error {
    move |e| anyhow!("{what}: {}", DisplayErrorContext(e))
}

impl Store {
    /// Configures a client for `url` with the SDK's standard credential chain.
    pub fn connect(url: &StoreUrl, conn: &Connection) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting a runtime")?;
        let conf = rt.block_on(async {
            let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(120))
                    .build(),
            );
            if let Some(r) = &conn.region {
                loader = loader.region(Region::new(r.clone()));
            }
            loader.load().await
        });
        let mut b = aws_sdk_s3::config::Builder::from(&conf);
        if let Some(e) = &conn.endpoint {
            b = b.endpoint_url(e);
        }
        // The SDK resolves AWS_ENDPOINT_URL_S3 itself, later; path-style follows any custom endpoint.
        let custom = conn.endpoint.is_some()
            || conf.endpoint_url().is_some()
            || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some_and(|v| !v.is_empty());
        b = b.force_path_style(conn.path_style.unwrap_or(custom));
        if conf.region().is_none() {
            if !custom {
                bail!("{url}: no AWS region: set AWS_REGION (or the profile's region)");
            }
            b = b.region(Region::new("us-east-1"));
        }
        Ok(Self { rt, client: Client::from_conf(b.build()), url: url.clone(), traffic: Arc::default() })
    }

    /// The requests and bytes this store has moved.
    pub fn traffic(&self) -> Arc<Traffic> {
        Arc::clone(&self.traffic)
    }

    /// Uploads the file at `path` to `key`, streaming it from disk (in parts above
    /// [`MULTIPART_THRESHOLD`]); returns its size.
    pub fn put_file(&self, key: &str, path: &Path) -> Result<u64> {
        let size = std::fs::metadata(path).with_context(|| path.display().to_string())?.len();
        let dest = self.url.object_url(key);
        self.rt.block_on(async {
            if size <= MULTIPART_THRESHOLD {
                let body =
                    ByteStream::read_from().path(path).build().await.with_context(|| path.display().to_string())?;
                self.client
                    .put_object()
                    .bucket(&self.url.bucket)
                    .key(key)
                    .content_length(size as i64)
                    .body(body)
                    .send()
                    .await
                    .map_err(sdk(format!("uploading {dest}")))?;
                self.traffic.puts.fetch_add(1, Relaxed);
                self.traffic.put_bytes.fetch_add(size, Relaxed);
                return Ok(size);
            }
            let created = self
                .client
                .create_multipart_upload()
                .bucket(&self.url.bucket)
                .key(key)
                .send()
                .await
                .map_err(sdk(format!("starting the multipart upload of {dest}")))?;
            let id = created.upload_id().ok_or_else(|| anyhow!("{dest}: the store returned no upload id"))?.to_owned();
            match self.upload_parts(key, &id, path, size).await {
                Ok(parts) => {
                    self.client
                        .complete_multipart_upload()
                        .bucket(&self.url.bucket)
                        .key(key)
                        .upload_id(&id)
                        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                        .send()
                        .await
                        .map_err(sdk(format!("completing the multipart upload of {dest}")))?;
                    Ok(size)
                }
                Err(e) => {
                    // Best effort: parts of an abandoned upload otherwise cost storage until a
                    // lifecycle rule removes them.
                    let _ = self
                        .client
                        .abort_multipart_upload()
                        .bucket(&self.url.bucket)
                        .key(key)
                        .upload_id(&id)
                        .send()
                        .await;
                    Err(e)
                }
            }
        })
    }

    async fn upload_parts(&self, key: &str, id: &str, path: &Path, size: u64) -> Result<Vec<CompletedPart>> {
        let mut parts = Vec::new();
        let mut offset = 0;
        while offset < size {
            let len = PART_BYTES.min(size - offset);
            let n = parts.len() as i32 + 1;
            let body = ByteStream::read_from()
                .path(path)
                .offset(offset)
                .length(Length::Exact(len))
                .build()
                .await
                .with_context(|| path.display().to_string())?;
            let out = self
                .client
                .upload_part()
                .bucket(&self.url.bucket)
                .key(key)
                .upload_id(id)
                .part_number(n)
                .content_length(len as i64)
                .body(body)
                .send()
                .await
                .map_err(sdk(format!("uploading part {n} of {}", self.url.object_url(key))))?;
            self.traffic.puts.fetch_add(1, Relaxed);
            self.traffic.put_bytes.fetch_add(len, Relaxed);
            let mut part = CompletedPart::builder().part_number(n);
            if let Some(tag) = out.e_tag() {
                part = part.e_tag(tag);
            }
            if let Some(c) = out.checksum_crc32() {
                part = part.checksum_crc32(c);
            }
            parts.push(part.build());
            offset += len;
        }
        Ok(parts)
    }

    /// Every object whose key starts with `prefix`, in key order.
    pub fn list(&self, prefix: &str) -> Result<Vec<Object>> {
        self.rt.block_on(async {
            let mut out = Vec::new();
            let mut pages =
                self.client.list_objects_v2().bucket(&self.url.bucket).prefix(prefix).into_paginator().send();
            while let Some(page) = pages.next().await {
                self.traffic.lists.fetch_add(1, Relaxed);
                let page = page.map_err(sdk(format!("listing {}", self.url.object_url(prefix))))?;
                for o in page.contents() {
                    if let Some(key) = o.key() {
                        out.push(Object { key: key.to_owned(), size: o.size().unwrap_or(0).max(0) as u64 });
                    }
                }
            }
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
    }

    /// The bytes `range` of `key`.
    pub fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let bytes = self.get(key, Some(format!("bytes={}-{}", range.start, range.end - 1)))?;
        if bytes.len() as u64 != range.end - range.start {
            bail!(
                "{}: asked for bytes {}..{}, got {} bytes (the object changed or is shorter)",
                self.url.object_url(key),
                range.start,
                range.end,
                bytes.len()
            );
        }
        Ok(bytes)
    }

    /// The whole object `key`.
    pub fn get_all(&self, key: &str) -> Result<Vec<u8>> {
        self.get(key, None)
    }

    fn get(&self, key: &str, range: Option<String>) -> Result<Vec<u8>> {
        let what = format!("reading {}", self.url.object_url(key));
        self.rt.block_on(async {
            let out = self
                .client
                .get_object()
                .bucket(&self.url.bucket)
                .key(key)
                .set_range(range)
                .send()
                .await
                .map_err(sdk(what.clone()))?;
            let bytes = out.body.collect().await.with_context(|| what.clone())?.into_bytes().to_vec();
            self.traffic.gets.fetch_add(1, Relaxed);
            self.traffic.get_bytes.fetch_add(bytes.len() as u64, Relaxed);
            Ok(bytes)
        })
    }

    /// Uploads `bytes` to `key` (small objects: summaries, test fixtures).
    pub fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        let n = bytes.len() as u64;
        self.rt.block_on(async {
            self.client
                .put_object()
                .bucket(&self.url.bucket)
                .key(key)
                .body(ByteStream::from(bytes))
                .send()
                .await
                .map_err(sdk(format!("uploading {}", self.url.object_url(key))))
        })?;
        self.traffic.puts.fetch_add(1, Relaxed);
        self.traffic.put_bytes.fetch_add(n, Relaxed);
        Ok(())
    }

    /// Creates the bucket (tests and first-time setups; a bucket that exists is fine). With
    /// `object_lock_days`, the bucket has S3 Object Lock (WORM) with that default retention in
    /// compliance mode: no object can be overwritten in place or deleted before it expires.
    pub fn create_bucket(&self, object_lock_days: Option<i32>) -> Result<()> {
        use aws_sdk_s3::types::{
            DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode, ObjectLockRule,
        };
        self.rt.block_on(async {
            let created = self
                .client
                .create_bucket()
                .bucket(&self.url.bucket)
                .object_lock_enabled_for_bucket(object_lock_days.is_some())
                .send()
                .await;
            match created {
                Ok(_) => {}
                Err(e) if e.as_service_error().is_some_and(|s| s.is_bucket_already_owned_by_you()) => {}
                Err(e) => return Err(sdk(format!("creating bucket {}", self.url.bucket))(e)),
            }
            if let Some(days) = object_lock_days {
                let rule = ObjectLockRule::builder()
                    .default_retention(
                        DefaultRetention::builder().mode(ObjectLockRetentionMode::Compliance).days(days).build(),
                    )
                    .build();
                let conf = ObjectLockConfiguration::builder()
                    .object_lock_enabled(ObjectLockEnabled::Enabled)
                    .rule(rule)
                    .build();
                self.client
                    .put_object_lock_configuration()
                    .bucket(&self.url.bucket)
                    .object_lock_configuration(conf)
                    .send()
                    .await
                    .map_err(sdk(format!("setting Object Lock on {}", self.url.bucket)))?;
            }
            Ok(())
        })
    }
}

/// Writes `bytes` to the object `s3://BUCKET/KEY` (small documents: summaries).
pub fn put_url(url: &str, bytes: Vec<u8>) -> Result<()> {
    let u = StoreUrl::parse(url)?;
    let store = Store::connect(&StoreUrl { bucket: u.bucket.clone(), prefix: String::new() }, &Connection::from_env())?;
    store.put_bytes(&u.prefix, bytes)
}

/// Reads every object under `s3://BUCKET/PREFIX` (or the one object it names), in key order:
/// `(s3 URL, bytes)`.
pub fn get_under(url: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let u = StoreUrl::parse(url)?;
    let store = Store::connect(&StoreUrl { bucket: u.bucket.clone(), prefix: String::new() }, &Connection::from_env())?;
    let mut out = Vec::new();
    for o in store.list(&u.prefix)? {
        let exact = o.key == u.prefix;
        if exact || o.key.starts_with(&format!("{}/", u.prefix)) || u.prefix.is_empty() {
            out.push((store.url.object_url(&o.key), store.get_all(&o.key)?));
        }
    }
    if out.is_empty() {
        bail!("{url}: no objects");
    }
    Ok(out)
}
