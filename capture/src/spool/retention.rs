//! Retention: which whole segments of the spool to delete (oldest first, never the open one)
//! so that the spool stays under a total size and keeps no data older than a maximum age.

use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Result;
#[cfg(test)]
use lanner_formats::archive::SEGMENT_EXTENSION;
pub use lanner_formats::archive::{list_segments, SegmentFile};

/// Limits on what the spool keeps; `None` means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Keep the spool (all segments, the open one included) at most this many bytes.
    pub max_bytes: Option<u64>,
    /// Delete segments whose newest data is older than this.
    pub max_age: Option<Duration>,
    /// Never delete a segment that has not been shipped to object storage (`--ship` without
    /// `--ship-may-delete-unshipped`): while shipping is down, the spool grows past the limits
    /// rather than lose evidence that exists nowhere else.
    pub keep_unshipped: bool,
}

impl RetentionPolicy {
    /// True when some limit is set.
    pub fn is_enabled(&self) -> bool {
        self.max_bytes.is_some() || self.max_age.is_some()
    }
}

/// Why a segment is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The spool is over `max_bytes`.
    Size,
    /// The segment is older than `max_age`.
    Age,
    /// The disk is full and the spool needs room for new chunks.
    DiskFull,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reason::Size => "spool over --retain-bytes",
            Reason::Age => "older than --retain-age",
            Reason::DiskFull => "disk full",
        })
    }
}

/// Picks the segments to delete from `segments` (oldest first), never `open`: those older than
/// the age limit, then the oldest until the total is within the size limit. The newest segment
/// is never deleted for size: when capture stops, the segment it was writing becomes the newest
/// closed one, and it may alone be larger than the limit. With `keep_unshipped`, segments for
/// which `shipped` is false are kept too.
pub fn plan(
    segments: &[SegmentFile],
    open: Option<&Path>,
    policy: &RetentionPolicy,
    now: SystemTime,
    shipped: &dyn Fn(&SegmentFile) -> bool,
) -> Vec<(usize, Reason)> {
    let mut out = Vec::new();
    let mut total: u64 = segments.iter().map(|s| s.bytes).sum();
    for (i, s) in segments.iter().enumerate() {
        if Some(s.path.as_path()) == open || (policy.keep_unshipped && !shipped(s)) {
            continue;
        }
        let too_old = policy.max_age.is_some_and(|max| now.duration_since(s.modified).is_ok_and(|age| age > max));
        let newest = i + 1 == segments.len();
        let too_big = !newest && policy.max_bytes.is_some_and(|max| total > max);
        let reason = if too_old {
            Reason::Age
        } else if too_big {
            Reason::Size
        } else {
            continue;
        };
        total -= s.bytes;
        out.push((i, reason));
    }
    out
}

/// Deletes the segments `plan` picks and logs each deletion; returns the bytes and files freed.
pub fn apply(dir: &Path, open: Option<&Path>, policy: &RetentionPolicy) -> Result<(u64, u64)> {
    if !policy.is_enabled() {
        return Ok((0, 0));
    }
    let segments = list_segments(dir)?;
    let mut freed = (0, 0);
    let shipped = |s: &SegmentFile| crate::ship::ledger::is_shipped(&s.path);
    for (i, reason) in plan(&segments, open, policy, SystemTime::now(), &shipped) {
        if delete(&segments[i], reason) {
            freed.0 += segments[i].bytes;
            freed.1 += 1;
        }
    }
    Ok(freed)
}

/// Deletes the oldest segment other than `open` to make room on a full disk; returns its size,
/// or `None` when there is none left to delete.
pub fn free_oldest(dir: &Path, open: Option<&Path>, keep_unshipped: bool) -> Result<Option<u64>> {
    let segments = list_segments(dir)?;
    let deletable = |s: &&SegmentFile| {
        Some(s.path.as_path()) != open && (!keep_unshipped || crate::ship::ledger::is_shipped(&s.path))
    };
    for s in segments.iter().filter(deletable) {
        if delete(s, Reason::DiskFull) {
            return Ok(Some(s.bytes));
        }
    }
    Ok(None)
}

