//! Kernel → user records: the byte layouts the eBPF programs write into the ring buffer.
//!
//! `no_std` and dependency-free so that `bpf/` and `capture/` share one definition.
//! Every record is a [`RecordHeader`] followed by up to two variable-length blobs
//! (`blob_lens[0]` bytes, then `blob_lens[1]` bytes), each NUL-terminated when non-empty.

/// What a ring-buffer record describes.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// A traced syscall returned: `ret` and `args` are valid, blobs hold path arguments.
    SyscallExit = 1,
    /// An exec syscall was entered: blob 0 is the filename, blob 1 the NUL-separated argv.
    ExecArgs = 2,
    /// `sched_process_fork`: `args[0]` is the child's thread id; the header's ids are the parent's;
    /// blob 0, when present, is the child's [`TaskInfo`].
    Fork = 3,
    /// `sched_process_exit`: the thread in the header exited.
    Exit = 4,
    /// `sched_process_exec`: the new program's [`TaskInfo`] in blob 0 and its environment
    /// (NUL-separated `K=v` strings, cut at [`MAX_BLOB`] - 1 bytes) in blob 1. It comes before the
    /// exec's own syscall record.
    ExecInfo = 5,
}

impl RecordKind {
    /// Decodes the on-wire kind value.
    pub fn from_u16(v: u16) -> Option<Self> {
        match v {
            1 => Some(Self::SyscallExit),
            2 => Some(Self::ExecArgs),
            3 => Some(Self::Fork),
            4 => Some(Self::Exit),
            5 => Some(Self::ExecInfo),
            _ => None,
        }
    }
}

/// Fixed part of every record.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RecordHeader {
    /// A [`RecordKind`] value.
    pub kind: u16,
    /// Length of each of the two blobs that follow the header, NUL included.
    pub blob_lens: [u16; 2],
    /// Padding; zero.
    pub _pad: u16,
    /// Architecture syscall number (for syscall records).
    pub nr: u32,
    /// Padding; zero.
    pub _pad2: u32,
    /// `CLOCK_BOOTTIME` nanoseconds when the record was produced.
    pub ts_boot_ns: u64,
    /// `bpf_get_current_pid_tgid()`: tgid in the high half, tid in the low half.
    pub pid_tgid: u64,
    /// `bpf_get_current_uid_gid()`: gid in the high half, uid in the low half.
    pub uid_gid: u64,
    /// Return value of the syscall (syscall records).
    pub ret: i64,
    /// Raw syscall arguments (see [`RecordKind`] for other kinds).
    pub args: [u64; 6],
    /// The thread's `comm` at the time of the record.
    pub comm: [u8; 16],
    /// `bpf_get_current_cgroup_id()`: the thread's cgroup v2 id (0 when unavailable).
    pub cgroup_id: u64,
    /// Controlling terminal as `/proc/PID/stat`'s `tty_nr` (0: none); exec records only.
    pub tty: u32,
    /// Login uid (`u32::MAX`: unset); exec records only.
    pub loginuid: u32,
}

/// Size of [`RecordHeader`] on the wire.
pub const HEADER_LEN: usize = core::mem::size_of::<RecordHeader>();

impl RecordHeader {
    /// The header's bytes as the kernel side writes them (for tests and tools that make records).
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        // SAFETY: RecordHeader is repr(C) plain old data without padding holes (the `_pad` fields
        // fill them), so all HEADER_LEN bytes are initialised.
        unsafe { core::mem::transmute_copy::<RecordHeader, [u8; HEADER_LEN]>(self) }
    }
}

/// Largest single blob (a path, or a packed argv) the kernel side copies.
pub const MAX_BLOB: usize = 4096;

/// Largest single argv element copied for exec records.
pub const MAX_ARG: usize = 1024;

/// Most argv elements copied for exec records.
pub const MAX_ARGS: usize = 32;

/// Size of the per-CPU scratch buffer a record is assembled in (header + two blobs + slack).
pub const SCRATCH_LEN: usize = 16384;

