//! The event types Lanner records, their Falco names and their per-architecture syscall numbers.
//!
//! One table serves the capture loader (which syscalls to trace, where their path arguments
//! are), the capture decoder (nr → [`EventType`]) and the analyzer (`evt.type` names).

use crate::wire::desc;

/// An event type as stored in archives (stable numbering: part of the archive format).
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventType {
    /// `open(2)`
    Open = 1,
    /// `openat(2)`
    Openat = 2,
    /// `openat2(2)`
    Openat2 = 3,
    /// `creat(2)`
    Creat = 4,
    /// `mkdir(2)`
    Mkdir = 5,
    /// `mkdirat(2)`
    Mkdirat = 6,
    /// `unlink(2)`
    Unlink = 7,
    /// `unlinkat(2)`
    Unlinkat = 8,
    /// `rmdir(2)`
    Rmdir = 9,
    /// `rename(2)`
    Rename = 10,
    /// `renameat(2)`
    Renameat = 11,
    /// `renameat2(2)`
    Renameat2 = 12,
    /// `execve(2)`
    Execve = 13,
    /// `execveat(2)`
    Execveat = 14,
    /// `chdir(2)`
    Chdir = 15,
    /// `fchdir(2)`
    Fchdir = 16,
    /// A new thread or process was created (`sched_process_fork`); Falco's `clone`.
    Clone = 17,
    /// A thread exited (`sched_process_exit`); Falco's `procexit`.
    Procexit = 18,
    /// `chmod(2)`
    Chmod = 19,
    /// `fchmod(2)`
    Fchmod = 20,
    /// `fchmodat(2)`
    Fchmodat = 21,
    /// `chown(2)`
    Chown = 22,
    /// `lchown(2)`
    Lchown = 23,
    /// `fchown(2)`
    Fchown = 24,
    /// `fchownat(2)`
    Fchownat = 25,
    /// `link(2)`
    Link = 26,
    /// `linkat(2)`
    Linkat = 27,
    /// `symlink(2)`
    Symlink = 28,
    /// `symlinkat(2)`
    Symlinkat = 29,
    /// `mount(2)`
    Mount = 30,
    /// `umount2(2)`
    Umount2 = 31,
    /// `setuid(2)`
    Setuid = 32,
    /// `setgid(2)`
    Setgid = 33,
    /// `setreuid(2)`
    Setreuid = 34,
    /// `setregid(2)`
    Setregid = 35,
    /// `setresuid(2)`
    Setresuid = 36,
    /// `setresgid(2)`
    Setresgid = 37,
    /// `ptrace(2)`
    Ptrace = 38,
    /// `kill(2)`
    Kill = 39,
    /// `tkill(2)`
    Tkill = 40,
    /// `tgkill(2)`
    Tgkill = 41,
    /// `memfd_create(2)`
    MemfdCreate = 42,
    /// `bpf(2)`
    Bpf = 43,
    // Types from here on come from imported `.scap` captures; capture traces those of them that
    // have a kernel-side descriptor in TABLE (sockets, close, dup*, fcntl).
    /// `close(2)`
    Close = 44,
    /// `read(2)`
    Read = 45,
    /// `write(2)`
    Write = 46,
    /// `fstat(2)`
    Fstat = 47,
    /// `mmap(2)`
    Mmap = 48,
    /// `munmap(2)`
    Munmap = 49,
    /// `brk(2)`
    Brk = 50,
    /// `access(2)`
    Access = 51,
    /// `socket(2)`
    Socket = 52,
    /// `connect(2)`
    Connect = 53,
    /// `accept(2)`
    Accept = 54,
    /// `accept4(2)`
    Accept4 = 55,
    /// `bind(2)`
    Bind = 56,
    /// `listen(2)`
    Listen = 57,
    /// `sendto(2)`
    Sendto = 58,
    /// `sendmsg(2)`
    Sendmsg = 59,
    /// `recvfrom(2)`
    Recvfrom = 60,
    /// `recvmsg(2)`
    Recvmsg = 61,
    /// `dup(2)`
    Dup = 62,
    /// `dup2(2)`
    Dup2 = 63,
    /// `dup3(2)`
    Dup3 = 64,
    /// `fcntl(2)`
    Fcntl = 65,
    /// `madvise(2)`
    Madvise = 66,
    /// `fork(2)`
    Fork = 67,
    /// `vfork(2)`
    Vfork = 68,
    /// `ioctl(2)`, read from `.scap` captures (capture does not trace it)
    Ioctl = 69,
    /// `shutdown(2)`, read from `.scap` captures (capture does not trace it)
    Shutdown = 70,
    /// `lseek(2)`, read from `.scap` captures (capture does not trace it)
    Lseek = 71,
    /// `llseek(2)`, read from `.scap` captures (capture does not trace it)
    Llseek = 72,
    /// `pread(2)`, read from `.scap` captures (capture does not trace it)
    Pread = 73,
    /// `pwrite(2)`, read from `.scap` captures (capture does not trace it)
    Pwrite = 74,
    /// `readv(2)`, read from `.scap` captures (capture does not trace it)
    Readv = 75,
    /// `writev(2)`, read from `.scap` captures (capture does not trace it)
    Writev = 76,
    /// `preadv(2)`, read from `.scap` captures (capture does not trace it)
    Preadv = 77,
    /// `pwritev(2)`, read from `.scap` captures (capture does not trace it)
    Pwritev = 78,
    /// `getdents(2)`, read from `.scap` captures (capture does not trace it)
    Getdents = 79,
    /// `getdents64(2)`, read from `.scap` captures (capture does not trace it)
    Getdents64 = 80,
    /// `flock(2)`, read from `.scap` captures (capture does not trace it)
    Flock = 81,
    /// `setns(2)`
    Setns = 82,
    /// `setsockopt(2)`, read from `.scap` captures (capture does not trace it)
    Setsockopt = 83,
    /// `getsockopt(2)`, read from `.scap` captures (capture does not trace it)
    Getsockopt = 84,
    /// `recvmmsg(2)`, read from `.scap` captures (capture does not trace it)
    Recvmmsg = 85,
    /// `sendmmsg(2)`, read from `.scap` captures (capture does not trace it)
    Sendmmsg = 86,
    /// `poll(2)`, read from `.scap` captures (capture does not trace it)
    Poll = 87,
    /// `ppoll(2)`, read from `.scap` captures (capture does not trace it)
    Ppoll = 88,
    /// `select(2)`, read from `.scap` captures (capture does not trace it)
    Select = 89,
    /// `epoll_wait(2)`, read from `.scap` captures (capture does not trace it)
    EpollWait = 90,
    /// `mprotect(2)`, read from `.scap` captures (capture does not trace it)
    Mprotect = 91,
    /// `nanosleep(2)`, read from `.scap` captures (capture does not trace it)
    Nanosleep = 92,
    /// `futex(2)`, read from `.scap` captures (capture does not trace it)
    Futex = 93,
    /// `getrlimit(2)`, read from `.scap` captures (capture does not trace it)
    Getrlimit = 94,
    /// `setrlimit(2)`, read from `.scap` captures (capture does not trace it)
    Setrlimit = 95,
    /// `prlimit(2)`, read from `.scap` captures (capture does not trace it)
    Prlimit = 96,
    /// `unshare(2)`
    Unshare = 97,
    /// `chroot(2)`, read from `.scap` captures (capture does not trace it)
    Chroot = 98,
    /// `seccomp(2)`, read from `.scap` captures (capture does not trace it)
    Seccomp = 99,
    /// `stat(2)`, read from `.scap` captures (capture does not trace it)
    Stat = 100,
    /// `lstat(2)`, read from `.scap` captures (capture does not trace it)
    Lstat = 101,
    /// `pipe(2)`, read from `.scap` captures (capture does not trace it)
    Pipe = 102,
    /// `eventfd(2)`, read from `.scap` captures (capture does not trace it)
    Eventfd = 103,
    /// `signalfd(2)`, read from `.scap` captures (capture does not trace it)
    Signalfd = 104,
    /// `timerfd_create(2)`, read from `.scap` captures (capture does not trace it)
    TimerfdCreate = 105,
    /// `inotify_init(2)`, read from `.scap` captures (capture does not trace it)
    InotifyInit = 106,
    /// `arch_prctl(2)`, read from `.scap` captures (capture does not trace it)
    ArchPrctl = 107,
    /// `rt_sigaction(2)`, read from `.scap` captures (capture does not trace it)
    RtSigaction = 108,
    /// `init_module(2)`
    InitModule = 109,
    /// `finit_module(2)`
    FinitModule = 110,
    /// `userfaultfd(2)`
    Userfaultfd = 111,
}

