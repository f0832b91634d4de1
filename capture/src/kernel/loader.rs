//! Loads the embedded eBPF object, configures it and attaches its tracepoints.

use anyhow::{anyhow, Context, Result};
use aya::maps::{Array, MapData, PerCpuArray, RingBuf};
use aya::programs::{BtfTracePoint, TracePoint};
use aya::Btf;
use aya::{Ebpf, EbpfLoader};

use crate::kernel::support::{KernelSupport, Need};
use lanner_formats::syscall::{self, TABLE};
use lanner_formats::wire::{
    desc, COMPAT_FIRST_ARG_ONLY, COMPAT_SOCKETCALL, COUNTER_COMPAT, COUNTER_COMPAT_RECORDED, COUNTER_DROPS,
    COUNTER_UNPAIRED, SYSCALL_DESC_ENTRIES,
};
use std::os::fd::{AsFd, AsRawFd};

static BPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lanner"));

const TRACEFS: &str = "/sys/kernel/tracing";

/// Default size of the `EVENTS` ring buffer (the size compiled into the eBPF object).
pub const DEFAULT_RING_BUFFER_BYTES: u32 = 32 << 20;

/// Parses and checks a ring buffer size: a power of two, a multiple of the page size, at most 1 GiB.
pub fn parse_ring_buffer_bytes(s: &str) -> Result<u32, String> {
    let n: u64 = s.trim().parse().map_err(|_| format!("`{s}` is not a byte count (e.g. 16777216)"))?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    if !n.is_power_of_two() || !n.is_multiple_of(page) {
        return Err(format!(
            "{n} bytes: the ring buffer size must be a power of two and a multiple of the page size ({page} bytes)"
        ));
    }
    if n > 1 << 30 {
        return Err(format!("{n} bytes: the ring buffer size is limited to 1 GiB (1073741824)"));
    }
    Ok(n as u32)
}

/// The loaded, attached programs and the maps capture reads.
pub struct Probes {
    /// Keeps programs and links alive; dropping it detaches everything.
    ebpf: Option<Ebpf>,
    /// Records from the kernel.
    pub ring: RingBuf<MapData>,
    counters: PerCpuArray<MapData, u64>,
    /// Number of tracepoints attached.
    pub attached: usize,
    /// The programs' recursion misses as last read (from fdinfo, at most once a second), and when.
    misses: std::cell::Cell<(Option<std::time::Instant>, u64)>,
}

/// Kernel-side counters, summed over CPUs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KernelCounters {
    /// Records lost because the ring buffer was full.
    pub drops: u64,
    /// Syscall exits seen without their entry (e.g. started before capture).
    pub unpaired: u64,
    /// 32-bit (ia32) syscalls of traced kinds that could not be recorded (a `socketcall` whose
    /// argument block was unreadable).
    pub compat: u64,
    /// 32-bit syscalls recorded as their x86_64 twins.
    pub compat_recorded: u64,
    /// Program runs the kernel skipped because the program was already running on that CPU
    /// (`recursion_misses` of the attached programs): events lost before any record existed.
    pub recursion_misses: u64,
}

/// What to load: the ring buffer's size, the syscall set and where the kernel's BTF is.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Size of the `EVENTS` ring buffer (see [`parse_ring_buffer_bytes`]).
    pub ring_bytes: u32,
    /// Every syscall Lanner knows rather than the forensic set.
    pub all_syscalls: bool,
    /// The kernel's BTF (normally [`crate::kernel::btf::VMLINUX_BTF`]).
    pub btf_path: std::path::PathBuf,
}

impl LoadOptions {
    /// Whether the syscall with descriptor `d` is recorded: the forensic set, or with
    /// `all_syscalls` every syscall Lanner knows (adds read, write, send*, recv*).
    fn records(&self, d: u32) -> bool {
        desc::traced(d, self.all_syscalls)
    }

