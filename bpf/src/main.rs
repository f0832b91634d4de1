//! Lanner's eBPF programs: one record per completed syscall, emitted by a single
//! `raw_syscalls:sys_exit` BTF tracepoint that reads the call's number and arguments back from
//! the task's saved user registers, plus process fork/exit. The task and its registers are BTF
//! pointers, so their members (at offsets the loader reads from BTF into the frozen
//! `KERNEL_OFFSETS`, which the verifier sees as constants) are plain loads, not helper calls.
//! Exec-like calls, whose registers a successful exec resets, stash their arguments at entry;
//! 32-bit execs, which no entry tracepoint sees, are described by `sched_process_exec` (or, when
//! they fail, from their intact registers at exit). Kernels whose BTF lacks `pt_regs` get
//! per-syscall entry/exit tracepoints and the stash for every call. Record layouts live in
//! `lanner_formats::wire`; which syscalls are traced, and where their path arguments are, comes
//! from the `SYSCALL_DESC` map the loader fills, so this code is architecture-neutral.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::BPF_RB_NO_WAKEUP,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        generated::{
            bpf_get_current_cgroup_id, bpf_get_current_task, bpf_get_current_task_btf, bpf_ktime_get_boot_ns,
            bpf_probe_read_kernel, bpf_probe_read_kernel_str, bpf_probe_read_user, bpf_probe_read_user_str,
            bpf_ringbuf_output, bpf_task_pt_regs,
        },
    },
    macros::{btf_tracepoint, map, tracepoint},
    maps::{Array, LruHashMap, PerCpuArray, RingBuf},
    programs::{BtfTracePointContext, TracePointContext},
    EbpfContext,
};
use lanner_formats::wire::{
    desc, kernel_offsets as so, task_info as ti, RecordHeader, RecordKind, SockInfo, TaskInfo, COMPAT_FIRST_ARG_ONLY,
    COMPAT_NR_ENTRIES, COMPAT_SOCKETCALL, COUNTER_COMPAT, COUNTER_COMPAT_RECORDED, COUNTER_DROPS, COUNTER_ENTRIES,
    COUNTER_UNPAIRED, HEADER_LEN, MAX_ARG, MAX_ARGS, MAX_BLOB, MAX_SOCKADDR, SCRATCH_LEN, SOCKETCALL_ENTRIES,
    SOCK_INFO_LEN, SYSCALL_DESC_ENTRIES, TASK_INFO_LEN,
};

/// Thread-group id of the capture process itself; its syscalls are not recorded.
#[no_mangle]
static OWN_TGID: u32 = 0;

/// Offset of `child_pid` in the `sched_process_fork` record (read from tracefs by the loader).
#[no_mangle]
static FORK_CHILD_PID_OFFSET: u32 = 20;

/// Native numbers of clone, clone3, fork and vfork (-1 where the architecture lacks one).
#[no_mangle]
static CLONE_NRS: [i32; 4] = [-1; 4];

/// Native number of execve (what a successful exec's registers say it was).
#[no_mangle]
static EXECVE_NR: i32 = -1;

/// 1 when the kernel has `bpf_task_pt_regs` (5.15+): the fork program reads clone flags with it.
#[no_mangle]
static HAS_TASK_PT_REGS: u32 = 0;

/// Kernel struct member offsets from BTF (see `lanner_formats::wire::kernel_offsets`); all zero
/// when unknown, and then sockets are not described.
#[no_mangle]
static KERNEL_OFFSETS: [u32; so::COUNT] = [0; so::COUNT];

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const EINPROGRESS: i64 = 115;
const F_DUPFD: u64 = 0;
const F_DUPFD_CLOEXEC: u64 = 1030;

#[repr(C)]
#[derive(Clone, Copy)]
struct Stash {
    nr: u64,
    args: [u64; 6],
}

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(32 << 20, 0);

#[map]
static STASH: LruHashMap<u32, Stash> = LruHashMap::with_max_entries(16384, 0);

#[map]
static SCRATCH: PerCpuArray<[u8; SCRATCH_LEN]> = PerCpuArray::with_max_entries(1, 0);

#[map]
static SYSCALL_DESC: Array<u32> = Array::with_max_entries(SYSCALL_DESC_ENTRIES, 0);

#[map]
static COMPAT_NR: Array<u32> = Array::with_max_entries(COMPAT_NR_ENTRIES, 0);

#[map]
static SOCKETCALL: Array<u32> = Array::with_max_entries(SOCKETCALL_ENTRIES, 0);

#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_ENTRIES, 0);

#[inline(always)]
fn own_tgid() -> u32 {
    // SAFETY: a plain read of a global the loader sets before the program is loaded.
    unsafe { core::ptr::read_volatile(&OWN_TGID) }
}

#[inline(always)]
fn bump(counter: u32) {
    if let Some(p) = COUNTERS.get_ptr_mut(counter) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *p += 1 };
    }
}

#[inline(always)]
fn ctx_read<T: Copy>(ctx: &TracePointContext, off: usize) -> T {
    // SAFETY: tracepoint context reads inside the record layout are checked by the verifier.
    unsafe { core::ptr::read_unaligned((ctx.as_ptr() as *const u8).add(off) as *const T) }
}

/// The thread a program runs for: its task (a BTF pointer) and `pid_tgid`.
#[derive(Clone, Copy)]
struct Current {
    task: *const u8,
    pid_tgid: u64,
}