fn delete(s: &SegmentFile, reason: Reason) -> bool {
    match std::fs::remove_file(&s.path) {
        Ok(()) => {
            crate::ship::ledger::forget(&s.path);
            log::info!("retention: deleted {} ({} bytes; {reason})", s.path.display(), s.bytes);
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            log::warn!("retention: cannot delete {}: {e}", s.path.display());
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(name: &str, bytes: u64, age_s: u64, now: SystemTime) -> SegmentFile {
        SegmentFile { path: PathBuf::from(name), bytes, modified: now - Duration::from_secs(age_s) }
    }

    fn names(segs: &[SegmentFile], plan: &[(usize, Reason)]) -> Vec<(String, Reason)> {
        plan.iter().map(|&(i, r)| (segs[i].path.display().to_string(), r)).collect()
    }

    #[test]
    fn the_newest_segment_is_kept_even_when_it_alone_is_over_the_size_limit() {
        let now = SystemTime::now();
        let segs = vec![seg("a.lnr", 300, 5, now), seg("b.lnr", 900, 1, now)];
        let policy = RetentionPolicy { max_bytes: Some(500), ..Default::default() };
        // Capture stopped: nothing is open; the older one goes, the newest stays.
        assert_eq!(names(&segs, &plan(&segs, None, &policy, now, &|_| true)), vec![("a.lnr".to_owned(), Reason::Size)]);
    }

    #[test]
    fn size_limit_deletes_oldest_sealed_first_and_never_the_open_one() {
        let now = SystemTime::now();
        let segs = vec![seg("a", 100, 30, now), seg("b", 100, 20, now), seg("c", 100, 10, now), seg("d", 100, 0, now)];
        let p = RetentionPolicy { max_bytes: Some(250), max_age: None, keep_unshipped: false };
        assert_eq!(
            names(&segs, &plan(&segs, Some(Path::new("d")), &p, now, &|_| true)),
            [("a".into(), Reason::Size), ("b".into(), Reason::Size)]
        );
        // Within the limit: nothing.
        let p = RetentionPolicy { max_bytes: Some(400), max_age: None, keep_unshipped: false };
        assert!(plan(&segs, Some(Path::new("d")), &p, now, &|_| true).is_empty());
        // Even a limit below the open segment's size never picks the open one.
        let p = RetentionPolicy { max_bytes: Some(10), max_age: None, keep_unshipped: false };
        let picked = names(&segs, &plan(&segs, Some(Path::new("d")), &p, now, &|_| true));
        assert_eq!(picked.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
        // The open segment may be the oldest name (a restarted capture's older segments are younger
        // only if the clock went back): still skipped.
        let p = RetentionPolicy { max_bytes: Some(250), max_age: None, keep_unshipped: false };
        let picked = names(&segs, &plan(&segs, Some(Path::new("a")), &p, now, &|_| true));
        assert_eq!(picked.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["b", "c"]);
    }

    #[test]
    fn age_limit_deletes_only_segments_older_than_it_and_never_the_open_one() {
        let now = SystemTime::now();
        let segs =
            vec![seg("a", 100, 7200, now), seg("b", 100, 3700, now), seg("c", 100, 60, now), seg("d", 100, 9999, now)];
        let p = RetentionPolicy { max_bytes: None, max_age: Some(Duration::from_secs(3600)), keep_unshipped: false };
        assert_eq!(
            names(&segs, &plan(&segs, Some(Path::new("d")), &p, now, &|_| true)),
            [("a".into(), Reason::Age), ("b".into(), Reason::Age)]
        );
        // Both limits: age first, then size for what is left.
        let p =
            RetentionPolicy { max_bytes: Some(150), max_age: Some(Duration::from_secs(7000)), keep_unshipped: false };
        assert_eq!(
            names(&segs, &plan(&segs, Some(Path::new("d")), &p, now, &|_| true)),
            [("a".into(), Reason::Age), ("b".into(), Reason::Size), ("c".into(), Reason::Size)]
        );
        // No limits: nothing.
        assert!(plan(&segs, None, &RetentionPolicy::default(), now, &|_| true).is_empty());
    }

    #[test]
    fn unshipped_segments_are_kept_when_shipping_says_so() {
        let now = SystemTime::now();
        let segs = vec![seg("a", 100, 30, now), seg("b", 100, 20, now), seg("c", 100, 10, now), seg("d", 100, 0, now)];
        let p = RetentionPolicy { max_bytes: Some(150), max_age: None, keep_unshipped: true };
        // Only "b" has been shipped: "a" waits although it is the oldest; "c" is not shipped either.
        let shipped = |s: &SegmentFile| s.path == Path::new("b");
        assert_eq!(names(&segs, &plan(&segs, Some(Path::new("d")), &p, now, &shipped)), [("b".into(), Reason::Size)]);
        let p = RetentionPolicy { keep_unshipped: false, ..p };
        assert_eq!(plan(&segs, Some(Path::new("d")), &p, now, &shipped).len(), 3);
    }

    #[test]
    fn apply_deletes_files_oldest_first_and_free_oldest_skips_the_open_one() {
        let dir = tempfile::tempdir().unwrap();
        for (n, len) in [
            ("lanner-20260101T000000Z-aa-000000", 100),
            ("lanner-20260101T000001Z-aa-000001", 100),
            ("lanner-20260101T000002Z-aa-000002", 100),
        ] {
            std::fs::write(dir.path().join(format!("{n}.{SEGMENT_EXTENSION}")), vec![0u8; len]).unwrap();
        }
        std::fs::write(dir.path().join("other.txt"), vec![0u8; 1000]).unwrap();
        let open = dir.path().join(format!("lanner-20260101T000002Z-aa-000002.{SEGMENT_EXTENSION}"));
        let p = RetentionPolicy { max_bytes: Some(200), max_age: None, keep_unshipped: false };
        assert_eq!(apply(dir.path(), Some(&open), &p).unwrap(), (100, 1));
        let left: Vec<_> = list_segments(dir.path()).unwrap().into_iter().map(|s| s.path).collect();
        assert_eq!(
            left,
            [dir.path().join(format!("lanner-20260101T000001Z-aa-000001.{SEGMENT_EXTENSION}")), open.clone()]
        );
        assert_eq!(free_oldest(dir.path(), Some(&open), false).unwrap(), Some(100));
        assert_eq!(free_oldest(dir.path(), Some(&open), false).unwrap(), None);
        assert!(open.exists() && dir.path().join("other.txt").exists());
    }
}
