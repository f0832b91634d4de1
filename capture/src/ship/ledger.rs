//! Which segments have been shipped: an empty `<segment>.shipped` file beside each one, written
//! after its upload succeeded. A crash between the upload and the marker ships the segment again
//! to the same key, which is harmless (keys are deterministic).

use std::path::{Path, PathBuf};

/// The marker file of `segment`.
pub fn marker(segment: &Path) -> PathBuf {
    let mut name = segment.as_os_str().to_owned();
    name.push(".shipped");
    PathBuf::from(name)
}

/// True when `segment` has been shipped.
pub fn is_shipped(segment: &Path) -> bool {
    marker(segment).exists()
}

/// Records that `segment` has been shipped (durably: the marker is synced before it counts).
pub fn mark_shipped(segment: &Path) -> std::io::Result<()> {
    let f = std::fs::File::create(marker(segment))?;
    f.sync_all()
}

/// Removes the marker of a deleted segment (a marker without its segment is harmless).
pub fn forget(segment: &Path) {
    let _ = std::fs::remove_file(marker(segment));
}
