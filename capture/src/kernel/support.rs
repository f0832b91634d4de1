//! What the running kernel offers capture: each eBPF feature the programs use, probed before
//! loading, with the kernel version that brought it and what capture does without it. A load
//! that the verifier still rejects is explained in the same terms, never only as a verifier dump.

use std::path::Path;

use aya::maps::MapType;
use aya::programs::ProgramType;
use aya::sys::{is_helper_supported, is_map_supported, BpfHelper};

/// The kernel features capture probes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Kernel BTF at the configured path.
    Btf,
    /// BTF tracepoints (`tp_btf`).
    BtfTracepoints,
    /// The BPF ring buffer.
    RingBuf,
    /// The helper `bpf_get_current_task_btf`.
    TaskBtf,
    /// The helper `bpf_task_pt_regs`.
    TaskPtRegs,
}

/// One probed feature: whether the kernel has it, and what capture needs it for.
#[derive(Debug, Clone)]
pub struct Feature {
    /// Which feature.
    pub need: Need,
    /// What the feature is, as a user looks it up.
    pub name: String,
    /// The upstream kernel version that introduced it.
    pub since: &'static str,
    /// Whether this kernel has it (`None`: the probe itself failed).
    pub present: Option<bool>,
    /// What capture does without it.
    pub without: &'static str,
    /// Whether capture cannot run without it.
    pub required: bool,
    /// What the probe saw, when it has more to say (a path, an error).
    pub detail: String,
}

/// The probed features of the running kernel.
#[derive(Debug, Clone)]
pub struct KernelSupport {
    /// `uname -r`.
    pub release: String,
    /// Each feature, in the order they are reported.
    pub features: Vec<Feature>,
}

/// Helpers the programs call: number, name and the kernel version that introduced it.
const HELPERS: &[(u32, &str, &str)] = &[
    (35, "bpf_get_current_task", "4.8"),
    (80, "bpf_get_current_cgroup_id", "4.18"),
    (112, "bpf_probe_read_user", "5.5"),
    (113, "bpf_probe_read_kernel", "5.5"),
    (114, "bpf_probe_read_user_str", "5.5"),
    (115, "bpf_probe_read_kernel_str", "5.5"),
    (125, "bpf_ktime_get_boot_ns", "5.8"),
    (130, "bpf_ringbuf_output", "5.8"),
    (158, "bpf_get_current_task_btf", "5.11"),
    (175, "bpf_task_pt_regs", "5.15"),
];

/// The major and minor version of a kernel release such as `6.1.0-50-cloud-amd64`.
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The feature "helper `helper` is callable from a tracepoint", named and dated from [`HELPERS`].
fn helper_feature(need: Need, helper: BpfHelper, required: bool, without: &'static str) -> Feature {
    let id = helper as u32;
    let (name, since) = HELPERS.iter().find(|h| h.0 == id).map_or(("unknown", "?"), |h| (h.1, h.2));
    let (present, detail) = probe_result(is_helper_supported(ProgramType::TracePoint, helper));
    Feature { need, name: format!("the helper {name} (#{id})"), since, present, without, required, detail }
}

fn probe_result(r: Result<bool, impl std::fmt::Display>) -> (Option<bool>, String) {
    match r {
        Ok(b) => (Some(b), String::new()),
        Err(e) => (None, format!("probe failed: {e}")),
    }
}

