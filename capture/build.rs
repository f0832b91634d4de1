//! Builds the eBPF programs (`bpf/`, nightly, bpfel-unknown-none) and embeds them in the binary.
use std::path::Path;

fn main() -> anyhow::Result<()> {
    let manifest = std::env::var("CARGO_MANIFEST_DIR")?;
    let root = Path::new(&manifest).parent().expect("workspace root");
    let bpf_dir = root.join("bpf");
    println!("cargo:rerun-if-changed={}", root.join("formats/src/wire.rs").display());
    println!("cargo:rerun-if-changed={}", root.join("formats/src/syscall.rs").display());
    if which_bpf_linker().is_none() {
        anyhow::bail!("bpf-linker is not installed: run `cargo xtask setup` (installs bpf-linker@0.10.0 and the nightly rust-src component)");
    }
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "lanner-bpf",
            root_dir: bpf_dir.to_str().expect("utf-8 path"),
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}

fn which_bpf_linker() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("bpf-linker")).find(|p| p.is_file())
}
