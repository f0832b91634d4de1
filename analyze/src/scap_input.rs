//! `.scap` captures as analyzer input: imported into Lanner segments, then analyzed like any
//! archive. Commands call [`prepare`] on their paths; scap files are converted into a
//! temporary directory that lives as long as the returned [`Inputs`].

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use lanner_formats::archive::{SegmentMeta, SegmentWriter};
use lanner_scap::{ImportStats, ScapFile};

/// Events per imported chunk.
const CHUNK_EVENTS: usize = 65_536;

/// The paths to analyze, with scap files replaced by their imported segments.
pub struct Inputs {
    /// Archive segments and directories.
    pub paths: Vec<PathBuf>,
    _tmp: Option<tempfile::TempDir>,
}

/// Whether `path` is a regular file holding a scap capture (plain or gzip'd).
pub fn is_scap(path: &Path) -> bool {
    let mut head = [0u8; 4];
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
        && std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok()
        && lanner_scap::looks_like_scap(&head)
}

/// Imports the scap files among `paths` into a temporary directory.
pub fn prepare(paths: &[PathBuf]) -> Result<Inputs> {
    let mut tmp = None;
    let mut out = Vec::with_capacity(paths.len());
    for (i, p) in paths.iter().enumerate() {
        if !is_scap(p) {
            out.push(p.clone());
            continue;
        }
        if tmp.is_none() {
            tmp = Some(
                tempfile::Builder::new().prefix("lanner-scap-").tempdir().context("creating a temporary directory")?,
            );
        }
        let dir = tmp.as_ref().expect("created").path();
        let seg = dir.join(format!("{i:04}.lnr"));
        let stats = import_file(p, &seg)?;
        log::info!("{}", describe(p, &stats));
        out.push(seg);
    }
    Ok(Inputs { paths: out, _tmp: tmp })
}

/// Converts the capture `scap` into the Lanner segment `out`.
pub fn import_file(scap: &Path, out: &Path) -> Result<ImportStats> {
    let file = ScapFile::open(scap).with_context(|| format!("{}", scap.display()))?;
    let meta = SegmentMeta {
        hostname: file.machine.as_ref().map(|m| m.hostname.clone()).unwrap_or_default(),
        capture_id: format!("scap:{}", scap.display()),
        writer: format!("lanner-analyze {} (scap import)", env!("CARGO_PKG_VERSION")),
        users: file.users.iter().map(|u| (u.uid, u.name.clone())).collect(),
        groups: file.groups.iter().map(|g| (g.gid, g.name.clone())).collect(),
        ..Default::default()
    };
    let mut w = SegmentWriter::create(out, &meta, 3).with_context(|| format!("creating {}", out.display()))?;
    let stats = lanner_scap::import(&file, CHUNK_EVENTS, |chunk| w.append(&chunk).map(|_| ()))
        .map_err(|e| anyhow::anyhow!("{}: {e}", scap.display()))?;
    w.finish().with_context(|| format!("finishing {}", out.display()))?;
    Ok(stats)
}

/// What an import kept and skipped, in one line.
pub fn describe(path: &Path, s: &ImportStats) -> String {
    let skipped: u64 = s.not_imported.values().sum();
    let mut line = format!(
        "{}: {} scap events -> {} Lanner events ({} threads, {} fds in the initial tables)",
        path.display(),
        s.events_read,
        s.imported,
        s.threads,
        s.fds
    );
    if skipped > 0 {
        let mut by: Vec<_> = s.not_imported.iter().collect();
        by.sort_by(|a, b| b.1.cmp(a.1));
        let top: Vec<String> = by.iter().take(8).map(|(n, c)| format!("{n} {c}")).collect();
        line.push_str(&format!("; {skipped} syscalls of types Lanner does not model skipped ({})", top.join(", ")));
    }
    let unknown: u64 = s.unknown_types.values().sum();
    if unknown > 0 {
        line.push_str(&format!("; {unknown} events of unknown type numbers skipped"));
    }
    line
}
