//! `cargo xtask vmtest`: the kernel matrix. Boots each kernel of [`KERNELS`] (Debian's cloud
//! kernels, installed by `cargo xtask setup`) under QEMU with a small initramfs that holds
//! lanner-capture, busybox, a real shell and coreutils, and a static 32-bit program. Inside, the
//! VM's init (`xtask/vmtest/init.sh`) probes the kernel, records a scenario and prints the probe,
//! capture's log and the spool (base64) on the console. The host decodes the spool and checks it
//! with lanner-analyze. The VMs run under TCG (a KVM boot hangs on this machine kind), all at once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// One kernel of the matrix.
pub struct Kernel {
    /// Short name, also the folder below `target/vmtest/kernels`.
    pub label: &'static str,
    /// The Debian package pinned for it.
    pub package: &'static str,
    /// The package name pattern a newer build of the same series matches, when the archive has
    /// dropped the pinned one.
    pub series: &'static str,
    /// The Debian suite to fetch it from when it is not the machine's own (through a private apt
    /// state, so the machine's sources stay as they are).
    pub suite: Option<&'static str>,
    /// What capture must do there.
    pub expect: Expect,
}

/// What capture must do on a kernel of the matrix.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Load, record the scenario and pass every check.
    Records,
    /// Refuse to start with an error that contains this text (the missing feature).
    Refuses(&'static str),
}

/// The matrix: the EKS/Bottlerocket family (6.1), Debian's 6.12, and 5.10 (Amazon Linux 2's
/// family), where capture must refuse and name what the kernel lacks. The host kernel runs every
/// other eBPF test.
pub const KERNELS: [Kernel; 3] = [
    Kernel {
        label: "6.1",
        package: "linux-image-6.1.0-50-cloud-amd64-unsigned",
        series: r"^linux-image-6\.1\.0-[0-9]+-cloud-amd64-unsigned$",
        suite: None,
        expect: Expect::Records,
    },
    Kernel {
        label: "6.12",
        package: "linux-image-6.12.107+deb12-cloud-amd64-unsigned",
        series: r"^linux-image-6\.12\.[0-9]+\+deb12-cloud-amd64-unsigned$",
        suite: None,
        expect: Expect::Records,
    },
    Kernel {
        label: "5.10",
        package: "linux-image-5.10.0-32-cloud-amd64-unsigned",
        series: r"^linux-image-5\.10\.0-[0-9]+-cloud-amd64-unsigned$",
        suite: Some("bullseye"),
        expect: Expect::Refuses("lacks the helper bpf_get_current_task_btf (#158), which arrived in Linux 5.11"),
    },
];

/// apt options for a private state that reads only `suite` of the machine's own Debian archive.
fn private_apt(root: &Path, suite: &str) -> Result<Vec<String>> {
    let dir = vm_dir(root).join("apt").join(suite);
    std::fs::create_dir_all(dir.join("lists/partial"))?;
    std::fs::create_dir_all(dir.join("cache/archives/partial"))?;
    let uri = debian_archive_uri().unwrap_or_else(|| "http://deb.debian.org/debian".to_owned());
    let list = dir.join("sources.list");
    std::fs::write(&list, format!("deb {uri} {suite} main\n"))?;
    let opts = vec![
        format!("-oDir::Etc::sourcelist={}", list.display()),
        "-oDir::Etc::sourceparts=/dev/null".to_owned(),
        format!("-oDir::State::Lists={}", dir.join("lists").display()),
        format!("-oDir::Cache={}", dir.join("cache").display()),
    ];
    if std::fs::read_dir(dir.join("lists"))?.count() <= 1 {
        crate::run(Command::new("apt-get").args(&opts).args(["update", "-q"]))?;
    }
    Ok(opts)
}

/// The machine's Debian archive (the `URIs:` or `deb` line of its sources naming `/debian`).
fn debian_archive_uri() -> Option<String> {
    let mut texts = vec![std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default()];
    for e in std::fs::read_dir("/etc/apt/sources.list.d").ok()?.flatten() {
        texts.push(std::fs::read_to_string(e.path()).unwrap_or_default());
    }
    texts.iter().flat_map(|t| t.lines()).find_map(|l| {
        let l = l.trim();
        let uri = l
            .strip_prefix("URIs:")
            .map(str::trim)
            .or_else(|| l.strip_prefix("deb ")?.split_whitespace().find(|w| w.contains("://")))?;
        let uri = uri.split_whitespace().next()?;
        uri.trim_end_matches('/').ends_with("/debian").then(|| uri.to_owned())
    })
}