/// The current thread, or `None` for capture's own threads (never recorded).
#[inline(always)]
fn current() -> Option<Current> {
    // SAFETY: returns the current task as a BTF pointer; only read through `btf_load`.
    let task = unsafe { bpf_get_current_task_btf() } as *const u8;
    let pid_tgid = match kernel_off(so::TASK_PID) {
        0 => bpf_get_current_pid_tgid(),
        off => {
            let tgid = btf_load::<i32>(task, kernel_off(so::TASK_TGID)) as u32 as u64;
            (tgid << 32) | btf_load::<i32>(task, off) as u32 as u64
        }
    };
    ((pid_tgid >> 32) as u32 != own_tgid()).then_some(Current { task, pid_tgid })
}

/// The thread's uid (low half) and gid (high half), as `bpf_get_current_uid_gid()`.
#[inline(always)]
fn uid_gid(cur: &Current) -> u64 {
    match kernel_off(so::TASK_CRED) {
        0 => bpf_get_current_uid_gid(),
        off => {
            let cred: *const u8 = btf_load(cur.task, off);
            let gid = btf_load::<u32>(cred, kernel_off(so::CRED_GID)) as u64;
            (gid << 32) | btf_load::<u32>(cred, kernel_off(so::CRED_UID)) as u64
        }
    }
}

/// The thread's cgroup v2 id, as `bpf_get_current_cgroup_id()`.
#[inline(always)]
fn cgroup_id(cur: &Current) -> u64 {
    match kernel_off(so::TASK_CGROUPS) {
        // SAFETY: a helper without arguments.
        0 => unsafe { bpf_get_current_cgroup_id() },
        off => {
            let css_set: *const u8 = btf_load(cur.task, off);
            let cgroup: *const u8 = btf_load(css_set, kernel_off(so::CSS_SET_DFL_CGRP));
            let kn: *const u8 = btf_load(cgroup, kernel_off(so::CGROUP_KN));
            btf_load(kn, kernel_off(so::KERNFS_NODE_ID))
        }
    }
}

#[inline(always)]
fn fill_header(buf: *mut u8, kind: RecordKind, nr: u32, cur: &Current, ret: i64, args: &[u64; 6]) {
    let h = buf as *mut RecordHeader;
    let comm = current_comm(cur);
    // SAFETY: `buf` points at a scratch buffer of SCRATCH_LEN > HEADER_LEN bytes.
    unsafe {
        (*h).kind = kind as u16;
        (*h).blob_lens = [0, 0];
        (*h)._pad = 0;
        (*h).nr = nr;
        (*h)._pad2 = 0;
        (*h).ts_boot_ns = bpf_ktime_get_boot_ns();
        (*h).pid_tgid = cur.pid_tgid;
        (*h).uid_gid = uid_gid(cur);
        (*h).ret = ret;
        (*h).args = *args;
        (*h).comm = comm;
        (*h).cgroup_id = cgroup_id(cur);
        (*h).tty = 0;
        (*h).loginuid = u32::MAX;
    }
}

/// The current thread's `comm`: two loads from the task when BTF gave its offset.
#[inline(always)]
fn current_comm(cur: &Current) -> [u8; 16] {
    match kernel_off(so::TASK_COMM) {
        0 => bpf_get_current_comm().unwrap_or([0u8; 16]),
        off => {
            let words: [u64; 2] = [btf_load(cur.task, off), btf_load(cur.task, off + 8)];
            // SAFETY: two u64 are 16 plain bytes.
            unsafe { core::mem::transmute::<[u64; 2], [u8; 16]>(words) }
        }
    }
}

/// Fills the header's controlling terminal (as `tty_nr`) and login uid from the current task.
#[inline(always)]
fn set_identity(buf: *mut u8) {
    if kernel_off(so::TASK_SIGNAL) == 0 {
        return;
    }
    // SAFETY: the current task pointer is only used as an address for probe reads.
    let task = unsafe { bpf_get_current_task() };
    let loginuid: u32 = match kernel_off(so::TASK_LOGINUID) {
        0 => u32::MAX,
        off => kread(task + off).unwrap_or(u32::MAX),
    };
    let mut tty_nr = 0u32;
    if let Some(signal) = kread::<u64>(task + kernel_off(so::TASK_SIGNAL)) {
        if let Some(tty) = kread::<u64>(signal + kernel_off(so::SIGNAL_TTY)).filter(|&t| t != 0) {
            let index: i32 = kread(tty + kernel_off(so::TTY_INDEX)).unwrap_or(0);
            let driver: u64 = kread(tty + kernel_off(so::TTY_DRIVER)).unwrap_or(0);
            let major: i32 = kread(driver + kernel_off(so::DRIVER_MAJOR)).unwrap_or(0);
            let start: i32 = kread(driver + kernel_off(so::DRIVER_MINOR_START)).unwrap_or(0);
            let minor = (start + index) as u32;
            // new_encode_dev(), as /proc/PID/stat prints tty_nr.
            tty_nr = (minor & 0xff) | ((major as u32 & 0xfff) << 8) | ((minor & !0xff) << 12);
        }
    }
    let h = buf as *mut RecordHeader;
    // SAFETY: header lies inside the scratch buffer.
    unsafe {
        (*h).tty = tty_nr;
        (*h).loginuid = loginuid;
    }
}