/// Per-syscall descriptor the capture loader writes into the `SYSCALL_DESC` map (indexed by nr).
///
/// Bits 0-2: first path argument index + 1 (0 = none); bits 3-5: second path argument index + 1;
/// bits 6-8: argv argument index + 1 (exec syscalls, read at entry); bit 9: `args[2]` points to a
/// `struct open_how` whose `flags`/`mode` replace `args[2]`/`args[3]`; bits 10-14 and 19: flags
/// below; bit 15: traced; bits 16-18: sockaddr argument index + 1.
pub mod desc {
    /// The syscall is traced at all.
    pub const TRACED: u32 = 1 << 15;
    /// Exec-like: filename and argv are copied at entry into an `ExecArgs` record.
    pub const EXEC: u32 = 1 << 10;
    /// `args[2]` is a `struct open_how *`.
    pub const OPEN_HOW: u32 = 1 << 9;
    /// The first string argument is not a path (copied as is, never resolved).
    pub const RAW_A: u32 = 1 << 11;
    /// The second string argument is not a path (copied as is, never resolved).
    pub const RAW_B: u32 = 1 << 12;
    /// At exit, describe the socket behind fd `args[0]` ([`super::SockInfo`] in blob 1).
    pub const SOCK_ARG0: u32 = 1 << 13;
    /// At exit, describe the socket behind the returned fd ([`super::SockInfo`] in blob 1).
    pub const SOCK_RET: u32 = 1 << 14;
    /// `fcntl`: emit a record only for `F_DUPFD` / `F_DUPFD_CLOEXEC` (the commands that create fds).
    pub const FCNTL_DUP: u32 = 1 << 19;
    /// High-volume syscall (read, write, send/recv): traced only with `--syscalls all`.
    pub const HIGH_VOLUME: u32 = 1 << 20;
    /// With [`HIGH_VOLUME`]: without `--syscalls all`, the call is still traced, but a record is
    /// emitted only when its sockaddr argument is set (a `sendto` to an explicit address).
    pub const ADDRESSED: u32 = 1 << 21;

    /// Whether capture traces a syscall with descriptor `d`: the forensic set by default, or
    /// with `all_syscalls` (`--syscalls all`) every syscall with a descriptor (adding read,
    /// write, send*, recv*). A descriptor of 0 is a type read only from `.scap` captures.
    pub const fn traced(d: u32, all_syscalls: bool) -> bool {
        d != 0 && (all_syscalls || d & (HIGH_VOLUME | ADDRESSED) != HIGH_VOLUME)
    }

    /// Marks argument `i` as a `struct sockaddr *` copied (binary) into blob 0 at exit.
    pub const fn sockaddr_arg(i: u8) -> u32 {
        (i as u32 + 1) << 16
    }

    /// Index of the sockaddr argument, if any.
    pub const fn sockaddr(d: u32) -> Option<usize> {
        match (d >> 16) & 7 {
            0 => None,
            i => Some(i as usize - 1),
        }
    }

    /// Builds a descriptor value.
    pub const fn make(path_a: Option<u8>, path_b: Option<u8>, argv: Option<u8>, flags: u32) -> u32 {
        let a = match path_a {
            Some(i) => i as u32 + 1,
            None => 0,
        };
        let b = match path_b {
            Some(i) => i as u32 + 1,
            None => 0,
        };
        let v = match argv {
            Some(i) => i as u32 + 1,
            None => 0,
        };
        TRACED | a | (b << 3) | (v << 6) | flags
    }

    /// Index of the first path argument, if any.
    pub const fn path_a(d: u32) -> Option<usize> {
        match d & 7 {
            0 => None,
            i => Some(i as usize - 1),
        }
    }

    /// Index of the second path argument, if any.
    pub const fn path_b(d: u32) -> Option<usize> {
        match (d >> 3) & 7 {
            0 => None,
            i => Some(i as usize - 1),
        }
    }