/// Set in a stored event type for the enter half of a syscall. Only imported `.scap` data has
/// such rows (Falco evaluates rules on enter events too); Lanner's own capture stores each
/// syscall once, at its exit.
pub const ENTER: u16 = 0x8000;

/// The event type of a stored value, without the [`ENTER`] bit.
pub const fn type_bits(stored: u16) -> u16 {
    stored & !ENTER
}

/// One row of the syscall table.
#[derive(Clone, Copy, Debug)]
pub struct SyscallSpec {
    /// The event type.
    pub event: EventType,
    /// The Falco `evt.type` name, also the tracepoint suffix (`sys_enter_<name>`).
    pub name: &'static str,
    /// x86_64 syscall number, if the syscall exists there.
    pub nr_x86_64: Option<u32>,
    /// aarch64 syscall number, if the syscall exists there.
    pub nr_aarch64: Option<u32>,
    /// Kernel-side descriptor (see [`crate::wire::desc`]); 0 for non-syscall events.
    pub desc: u32,
    /// Tracepoint suffix when it differs from `name` (`sys_enter_<tracepoint>`).
    pub tracepoint: Option<&'static str>,
}

const fn sc(event: EventType, name: &'static str, x86: Option<u32>, arm: Option<u32>, desc: u32) -> SyscallSpec {
    SyscallSpec { event, name, nr_x86_64: x86, nr_aarch64: arm, desc, tracepoint: None }
}