/// Copies a user string to `buf + off` (at most `max` bytes incl. NUL); returns the length copied.
#[inline(always)]
fn read_user_str(buf: *mut u8, off: usize, max: u32, src: u64) -> usize {
    if src == 0 {
        return 0;
    }
    // The mask keeps the destination provably inside the scratch buffer for the verifier.
    let off = off & (2 * MAX_BLOB - 1);
    // SAFETY: off + max <= 2 * MAX_BLOB + MAX_BLOB < SCRATCH_LEN.
    let n = unsafe { bpf_probe_read_user_str(buf.add(off) as *mut _, max, src as *const _) };
    if n <= 0 {
        0
    } else {
        (n as usize) & (2 * MAX_BLOB - 1)
    }
}

#[inline(always)]
fn emit(buf: *mut u8, l1: usize, l2: usize) {
    let h = buf as *mut RecordHeader;
    // SAFETY: header lies inside the scratch buffer.
    unsafe { (*h).blob_lens = [l1 as u16, l2 as u16] };
    let len = ((HEADER_LEN + l1 + l2) & (SCRATCH_LEN - 1)) as u64;
    // No wakeup: a wakeup is an interrupt (a VM exit under virtualisation), and the reader
    // polls the ring on a short timer anyway.
    // SAFETY: `len` is bounded by the scratch buffer size.
    let r = unsafe { bpf_ringbuf_output(&EVENTS as *const _ as *mut _, buf as *mut _, len, BPF_RB_NO_WAKEUP as u64) };
    if r != 0 {
        bump(COUNTER_DROPS);
    }
}

#[inline(always)]
fn scratch() -> Option<*mut u8> {
    SCRATCH.get_ptr_mut(0).map(|p| p as *mut u8)
}

/// Entry of every traced syscall: stash the arguments; exec-like calls also emit their argv now,
/// because a successful exec replaces the memory those pointers refer to.
#[tracepoint]
pub fn lanner_sys_enter(ctx: TracePointContext) -> u32 {
    let Some(cur) = current() else { return 0 };
    let nr: i32 = ctx_read(&ctx, 8);
    let d = match SYSCALL_DESC.get(nr as u32) {
        Some(d) if *d & desc::TRACED != 0 => *d,
        _ => return 0,
    };
    let mut st = Stash { nr: nr as u64, args: [0; 6] };
    // One probe read for all six slots: direct context reads past a tracepoint's last argument
    // would make attaching to syscalls with fewer arguments fail (max_ctx_offset check).
    // SAFETY: reads 48 bytes of kernel memory following the record header into a stack array.
    unsafe {
        bpf_probe_read_kernel(st.args.as_mut_ptr() as *mut _, 48, (ctx.as_ptr() as *const u8).add(16) as *const _)
    };
    let _ = STASH.insert(&(cur.pid_tgid as u32), &st, 0);
    if d & desc::EXEC != 0 {
        emit_exec_args(nr as u32, d, &cur, &st.args, 8);
    }
    0
}

/// Emits the filename and argv of exec-like call `nr` from user memory; argv is an array of
/// `ptr_size`-byte pointers (4 for a 32-bit call).
#[inline(always)]
fn emit_exec_args(nr: u32, d: u32, cur: &Current, args: &[u64; 6], ptr_size: u32) {
    let Some(buf) = scratch() else { return };
    fill_header(buf, RecordKind::ExecArgs, nr, cur, 0, args);
    let filename = match desc::path_a(d) {
        Some(i) if i < 6 => args[i],
        _ => 0,
    };
    let l1 = read_user_str(buf, HEADER_LEN, MAX_BLOB as u32, filename);
    let argv = match desc::argv(d) {
        Some(i) if i < 6 => args[i],
        _ => 0,
    };
    let base = HEADER_LEN + l1;
    let mut total = 0usize;
    if argv != 0 {
        for i in 0..MAX_ARGS {
            if total >= MAX_BLOB {
                break;
            }
            let mut p: u64 = 0;
            // SAFETY: reads one pointer (its low bytes, little-endian) from user memory into a
            // stack slot.
            let r = unsafe {
                bpf_probe_read_user(
                    &mut p as *mut u64 as *mut _,
                    ptr_size,
                    (argv + (i as u64) * ptr_size as u64) as *const _,
                )
            };
            if r != 0 || p == 0 {
                break;
            }
            let off = (base & (2 * MAX_BLOB - 1)) + (total & (MAX_BLOB - 1));
            let n = read_user_str(buf, off, MAX_ARG as u32, p);
            if n == 0 {
                break;
            }
            total += n;
        }
    }
    emit(buf, l1, total & (2 * MAX_BLOB - 1));
}

/// Exit of every traced syscall when BTF lacks `pt_regs` (one tracepoint per syscall): the
/// arguments come from the entry program's stash.
#[tracepoint]
pub fn lanner_sys_exit(ctx: TracePointContext) -> u32 {
    let Some(cur) = current() else { return 0 };
    let nr: i32 = ctx_read(&ctx, 8);
    let ret: i64 = ctx_read(&ctx, 16);
    match traced(nr) {
        Some(d) => record_exit(&cur, d, ret, stashed_call(cur.pid_tgid as u32, nr, d)),
        None => 0,
    }
}