    /// Index of the argv argument, if any.
    pub const fn argv(d: u32) -> Option<usize> {
        match (d >> 6) & 7 {
            0 => None,
            i => Some(i as usize - 1),
        }
    }
}

/// What the kernel side read about a socket (blob 1 of socket syscall records; binary, followed by
/// one NUL byte like every blob). Ports are in host byte order; addresses as stored by the kernel
/// (network order; IPv4 in the first 4 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockInfo {
    /// Address family (`AF_INET`, `AF_INET6`, `AF_UNIX`, ...).
    pub family: u16,
    /// Socket type (`SOCK_STREAM`, `SOCK_DGRAM`, ...).
    pub sock_type: u16,
    /// Local port.
    pub sport: u16,
    /// Remote port.
    pub dport: u16,
    /// Local address.
    pub saddr: [u8; 16],
    /// Remote address.
    pub daddr: [u8; 16],
}

/// Size of [`SockInfo`] on the wire.
pub const SOCK_INFO_LEN: usize = core::mem::size_of::<SockInfo>();

/// What the kernel side read about a task at fork (the child) and at exec (the new program):
/// blob 0 of `Fork` and `ExecInfo` records, binary, followed by one NUL byte like every blob.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskInfo {
    /// `cred.cap_inheritable` (bit N is capability N).
    pub cap_inheritable: u64,
    /// `cred.cap_permitted`.
    pub cap_permitted: u64,
    /// `cred.cap_effective`.
    pub cap_effective: u64,
    /// Inode number of the executable (`mm.exe_file`).
    pub exe_ino: u64,
    /// Its change time, unix ns.
    pub exe_ctime_ns: u64,
    /// Its modification time, unix ns.
    pub exe_mtime_ns: u64,
    /// Process id as the task's own pid namespace numbers it.
    pub vpid: u32,
    /// Process group id, likewise.
    pub vpgid: u32,
    /// Session id, likewise.
    pub vsid: u32,
    /// `task_info` bits: which parts were read, and what was found.
    pub flags: u32,
}

/// [`TaskInfo::flags`] bits.
pub mod task_info {
    /// The capability sets were read.
    pub const CAPS: u32 = 1;
    /// `vpid`, `vpgid` and `vsid` were read.
    pub const IDS: u32 = 2;
    /// The executable's inode and times were read.
    pub const EXE: u32 = 4;
    /// The executable is on overlayfs, and its upper layer holds it (written in the container).
    pub const EXE_UPPER_LAYER: u32 = 8;
    /// The executable is on overlayfs (so [`EXE_UPPER_LAYER`] is meaningful).
    pub const EXE_OVERLAY: u32 = 16;
}

/// Size of [`TaskInfo`] on the wire.
pub const TASK_INFO_LEN: usize = core::mem::size_of::<TaskInfo>();

/// Largest sockaddr copied from user memory (`sizeof(struct sockaddr_un)`).
pub const MAX_SOCKADDR: usize = 110;

