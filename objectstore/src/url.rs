//! `s3://BUCKET/PREFIX` locations, as given on command lines and in config files.

use std::fmt;

use anyhow::{bail, Result};

/// The URL scheme Lanner reads and writes.
pub const SCHEME: &str = "s3://";

/// A bucket and a key prefix (without leading or trailing `/`; empty for the bucket's root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreUrl {
    /// The bucket name.
    pub bucket: String,
    /// The key prefix every Lanner key starts with.
    pub prefix: String,
}

impl StoreUrl {
    /// True when `s` names object storage rather than a local path.
    pub fn is_store_url(s: &str) -> bool {
        s.starts_with(SCHEME)
    }

    /// Parses `s3://BUCKET[/PREFIX]`.
    pub fn parse(s: &str) -> Result<Self> {
        let Some(rest) = s.strip_prefix(SCHEME) else {
            bail!("`{s}`: not an object storage URL (expected s3://BUCKET/PREFIX)");
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            bail!("`{s}`: no bucket name after s3://");
        }
        if !bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.') {
            bail!("`{s}`: `{bucket}` is not a valid bucket name (lowercase letters, digits, `-` and `.`)");
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|p| p == "." || p == "..") {
            bail!("`{s}`: the prefix may not contain `.` or `..` components");
        }
        Ok(Self { bucket: bucket.to_owned(), prefix: prefix.to_owned() })
    }

    /// The key `rest` under this prefix.
    pub fn key(&self, rest: &str) -> String {
        if self.prefix.is_empty() {
            rest.to_owned()
        } else {
            format!("{}/{rest}", self.prefix)
        }
    }

    /// The listing prefix for everything under this location (ends with `/` unless empty).
    pub fn list_prefix(&self) -> String {
        if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        }
    }

    /// `s3://BUCKET/KEY`, for messages.
    pub fn object_url(&self, key: &str) -> String {
        format!("{SCHEME}{}/{key}", self.bucket)
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "{SCHEME}{}", self.bucket)
        } else {
            write!(f, "{SCHEME}{}/{}", self.bucket, self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_to_bucket_and_prefix() {
        let u = StoreUrl::parse("s3://evidence/lanner/prod/").unwrap();
        assert_eq!((u.bucket.as_str(), u.prefix.as_str()), ("evidence", "lanner/prod"));
        assert_eq!(u.key("c/n/x.lnr"), "lanner/prod/c/n/x.lnr");
        assert_eq!(u.to_string(), "s3://evidence/lanner/prod");
        let root = StoreUrl::parse("s3://evidence").unwrap();
        assert_eq!((root.key("a"), root.list_prefix()), ("a".to_owned(), String::new()));
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (s, want) in [
            ("/var/spool", "not an object storage URL"),
            ("s3:///x", "no bucket name"),
            ("s3://Evidence/x", "not a valid bucket name"),
            ("s3://b/a/../c", "`..`"),
        ] {
            let e = StoreUrl::parse(s).unwrap_err().to_string();
            assert!(e.contains(want), "{s}: {e}");
        }
    }
}