/// `raw_syscalls:sys_exit` as a BTF tracepoint, every syscall's exit in one program: the
/// arguments are read back from the saved user registers; only exec-like calls, whose registers
/// a successful exec resets, go through the entry program's stash. The task and the registers
/// are BTF-typed kernel pointers, so their members are plain loads at offsets the verifier
/// knows from the read-only `KERNEL_OFFSETS`.
#[btf_tracepoint(function = "sys_exit")]
pub fn lanner_raw_sys_exit(ctx: BtfTracePointContext) -> i32 {
    let Some(cur) = current() else { return 0 };
    let regs: *const u8 = ctx.arg(0);
    let ret: i64 = ctx.arg(1);
    let raw_nr = btf_load::<u64>(regs, kernel_off(so::REGS_NR)) as u32;
    if in_compat_syscall(cur.task) {
        return compat_exit(&cur, regs, raw_nr, ret);
    }
    let nr = raw_nr as i32;
    let Some(d) = traced(nr) else { return 0 };
    let call = if d & desc::EXEC != 0 {
        stashed_call(cur.pid_tgid as u32, nr, d)
    } else {
        Some((nr, register_args(regs, so::REGS_ARG0)))
    };
    record_exit(&cur, d, ret, call) as i32
}

/// The exit of a 32-bit syscall, which has its own numbers and argument registers: recorded as
/// its x86_64 twin (a `socketcall` as the call it multiplexes). Its exec-like calls are seen by no
/// entry tracepoint: a successful one is described by the exec program, a failed one here.
#[inline(always)]
fn compat_exit(cur: &Current, regs: *const u8, raw_nr: u32, ret: i64) -> i32 {
    // The kernel reads only the low 32 bits of each ia32 argument register.
    let mut args = register_args(regs, so::REGS_COMPAT_ARG0).map(|a| a & 0xffff_ffff);
    let nr = match COMPAT_NR.get(raw_nr) {
        Some(&COMPAT_SOCKETCALL) => match socketcall(&mut args) {
            Some(nr) => nr,
            None => return 0,
        },
        Some(&v) if v != 0 => {
            if v & COMPAT_FIRST_ARG_ONLY != 0 {
                args = [args[0], 0, 0, 0, 0, 0];
            }
            ((v & !COMPAT_FIRST_ARG_ONLY) - 1) as i32
        }
        _ => return 0,
    };
    let Some(d) = traced(nr) else { return 0 };
    let call = if d & desc::EXEC == 0 {
        Some((nr, args))
    } else {
        // A native exec of a 32-bit program also returns as a 32-bit execve: its entry stashed it.
        stashed_call(cur.pid_tgid as u32, nr, d).or_else(|| {
            (ret != 0).then(|| {
                emit_exec_args(nr as u32, d, cur, &args, 4);
                (nr, args)
            })
        })
    };
    if call.is_some() {
        bump(COUNTER_COMPAT_RECORDED);
    }
    record_exit(cur, d, ret, call) as i32
}

/// Decodes a 32-bit `socketcall(call, args)` in place into the call's x86_64 twin and its
/// arguments (read from the 32-bit argument block); `None` when the call is not traced or its
/// block is unreadable (counted).
#[inline(always)]
fn socketcall(args: &mut [u64; 6]) -> Option<i32> {
    let v = *SOCKETCALL.get(args[0] as u32)?;
    if v == 0 {
        return None;
    }
    let mut block = [0u32; 6];
    let len = (v >> 16) * 4;
    // SAFETY: reads at most 24 bytes of user memory into a 24-byte stack array.
    let r = unsafe { bpf_probe_read_user(block.as_mut_ptr() as *mut _, len.min(24), args[1] as *const _) };
    if r != 0 {
        bump(COUNTER_COMPAT);
        return None;
    }
    *args = block.map(|a| a as u64);
    Some(((v & 0xffff) - 1) as i32)
}

/// Loads a `T` at `base + off` from a BTF-typed kernel pointer (the verifier checks the member).
#[inline(always)]
fn btf_load<T: Copy>(base: *const u8, off: u64) -> T {
    // SAFETY: `base` is a BTF pointer and `off` a constant from the read-only offsets; the
    // verifier checks the access against the type and faults read as zero.
    unsafe { core::ptr::read_volatile(base.add(off as usize) as *const T) }
}

/// True in a 32-bit (x86 `TS_COMPAT`) syscall of a 64-bit kernel.
#[inline(always)]
fn in_compat_syscall(task: *const u8) -> bool {
    const TS_COMPAT: u32 = 0x0002;
    match kernel_off(so::TASK_TI_STATUS) {
        0 => false,
        off => btf_load::<u32>(task, off) & TS_COMPAT != 0,
    }
}

/// The descriptor of syscall `nr` when it is traced.
#[inline(always)]
fn traced(nr: i32) -> Option<u32> {
    match SYSCALL_DESC.get(nr as u32) {
        Some(d) if *d & desc::TRACED != 0 => Some(*d),
        _ => None,
    }
}