/// Host programs copied into the VM: a real shell and coreutils, which fork and exec as a node's
/// programs do (busybox runs many applets in-process or through /proc/self/exe).
const HOST_PROGRAMS: [&str; 5] = ["/bin/dash", "/bin/cat", "/usr/bin/touch", "/bin/mkdir", "/bin/true"];

/// How long one VM may run.
const VM_TIMEOUT: Duration = Duration::from_secs(240);

/// Console text that means the VM will never finish the scenario.
const VM_DEAD: [&str; 3] = ["Failed to execute /init", "Kernel panic", "can't access tty"];

fn vm_dir(root: &Path) -> PathBuf {
    crate::target_dir_of(root).join("vmtest")
}

fn kernel_image(root: &Path, k: &Kernel) -> PathBuf {
    vm_dir(root).join("kernels").join(k.label).join("vmlinuz")
}

/// Installs QEMU and the matrix's kernels (downloaded from Debian's archive and unpacked below
/// `target/vmtest/kernels`); does nothing for what is there already.
pub fn setup(root: &Path) -> Result<()> {
    crate::apt_install(&[
        ("qemu-system-x86", "/usr/bin/qemu-system-x86_64"),
        ("busybox-static", "/usr/bin/busybox"),
        ("cpio", "/usr/bin/cpio"),
        ("dash", "/bin/dash"),
    ])?;
    for k in &KERNELS {
        let image = kernel_image(root, k);
        if image.is_file() {
            continue;
        }
        let dir = image.parent().expect("kernel folder").to_owned();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let opts = match k.suite {
            Some(suite) => private_apt(root, suite)?,
            None => Vec::new(),
        };
        let download = |pkg: &str| {
            let st = Command::new("apt-get").args(&opts).args(["download", "-q", pkg]).current_dir(&dir).status();
            st.is_ok_and(|s| s.success())
        };
        let mut package = k.package.to_owned();
        if !download(&package) {
            crate::run(Command::new("apt-get").args(&opts).args(["update", "-q"]))?;
            if !download(&package) {
                // The archive keeps only current builds: take the newest of the same series.
                let found =
                    crate::output_ok(Command::new("apt-cache").args(&opts).args(["search", "--names-only", k.series]))
                        .unwrap_or_default();
                let mut names: Vec<&str> = found.lines().filter_map(|l| l.split(' ').next()).collect();
                names.sort_by_key(|n| version_key(n));
                package = names.last().ok_or_else(|| anyhow!("no Debian package matches {}", k.series))?.to_string();
                eprintln!("xtask: {} is no longer in the archive; using {package}", k.package);
                if !download(&package) {
                    bail!("apt-get download {package} failed");
                }
            }
        }
        let deb = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .ok_or_else(|| anyhow!("apt-get download left no .deb in {}", dir.display()))?;
        let unpacked = dir.join("unpacked");
        crate::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
        let vmlinuz = std::fs::read_dir(unpacked.join("boot"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-")))
            .ok_or_else(|| anyhow!("{} holds no boot/vmlinuz-*", deb.display()))?;
        std::fs::rename(&vmlinuz, &image)?;
        std::fs::write(dir.join("package"), format!("{package}\n"))?;
        std::fs::remove_dir_all(&unpacked)?;
        std::fs::remove_file(&deb)?;
        eprintln!("xtask: kernel {} from {package} at {}", k.label, image.display());
    }
    Ok(())
}

/// Sort key for package names by their numeric parts (6.1.0-9 before 6.1.0-50).
fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).filter_map(|s| s.parse().ok()).collect()
}

