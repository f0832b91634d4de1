//! The spool contract: a directory of segment files whose names sort in the order they were
//! written (`lanner-<UTC start>-<capture id>-<sequence>.lnr`). Capture names segments here, and
//! capture's retention, replay and follow list them here, so the layout has one owner.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::layout::SEGMENT_EXTENSION;
use super::SegmentMeta;

/// The file name of the segment `meta` describes: its start time (UTC, to the second), the first
/// 8 characters of its capture id and its sequence number, so names sort by start time.
pub fn segment_file_name(meta: &SegmentMeta) -> String {
    let start = chrono::DateTime::from_timestamp_nanos(meta.created_ns as i64);
    format!(
        "lanner-{}-{}-{:06}.{SEGMENT_EXTENSION}",
        start.format("%Y%m%dT%H%M%SZ"),
        &meta.capture_id[..8.min(meta.capture_id.len())],
        meta.sequence
    )
}

/// The capture-id part of a segment file name made by [`segment_file_name`] (its first 8
/// characters); `None` for other names.
pub fn capture_of_file_name(name: &str) -> Option<&str> {
    let stem = name.strip_prefix("lanner-")?.strip_suffix(SEGMENT_EXTENSION)?.strip_suffix('.')?;
    let mut parts = stem.split('-');
    let (_start, capture, _seq) = (parts.next()?, parts.next()?, parts.next()?);
    parts.next().is_none().then_some(capture)
}

/// The start time (unix ns, truncated to the second) in a segment file name made by
/// [`segment_file_name`]; `None` for other names.
pub fn start_of_file_name(name: &str) -> Option<u64> {
    let stamp = name.strip_prefix("lanner-")?.split('-').next()?;
    let t = chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ").ok()?;
    u64::try_from(t.and_utc().timestamp()).ok().map(|s| s * 1_000_000_000)
}

/// Whether `name` is a segment file's name (by its extension).
pub fn is_segment_file_name(name: &str) -> bool {
    name.strip_suffix(SEGMENT_EXTENSION).is_some_and(|stem| stem.ends_with('.') && stem.len() > 1)
}

/// One segment file of a spool directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    /// Its path.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its last modification time.
    pub modified: SystemTime,
}

/// Lists the segment files of `dir` in name order, which is the order they were written. A file
/// deleted while the directory is read is simply not listed.
pub fn list_segments(dir: &Path) -> std::io::Result<Vec<SegmentFile>> {
    let mut v = Vec::new();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| std::io::Error::new(e.kind(), format!("reading spool directory {}: {e}", dir.display())))?;
    for e in entries.flatten() {
        if !is_segment_file_name(&e.file_name().to_string_lossy()) {
            continue;
        }
        let Ok(m) = e.metadata() else { continue };
        if m.is_file() {
            v.push(SegmentFile {
                path: e.path(),
                bytes: m.len(),
                modified: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            });
        }
    }
    v.sort_by(|a, b| a.path.file_name().cmp(&b.path.file_name()));
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_carry_the_start_second_and_the_capture() {
        let meta = SegmentMeta {
            capture_id: "0123abcd99999999".into(),
            sequence: 3,
            created_ns: 1_796_608_133_250_000_000,
            ..Default::default()
        };
        let name = segment_file_name(&meta);
        assert_eq!(name, "lanner-20261207T014853Z-0123abcd-000003.lnr");
        assert_eq!(start_of_file_name(&name), Some(1_796_608_133_000_000_000));
        assert_eq!(capture_of_file_name(&name), Some("0123abcd"));
        assert_eq!((start_of_file_name("x.lnr"), capture_of_file_name("x.lnr")), (None, None));
    }

    #[test]
    fn segment_names_sort_by_start_and_sequence() {
        let meta = |created_ns: u64, sequence: u64| SegmentMeta {
            created_ns,
            sequence,
            capture_id: "0123456789abcdef".into(),
            ..SegmentMeta::default()
        };
        let a = segment_file_name(&meta(1_767_225_600_000_000_000, 0));
        assert_eq!(a, "lanner-20260101T000000Z-01234567-000000.lnr");
        let b = segment_file_name(&meta(1_767_225_600_000_000_000, 1));
        let c = segment_file_name(&meta(1_767_225_601_000_000_000, 2));
        assert!(a < b && b < c);
        assert!(is_segment_file_name(&a) && !is_segment_file_name("lnr") && !is_segment_file_name("x.lnr.tmp"));
    }

    #[test]
    fn listing_keeps_segments_only_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["lanner-2-b.lnr", "lanner-1-a.lnr", "notes.txt", "x.lnr.partial"] {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("dir.lnr")).unwrap();
        let names: Vec<String> = list_segments(dir.path())
            .unwrap()
            .iter()
            .map(|s| s.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["lanner-1-a.lnr", "lanner-2-b.lnr"]);
        let err = list_segments(&dir.path().join("missing")).unwrap_err().to_string();
        assert!(err.contains("reading spool directory") && err.contains("missing"), "{err}");
    }
}
