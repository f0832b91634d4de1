//! Reads `bpf/toolchain.env`, the one pin of the eBPF toolchain. Not a module of the eBPF crate:
//! `capture/build.rs` and `xtask` include this file with `#[path]`, so both read the pin the same way.

/// The pinned eBPF toolchain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BpfToolchain {
    /// The rustup toolchain name, e.g. `nightly-2026-05-20`.
    pub nightly: String,
    /// What `rustc +nightly --version` prints for it.
    pub rustc_version: String,
    /// The bpf-linker version `cargo install` gets.
    pub linker_version: String,
}

/// The pin file, relative to the workspace root.
pub const PIN_FILE: &str = "bpf/toolchain.env";

impl BpfToolchain {
    /// Parses the pin file's `KEY=value` lines (`#` comments, optional double quotes).
    pub fn parse(text: &str) -> Result<Self, String> {
        let value = |key: &str| -> Result<String, String> {
            text.lines()
                .enumerate()
                .find_map(|(i, l)| {
                    let v = l.trim().strip_prefix(key)?.strip_prefix('=')?;
                    Some((i + 1, v.trim().trim_matches('"').to_string()))
                })
                .map(|(line, v)| if v.is_empty() { Err(format!("{PIN_FILE}:{line}: {key} is empty")) } else { Ok(v) })
                .unwrap_or_else(|| Err(format!("{PIN_FILE}: no {key}= line")))
        };
        Ok(Self {
            nightly: value("BPF_NIGHTLY")?,
            rustc_version: value("BPF_NIGHTLY_RUSTC")?,
            linker_version: value("BPF_LINKER_VERSION")?,
        })
    }

    /// Reads and parses the pin file below the workspace root `root`.
    pub fn read(root: &std::path::Path) -> Result<Self, String> {
        let path = root.join(PIN_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text)
    }
}