const P0: u32 = desc::make(Some(0), None, None, 0);
const P1: u32 = desc::make(Some(1), None, None, 0);
const NONE: u32 = desc::make(None, None, None, 0);
/// Traced only with `--syscalls all`.
const HIGH_VOLUME: u32 = desc::make(None, None, None, desc::HIGH_VOLUME);
/// Socket calls on `args[0]` with a sockaddr in `args[1]` (connect, bind).
const SOCK_ADDR_ARG0: u32 = desc::make(None, None, None, desc::SOCK_ARG0) | desc::sockaddr_arg(1);
/// sendto: a datagram to the sockaddr in `args[4]`, recorded by default only when it names one
/// (an unconnected UDP socket's send, which names the socket), and every call under
/// `--syscalls all`.
const SENDTO: u32 =
    desc::make(None, None, None, desc::SOCK_ARG0 | desc::HIGH_VOLUME | desc::ADDRESSED) | desc::sockaddr_arg(4);
/// accept/accept4: the new fd is the result; the peer's sockaddr is written to `args[1]`.
const SOCK_ADDR_RET: u32 = desc::make(None, None, None, desc::SOCK_RET) | desc::sockaddr_arg(1);

/// Every event type, in [`EventType`] order.
pub const TABLE: &[SyscallSpec] = &[
    sc(EventType::Open, "open", Some(2), None, P0),
    sc(EventType::Openat, "openat", Some(257), Some(56), P1),
    sc(EventType::Openat2, "openat2", Some(437), Some(437), desc::make(Some(1), None, None, desc::OPEN_HOW)),
    sc(EventType::Creat, "creat", Some(85), None, P0),
    sc(EventType::Mkdir, "mkdir", Some(83), None, P0),
    sc(EventType::Mkdirat, "mkdirat", Some(258), Some(34), P1),
    sc(EventType::Unlink, "unlink", Some(87), None, P0),
    sc(EventType::Unlinkat, "unlinkat", Some(263), Some(35), P1),
    sc(EventType::Rmdir, "rmdir", Some(84), None, P0),
    sc(EventType::Rename, "rename", Some(82), None, desc::make(Some(0), Some(1), None, 0)),
    sc(EventType::Renameat, "renameat", Some(264), Some(38), desc::make(Some(1), Some(3), None, 0)),
    sc(EventType::Renameat2, "renameat2", Some(316), Some(276), desc::make(Some(1), Some(3), None, 0)),
    sc(EventType::Execve, "execve", Some(59), Some(221), desc::make(Some(0), None, Some(1), desc::EXEC)),
    sc(EventType::Execveat, "execveat", Some(322), Some(281), desc::make(Some(1), None, Some(2), desc::EXEC)),
    sc(EventType::Chdir, "chdir", Some(80), Some(49), P0),
    sc(EventType::Fchdir, "fchdir", Some(81), Some(50), NONE),
    sc(EventType::Clone, "clone", None, None, 0),
    sc(EventType::Procexit, "procexit", None, None, 0),
    sc(EventType::Chmod, "chmod", Some(90), None, P0),
    sc(EventType::Fchmod, "fchmod", Some(91), Some(52), NONE),
    sc(EventType::Fchmodat, "fchmodat", Some(268), Some(53), P1),
    sc(EventType::Chown, "chown", Some(92), None, P0),
    sc(EventType::Lchown, "lchown", Some(94), None, P0),
    sc(EventType::Fchown, "fchown", Some(93), Some(55), NONE),
    sc(EventType::Fchownat, "fchownat", Some(260), Some(54), P1),
    sc(EventType::Link, "link", Some(86), None, desc::make(Some(0), Some(1), None, 0)),
    sc(EventType::Linkat, "linkat", Some(265), Some(37), desc::make(Some(1), Some(3), None, 0)),
    // Symlinks: the link path is resolved; the target is kept exactly as written.
    sc(EventType::Symlink, "symlink", Some(88), None, desc::make(Some(1), Some(0), None, desc::RAW_B)),
    sc(EventType::Symlinkat, "symlinkat", Some(266), Some(36), desc::make(Some(2), Some(0), None, desc::RAW_B)),
    // mount(dev, dir, type, flags, data): the mount point is resolved, the device kept as written.
    sc(EventType::Mount, "mount", Some(165), Some(40), desc::make(Some(1), Some(0), None, desc::RAW_B)),
    SyscallSpec { tracepoint: Some("umount"), ..sc(EventType::Umount2, "umount2", Some(166), Some(39), P0) },
    sc(EventType::Setuid, "setuid", Some(105), Some(146), NONE),
    sc(EventType::Setgid, "setgid", Some(106), Some(144), NONE),
    sc(EventType::Setreuid, "setreuid", Some(113), Some(145), NONE),
    sc(EventType::Setregid, "setregid", Some(114), Some(143), NONE),
    sc(EventType::Setresuid, "setresuid", Some(117), Some(147), NONE),
    sc(EventType::Setresgid, "setresgid", Some(119), Some(149), NONE),
    sc(EventType::Ptrace, "ptrace", Some(101), Some(117), NONE),
    sc(EventType::Kill, "kill", Some(62), Some(129), NONE),
    sc(EventType::Tkill, "tkill", Some(200), Some(130), NONE),
    sc(EventType::Tgkill, "tgkill", Some(234), Some(131), NONE),
    sc(EventType::MemfdCreate, "memfd_create", Some(319), Some(279), desc::make(Some(0), None, None, desc::RAW_A)),
    sc(EventType::Bpf, "bpf", Some(321), Some(280), NONE),
    sc(EventType::Close, "close", Some(3), Some(57), NONE),
    sc(EventType::Read, "read", Some(0), Some(63), HIGH_VOLUME),
    sc(EventType::Write, "write", Some(1), Some(64), HIGH_VOLUME),
    sc(EventType::Fstat, "fstat", Some(5), Some(80), 0),
    sc(EventType::Mmap, "mmap", Some(9), Some(222), 0),
    sc(EventType::Munmap, "munmap", Some(11), Some(215), 0),
    sc(EventType::Brk, "brk", Some(12), Some(214), 0),
    sc(EventType::Access, "access", Some(21), None, 0),
    sc(EventType::Socket, "socket", Some(41), Some(198), NONE),
    sc(EventType::Connect, "connect", Some(42), Some(203), SOCK_ADDR_ARG0),
    sc(EventType::Accept, "accept", Some(43), Some(202), SOCK_ADDR_RET),
    sc(EventType::Accept4, "accept4", Some(288), Some(242), SOCK_ADDR_RET),
    sc(EventType::Bind, "bind", Some(49), Some(200), SOCK_ADDR_ARG0),
    sc(EventType::Listen, "listen", Some(50), Some(201), desc::make(None, None, None, desc::SOCK_ARG0)),
    sc(EventType::Sendto, "sendto", Some(44), Some(206), SENDTO),
    sc(EventType::Sendmsg, "sendmsg", Some(46), Some(211), HIGH_VOLUME),
    sc(EventType::Recvfrom, "recvfrom", Some(45), Some(207), HIGH_VOLUME),
    sc(EventType::Recvmsg, "recvmsg", Some(47), Some(212), HIGH_VOLUME),
    sc(EventType::Dup, "dup", Some(32), Some(23), NONE),
    sc(EventType::Dup2, "dup2", Some(33), None, NONE),
    sc(EventType::Dup3, "dup3", Some(292), Some(24), NONE),
    sc(EventType::Fcntl, "fcntl", Some(72), Some(25), desc::make(None, None, None, desc::FCNTL_DUP)),
    sc(EventType::Madvise, "madvise", Some(28), Some(233), 0),
    sc(EventType::Fork, "fork", Some(57), None, 0),
    sc(EventType::Vfork, "vfork", Some(58), None, 0),
    // libscap's event types for these calls, read from `.scap` captures. Capture does not trace
    // those without a descriptor (no syscall numbers): they never occur in its archives. It
    // traces setns and unshare, which upstream rules watch.
    sc(EventType::Ioctl, "ioctl", None, None, 0),
    sc(EventType::Shutdown, "shutdown", None, None, 0),
    sc(EventType::Lseek, "lseek", None, None, 0),
    sc(EventType::Llseek, "llseek", None, None, 0),
    sc(EventType::Pread, "pread", None, None, 0),
    sc(EventType::Pwrite, "pwrite", None, None, 0),
    sc(EventType::Readv, "readv", None, None, 0),
    sc(EventType::Writev, "writev", None, None, 0),
    sc(EventType::Preadv, "preadv", None, None, 0),
    sc(EventType::Pwritev, "pwritev", None, None, 0),
    sc(EventType::Getdents, "getdents", None, None, 0),
    sc(EventType::Getdents64, "getdents64", None, None, 0),
    sc(EventType::Flock, "flock", None, None, 0),
    sc(EventType::Setns, "setns", Some(308), Some(268), NONE),
    sc(EventType::Setsockopt, "setsockopt", None, None, 0),
    sc(EventType::Getsockopt, "getsockopt", None, None, 0),
    sc(EventType::Recvmmsg, "recvmmsg", None, None, 0),
    sc(EventType::Sendmmsg, "sendmmsg", None, None, 0),
    sc(EventType::Poll, "poll", None, None, 0),
    sc(EventType::Ppoll, "ppoll", None, None, 0),
    sc(EventType::Select, "select", None, None, 0),
    sc(EventType::EpollWait, "epoll_wait", None, None, 0),
    sc(EventType::Mprotect, "mprotect", None, None, 0),
    sc(EventType::Nanosleep, "nanosleep", None, None, 0),
    sc(EventType::Futex, "futex", None, None, 0),
    sc(EventType::Getrlimit, "getrlimit", None, None, 0),
    sc(EventType::Setrlimit, "setrlimit", None, None, 0),
    sc(EventType::Prlimit, "prlimit", None, None, 0),
    sc(EventType::Unshare, "unshare", Some(272), Some(97), NONE),
    sc(EventType::Chroot, "chroot", None, None, 0),
    sc(EventType::Seccomp, "seccomp", None, None, 0),
    sc(EventType::Stat, "stat", None, None, 0),
    sc(EventType::Lstat, "lstat", None, None, 0),
    sc(EventType::Pipe, "pipe", None, None, 0),
    sc(EventType::Eventfd, "eventfd", None, None, 0),
    sc(EventType::Signalfd, "signalfd", None, None, 0),
    sc(EventType::TimerfdCreate, "timerfd_create", None, None, 0),
    sc(EventType::InotifyInit, "inotify_init", None, None, 0),
    sc(EventType::ArchPrctl, "arch_prctl", None, None, 0),
    sc(EventType::RtSigaction, "rt_sigaction", None, None, 0),
    // Traced: upstream rules watch for these (module loading, userfaultfd as an exploit
    // primitive).
    sc(EventType::InitModule, "init_module", Some(175), Some(105), NONE),
    sc(EventType::FinitModule, "finit_module", Some(313), Some(273), NONE),
    sc(EventType::Userfaultfd, "userfaultfd", Some(323), Some(282), NONE),
];