    /// What the kernel side is told of a traced call: under `--syscalls all`, an addressed call
    /// is recorded whatever its address.
    fn descriptor(&self, d: u32) -> u32 {
        if self.all_syscalls {
            d & !desc::ADDRESSED
        } else {
            d
        }
    }
}

/// Each program's budget of instructions the verifier processes: a fifth of the kernel's 1M limit.
/// The exit program needs about 38k on 6.18 and 6.12 and 81k on 6.1, whose verifier prunes less;
/// the budget test and the kernel matrix hold every program to this.
pub const COMPLEXITY_BUDGET: u32 = 200_000;

/// One program as the kernel's verifier accepted it, for `--probe` and the budget test.
#[derive(Debug, Clone)]
pub struct VerifiedProgram {
    /// The program's name in the eBPF object.
    pub name: String,
    /// `tracepoint` or `tp_btf`.
    pub kind: &'static str,
    /// Instructions the verifier processed (`verified_insns`, Linux 5.16+).
    pub insns: Option<u32>,
}

/// The BTF tracepoint each BTF program attaches to.
const BTF_PROGRAMS: [(&str, &str); 2] = [("lanner_raw_sys_exit", "sys_exit"), ("lanner_exec", "sched_process_exec")];

/// Turns a program load failure into an error that names the missing kernel feature first.
fn explain(prog: &str, release: &str, r: Result<(), aya::programs::ProgramError>) -> Result<()> {
    match r {
        Ok(()) => Ok(()),
        Err(aya::programs::ProgramError::LoadError { io_error, verifier_log }) => Err(anyhow!(
            "loading {prog} failed ({io_error}): {}",
            crate::kernel::support::explain_rejection(prog, release, &format!("{verifier_log:?}"))
        )),
        Err(e) => Err(anyhow::Error::new(e).context(format!("loading {prog}"))),
    }
}

/// The eBPF object with its globals set for this kernel and its maps filled, nothing loaded yet.
struct Configured {
    ebpf: Ebpf,
    kernel_offsets: [u32; lanner_formats::wire::kernel_offsets::COUNT],
    support: KernelSupport,
}

