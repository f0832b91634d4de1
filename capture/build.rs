//! Builds the eBPF programs (`bpf/`, the pinned nightly, bpfel-unknown-none) and embeds them in
//! the binary.
use std::path::Path;

#[path = "../bpf/toolchain_pin.rs"]
mod toolchain_pin;

fn main() -> anyhow::Result<()> {
    let manifest = std::env::var("CARGO_MANIFEST_DIR")?;
    let root = Path::new(&manifest).parent().expect("workspace root");
    let bpf_dir = root.join("bpf");
    println!("cargo:rerun-if-changed={}", root.join("formats/src/wire.rs").display());
    println!("cargo:rerun-if-changed={}", root.join("formats/src/syscall.rs").display());
    println!("cargo:rerun-if-changed={}", root.join(toolchain_pin::PIN_FILE).display());
    let pin = toolchain_pin::BpfToolchain::read(root).map_err(anyhow::Error::msg)?;
    if which_bpf_linker().is_none() {
        anyhow::bail!(
            "bpf-linker is not installed: run `cargo xtask setup` (installs bpf-linker@{} and {} with rust-src, as {} pins)",
            pin.linker_version,
            pin.nightly,
            toolchain_pin::PIN_FILE
        );
    }
    let rustc = std::process::Command::new("rustc").arg(format!("+{}", pin.nightly)).arg("--version").output();
    match rustc {
        Ok(o) if o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == pin.rustc_version => {}
        Ok(o) => anyhow::bail!(
            "the eBPF toolchain {} is missing or is not the pinned one ({} pins `{}`; `rustc +{} --version` said `{}{}`): run `cargo xtask setup`",
            pin.nightly,
            toolchain_pin::PIN_FILE,
            pin.rustc_version,
            pin.nightly,
            String::from_utf8_lossy(&o.stdout).trim(),
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => anyhow::bail!("running rustc +{}: {e}", pin.nightly),
    }
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "lanner-bpf",
            root_dir: bpf_dir.to_str().expect("utf-8 path"),
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(&pin.nightly),
    )
}

fn which_bpf_linker() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("bpf-linker")).find(|p| p.is_file())
}