/// 32-bit x86 (ia32) syscall numbers of the traced types whose arguments mean the same as on
/// x86_64, in the same registers' order (`bx cx dx si di bp`). A 32-bit call is recorded as its
/// x86_64 twin. The 16-bit-id calls (`setuid`, `chown`, ...) map too: their ids are 16 bits.
pub const I386: &[(EventType, u32)] = &[
    (EventType::Open, 5),
    (EventType::Openat, 295),
    (EventType::Openat2, 437),
    (EventType::Creat, 8),
    (EventType::Mkdir, 39),
    (EventType::Mkdirat, 296),
    (EventType::Unlink, 10),
    (EventType::Unlinkat, 301),
    (EventType::Rmdir, 40),
    (EventType::Rename, 38),
    (EventType::Renameat, 302),
    (EventType::Renameat2, 353),
    (EventType::Chdir, 12),
    (EventType::Fchdir, 133),
    (EventType::Chmod, 15),
    (EventType::Fchmod, 94),
    (EventType::Fchmodat, 306),
    (EventType::Chown, 182),
    (EventType::Chown, 212),
    (EventType::Lchown, 16),
    (EventType::Lchown, 198),
    (EventType::Fchown, 95),
    (EventType::Fchown, 207),
    (EventType::Fchownat, 298),
    (EventType::Link, 9),
    (EventType::Linkat, 303),
    (EventType::Symlink, 83),
    (EventType::Symlinkat, 304),
    (EventType::Mount, 21),
    (EventType::Umount2, 52),
    (EventType::Setuid, 23),
    (EventType::Setuid, 213),
    (EventType::Setgid, 46),
    (EventType::Setgid, 214),
    (EventType::Setreuid, 70),
    (EventType::Setreuid, 203),
    (EventType::Setregid, 71),
    (EventType::Setregid, 204),
    (EventType::Setresuid, 164),
    (EventType::Setresuid, 208),
    (EventType::Setresgid, 170),
    (EventType::Setresgid, 210),
    (EventType::Ptrace, 26),
    (EventType::Kill, 37),
    (EventType::Tkill, 238),
    (EventType::Tgkill, 270),
    (EventType::MemfdCreate, 356),
    (EventType::Bpf, 357),
    (EventType::Close, 6),
    (EventType::Read, 3),
    (EventType::Write, 4),
    (EventType::Socket, 359),
    (EventType::Connect, 362),
    (EventType::Accept4, 364),
    (EventType::Bind, 361),
    (EventType::Listen, 363),
    (EventType::Sendto, 369),
    (EventType::Sendmsg, 370),
    (EventType::Recvfrom, 371),
    (EventType::Recvmsg, 372),
    (EventType::Dup, 41),
    (EventType::Dup2, 63),
    (EventType::Dup3, 330),
    (EventType::Fcntl, 55),
    (EventType::Fcntl, 221),
    (EventType::Execve, 11),
    (EventType::Execveat, 358),
];