/// Refuses clearly when capture cannot run on the kernel `support` describes, and configures the
/// object for it.
fn configure(opts: &LoadOptions, support: KernelSupport) -> Result<Configured> {
    ensure_tracefs()?;
    support.check()?;
    support.warn_missing();
    let own = std::process::id();
    let fork_off = field_offset("sched", "sched_process_fork", "child_pid")?;
    // Socket details need kernel struct offsets; without BTF, sockets are recorded without
    // their addresses.
    let kernel_offsets = match support.has(Need::Btf) {
        true => crate::kernel::btf::kernel_offsets(&opts.btf_path).unwrap_or_else(|e| {
            log::warn!("socket addresses will not be recorded: {e:#}");
            [0; lanner_formats::wire::kernel_offsets::COUNT]
        }),
        false => [0; lanner_formats::wire::kernel_offsets::COUNT],
    };
    let task_pt_regs = support.has(Need::TaskPtRegs) as u32;
    let mut ebpf = EbpfLoader::new()
        .override_global("OWN_TGID", &own, true)
        .override_global("FORK_CHILD_PID_OFFSET", &fork_off, true)
        .override_global("CLONE_NRS", &clone_syscall_numbers(), true)
        .override_global("EXECVE_NR", &(libc::SYS_execve as i32), true)
        .override_global("KERNEL_OFFSETS", &kernel_offsets, true)
        .override_global("HAS_TASK_PT_REGS", &task_pt_regs, true)
        .map_max_entries("EVENTS", opts.ring_bytes)
        .load(BPF_OBJECT)
        .context("loading the eBPF object (needs root or CAP_BPF+CAP_PERFMON)")?;
    {
        let mut desc: Array<_, u32> =
            Array::try_from(ebpf.map_mut("SYSCALL_DESC").ok_or_else(|| anyhow!("map SYSCALL_DESC missing"))?)?;
        for spec in TABLE {
            if let Some(nr) = syscall::native_nr(spec) {
                if nr < SYSCALL_DESC_ENTRIES && opts.records(spec.desc) {
                    desc.set(nr, opts.descriptor(spec.desc), 0)?;
                }
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        // A traced kind's x86_64 number plus one (the maps' encoding; 0 is "not traced").
        let twin = |ty: syscall::EventType| {
            let spec = ty.spec();
            syscall::native_nr(spec).filter(|_| opts.records(spec.desc)).map(|nr| nr + 1)
        };
        let mut compat: Array<_, u32> =
            Array::try_from(ebpf.map_mut("COMPAT_NR").ok_or_else(|| anyhow!("map COMPAT_NR missing"))?)?;
        for (&(ty, ia32), flag) in syscall::I386
            .iter()
            .map(|e| (e, 0))
            .chain(syscall::I386_FIRST_ARG_ONLY.iter().map(|e| (e, COMPAT_FIRST_ARG_ONLY)))
        {
            if let Some(v) = twin(ty) {
                compat.set(ia32, v | flag, 0)?;
            }
        }
        compat.set(syscall::I386_SOCKETCALL, COMPAT_SOCKETCALL, 0)?;
        let mut calls: Array<_, u32> =
            Array::try_from(ebpf.map_mut("SOCKETCALL").ok_or_else(|| anyhow!("map SOCKETCALL missing"))?)?;
        for &(call, ty, nargs) in syscall::SOCKETCALL {
            if let Some(v) = twin(ty) {
                calls.set(call, (nargs << 16) | v, 0)?;
            }
        }
    }
    Ok(Configured { ebpf, kernel_offsets, support })
}

/// Loads every program of the object into the kernel `support` describes without attaching any
/// (the BTF ones only where the kernel has BTF): what the verifier processed for each, for `--probe`.
pub fn verify_all(opts: &LoadOptions, support: KernelSupport) -> Result<Vec<VerifiedProgram>> {
    let Configured { mut ebpf, support, .. } = configure(opts, support)?;
    let btf = if support.has(Need::Btf) { Some(Btf::parse_file(&opts.btf_path, Default::default())?) } else { None };
    let mut out = Vec::new();
    for (name, program) in ebpf.programs_mut() {
        let kind = match program {
            aya::programs::Program::TracePoint(p) => {
                explain(name, &support.release, p.load())?;
                "tracepoint"
            }
            aya::programs::Program::BtfTracePoint(p) => {
                let Some(btf) = &btf else { continue };
                let tp = BTF_PROGRAMS.iter().find(|(n, _)| *n == name).map(|(_, tp)| *tp);
                let tp = tp.ok_or_else(|| anyhow!("BTF program {name} has no tracepoint"))?;
                explain(name, &support.release, p.load(tp, btf))?;
                "tp_btf"
            }
            _ => return Err(anyhow!("program {name} is of an unexpected type")),
        };
        let insns = program.info().ok().and_then(|i| i.verified_instruction_count());
        out.push(VerifiedProgram { name: name.to_owned(), kind, insns });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

impl Probes {
    /// Loads and attaches the programs `opts` selects; capture's own process is filtered in the
    /// kernel. A kernel that lacks something capture needs gets an error naming it.
    pub fn load(opts: &LoadOptions) -> Result<Self> {
        let Configured { mut ebpf, kernel_offsets, support } = configure(opts, KernelSupport::probe(&opts.btf_path))?;
        let release = support.release.as_str();
        // Process lifecycle first, so no process starts unseen while syscalls are being attached.
        let mut attached = 0;
        for (prog, tp) in [("lanner_fork", "sched_process_fork"), ("lanner_exit", "sched_process_exit")] {
            let p: &mut TracePoint =
                ebpf.program_mut(prog).ok_or_else(|| anyhow!("program {prog} missing"))?.try_into()?;
            explain(prog, release, p.load())?;
            p.attach("sched", tp).with_context(|| format!("attaching sched:{tp}"))?;
            attached += 1;
        }
        // With the argument registers' offsets from BTF, one raw_syscalls:sys_exit program reads
        // every call's arguments itself, and only native exec-like calls (argv must be read before
        // the exec replaces it) need an entry program; sched_process_exec reads the new program's
        // argv for the 32-bit execs no entry tracepoint sees. Otherwise: entry and exit per syscall.
        let exit_reads_args = kernel_offsets[lanner_formats::wire::kernel_offsets::REGS_NR] != 0;
        let per_syscall = |d: u32, dir: &str| {
            opts.records(d) && if dir == "enter" { !exit_reads_args || d & desc::EXEC != 0 } else { !exit_reads_args }
        };
        for (prog, dir) in [("lanner_sys_enter", "enter"), ("lanner_sys_exit", "exit")] {
            let specs: Vec<_> =
                TABLE.iter().filter(|s| per_syscall(s.desc, dir) && syscall::native_nr(s).is_some()).collect();
            if specs.is_empty() {
                continue;
            }
            let p: &mut TracePoint =
                ebpf.program_mut(prog).ok_or_else(|| anyhow!("program {prog} missing"))?.try_into()?;
            explain(prog, release, p.load())?;
            for spec in specs {
                let tp = format!("sys_{dir}_{}", spec.event.tracepoint());
                if !std::path::Path::new(TRACEFS).join("events/syscalls").join(&tp).is_dir() {
                    if dir == "enter" {
                        log::warn!("this kernel has no tracepoint syscalls:{tp}; {} is not recorded", spec.name);
                    }
                    continue;
                }
                p.attach("syscalls", &tp).with_context(|| format!("attaching syscalls:{tp}"))?;
                attached += 1;
            }
        }
        // Exits after entries: an exec whose entry is attached before its exit program pairs; the
        // other order would leave every exec entering in between unpaired.
        if exit_reads_args {
            let btf = Btf::parse_file(&opts.btf_path, Default::default())
                .with_context(|| format!("reading the kernel's BTF from {}", opts.btf_path.display()))?;
            for (prog, tp) in BTF_PROGRAMS {
                let p: &mut BtfTracePoint =
                    ebpf.program_mut(prog).ok_or_else(|| anyhow!("program {prog} missing"))?.try_into()?;
                explain(prog, release, p.load(tp, &btf))?;
                p.attach().with_context(|| format!("attaching BTF tracepoint {tp}"))?;
                attached += 1;
            }
        }
        let ring = RingBuf::try_from(ebpf.take_map("EVENTS").ok_or_else(|| anyhow!("map EVENTS missing"))?)?;
        let counters =
            PerCpuArray::try_from(ebpf.take_map("COUNTERS").ok_or_else(|| anyhow!("map COUNTERS missing"))?)?;
        Ok(Self { ebpf: Some(ebpf), ring, counters, attached, misses: Default::default() })
    }

    /// Detaches every program; the ring buffer and counters stay readable, so what was
    /// recorded until now can still be drained.
    pub fn detach(&mut self) {
        self.misses.set((None, self.read_recursion_misses()));
        self.ebpf = None;
    }

    /// Reads the kernel counters.
    pub fn counters(&self) -> KernelCounters {
        let sum = |i: u32| self.counters.get(&i, 0).map(|v| v.iter().sum::<u64>()).unwrap_or(0);
        KernelCounters {
            drops: sum(COUNTER_DROPS),
            unpaired: sum(COUNTER_UNPAIRED),
            compat: sum(COUNTER_COMPAT),
            compat_recorded: sum(COUNTER_COMPAT_RECORDED),
            recursion_misses: self.recursion_misses(),
        }
    }

    /// The programs' recursion misses, read again when the last reading is a second old.
    fn recursion_misses(&self) -> u64 {
        let (when, n) = self.misses.get();
        if self.ebpf.is_none() || when.is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(1)) {
            return n;
        }
        let n = self.read_recursion_misses();
        self.misses.set((Some(std::time::Instant::now()), n));
        n
    }

    /// The sum of the loaded programs' `recursion_misses`, from their fdinfo.
    fn read_recursion_misses(&self) -> u64 {
        let Some(ebpf) = &self.ebpf else { return self.misses.get().1 };
        ebpf.programs()
            .filter_map(|(_, p)| p.fd().ok())
            .filter_map(|fd| std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_fd().as_raw_fd())).ok())
            .filter_map(|info| fdinfo_value(&info, "recursion_misses"))
            .sum()
    }
}

/// The value of `key` in a `/proc/PID/fdinfo/FD` text (`key:\tvalue` lines).
fn fdinfo_value(info: &str, key: &str) -> Option<u64> {
    info.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':')?.trim().parse().ok())
}

