//! The one way tests and benches reach third-party reference data (the upstream Falco rules, Falco
//! 0.33.1's regression suite). Those files are never copied into this repository: `MANIFEST` pins
//! each one by upstream, commit and SHA-256, and this crate finds the reference root, checks the
//! hash of every pinned file a caller asks for, and says plainly when the data is absent.
//!
//! The root is, in order: `$LANNER_TESTDATA`; `../shared/testdata` beside the workspace (as on the
//! project's machines and in CI); the cache that `cargo xtask testdata` fills from the pinned
//! upstream URLs (`target/testdata-cache`). A file whose hash differs is a failure, never a skip.
//! Absent data is a skip (with the reason printed), and a failure when `CI=true`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// The pin file, embedded so that a test binary needs nothing else to know what to expect.
pub const MANIFEST: &str = include_str!("../MANIFEST");

/// One pinned file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its path below the reference root.
    pub path: String,
    /// The upstream repository (`owner/name` on GitHub).
    pub repo: String,
    /// The commit or tag it was taken from.
    pub rev: String,
    /// Its path in the upstream repository (`None` when it is not a file of the repository).
    pub upstream_path: Option<String>,
    /// Lower-case hex SHA-256 of its bytes.
    pub sha256: String,
}

impl Entry {
    /// Where `cargo xtask testdata` downloads it from, when it can.
    pub fn url(&self) -> Option<String> {
        let p = self.upstream_path.as_ref()?;
        Some(format!("https://raw.githubusercontent.com/{}/{}/{p}", self.repo, self.rev))
    }
}

/// Parses a manifest: `path repo rev upstream-path sha256` per line, `#` comments.
pub fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let [path, repo, rev, upstream, sha] = f[..] else {
            return Err(format!("MANIFEST:{}: expected 5 fields, found {}", i + 1, f.len()));
        };
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("MANIFEST:{}: `{sha}` is not a SHA-256", i + 1));
        }
        out.push(Entry {
            path: path.to_owned(),
            repo: repo.to_owned(),
            rev: rev.to_owned(),
            upstream_path: (upstream != "-").then(|| upstream.to_owned()),
            sha256: sha.to_ascii_lowercase(),
        });
    }
    Ok(out)
}

/// The embedded manifest's entries.
pub fn entries() -> &'static [Entry] {
    static ENTRIES: OnceLock<Vec<Entry>> = OnceLock::new();
    ENTRIES.get_or_init(|| parse(MANIFEST).expect("testdata/MANIFEST parses"))
}

/// The workspace root (this crate lives in `testdata/`).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_owned()
}

/// The cache `cargo xtask testdata` fills.
pub fn cache_dir() -> PathBuf {
    workspace().join("target/testdata-cache")
}

/// The candidate reference roots, in the order they are tried.
pub fn candidate_roots() -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if let Some(d) = std::env::var_os("LANNER_TESTDATA").filter(|d| !d.is_empty()) {
        roots.push(PathBuf::from(d));
    }
    roots.push(workspace().join("../shared/testdata"));
    roots.push(cache_dir());
    roots
}

/// SHA-256 of a file, as lower-case hex.
pub fn sha256_of(path: &Path) -> std::io::Result<String> {
    let bytes = std::fs::read(path)?;
    Ok(Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}

/// Why pinned data under `rel` cannot be used: absent (`Missing`) or altered (`Altered`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// No candidate root holds the data; the message lists where it looked.
    Missing(String),
    /// A pinned file's bytes differ from the manifest.
    Altered(String),
}

/// Finds the pinned file or directory `rel` (a manifest path, or a folder holding manifest
/// paths) under the first root that has it, after checking the hash of every pinned file below it.
pub fn find(rel: &str) -> Result<PathBuf, Problem> {
    let pinned: Vec<&Entry> = entries()
        .iter()
        .filter(|e| e.path == rel || e.path.starts_with(&format!("{}/", rel.trim_end_matches('/'))))
        .collect();
    if pinned.is_empty() {
        return Err(Problem::Missing(format!("{rel} is not pinned in testdata/MANIFEST")));
    }
    let roots = candidate_roots();
    let Some(root) = roots.iter().find(|r| r.join(rel).exists()) else {
        let tried: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
        return Err(Problem::Missing(format!(
            "{rel} not found under {} (run `cargo xtask testdata`, or set LANNER_TESTDATA)",
            tried.join(", ")
        )));
    };
    for e in pinned {
        let p = root.join(&e.path);
        match sha256_of(&p) {
            Ok(h) if h == e.sha256 => {}
            Ok(h) => {
                return Err(Problem::Altered(format!(
                    "{}: SHA-256 {h}, but testdata/MANIFEST pins {} ({} at {})",
                    p.display(),
                    e.sha256,
                    e.repo,
                    e.rev
                )))
            }
            Err(err) => return Err(Problem::Missing(format!("{}: {err}", p.display()))),
        }
    }
    Ok(root.join(rel))
}

/// [`find`] for a test: the path, or `None` after printing why the caller skips. Altered data
/// always panics; missing data panics when `CI=true` (where the data must be present).
pub fn require(rel: &str, what: &str) -> Option<PathBuf> {
    match find(rel) {
        Ok(p) => Some(p),
        Err(Problem::Altered(why)) => panic!("{what}: reference data altered: {why}"),
        Err(Problem::Missing(why)) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{what}: {why} (CI=true: tests that need reference data must run)");
            }
            eprintln!("SKIPPED: {what}: {why}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_pins_every_file_once_with_a_hash() {
        let e = entries();
        assert!(e.len() > 100, "{}", e.len());
        let mut paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), e.len(), "a path pinned twice");
        let stable = e.iter().find(|e| e.path == "falcosecurity-rules/current/falco_rules.yaml").unwrap();
        assert_eq!(
            stable.url().unwrap(),
            "https://raw.githubusercontent.com/falcosecurity/rules/c72713ee2e6330195979124de4f656546ad1e0fd/rules/falco_rules.yaml"
        );
        assert!(e.iter().filter(|e| e.path.ends_with(".scap")).all(|e| e.url().is_none()));
    }

    #[test]
    fn bad_manifest_lines_name_their_line() {
        assert_eq!(parse("# c\n\na b c\n"), Err("MANIFEST:3: expected 5 fields, found 3".into()));
        assert_eq!(parse("a b c d e\n"), Err("MANIFEST:1: `e` is not a SHA-256".into()));
    }

    #[test]
    fn an_altered_file_is_reported_not_skipped() {
        let dir = std::env::temp_dir().join(format!("lanner-testdata-{}", std::process::id()));
        let e = &entries()[0];
        std::fs::create_dir_all(dir.join(&e.path).parent().unwrap()).unwrap();
        std::fs::write(dir.join(&e.path), b"not the pinned bytes").unwrap();
        std::env::set_var("LANNER_TESTDATA", &dir);
        let r = find(&e.path);
        std::env::remove_var("LANNER_TESTDATA");
        std::fs::remove_dir_all(&dir).unwrap();
        match r {
            Err(Problem::Altered(why)) => assert!(why.contains(&e.sha256), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(find("nowhere/else"), Err(Problem::Missing(m)) if m.contains("not pinned")));
    }
}