/// ia32 calls that pass only the first argument of their x86_64 twin (the others read as 0).
pub const I386_FIRST_ARG_ONLY: &[(EventType, u32)] = &[(EventType::Umount2, 22)];

/// The ia32 `socketcall(call, args)` multiplexer's number.
pub const I386_SOCKETCALL: u32 = 102;

/// `socketcall` calls of traced kinds (`SYS_SOCKET` ... in `linux/net.h`): the call number, the
/// x86_64 twin it is recorded as, and how many 32-bit arguments its block holds (`send` and
/// `recv` are `sendto` and `recvfrom` without an address).
pub const SOCKETCALL: &[(u32, EventType, u32)] = &[
    (1, EventType::Socket, 3),
    (2, EventType::Bind, 3),
    (3, EventType::Connect, 3),
    (4, EventType::Listen, 2),
    (5, EventType::Accept, 3),
    (9, EventType::Sendto, 4),
    (10, EventType::Recvfrom, 4),
    (11, EventType::Sendto, 6),
    (12, EventType::Recvfrom, 6),
    (16, EventType::Sendmsg, 3),
    (17, EventType::Recvmsg, 3),
    (18, EventType::Accept4, 4),
];

impl EventType {
    /// Decodes a stored event type.
    pub fn from_u16(v: u16) -> Option<Self> {
        // TABLE is in discriminant order starting at 1 (checked by a test).
        (v as usize).checked_sub(1).and_then(|i| TABLE.get(i)).map(|s| s.event)
    }