/// Builds the initramfs (a newc cpio archive) from the debug build in `bin`.
fn build_initramfs(root: &Path, bin: &Path) -> Result<PathBuf> {
    let work = vm_dir(root);
    let tree = work.join("initramfs");
    let _ = std::fs::remove_dir_all(&tree);
    for d in ["bin", "etc", "busybox"] {
        std::fs::create_dir_all(tree.join(d))?;
    }
    crate::run(Command::new("strip").arg("-o").arg(tree.join("bin/lanner-capture")).arg(bin.join("lanner-capture")))?;
    std::fs::copy("/usr/bin/busybox", tree.join("busybox/busybox"))?;
    let mut libs = vec![bin.join("lanner-capture")];
    for p in HOST_PROGRAMS {
        let name = Path::new(p).file_name().expect("program name");
        let dest = if name == "dash" { tree.join("bin/sh") } else { tree.join("bin").join(name) };
        std::fs::copy(p, dest).with_context(|| format!("copying {p}"))?;
        libs.push(p.into());
    }
    // The exec storm's parent: the shell under a name of its own.
    std::fs::copy("/bin/dash", tree.join("bin/stormer"))?;
    for exe in libs {
        let out = crate::output_ok(Command::new("ldd").arg(&exe)).unwrap_or_default();
        for lib in out.split_whitespace().filter(|w| w.starts_with('/')) {
            let dest = tree.join(lib.trim_start_matches('/'));
            std::fs::create_dir_all(dest.parent().expect("library folder"))?;
            std::fs::copy(lib, &dest).with_context(|| format!("copying {lib}"))?;
        }
    }
    let x32 = tree.join("x32");
    let cc = Command::new("cc")
        .args(["-m32", "-static", "-nostdlib", "-fno-pic", "-fno-stack-protector", "-ffreestanding", "-O1", "-o"])
        .arg(&x32)
        .arg(root.join("xtask/vmtest/x32.c"))
        .output()?;
    if !cc.status.success() {
        bail!("cc -m32 xtask/vmtest/x32.c: {}", String::from_utf8_lossy(&cc.stderr));
    }
    let udpsend = tree.join("udpsend");
    let cc = Command::new("cc")
        .args(["-static", "-O1", "-o"])
        .arg(&udpsend)
        .arg(root.join("xtask/vmtest/udpsend.c"))
        .output()?;
    if !cc.status.success() {
        bail!("cc xtask/vmtest/udpsend.c: {}", String::from_utf8_lossy(&cc.stderr));
    }
    let init = tree.join("init");
    std::fs::copy(root.join("xtask/vmtest/init.sh"), &init)?;
    std::fs::set_permissions(&init, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    std::fs::write(tree.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    std::fs::write(tree.join("etc/group"), "root:x:0:\n")?;
    std::fs::write(tree.join("etc/shadow"), "root:*:19000:0:99999:7:::\n")?;
    std::fs::write(tree.join("etc/hostname"), "vmtest\n")?;
    let cpio = work.join("initramfs.cpio");
    let list = Command::new("find").arg(".").current_dir(&tree).output()?;
    let mut child = Command::new("cpio")
        .args(["-o", "-H", "newc", "--quiet"])
        .current_dir(&tree)
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&cpio)?)
        .spawn()
        .context("starting cpio")?;
    std::io::Write::write_all(child.stdin.as_mut().expect("piped"), &list.stdout)?;
    drop(child.stdin.take());
    if !child.wait()?.success() {
        bail!("cpio failed");
    }
    Ok(cpio)
}

/// The sections the VM printed between `VMTEST-BEGIN name` and `VMTEST-END name`, and its
/// `VMTEST key value` lines.
#[derive(Debug, Default)]
struct Console {
    sections: BTreeMap<String, String>,
    values: BTreeMap<String, String>,
}

fn parse_console(text: &str) -> Console {
    let mut c = Console::default();
    let mut open: Option<(String, String)> = None;
    for line in text.lines().map(|l| l.trim_end_matches('\r')) {
        // The console's first line carries terminal escapes before the marker.
        let line = line.find("VMTEST").map_or(line, |i| &line[i..]);
        if let Some(name) = line.strip_prefix("VMTEST-BEGIN ") {
            open = Some((name.to_owned(), String::new()));
        } else if let Some(name) = line.strip_prefix("VMTEST-END ") {
            if let Some((n, body)) = open.take().filter(|(n, _)| n == name) {
                c.sections.insert(n, body);
            }
        } else if let Some((_, body)) = open.as_mut() {
            body.push_str(line);
            body.push('\n');
        } else if let Some(rest) = line.strip_prefix("VMTEST ") {
            let (k, v) = rest.split_once(' ').unwrap_or((rest, ""));
            c.values.insert(k.to_owned(), v.to_owned());
        }
    }
    c
}