impl KernelSupport {
    /// Probes the running kernel; `btf_path` is where its BTF is expected.
    pub fn probe(btf_path: &Path) -> Self {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned();
        let mut features = Vec::new();
        let btf = match std::fs::metadata(btf_path) {
            Ok(m) if m.is_file() && m.len() > 0 => (Some(true), btf_path.display().to_string()),
            Ok(_) => (Some(false), format!("{} is not a BTF file", btf_path.display())),
            Err(e) => (Some(false), format!("{}: {e}", btf_path.display())),
        };
        features.push(Feature {
            need: Need::Btf,
            name: "kernel BTF (CONFIG_DEBUG_INFO_BTF)".into(),
            since: "5.4",
            present: btf.0,
            without: "per-syscall tracepoints; no socket addresses, terminal, login uid or 32-bit syscalls",
            required: false,
            detail: btf.1,
        });
        // aya cannot probe BPF_PROG_TYPE_TRACING without an attach target: BTF tracepoints come
        // with kernel BTF from 5.5 on, and the real load of the exit program confirms it.
        let version = kernel_version(&release);
        let (present, detail) = match (btf.0, version) {
            (Some(true), Some(v)) => (Some(v >= (5, 5)), String::new()),
            (Some(true), None) => (None, format!("unrecognised kernel release `{release}`")),
            _ => (Some(false), "needs kernel BTF".to_owned()),
        };
        features.push(Feature {
            need: Need::BtfTracepoints,
            name: "BTF tracepoints (BPF_PROG_TYPE_TRACING, raw_tp)".into(),
            since: "5.5",
            present,
            without: "per-syscall entry and exit tracepoints (about twice the per-syscall cost)",
            required: false,
            detail,
        });
        let (present, detail) = probe_result(is_map_supported(MapType::RingBuf));
        features.push(Feature {
            need: Need::RingBuf,
            name: "the BPF ring buffer (BPF_MAP_TYPE_RINGBUF)".into(),
            since: "5.8",
            present,
            without: "cannot run: every record goes through the ring buffer",
            required: true,
            detail,
        });
        features.push(helper_feature(
            Need::TaskBtf,
            BpfHelper::BPF_FUNC_get_current_task_btf,
            true,
            "cannot run: every program reads the current task through it",
        ));
        features.push(helper_feature(
            Need::TaskPtRegs,
            BpfHelper::BPF_FUNC_task_pt_regs,
            false,
            "forks are recorded without their clone flags (thread or process is then told by ids alone)",
        ));
        Self { release, features }
    }

    /// Whether this kernel has `need`.
    pub fn has(&self, need: Need) -> bool {
        self.features.iter().any(|f| f.need == need && f.present == Some(true))
    }

    /// The features capture cannot run without and this kernel lacks, as one error naming each
    /// feature, the version that brought it and this kernel's version.
    pub fn check(&self) -> anyhow::Result<()> {
        let missing: Vec<String> = self
            .features
            .iter()
            .filter(|f| f.required && f.present == Some(false))
            .map(|f| format!("{}, which arrived in Linux {}", f.name, f.since))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(anyhow::anyhow!(
            "this kernel ({}) lacks {}: capture cannot run here. It needs Linux 5.11 or later (the README's \
             supported kernels; `lanner-capture --probe` lists every feature)",
            self.release,
            missing.join(" and ")
        ))
    }

    /// Logs a warning for each optional feature this kernel lacks, with what capture does instead.
    pub fn warn_missing(&self) {
        for f in self.features.iter().filter(|f| !f.required && f.present != Some(true)) {
            log::warn!("{} is not available ({}; Linux {}+): {}", f.name, f.detail, f.since, f.without);
        }
    }

    /// The report `lanner-capture --probe` prints: one line per feature.
    pub fn report(&self) -> String {
        let mut out = format!("kernel {}\n", self.release);
        for f in &self.features {
            let state = match f.present {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "unknown",
            };
            out.push_str(&format!("feature  {state:<7}  {} (Linux {}+)", f.name, f.since));
            if f.present != Some(true) {
                out.push_str(&format!(": without it, {}", f.without));
            }
            if !f.detail.is_empty() && f.present != Some(true) {
                out.push_str(&format!(" [{}]", f.detail));
            }
            out.push('\n');
        }
        out
    }
}