    /// Looks an event type up by its Falco name.
    pub fn from_name(name: &str) -> Option<Self> {
        TABLE.iter().find(|s| s.name == name).map(|s| s.event)
    }

    /// The table row for this event type.
    pub fn spec(self) -> &'static SyscallSpec {
        // TABLE is in discriminant order starting at 1.
        &TABLE[self as usize - 1]
    }

    /// The Falco `evt.type` name.
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// The tracepoint suffix (`sys_enter_<this>`).
    pub fn tracepoint(self) -> &'static str {
        self.spec().tracepoint.unwrap_or(self.spec().name)
    }

    /// True for the open family (`open`, `openat`, `openat2`, `creat`).
    pub fn is_open(self) -> bool {
        matches!(self, Self::Open | Self::Openat | Self::Openat2 | Self::Creat)
    }

    /// Whether the event acts on one fd: its `dirfd` column holds the fd, `path` the fd's name
    /// and `mode` the fd's kind ([`crate::event::fdkind`]).
    pub fn uses_fd(self) -> bool {
        matches!(
            self,
            Self::Close
                | Self::Read
                | Self::Write
                | Self::Fstat
                | Self::Socket
                | Self::Connect
                | Self::Accept
                | Self::Accept4
                | Self::Bind
                | Self::Listen
                | Self::Sendto
                | Self::Sendmsg
                | Self::Recvfrom
                | Self::Recvmsg
                | Self::Dup
                | Self::Dup2
                | Self::Dup3
                | Self::Fcntl
                | Self::Ioctl
                | Self::Shutdown
                | Self::Lseek
                | Self::Llseek
                | Self::Pread
                | Self::Pwrite
                | Self::Readv
                | Self::Writev
                | Self::Preadv
                | Self::Pwritev
                | Self::Getdents
                | Self::Getdents64
                | Self::Flock
                | Self::Setns
        )
    }
}