/// Kernel struct member offsets the loader reads from BTF and passes in the `KERNEL_OFFSETS`
/// global: indices into that array. Zero entries mean unknown: sockets are then recorded without
/// their addresses, and processes without tty and login uid.
pub mod kernel_offsets {
    /// `task_struct.files`
    pub const TASK_FILES: usize = 0;
    /// `files_struct.fdt`
    pub const FILES_FDT: usize = 1;
    /// `fdtable.fd`
    pub const FDTABLE_FD: usize = 2;
    /// `fdtable.max_fds`
    pub const FDTABLE_MAX_FDS: usize = 3;
    /// `file.private_data`
    pub const FILE_PRIVATE_DATA: usize = 4;
    /// `socket.sk`
    pub const SOCKET_SK: usize = 5;
    /// `socket.type`
    pub const SOCKET_TYPE: usize = 6;
    /// `sock.__sk_common.skc_family`
    pub const SK_FAMILY: usize = 7;
    /// `sock.__sk_common.skc_num` (local port, host order)
    pub const SK_NUM: usize = 8;
    /// `sock.__sk_common.skc_dport` (remote port, network order)
    pub const SK_DPORT: usize = 9;
    /// `sock.__sk_common.skc_rcv_saddr`
    pub const SK_RCV_SADDR: usize = 10;
    /// `sock.__sk_common.skc_daddr`
    pub const SK_DADDR: usize = 11;
    /// `sock.__sk_common.skc_v6_rcv_saddr`
    pub const SK_V6_RCV_SADDR: usize = 12;
    /// `sock.__sk_common.skc_v6_daddr`
    pub const SK_V6_DADDR: usize = 13;
    /// `task_struct.loginuid.val`
    pub const TASK_LOGINUID: usize = 14;
    /// `task_struct.signal`
    pub const TASK_SIGNAL: usize = 15;
    /// `signal_struct.tty`
    pub const SIGNAL_TTY: usize = 16;
    /// `tty_struct.index`
    pub const TTY_INDEX: usize = 17;
    /// `tty_struct.driver`
    pub const TTY_DRIVER: usize = 18;
    /// `tty_driver.major`
    pub const DRIVER_MAJOR: usize = 19;
    /// `tty_driver.minor_start`
    pub const DRIVER_MINOR_START: usize = 20;
    /// `task_struct.comm`, read by every record.
    pub const TASK_COMM: usize = 21;
    /// `pt_regs` member holding syscall argument 0 as seen at syscall exit (x86_64 `di`, arm64
    /// `orig_x0`); arguments 1 to 5 are at `REGS_ARG0 + 1 ..= REGS_ARG0 + 5`.
    pub const REGS_ARG0: usize = 22;
    /// `pt_regs` member holding the syscall number (x86_64 `orig_ax`, arm64 `syscallno`). When
    /// set (never 0), the exit program reads the number and arguments itself and only
    /// exec-like calls need an entry program.
    pub const REGS_NR: usize = 28;
    /// `task_struct.thread_info.status` (x86_64), whose `TS_COMPAT` bit marks a 32-bit syscall;
    /// 0 where the architecture has none.
    pub const TASK_TI_STATUS: usize = 29;
    /// `task_struct.pid` (the thread id).
    pub const TASK_PID: usize = 30;
    /// `task_struct.tgid` (the process id).
    pub const TASK_TGID: usize = 31;
    /// `task_struct.cred`.
    pub const TASK_CRED: usize = 32;
    /// `cred.uid.val`.
    pub const CRED_UID: usize = 33;
    /// `cred.gid.val`.
    pub const CRED_GID: usize = 34;
    /// `task_struct.cgroups`.
    pub const TASK_CGROUPS: usize = 35;
    /// `css_set.dfl_cgrp`.
    pub const CSS_SET_DFL_CGRP: usize = 36;
    /// `cgroup.kn`.
    pub const CGROUP_KN: usize = 37;
    /// `kernfs_node.id`.
    pub const KERNFS_NODE_ID: usize = 38;
    /// `pt_regs` member holding argument 0 of a 32-bit (ia32) syscall (`bx`); arguments 1 to 5
    /// (`cx dx si di bp`) are at `REGS_COMPAT_ARG0 + 1 ..= REGS_COMPAT_ARG0 + 5`.
    pub const REGS_COMPAT_ARG0: usize = 39;
    /// `task_struct.mm`.
    pub const TASK_MM: usize = 45;
    /// `mm_struct.arg_start`: where the program's argv strings start in its memory.
    pub const MM_ARG_START: usize = 46;
    /// `mm_struct.arg_end`.
    pub const MM_ARG_END: usize = 47;
    /// `linux_binprm.filename`: the path an exec was asked to run.
    pub const BPRM_FILENAME: usize = 48;
    /// `task_struct.thread_pid`.
    pub const TASK_THREAD_PID: usize = 52;
    /// `pid.level`: the depth of the task's pid namespace.
    pub const PID_LEVEL: usize = 53;
    /// `pid.numbers`: one `struct upid` (16 bytes, `nr` first) per namespace level.
    pub const PID_NUMBERS: usize = 54;
    /// `signal_struct.pids`: the `struct pid *` of each `enum pid_type` (group 2, session 3).
    pub const SIGNAL_PIDS: usize = 55;
    /// `cred.cap_inheritable`.
    pub const CRED_CAP_INHERITABLE: usize = 56;
    /// `cred.cap_permitted`.
    pub const CRED_CAP_PERMITTED: usize = 57;
    /// `cred.cap_effective`.
    pub const CRED_CAP_EFFECTIVE: usize = 58;
    /// `mm_struct.exe_file`.
    pub const MM_EXE_FILE: usize = 59;
    /// `file.f_inode`.
    pub const FILE_INODE: usize = 60;
    /// `inode.i_ino`.
    pub const INODE_INO: usize = 61;
    /// Seconds of the inode's change time (`i_ctime_sec`, or `tv_sec` of `__i_ctime`/`i_ctime`).
    pub const INODE_CTIME_SEC: usize = 62;
    /// Nanoseconds of the change time (32 bits).
    pub const INODE_CTIME_NSEC: usize = 63;
    /// Seconds of the modification time.
    pub const INODE_MTIME_SEC: usize = 64;
    /// Nanoseconds of the modification time (32 bits).
    pub const INODE_MTIME_NSEC: usize = 65;
    /// `inode.i_sb`.
    pub const INODE_SB: usize = 66;
    /// `super_block.s_magic`.
    pub const SB_MAGIC: usize = 67;
    /// `sizeof(struct inode)`: overlayfs keeps the upper dentry right after its embedded inode.
    pub const INODE_SIZE: usize = 68;
    /// `mm_struct.env_start`.
    pub const MM_ENV_START: usize = 69;
    /// `mm_struct.env_end`.
    pub const MM_ENV_END: usize = 70;
    /// Number of entries.
    pub const COUNT: usize = 71;
}

