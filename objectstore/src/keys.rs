//! The segment key layout: `PREFIX/<cluster>/<node>/<YYYY>/<MM>/<DD>/<HH>/<segment file name>`,
//! where the hour is the segment's start (UTC). Segment file names sort by start time, so the
//! keys of one node sort in the order its segments were written.

use chrono::{DateTime, Datelike, Timelike};

use crate::url::StoreUrl;

/// What a segment's key says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentKey {
    /// The full key.
    pub key: String,
    /// The cluster the node belongs to.
    pub cluster: String,
    /// The node that recorded the segment.
    pub node: String,
    /// The segment's file name (`lanner-<UTC start>-<capture id>-<sequence>.lnr`).
    pub name: String,
    /// The start of the hour the segment began in (unix seconds).
    pub hour_start: i64,
}

/// Replaces what cannot appear in one key component (`/`, empty names).
fn component(s: &str) -> String {
    let s: String = s.chars().map(|c| if c == '/' || c.is_control() { '_' } else { c }).collect();
    if s.is_empty() || s == "." || s == ".." {
        "unknown".to_owned()
    } else {
        s
    }
}

/// The key of the segment `name` that `node` of `cluster` began at `created_ns` (unix ns).
pub fn segment_key(url: &StoreUrl, cluster: &str, node: &str, created_ns: u64, name: &str) -> String {
    let t = DateTime::from_timestamp_nanos(created_ns as i64);
    url.key(&format!(
        "{}/{}/{:04}/{:02}/{:02}/{:02}/{name}",
        component(cluster),
        component(node),
        t.year(),
        t.month(),
        t.day(),
        t.hour()
    ))
}

/// Reads a key back; `None` for keys that are not segments laid out by [`segment_key`].
pub fn parse_segment_key(url: &StoreUrl, key: &str) -> Option<SegmentKey> {
    let rest = key.strip_prefix(&url.list_prefix())?;
    let parts: Vec<&str> = rest.split('/').collect();
    let [cluster, node, y, mo, d, h, name] = parts[..] else { return None };
    if !name.ends_with(".lnr") {
        return None;
    }
    let num = |s: &str| s.parse::<u32>().ok();
    let date = chrono::NaiveDate::from_ymd_opt(num(y)? as i32, num(mo)?, num(d)?)?;
    let hour_start = date.and_hms_opt(num(h)?, 0, 0)?.and_utc().timestamp();
    Some(SegmentKey {
        key: key.to_owned(),
        cluster: cluster.to_owned(),
        node: node.to_owned(),
        name: name.to_owned(),
        hour_start,
    })
}

/// The listing prefix that holds every segment of `cluster` (and of `node`, when given).
pub fn listing_prefix(url: &StoreUrl, cluster: Option<&str>, node: Option<&str>) -> String {
    match (cluster, node) {
        (Some(c), Some(n)) => url.key(&format!("{}/{}/", component(c), component(n))),
        (Some(c), None) => url.key(&format!("{}/", component(c))),
        _ => url.list_prefix(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_laid_out_by_cluster_node_and_start_hour_and_read_back() {
        let url = StoreUrl::parse("s3://b/lanner").unwrap();
        // 2026-12-07T01:48:53Z
        let ns = 1_796_608_133_000_000_000;
        let name = "lanner-20261207T014853Z-0123abcd-000003.lnr";
        let key = segment_key(&url, "prod", "ip-10-0-1-7", ns, name);
        assert_eq!(key, format!("lanner/prod/ip-10-0-1-7/2026/12/07/01/{name}"));
        let k = parse_segment_key(&url, &key).unwrap();
        assert_eq!((k.cluster.as_str(), k.node.as_str(), k.name.as_str()), ("prod", "ip-10-0-1-7", name));
        assert_eq!(k.hour_start, 1_796_608_133 / 3600 * 3600);
        assert_eq!(listing_prefix(&url, Some("prod"), None), "lanner/prod/");
        assert_eq!(parse_segment_key(&url, "lanner/prod/n/2026/12/07/01/notes.txt"), None);
        assert_eq!(parse_segment_key(&url, "other/prod/n/2026/12/07/01/x.lnr"), None);
    }

    #[test]
    fn names_that_would_break_the_layout_are_replaced() {
        let url = StoreUrl::parse("s3://b").unwrap();
        assert_eq!(segment_key(&url, "", "a/b", 0, "x.lnr"), "unknown/a_b/1970/01/01/00/x.lnr");
    }
}
