//! Where Lanner archives live in object storage, with one owner for the layout.
//!
//! The key decision: the bucket layout is a pure function of a segment's own metadata,
//! `PREFIX/<cluster>/<node>/<YYYY>/<MM>/<DD>/<HH>/<segment file name>`, so uploading a segment
//! again writes the same key (shipping is idempotent), a time range is a prefix listing, and a
//! reader needs no index besides the bucket listing. Capture ships with [`Store::put_file`];
//! analyze lists and reads with ranged GETs ([`Store::get_range`]).
//!
//! The client is `aws-sdk-s3`, beside the CloudWatch Logs SDK analyze already uses: one HTTP
//! stack and the SDK's full credential chain (environment, profile, IRSA web identity, container
//! and instance roles). S3-compatible stores are reached with an endpoint override and
//! path-style addressing.

pub mod keys;
pub mod s3;
pub mod url;

pub use keys::{segment_key, SegmentKey};
pub use s3::{get_under, put_url, Connection, Object, Store, Traffic};
pub use url::StoreUrl;