/// Explains a verifier rejection of `program` in terms of kernel features, ahead of the verifier's
/// own output (`log`, kept in full after the explanation).
pub fn explain_rejection(program: &str, release: &str, log: &str) -> String {
    let mut why = Vec::new();
    for (id, name, since) in HELPERS {
        let unknown = [format!("unknown#{id}"), format!("{name}#{id}")];
        if unknown.iter().any(|u| log.contains(&format!("func {u}"))) {
            why.push(format!(
                "this kernel ({release}) lacks the helper {name} (#{id}), which arrived in Linux {since}"
            ));
        }
    }
    if let Some(line) = log.lines().find(|l| l.contains("combined stack size") || l.contains("stack depth")) {
        if log.contains("Too large") || log.contains("too large") {
            why.push(format!(
                "a call chain of {program} needs more than the 512 bytes of stack this kernel gives a program \
                 ({}); this is a build defect: the verifier budget test should have caught it",
                line.trim()
            ));
        }
    }
    if log.contains("BPF program is too large") {
        why.push(format!("{program} exceeds this kernel's verifier complexity limit (1M processed instructions)"));
    }
    if why.is_empty() {
        why.push(format!("the kernel's verifier ({release}) rejected {program}"));
    }
    format!("{}. Verifier output: {}", why.join("; "), log.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_are_read_from_releases() {
        assert_eq!(kernel_version("6.1.0-50-cloud-amd64"), Some((6, 1)));
        assert_eq!(kernel_version("5.10.0-32-cloud-amd64"), Some((5, 10)));
        assert_eq!(kernel_version("6.18.44-fc-v1300"), Some((6, 18)));
        assert_eq!(kernel_version("weird"), None);
    }

    #[test]
    fn a_missing_helper_is_named_with_its_kernel_version() {
        let log = "0: R1=ctx() R10=fp0\n; let task = ...\n0: (85) call unknown#158\ninvalid func unknown#158\n\
                   processed 1 insns (limit 1000000)";
        let e = explain_rejection("lanner_fork", "5.10.0-32-cloud-amd64", log);
        assert!(e.starts_with("this kernel (5.10.0-32-cloud-amd64) lacks the helper bpf_get_current_task_btf (#158), which arrived in Linux 5.11"), "{e}");
        assert!(e.contains("invalid func unknown#158"), "the verifier's words follow: {e}");
        let e =
            explain_rejection("p", "5.13", "7: (85) call bpf_task_pt_regs#175\nunknown func bpf_task_pt_regs#175\n");
        assert!(e.contains("bpf_task_pt_regs (#175), which arrived in Linux 5.15"), "{e}");
    }

    #[test]
    fn a_stack_overflow_is_called_a_build_defect() {
        let log = "combined stack size of 2 calls is 784. Too large\nstack depth 320+464+0\n";
        let e = explain_rejection("lanner_raw_sys_exit", "6.1.0", log);
        assert!(e.contains("512 bytes") && e.contains("build defect") && e.contains("784"), "{e}");
    }

    #[test]
    fn an_unexplained_rejection_still_names_the_program_and_kernel() {
        let e = explain_rejection("lanner_exit", "6.1.0", "R1 invalid mem access 'scalar'");
        assert_eq!(
            e,
            "the kernel's verifier (6.1.0) rejected lanner_exit. Verifier output: R1 invalid mem access 'scalar'"
        );
    }

    #[test]
    fn check_names_each_missing_required_feature() {
        let feature = |name: &str, present, required| Feature {
            need: Need::Btf,
            name: name.into(),
            since: "5.11",
            present,
            without: "x",
            required,
            detail: String::new(),
        };
        let ks = KernelSupport {
            release: "5.10.0".into(),
            features: vec![
                feature("kernel BTF", Some(false), false),
                feature("the helper bpf_get_current_task_btf (#158)", Some(false), true),
                feature("ring", Some(true), true),
            ],
        };
        let e = ks.check().unwrap_err().to_string();
        assert!(
            e.starts_with(
                "this kernel (5.10.0) lacks the helper bpf_get_current_task_btf (#158), which arrived in Linux 5.11: \
                 capture cannot run here"
            ),
            "{e}"
        );
        assert!(!e.contains("kernel BTF"), "optional features do not stop capture: {e}");
        assert!(ks.report().contains("feature  NO       kernel BTF (Linux 5.11+): without it, x"), "{}", ks.report());
    }
}