/// Emits the record of completed syscall `call` (its number and arguments): result, arguments and
/// path strings. `d` describes the call (for an exec, either exec-like call).
#[inline(always)]
fn record_exit(cur: &Current, d: u32, ret: i64, call: Option<(i32, [u64; 6])>) -> u32 {
    let Some((nr, mut args)) = call else {
        bump(COUNTER_UNPAIRED);
        return 0;
    };
    if d & desc::FCNTL_DUP != 0 && args[1] != F_DUPFD && args[1] != F_DUPFD_CLOEXEC {
        return 0;
    }
    let Some(buf) = scratch() else { return 0 };
    let (mut l1, mut l2) = (0usize, 0usize);
    if d & desc::EXEC == 0 {
        if let Some(i) = desc::path_a(d) {
            if i < 6 {
                l1 = read_user_str(buf, HEADER_LEN, MAX_BLOB as u32, args[i]);
            }
        }
        if let Some(j) = desc::path_b(d) {
            if j < 6 {
                l2 = read_user_str(buf, HEADER_LEN + l1, MAX_BLOB as u32, args[j]);
            }
        }
        if d & desc::OPEN_HOW != 0 && args[2] != 0 {
            let mut how = [0u64; 2];
            // SAFETY: reads `struct open_how { u64 flags; u64 mode; ... }` into a stack array.
            let r = unsafe { bpf_probe_read_user(how.as_mut_ptr() as *mut _, 16, args[2] as *const _) };
            if r == 0 {
                args[2] = how[0];
                args[3] = how[1];
            }
        }
    }
    if let Some(i) = desc::sockaddr(d) {
        // The address a connect or bind asked for is kept even when the call failed; accept
        // fills its buffer only on success.
        if i < 6 && args[i] != 0 && (ret >= 0 || d & desc::SOCK_RET == 0) {
            l1 = read_sockaddr(buf, args[i]);
        }
    }
    // A call recorded only when it names an address (a sendto without one is not).
    if d & desc::ADDRESSED != 0 && l1 == 0 {
        return 0;
    }
    if d & (desc::SOCK_ARG0 | desc::SOCK_RET) != 0 && (ret >= 0 || ret == -EINPROGRESS) {
        let fd = if d & desc::SOCK_RET != 0 { ret as u64 } else { args[0] };
        l2 = write_sock_info(buf, HEADER_LEN + l1, fd);
    }
    fill_header(buf, RecordKind::SyscallExit, nr as u32, cur, ret, &args);
    if d & desc::EXEC != 0 {
        set_identity(buf);
    }
    emit(buf, l1, l2);
    0
}

/// The syscall's six arguments from the saved user registers at `regs`: the registers whose
/// offsets (from BTF) start at `KERNEL_OFFSETS[first]` (native or ia32 order).
#[inline(always)]
fn register_args(regs: *const u8, first: usize) -> [u64; 6] {
    let mut a = [0u64; 6];
    for (i, slot) in a.iter_mut().enumerate() {
        *slot = btf_load(regs, kernel_off(first + i));
    }
    a
}

/// The call the entry program stashed for thread `tid`'s syscall `nr` (removed here): its number
/// and arguments. A successful exec says it was `execve` whatever it was (x86 resets the number),
/// so for an exec-like `nr` any exec-like stash pairs, and its number is the true one.
#[inline(always)]
fn stashed_call(tid: u32, nr: i32, d: u32) -> Option<(i32, [u64; 6])> {
    // SAFETY: the value is copied out before any other map operation.
    let st = unsafe { STASH.get(&tid) }.copied()?;
    let _ = STASH.remove(&tid);
    let pairs =
        st.nr == nr as u64 || (d & desc::EXEC != 0 && traced(st.nr as i32).is_some_and(|s| s & desc::EXEC != 0));
    pairs.then_some((st.nr as i32, st.args))
}

/// Copies a user `struct sockaddr` into blob 0, followed by a NUL; returns the blob length.
#[inline(always)]
fn read_sockaddr(buf: *mut u8, src: u64) -> usize {
    // SAFETY: HEADER_LEN + MAX_SOCKADDR + 1 < SCRATCH_LEN; the user buffer may be shorter than a
    // sockaddr_un near the end of a page, so smaller sizes are tried in turn.
    unsafe {
        let dst = buf.add(HEADER_LEN);
        for n in [MAX_SOCKADDR, 28, 16] {
            if bpf_probe_read_user(dst as *mut _, n as u32, src as *const _) == 0 {
                *dst.add(n) = 0;
                return n + 1;
            }
        }
    }
    0
}

#[inline(always)]
fn kernel_off(i: usize) -> u64 {
    // SAFETY: plain read of a loader-set global array, index checked by the caller's constant.
    unsafe { core::ptr::read_volatile(&KERNEL_OFFSETS[i]) as u64 }
}