/// This architecture's clone, clone3, fork and vfork numbers, as the fork program expects them.
fn clone_syscall_numbers() -> [i32; 4] {
    #[cfg(target_arch = "x86_64")]
    let (fork, vfork) = (libc::SYS_fork as i32, libc::SYS_vfork as i32);
    #[cfg(not(target_arch = "x86_64"))]
    let (fork, vfork) = (-1, -1);
    [libc::SYS_clone as i32, libc::SYS_clone3 as i32, fork, vfork]
}

fn ensure_tracefs() -> Result<()> {
    if std::path::Path::new(TRACEFS).join("events").is_dir() {
        return Ok(());
    }
    let src = c"tracefs";
    let dst = c"/sys/kernel/tracing";
    // SAFETY: valid NUL-terminated strings; no data argument.
    let r = unsafe { libc::mount(src.as_ptr(), dst.as_ptr(), src.as_ptr(), 0, std::ptr::null()) };
    if r != 0 {
        return Err(anyhow!(
            "tracefs is not mounted at {TRACEFS} and mounting it failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Offset of `field` in a tracepoint's record, from its tracefs format file.
fn field_offset(category: &str, event: &str, field: &str) -> Result<u32> {
    let path = format!("{TRACEFS}/events/{category}/{event}/format");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    for line in text.lines() {
        let line = line.trim();
        let Some(decl) = line.strip_prefix("field:") else { continue };
        let mut parts = decl.split(';');
        let name = parts.next().unwrap_or("").trim();
        if name.rsplit(' ').next() == Some(field) {
            for p in parts {
                if let Some(off) = p.trim().strip_prefix("offset:") {
                    return off.parse().with_context(|| format!("{path}: bad offset for {field}"));
                }
            }
        }
    }
    Err(anyhow!("{path}: no field {field}"))
}

impl crate::drain::RecordSource for Probes {
    fn wait(&mut self, timeout: std::time::Duration) {
        let mut pfd = libc::pollfd { fd: self.ring.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd. EINTR (a signal) just ends the wait early.
        unsafe { libc::poll(&mut pfd, 1, timeout.as_millis().min(i32::MAX as u128) as i32) };
    }

    fn drain(&mut self, mut f: impl FnMut(&[u8]) -> std::ops::ControlFlow<()>) -> usize {
        let mut n = 0;
        while let Some(item) = self.ring.next() {
            n += 1;
            if f(&item).is_break() {
                break;
            }
        }
        n
    }

    fn counters(&self) -> KernelCounters {
        Probes::counters(self)
    }

    fn detach(&mut self) {
        Probes::detach(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdinfo_values_are_read_by_key() {
        let info =
            "pos:\t0\nflags:\t02000002\nprog_type:\t26\nrun_cnt:\t12\nrecursion_misses:\t7\nverified_insns:\t900\n";
        assert_eq!(fdinfo_value(info, "recursion_misses"), Some(7));
        assert_eq!(fdinfo_value(info, "run_cnt"), Some(12));
        assert_eq!(fdinfo_value(info, "run_time_ns"), None);
        assert_eq!(fdinfo_value("recursion_misses:\tmany\n", "recursion_misses"), None);
    }
}