/// One check of a kernel's run.
struct Check {
    scenario: &'static str,
    result: Result<String, String>,
}

/// Runs the matrix; `bin` holds the debug build of both binaries.
pub fn run(root: &Path, bin: &Path) -> Result<()> {
    let started = Instant::now();
    let cpio = build_initramfs(root, bin)?;
    let mut vms = Vec::new();
    for k in &KERNELS {
        let image = kernel_image(root, k);
        if !image.is_file() {
            bail!("kernel {} is not installed at {}: run `cargo xtask setup`", k.label, image.display());
        }
        let log = vm_dir(root).join(format!("console-{}.log", k.label));
        let child = Command::new("qemu-system-x86_64")
            .args(["-accel", "tcg", "-cpu", "max", "-m", "2048", "-smp", "1", "-nographic", "-no-reboot"])
            .arg("-kernel")
            .arg(&image)
            .arg("-initrd")
            .arg(&cpio)
            .args(["-append", "console=ttyS0 panic=-1 quiet"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(Stdio::piped())
            .spawn()
            .context("starting qemu-system-x86_64 (cargo xtask setup installs it)")?;
        eprintln!("xtask: vmtest: booting {} ({})", k.label, image.display());
        vms.push((k, child, log, Instant::now()));
    }
    // Wait for every VM at once, so each one's time is its own.
    let mut ended: Vec<Option<(Option<std::process::ExitStatus>, f64)>> = vms.iter().map(|_| None).collect();
    while ended.iter().any(Option::is_none) {
        for (i, (_, child, log, t0)) in vms.iter_mut().enumerate() {
            if ended[i].is_some() {
                continue;
            }
            if let Some(st) = child.try_wait()? {
                ended[i] = Some((Some(st), t0.elapsed().as_secs_f64()));
                continue;
            }
            let dead =
                std::fs::read(&*log).is_ok_and(|t| VM_DEAD.iter().any(|d| String::from_utf8_lossy(&t).contains(d)));
            if dead || t0.elapsed() > VM_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                ended[i] = Some((None, t0.elapsed().as_secs_f64()));
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut failed = Vec::new();
    for ((k, _, log, _), end) in vms.into_iter().zip(ended) {
        let (status, secs) = end.expect("every VM ended");
        let text = String::from_utf8_lossy(&std::fs::read(&log)?).into_owned();
        let console = parse_console(&text);
        let release = console.values.get("kernel").cloned().unwrap_or_else(|| format!("{} (did not boot)", k.label));
        let checks = match status {
            Some(_) if k.expect != Expect::Records => check_refusal(k, &console),
            None => vec![Check {
                scenario: "boot",
                result: Err(format!(
                    "stopped after {secs:.0} s (the scenario did not finish within {VM_TIMEOUT:?}, or the VM died)"
                )),
            }],
            Some(_) => check_run(root, bin, k, &console),
        };
        let bad: Vec<&Check> = checks.iter().filter(|c| c.result.is_err()).collect();
        println!("vmtest {release}: {} of {} checks passed in {secs:.0} s", checks.len() - bad.len(), checks.len());
        for c in &checks {
            match &c.result {
                Ok(what) => println!("  ok    {}: {what}", c.scenario),
                Err(why) => println!("  FAIL  {}: {why}", c.scenario),
            }
        }
        if !bad.is_empty() {
            println!("--- {release}: lanner-capture --probe ---");
            println!("{}", console.sections.get("probe").map_or("(none)", String::as_str));
            println!("--- {release}: capture's log (the verifier's output, when a program was rejected) ---");
            println!("{}", console.sections.get("capture").map_or("(none)", String::as_str));
            println!("--- {release}: console in {} ---", log.display());
            failed.push(release);
        }
    }
    eprintln!("xtask: vmtest took {:.0} s", started.elapsed().as_secs_f64());
    if !failed.is_empty() {
        bail!("the kernel matrix failed on {}", failed.join(", "));
    }
    Ok(())
}

/// Checks one kernel's run: the probe and its budget, the capture's exit and stop line, then the
/// scenario in the spool through lanner-analyze.
fn check_run(root: &Path, bin: &Path, k: &Kernel, console: &Console) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut check = |scenario: &'static str, result: Result<String, String>| checks.push(Check { scenario, result });
    let probe = console.sections.get("probe").cloned().unwrap_or_default();
    check(
        "probe",
        match console.values.get("probe-exit").map(String::as_str) {
            Some("0") => Ok("every program verified".into()),
            other => Err(format!("lanner-capture --probe exited {other:?}")),
        },
    );
    // `program NAME KIND verified, N instructions processed (budget B)`
    let insns: Vec<(String, u64, u64)> = probe
        .lines()
        .filter(|l| l.starts_with("program "))
        .filter_map(|l| {
            let name = l.split_whitespace().nth(1)?.to_owned();
            let n = l.split("verified, ").nth(1)?.split(' ').next()?.parse().ok()?;
            Some((name, n, l.split("(budget ").nth(1)?.trim_end_matches(')').parse().ok()?))
        })
        .collect();
    check(
        "verifier budget",
        if insns.len() >= 5 && insns.iter().all(|(_, n, budget)| n <= budget) {
            Ok(insns.iter().map(|(p, n, _)| format!("{p} {n}")).collect::<Vec<_>>().join(", "))
        } else {
            Err(format!("programs over their budget, or missing: {insns:?}"))
        },
    );
    let log = console.sections.get("capture").cloned().unwrap_or_default();
    let stop = log.lines().find(|l| l.contains("stopped: ")).unwrap_or("").to_owned();
    check(
        "capture",
        match console.values.get("capture-exit").map(String::as_str) {
            Some("0") => Ok("started, recorded and stopped cleanly".into()),
            other => Err(format!("capture exited {other:?}")),
        },
    );
    let clean = ["kernel drops 0", "unpaired exits 0", "malformed records 0", "lost (spool not writable) 0"];
    check(
        "stop line",
        if !stop.is_empty() && clean.iter().all(|c| stop.contains(c)) {
            Ok(stop.split("stopped: ").nth(1).unwrap_or("").chars().take(90).collect())
        } else {
            Err(format!("not clean: {stop:?}"))
        },
    );
    let spool = match extract_spool(root, k, console) {
        Ok(s) => s,
        Err(e) => {
            check("spool", Err(format!("{e:#}")));
            return checks;
        }
    };
    let analyze = bin.join("lanner-analyze");
    let verify = Command::new(&analyze).arg("verify").arg(&spool).output();
    check(
        "verify",
        match verify {
            Ok(o) if o.status.success() => Ok("the archive's hash chain verifies".into()),
            Ok(o) => Err(format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))),
            Err(e) => Err(e.to_string()),
        },
    );
    let query = |filter: &str, format: &str| -> Result<Vec<String>, String> {
        let o = Command::new(&analyze)
            .args(["query", "-f", filter, "-p", format])
            .arg(&spool)
            .output()
            .map_err(|e| e.to_string())?;
        if !o.status.success() {
            return Err(String::from_utf8_lossy(&o.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&o.stdout).lines().map(str::to_owned).collect())
    };
    // The seed's three threats, as the bundled rules report them.
    let replay = Command::new(&analyze).arg("replay").arg(&spool).output();
    let alerts: Vec<serde_json::Value> = replay
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
        .unwrap_or_default();
    let fields = ["proc.name", "proc.cmdline", "proc.pname", "user.uid"];
    for (scenario, rule, name, cmdline, file_field, file) in [
        ("threat: cat /etc/shadow", "Sensitive file read", "cat", "cat /etc/shadow", "fd.name", "/etc/shadow"),
        (
            "threat: touch /etc/badconfigfile",
            "Write below etc",
            "touch",
            "touch /etc/badconfigfile",
            "fd.name",
            "/etc/badconfigfile",
        ),
        (
            "threat: mkdir /bin/dangerousfolder",
            "Directory created below binary directory",
            "mkdir",
            "mkdir /bin/dangerousfolder",
            "evt.arg.path",
            "/bin/dangerousfolder",
        ),
    ] {
        let found = alerts.iter().filter(|a| a["rule"] == rule).collect::<Vec<_>>();
        let want = [name, cmdline, "sh", "0"];
        let result = match found.as_slice() {
            [a] => {
                let f = &a["output_fields"];
                let got: Vec<String> = fields
                    .iter()
                    .map(|k| match &f[*k] {
                        serde_json::Value::String(s) => s.clone(),
                        v => v.to_string(),
                    })
                    .collect();
                if got == want && f[file_field] == file {
                    Ok(format!("{name} (parent sh, uid 0) on {file}"))
                } else {
                    Err(format!("{f}"))
                }
            }
            other => Err(format!("{} alerts of this rule", other.len())),
        };
        check(scenario, result);
    }
    // An exec storm: 40 short-lived processes, each with its parent's name.
    let storm = query("evt.type = execve and proc.name = true", "%proc.pname %proc.cmdline %evt.res");
    check(
        "exec storm",
        storm.and_then(|lines| {
            let want: Vec<String> = (0..40).map(|i| format!("stormer true storm-{i} SUCCESS")).collect();
            if lines == want {
                Ok("40 execs of true, each a child of stormer".into())
            } else {
                Err(format!("{lines:?}"))
            }
        }),
    );
    check(
        "fork and exit",
        query("proc.name = stormer and evt.type = clone and evt.res = SUCCESS", "%evt.type").and_then(|forks| {
            let exits = query("proc.name = true and evt.type = procexit", "%proc.name")?;
            if forks.len() >= 40 && exits.len() == 40 {
                Ok(format!("{} forks by stormer, {} exits of true", forks.len(), exits.len()))
            } else {
                Err(format!("{} forks by stormer, {} exits of true", forks.len(), exits.len()))
            }
        }),
    );
    check(
        "rename, unlink, mkdir",
        query(
            "evt.type in (mkdir, mkdirat, rename, renameat, renameat2, unlink, unlinkat) and evt.res = SUCCESS",
            "%evt.type %evt.args",
        )
        .and_then(|got| {
            let mine: Vec<&String> = got.iter().filter(|l| l.contains("/tmp/vmtest-dir")).collect();
            let has = |t: &str, p: &str| mine.iter().any(|l| l.starts_with(t) && l.contains(p));
            if has("mkdir", "/tmp/vmtest-dir")
                && has("rename", "/tmp/vmtest-dir/b")
                && has("unlink", "/tmp/vmtest-dir/b")
            {
                Ok(mine.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("; "))
            } else {
                Err(format!("{got:?}"))
            }
        }),
    );
    check(
        "TCP connect on loopback",
        query("evt.type = connect and evt.res = SUCCESS and fd.sport = 7777", "*%proc.name %fd.sip %fd.sport")
            .and_then(|l| match l.first() {
                Some(line) if line == "nc 127.0.0.1 7777" => Ok(line.clone()),
                _ => Err(format!("{l:?}")),
            }),
    );
    let inode = console.values.get("sh-inode").cloned().unwrap_or_default();
    let facts = |case: &str| {
        let filter = format!("evt.type = execve and proc.name = sh and proc.args endswith {case}");
        query(&filter, "*%proc.vpid %proc.pid %proc.exe_ino %proc.env[LANNER_VM_ENV] %proc.is_exe_upper_layer")
            .map(|l| l.first().map(|x| x.split(' ').map(str::to_owned).collect::<Vec<_>>()).unwrap_or_default())
    };
    check(
        "task facts",
        facts("task-facts").and_then(|f| {
            let n = facts("pid-namespace")?;
            let cap = query("evt.type = execve and proc.args endswith task-facts", "%thread.cap_effective")?;
            let caps = cap.first().is_some_and(|c| c.contains("CAP_SYS_ADMIN"));
            if f.len() == 5
                && f[0] == f[1]
                && f[2] == inode
                && f[3] == "matrix"
                && f[4] == "false"
                && caps
                && n.len() == 5
                && n[0] == "1"
                && n[1] != "1"
            {
                Ok(format!("vpid {} = pid, inode {inode}, env and capabilities read; vpid 1 in a new namespace", f[0]))
            } else {
                Err(format!("{f:?} {n:?} {cap:?} (inode {inode})"))
            }
        }),
    );
    check(
        "namespace change",
        query("evt.type = unshare", "%proc.name %evt.res").and_then(|l| {
            if l == ["unshare SUCCESS"] {
                Ok("the unshare of the new pid namespace".into())
            } else {
                Err(format!("{l:?}"))
            }
        }),
    );
    check(
        "datagrams to addresses",
        query(
            "proc.name = udpsend and evt.type in (sendto, connect)",
            "%evt.type %fd.name %fd.connected %fd.name_changed %fd.l4proto",
        )
        .and_then(|l| {
            let ends = ["->127.0.0.1:9 false true udp", "->127.0.0.2:9 false true udp", "->127.0.0.2:9 true true udp"];
            let kinds = ["sendto", "sendto", "connect"];
            let ok =
                l.len() == 3 && l.iter().zip(ends).zip(kinds).all(|((x, e), k)| x.starts_with(k) && x.ends_with(e));
            if ok {
                Ok("2 sendto to addresses and a connect, each renaming the socket; the send without one not recorded"
                    .into())
            } else {
                Err(format!("{l:?}"))
            }
        }),
    );
    check(
        "32-bit program",
        query("proc.name = x32", "*%evt.type %evt.res %fd.name %proc.cmdline").and_then(|l| {
            let exec = l.iter().any(|x| x.starts_with("execve SUCCESS") && x.ends_with("x32 /etc/hostname"));
            let open = l.iter().any(|x| x.starts_with("open ") && x.contains("/etc/hostname"));
            if exec && open {
                Ok("exec of /x32 and its ia32 open of /etc/hostname".into())
            } else {
                Err(format!("{l:?}"))
            }
        }),
    );
    checks
}

/// Checks a kernel where capture must refuse: the probe and the capture both fail, naming the
/// missing feature, and no program was loaded.
fn check_refusal(k: &Kernel, console: &Console) -> Vec<Check> {
    let Expect::Refuses(why) = k.expect else { return Vec::new() };
    let mut checks = Vec::new();
    for (scenario, section, exit) in [("probe refuses", "probe", "probe-exit"), ("capture refuses", "capture", "")] {
        let text = console.sections.get(section).cloned().unwrap_or_default();
        let failed = exit.is_empty() || console.values.get(exit).is_some_and(|v| v != "0");
        let line = text.lines().find(|l| l.contains("error:")).unwrap_or("").trim().to_owned();
        checks.push(Check {
            scenario,
            result: if failed && line.contains(why) && console.values.contains_key("capture-did-not-start") {
                Ok(line)
            } else {
                Err(format!("expected an error naming `{why}`, got: {text}"))
            },
        });
    }
    checks
}

/// Decodes the spool the VM printed into `target/vmtest/spool-LABEL`.
fn extract_spool(root: &Path, k: &Kernel, console: &Console) -> Result<PathBuf> {
    use base64::Engine;
    let text = console.sections.get("spool").ok_or_else(|| anyhow!("the VM printed no spool"))?;
    let b64: String = text.split_whitespace().collect();
    let tar = base64::engine::general_purpose::STANDARD.decode(b64).context("decoding the spool's base64")?;
    let dir = vm_dir(root).join(format!("spool-{}", k.label));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let tar_path = vm_dir(root).join(format!("spool-{}.tar", k.label));
    std::fs::write(&tar_path, tar)?;
    crate::run(Command::new("tar").arg("-C").arg(&dir).arg("-xf").arg(&tar_path))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_is_split_into_sections_and_values() {
        let text = "\x1bc\x1b[?7lVMTEST kernel 6.1.0-50-cloud-amd64\r\nnoise\nVMTEST-BEGIN probe\r\nkernel x\nprogram a\nVMTEST-END probe\nVMTEST capture-exit 0\nVMTEST-BEGIN spool\nAAAA\n";
        let c = parse_console(text);
        assert_eq!(c.values["kernel"], "6.1.0-50-cloud-amd64");
        assert_eq!(c.values["capture-exit"], "0");
        assert_eq!(c.sections["probe"], "kernel x\nprogram a\n");
        assert!(!c.sections.contains_key("spool"), "an unterminated section is not taken");
    }

    #[test]
    fn package_versions_sort_numerically() {
        let mut v = vec!["linux-image-6.1.0-50-cloud", "linux-image-6.1.0-9-cloud", "linux-image-6.1.0-48-cloud"];
        v.sort_by_key(|n| version_key(n));
        assert_eq!(v, ["linux-image-6.1.0-9-cloud", "linux-image-6.1.0-48-cloud", "linux-image-6.1.0-50-cloud"]);
    }
}