#[inline(always)]
fn kread<T: Copy>(addr: u64) -> Option<T> {
    if addr == 0 {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel checks the address; a fault only returns an error.
    unsafe { aya_ebpf::helpers::bpf_probe_read_kernel(addr as *const T).ok() }
}

/// Describes the socket behind the current task's `fd`: current->files->fdt->fd[fd]
/// ->private_data (struct socket)->sk, with member offsets from BTF.
#[inline(always)]
fn sock_info(fd: u64) -> Option<SockInfo> {
    if kernel_off(so::TASK_FILES) == 0 {
        return None;
    }
    // SAFETY: returns the current task pointer; only used as an address for probe reads.
    let task = unsafe { bpf_get_current_task() };
    let files: u64 = kread(task + kernel_off(so::TASK_FILES))?;
    let fdt: u64 = kread(files + kernel_off(so::FILES_FDT))?;
    let max: u32 = kread(fdt + kernel_off(so::FDTABLE_MAX_FDS))?;
    if fd >= max as u64 {
        return None;
    }
    let arr: u64 = kread(fdt + kernel_off(so::FDTABLE_FD))?;
    let file: u64 = kread(arr + fd * 8)?;
    let sock: u64 = kread(file + kernel_off(so::FILE_PRIVATE_DATA))?;
    let sock_type: u16 = kread(sock + kernel_off(so::SOCKET_TYPE))?;
    let sk: u64 = kread(sock + kernel_off(so::SOCKET_SK))?;
    let family: u16 = kread(sk + kernel_off(so::SK_FAMILY))?;
    let mut info = SockInfo { family, sock_type, ..SockInfo::default() };
    info.sport = kread(sk + kernel_off(so::SK_NUM)).unwrap_or(0);
    info.dport = u16::from_be(kread(sk + kernel_off(so::SK_DPORT)).unwrap_or(0));
    if family == AF_INET {
        let s: [u8; 4] = kread(sk + kernel_off(so::SK_RCV_SADDR)).unwrap_or([0; 4]);
        let d: [u8; 4] = kread(sk + kernel_off(so::SK_DADDR)).unwrap_or([0; 4]);
        info.saddr[..4].copy_from_slice(&s);
        info.daddr[..4].copy_from_slice(&d);
    } else if family == AF_INET6 {
        info.saddr = kread(sk + kernel_off(so::SK_V6_RCV_SADDR)).unwrap_or([0; 16]);
        info.daddr = kread(sk + kernel_off(so::SK_V6_DADDR)).unwrap_or([0; 16]);
    }
    Some(info)
}

/// Writes the [`SockInfo`] of `fd` at `buf + off`, followed by a NUL; returns the blob length.
#[inline(always)]
fn write_sock_info(buf: *mut u8, off: usize, fd: u64) -> usize {
    let Some(info) = sock_info(fd) else { return 0 };
    // Keep the destination provably inside the scratch buffer.
    let off = off & 255;
    // SAFETY: off < 256 and SOCK_INFO_LEN + 1 bytes fit the scratch buffer.
    unsafe {
        core::ptr::write_unaligned(buf.add(off) as *mut SockInfo, info);
        *buf.add(off + SOCK_INFO_LEN) = 0;
    }
    SOCK_INFO_LEN + 1
}

/// `sched_process_fork`: the parent (current) created thread or process `child_pid`.
#[tracepoint]
pub fn lanner_fork(ctx: TracePointContext) -> u32 {
    let Some(cur) = current() else { return 0 };
    // SAFETY: plain read of a loader-set global.
    let off = unsafe { core::ptr::read_volatile(&FORK_CHILD_PID_OFFSET) } as usize & 0xff;
    let child: i32 = match unsafe { ctx.read_at::<i32>(off) } {
        Ok(c) => c,
        Err(_) => return 0,
    };
    let (flags, known) = match clone_flags(cur.task) {
        Some(f) => (f, 1),
        None => (0, 0),
    };
    let Some(buf) = scratch() else { return 0 };
    fill_header(buf, RecordKind::Fork, 0, &cur, 0, &[child as u64, flags, known, 0, 0, 0]);
    emit(buf, 0, 0);
    0
}

/// The clone flags of the fork the current task is in, from its syscall registers: clone's
/// first argument, clone3's `clone_args.flags`, or what fork and vfork imply.
#[inline(always)]
fn clone_flags(task: *const u8) -> Option<u64> {
    const SIGCHLD: u64 = 17;
    const CLONE_VM: u64 = 0x100;
    const CLONE_VFORK: u64 = 0x4000;
    // SAFETY: plain read of a loader-set global.
    if kernel_off(so::REGS_NR) == 0 || unsafe { core::ptr::read_volatile(&HAS_TASK_PT_REGS) } == 0 {
        return None;
    }
    // SAFETY: both helpers take and return BTF pointers the verifier tracks.
    let regs = unsafe { bpf_task_pt_regs(task as *mut _) } as *const u8;
    let nr = btf_load::<u64>(regs, kernel_off(so::REGS_NR)) as i32;
    // SAFETY: plain read of a loader-set global.
    let nrs = unsafe { core::ptr::read_volatile(&CLONE_NRS) };
    if nr < 0 {
        None
    } else if nr == nrs[0] {
        Some(register_args(regs, so::REGS_ARG0)[0])
    } else if nr == nrs[1] {
        let args = register_args(regs, so::REGS_ARG0);
        let mut flags = 0u64;
        // SAFETY: reads the first member of the user's `struct clone_args` into a stack slot.
        let r = unsafe { bpf_probe_read_user(&mut flags as *mut u64 as *mut _, 8, args[0] as *const _) };
        (r == 0).then_some(flags)
    } else if nr == nrs[2] {
        Some(SIGCHLD)
    } else if nr == nrs[3] {
        Some(CLONE_VM | CLONE_VFORK | SIGCHLD)
    } else {
        None
    }
}

/// `struct upid` (`int nr; struct pid_namespace *ns;`): one per pid namespace level.
const UPID_SIZE: u64 = 16;
/// `enum pid_type` indices into `signal_struct.pids`.
const PIDTYPE_PGID: u64 = 2;
const PIDTYPE_SID: u64 = 3;
/// `OVERLAYFS_SUPER_MAGIC`.
const OVERLAYFS_MAGIC: u64 = 0x794c_7630;

/// `pid`'s number in the namespace `ns` at depth `level` (0 when it has none there), as the
/// kernel's `pid_nr_ns()` finds it.
#[inline(always)]
fn pid_nr_at(pid: u64, level: u32, ns: u64) -> u32 {
    let Some(plevel) = kread::<u32>(pid + kernel_off(so::PID_LEVEL)) else { return 0 };
    if level > plevel {
        return 0;
    }
    let upid = pid + kernel_off(so::PID_NUMBERS) + (level as u64 & 63) * UPID_SIZE;
    match kread::<u64>(upid + 8) {
        Some(n) if n == ns => kread::<i32>(upid).unwrap_or(0) as u32,
        _ => 0,
    }
}

/// Fills `out` with what [`TaskInfo`] describes of `task` (a kernel address): its capability
/// sets, its ids in its own pid namespace, and its executable's inode. Each part is read only
/// when BTF gave its offsets, and `flags` says which were.
#[inline(always)]
fn task_info(task: u64, out: *mut TaskInfo) {
    let mut i = TaskInfo::default();
    if kernel_off(so::TASK_CRED) != 0 && kernel_off(so::CRED_CAP_EFFECTIVE) != 0 {
        if let Some(cred) = kread::<u64>(task + kernel_off(so::TASK_CRED)) {
            i.cap_inheritable = kread(cred + kernel_off(so::CRED_CAP_INHERITABLE)).unwrap_or(0);
            i.cap_permitted = kread(cred + kernel_off(so::CRED_CAP_PERMITTED)).unwrap_or(0);
            i.cap_effective = kread(cred + kernel_off(so::CRED_CAP_EFFECTIVE)).unwrap_or(0);
            i.flags |= ti::CAPS;
        }
    }
    if kernel_off(so::TASK_THREAD_PID) != 0 && kernel_off(so::TASK_SIGNAL) != 0 {
        let pid: u64 = kread(task + kernel_off(so::TASK_THREAD_PID)).unwrap_or(0);
        let level: u32 = kread(pid + kernel_off(so::PID_LEVEL)).unwrap_or(0);
        let ns: u64 = kread(pid + kernel_off(so::PID_NUMBERS) + (level as u64 & 63) * UPID_SIZE + 8).unwrap_or(0);
        let signal: u64 = kread(task + kernel_off(so::TASK_SIGNAL)).unwrap_or(0);
        let pids = signal + kernel_off(so::SIGNAL_PIDS);
        if pid != 0 && signal != 0 {
            i.vpid = pid_nr_at(pid, level, ns);
            i.vpgid = pid_nr_at(kread(pids + PIDTYPE_PGID * 8).unwrap_or(0), level, ns);
            i.vsid = pid_nr_at(kread(pids + PIDTYPE_SID * 8).unwrap_or(0), level, ns);
            i.flags |= ti::IDS;
        }
    }
    if kernel_off(so::MM_EXE_FILE) != 0 && kernel_off(so::TASK_MM) != 0 {
        let mm: u64 = kread(task + kernel_off(so::TASK_MM)).unwrap_or(0);
        let file: u64 = kread(mm + kernel_off(so::MM_EXE_FILE)).unwrap_or(0);
        if let Some(inode) = kread::<u64>(file + kernel_off(so::FILE_INODE)).filter(|&x| x != 0) {
            let time = |sec: usize, nsec: usize| {
                let s: i64 = kread(inode + kernel_off(sec)).unwrap_or(0);
                // Masked: 6.13+ keeps a flag (I_CTIME_QUERIED) in bit 31 of i_ctime_nsec.
                let n: u32 = kread::<u32>(inode + kernel_off(nsec)).unwrap_or(0) & 0x3fff_ffff;
                (s.max(0) as u64).wrapping_mul(1_000_000_000).wrapping_add(n as u64)
            };
            i.exe_ino = kread(inode + kernel_off(so::INODE_INO)).unwrap_or(0);
            i.exe_ctime_ns = time(so::INODE_CTIME_SEC, so::INODE_CTIME_NSEC);
            i.exe_mtime_ns = time(so::INODE_MTIME_SEC, so::INODE_MTIME_NSEC);
            i.flags |= ti::EXE;
            let sb: u64 = kread(inode + kernel_off(so::INODE_SB)).unwrap_or(0);
            let magic: u64 = kread(sb + kernel_off(so::SB_MAGIC)).unwrap_or(0);
            if magic == OVERLAYFS_MAGIC && kernel_off(so::INODE_SIZE) != 0 {
                // struct ovl_inode embeds the VFS inode and keeps its upper dentry right after
                // it: set when the file is in the upper (container's writable) layer.
                let upper: u64 = kread(inode + kernel_off(so::INODE_SIZE)).unwrap_or(0);
                i.flags |= ti::EXE_OVERLAY | if upper != 0 { ti::EXE_UPPER_LAYER } else { 0 };
            }
        }
    }
    // SAFETY: the caller passes room for a TaskInfo inside the scratch buffer.
    unsafe { core::ptr::write_unaligned(out, i) };
}

/// Emits the `ExecInfo` record of the program the current task has just started: its
/// [`TaskInfo`] and its environment.
#[inline(always)]
fn emit_exec_info(cur: &Current) {
    let Some(buf) = scratch() else { return };
    fill_header(buf, RecordKind::ExecInfo, 0, cur, 0, &[0; 6]);
    // SAFETY: HEADER_LEN + TASK_INFO_LEN + 1 < SCRATCH_LEN.
    task_info(cur.task as u64, unsafe { buf.add(HEADER_LEN) } as *mut TaskInfo);
    // SAFETY: as above.
    unsafe { *buf.add(HEADER_LEN + TASK_INFO_LEN) = 0 };
    let l1 = TASK_INFO_LEN + 1;
    let mut l2 = 0;
    if kernel_off(so::MM_ENV_START) != 0 && kernel_off(so::TASK_MM) != 0 {
        let mm: *const u8 = btf_load(cur.task, kernel_off(so::TASK_MM));
        let start: u64 = btf_load(mm, kernel_off(so::MM_ENV_START));
        let end: u64 = btf_load(mm, kernel_off(so::MM_ENV_END));
        // NUL-separated already; a longer environment is cut at MAX_BLOB - 1 bytes.
        let len = if end > start { (end - start).min(MAX_BLOB as u64 - 1) as usize } else { 0 };
        if len > 0 {
            // SAFETY: HEADER_LEN + l1 + MAX_BLOB < SCRATCH_LEN.
            let r = unsafe {
                bpf_probe_read_user(
                    buf.add(HEADER_LEN + l1) as *mut _,
                    (len & (MAX_BLOB - 1)) as u32,
                    start as *const _,
                )
            };
            if r == 0 {
                l2 = len & (MAX_BLOB - 1);
            }
        }
    }
    emit(buf, l1, l2);
}

/// `sched_process_exec`: the current thread runs a new program. A native exec's entry has stashed
/// and emitted its call; a thread other than the leader takes the leader's id here, and the
/// stash follows it. Every exec gets its `ExecInfo` record here (see [`emit_exec_info`]). A
/// 32-bit exec, which no entry saw, gets its record of arguments now: the
/// filename the exec was given, and the argv the kernel copied into the new program's memory.
#[btf_tracepoint(function = "sched_process_exec")]
pub fn lanner_exec(ctx: BtfTracePointContext) -> i32 {
    let Some(cur) = current() else { return 0 };
    let old_tid: i32 = ctx.arg(1);
    let bprm: *const u8 = ctx.arg(2);
    let tid = cur.pid_tgid as u32;
    emit_exec_info(&cur);
    // SAFETY: the value is copied out before any other map operation.
    if let Some(st) = unsafe { STASH.get(&(old_tid as u32)) }.copied() {
        if old_tid as u32 != tid {
            let _ = STASH.remove(&(old_tid as u32));
            let _ = STASH.insert(&tid, &st, 0);
        }
        return 0;
    }
    if kernel_off(so::BPRM_FILENAME) == 0 {
        return 0;
    }
    // SAFETY: plain read of a loader-set global.
    let execve = unsafe { core::ptr::read_volatile(&EXECVE_NR) };
    let Some(buf) = scratch() else { return 0 };
    let args = [0u64; 6];
    fill_header(buf, RecordKind::ExecArgs, execve as u32, &cur, 0, &args);
    let filename: *const u8 = btf_load(bprm, kernel_off(so::BPRM_FILENAME));
    // SAFETY: HEADER_LEN + MAX_BLOB < SCRATCH_LEN; a bad address only returns an error.
    let n = unsafe { bpf_probe_read_kernel_str(buf.add(HEADER_LEN) as *mut _, MAX_BLOB as u32, filename as *const _) };
    let l1 = if n > 0 { n as usize & (MAX_BLOB * 2 - 1) } else { 0 };
    let mm: *const u8 = btf_load(cur.task, kernel_off(so::TASK_MM));
    let start: u64 = btf_load(mm, kernel_off(so::MM_ARG_START));
    let end: u64 = btf_load(mm, kernel_off(so::MM_ARG_END));
    // The strings are NUL-separated already; a longer argv is cut at MAX_BLOB - 1 bytes.
    let len = if end > start { (end - start).min(MAX_BLOB as u64 - 1) as usize } else { 0 };
    let mut l2 = 0;
    if len > 0 {
        let off = (HEADER_LEN + l1) & (2 * MAX_BLOB - 1);
        // SAFETY: off + len < 3 * MAX_BLOB < SCRATCH_LEN.
        let r =
            unsafe { bpf_probe_read_user(buf.add(off) as *mut _, (len & (MAX_BLOB - 1)) as u32, start as *const _) };
        if r == 0 {
            l2 = len & (MAX_BLOB - 1);
        }
    }
    emit(buf, l1, l2);
    let _ = STASH.insert(&tid, &Stash { nr: execve as u64, args }, 0);
    0
}

/// `sched_process_exit`: the current thread exits.
#[tracepoint]
pub fn lanner_exit(_ctx: TracePointContext) -> u32 {
    let Some(cur) = current() else { return 0 };
    let _ = STASH.remove(&(cur.pid_tgid as u32));
    let Some(buf) = scratch() else { return 0 };
    fill_header(buf, RecordKind::Exit, 0, &cur, 0, &[0; 6]);
    emit(buf, 0, 0);
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