/// Number of entries of the `COMPAT_NR` array map (ia32 syscall numbers).
pub const COMPAT_NR_ENTRIES: u32 = 512;

/// `COMPAT_NR` value of the ia32 `socketcall` multiplexer, whose call is looked up in the
/// `SOCKETCALL` map. Other values: 0 means "not traced", anything else is the x86_64 twin's number
/// plus one, with [`COMPAT_FIRST_ARG_ONLY`] possibly set.
pub const COMPAT_SOCKETCALL: u32 = u32::MAX;

/// `COMPAT_NR` flag: the ia32 call passes only the first argument of its x86_64 twin, whose other
/// arguments are recorded as 0 (`umount(name)` is `umount2(name, 0)`).
pub const COMPAT_FIRST_ARG_ONLY: u32 = 1 << 30;

/// Number of entries of the `SOCKETCALL` array map (`socketcall`'s call numbers): each value is
/// the x86_64 twin's number plus one, with the number of 32-bit arguments in bits 16 and up;
/// 0 means "not traced".
pub const SOCKETCALL_ENTRIES: u32 = 21;

/// Number of entries of the `SYSCALL_DESC` array map.
pub const SYSCALL_DESC_ENTRIES: u32 = 1024;

/// Index of the ring-buffer-full drop counter in the per-CPU `COUNTERS` map.
pub const COUNTER_DROPS: u32 = 0;
/// Index of the "exit without a matching enter" counter in the per-CPU `COUNTERS` map.
pub const COUNTER_UNPAIRED: u32 = 1;
/// Index of the "32-bit syscall of a traced kind not recorded" counter in the per-CPU `COUNTERS`
/// map (a `socketcall` whose argument block could not be read).
pub const COUNTER_COMPAT: u32 = 2;
/// Index of the "32-bit syscall recorded as its x86_64 twin" counter in the per-CPU `COUNTERS` map.
pub const COUNTER_COMPAT_RECORDED: u32 = 3;
/// Number of entries of the per-CPU `COUNTERS` map.
pub const COUNTER_ENTRIES: u32 = 4;