/// Syscall number of `spec` on the architecture this code is compiled for.
pub fn native_nr(spec: &SyscallSpec) -> Option<u32> {
    if cfg!(target_arch = "x86_64") {
        spec.nr_x86_64
    } else if cfg!(target_arch = "aarch64") {
        spec.nr_aarch64
    } else {
        None
    }
}

/// Maps a native syscall number back to its table row.
pub fn by_native_nr(nr: u32) -> Option<&'static SyscallSpec> {
    TABLE.iter().find(|s| native_nr(s) == Some(nr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ia32_numbers_are_distinct_and_map_to_traced_x86_64_calls() {
        let mut seen = std::collections::HashSet::new();
        for &(ty, nr) in I386 {
            assert!(seen.insert(nr), "ia32 {nr} listed twice");
            assert!(ty.spec().nr_x86_64.is_some() && ty.spec().desc != 0, "{} has no x86_64 twin", ty.name());
        }
        for &(ty, nr) in I386_FIRST_ARG_ONLY.iter().chain([(EventType::Socket, I386_SOCKETCALL)].iter()) {
            assert!(seen.insert(nr), "ia32 {nr} ({}) is also mapped", ty.name());
        }
        for &(call, ty, nargs) in SOCKETCALL {
            assert!(call < 21 && (2..=6).contains(&nargs) && ty.spec().nr_x86_64.is_some(), "socketcall {call}");
        }
        // Spot checks against arch/x86/entry/syscalls/syscall_32.tbl.
        assert!(I386.contains(&(EventType::Open, 5)) && I386.contains(&(EventType::Openat, 295)));
        assert!(I386.contains(&(EventType::Close, 6)) && I386.contains(&(EventType::Connect, 362)));
    }

    #[test]
    fn table_is_in_discriminant_order() {
        for (i, s) in TABLE.iter().enumerate() {
            assert_eq!(s.event as usize, i + 1, "{}", s.name);
            assert_eq!(EventType::from_u16(i as u16 + 1), Some(s.event));
            assert_eq!(EventType::from_name(s.name), Some(s.event));
        }
    }

    #[test]
    fn descriptors_name_the_path_arguments() {
        let r = EventType::Renameat2.spec();
        assert_eq!(desc::path_a(r.desc), Some(1));
        assert_eq!(desc::path_b(r.desc), Some(3));
        let e = EventType::Execve.spec();
        assert_eq!(desc::argv(e.desc), Some(1));
        assert!(e.desc & desc::EXEC != 0);
        assert_eq!(desc::path_a(EventType::Fchdir.spec().desc), None);
    }
}
