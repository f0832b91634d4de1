//! One process's fd table and every call that changes it.

use std::collections::HashMap;

use lanner_formats::event::fdkind::{self, FdMode};
use lanner_formats::event::oflags;

use crate::Semantics;

/// What an fd refers to, as the `fd.*` fields name it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fd {
    /// Path, `cip:cport->sip:sport`, `ip:port` (listening) or unix socket path; may be empty.
    pub name: String,
    /// Kind ([`lanner_formats::event::fdkind`]).
    pub kind: u32,
    /// Closed by a successful exec.
    pub cloexec: bool,
    /// Transport protocol of an IPv4/IPv6 socket (`fdkind::L4_*`).
    pub l4: u8,
    /// Which end of its connection this process holds (`fdkind::ROLE_*`).
    pub role: u8,
    /// The path exactly as the process passed it to `open`, when that differs from `name`
    /// (relative, or with `.`/`..` components): `fd.nameraw`. Empty otherwise.
    pub raw: String,
    /// A socket that a `connect` connected, or that `accept` returned: `fd.connected`.
    pub connected: bool,
}

impl Fd {
    /// An fd named `name` of `kind`, without close-on-exec.
    pub fn new(name: String, kind: u32) -> Self {
        Self { name, kind, ..Default::default() }
    }

    /// What an fd event's `mode` column holds for this fd.
    pub fn mode(&self) -> FdMode {
        FdMode { kind: self.kind, l4: self.l4, role: self.role, connected: self.connected, name_changed: false }
    }
}

/// `connect` returns this (negated) when a non-blocking connection is under way.
const EINPROGRESS: i64 = 115;

/// Address families a `socket` call names (x86_64 and every Linux ABI agree on these).
const AF_UNIX: u64 = 1;
const AF_INET: u64 = 2;
const AF_INET6: u64 = 10;
const AF_NETLINK: u64 = 16;

/// The fd kind a `socket(domain, …)` call creates.
pub fn socket_kind(domain: u64) -> u32 {
    match domain {
        AF_INET => fdkind::IPV4,
        AF_INET6 => fdkind::IPV6,
        AF_UNIX => fdkind::UNIX,
        AF_NETLINK => fdkind::NETLINK,
        _ => fdkind::UNKNOWN,
    }
}

/// The kind of a connected TCP/UDP socket, IPv6 or not.
pub fn connection_kind(v6: bool) -> u32 {
    if v6 {
        fdkind::IPV6
    } else {
        fdkind::IPV4
    }
}

/// The kind of a bound (server) TCP/UDP socket, IPv6 or not.
pub fn server_kind(v6: bool) -> u32 {
    if v6 {
        fdkind::IPV6_SERVER
    } else {
        fdkind::IPV4_SERVER
    }
}

/// Whether a `connect` that returned `ret` names its socket: libsinsp names it after a connect
/// that succeeded or is in progress (a non-blocking connect), and so does the kernel's table.
pub fn connect_names_socket(ret: i64) -> bool {
    ret >= 0 || ret == -EINPROGRESS
}

/// How a caller's `fcntl` command numbers are spelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FcntlCodes {
    /// Linux's own values (`F_DUPFD` 0, `F_DUPFD_CLOEXEC` 1030), as capture reads them.
    Native,
    /// libscap's `PPM_FCNTL_*` values (`F_DUPFD` 1, `F_DUPFD_CLOEXEC` 26), as `.scap` files hold them.
    Ppm,
}

/// Whether `fcntl` command `cmd` duplicates its fd, and if so whether it asks for close-on-exec.
pub fn fcntl_dup(cmd: u64, codes: FcntlCodes) -> Option<bool> {
    let (dupfd, dupfd_cloexec) = match codes {
        FcntlCodes::Native => (0, 1030),
        FcntlCodes::Ppm => (1, 26),
    };
    match cmd {
        c if c == dupfd => Some(false),
        c if c == dupfd_cloexec => Some(true),
        _ => None,
    }
}

/// One process's open fds (threads share it).
#[derive(Debug, Clone, Default)]
pub struct FdTable {
    fds: HashMap<i64, Fd>,
}

impl FdTable {
    /// What `fd` refers to, when the table knows it.
    pub fn get(&self, fd: i64) -> Option<&Fd> {
        self.fds.get(&fd)
    }

    /// Records `fd` as something found outside the calls (from `/proc` or a capture's fd list).
    pub fn insert(&mut self, fd: i64, entry: Fd) {
        self.fds.insert(fd, entry);
    }

    /// Number of fds known.
    pub fn len(&self) -> usize {
        self.fds.len()
    }

    /// Whether no fd is known.
    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    /// Every known fd, in no order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &Fd)> {
        self.fds.iter().map(|(fd, f)| (*fd, f))
    }

    /// A successful `open`/`openat`/`openat2`/`creat` of `path` (resolved; `raw` as the process
    /// passed it) with x86_64 `O_*` flags `flags` returned `fd`.
    pub fn open(&mut self, fd: i64, path: String, raw: &str, flags: u32) -> &Fd {
        let kind = if flags & oflags::O_DIRECTORY != 0 { fdkind::DIRECTORY } else { fdkind::FILE };
        let raw = if raw == path { String::new() } else { raw.to_owned() };
        self.put(fd, Fd { name: path, kind, cloexec: flags & oflags::O_CLOEXEC != 0, raw, ..Default::default() })
    }

    /// A successful `socket(domain, sock_type, …)` returned `fd`; `cloexec` is whether its type
    /// asked for `SOCK_CLOEXEC`.
    pub fn socket(&mut self, fd: i64, domain: u64, sock_type: u64, cloexec: bool, s: Semantics) -> &Fd {
        let kind = socket_kind(domain);
        let l4 = if matches!(domain, AF_INET | AF_INET6) { fdkind::l4_of_sock_type(sock_type) } else { 0 };
        let entry =
            Fd { name: String::new(), kind, cloexec: cloexec && s == Semantics::Kernel, l4, ..Default::default() };
        self.put(fd, entry)
    }

    /// A successful `memfd_create(name, flags)` returned `fd`; libsinsp names it after the memfd.
    pub fn memfd(&mut self, fd: i64, name: String, cloexec: bool) -> &Fd {
        self.put(fd, Fd { name, kind: fdkind::MEMFD, cloexec, ..Default::default() })
    }

    /// `connect` (`role` [`fdkind::ROLE_CLIENT`]) or `bind` gave socket `fd` its name (its kind
    /// may change: a bound socket becomes a server). Its close-on-exec flag stays, and so do its
    /// protocol and role where `l4` or `role` is unknown (0).
    pub fn name_socket(&mut self, fd: i64, name: String, kind: u32, l4: u8, role: u8) -> &Fd {
        let old = self.fds.get(&fd).cloned().unwrap_or_default();
        let l4 = if l4 == fdkind::L4_UNKNOWN { old.l4 } else { l4 };
        let role = if role == fdkind::ROLE_UNKNOWN { old.role } else { role };
        let connected = old.connected;
        self.put(fd, Fd { name, kind, cloexec: old.cloexec, l4, role, raw: String::new(), connected })
    }

    /// A `connect` on `fd` succeeded (libsinsp's connected socket; an in-progress connect is not
    /// yet connected).
    pub fn set_connected(&mut self, fd: i64) {
        if let Some(f) = self.fds.get_mut(&fd) {
            f.connected = true;
        }
    }

    /// A successful `accept`/`accept4` returned `fd` for a connection named `name` over
    /// protocol `l4`; `cloexec` is whether accept4's flags asked for `SOCK_CLOEXEC`. The process
    /// holds the server's end.
    pub fn accept(&mut self, fd: i64, name: String, kind: u32, l4: u8, cloexec: bool, s: Semantics) -> &Fd {
        let role = fdkind::ROLE_SERVER;
        let cloexec = cloexec && s == Semantics::Kernel;
        self.put(fd, Fd { name, kind, cloexec, l4, role, raw: String::new(), connected: true })
    }

    /// A successful `dup`/`dup2`/`dup3`/`fcntl(F_DUPFD*)` made `new` refer to what `old` refers
    /// to (replacing whatever `new` was); `cloexec` is whether the call asked for close-on-exec.
    /// An `old` the table does not know leaves the table as it was. Returns the new entry.
    pub fn dup(&mut self, old: i64, new: i64, cloexec: bool, s: Semantics) -> Option<&Fd> {
        let mut entry = self.fds.get(&old)?.clone();
        if s == Semantics::Kernel {
            entry.cloexec = cloexec;
        }
        Some(self.put(new, entry))
    }

    /// A successful `close(fd)`; returns what it referred to.
    pub fn close(&mut self, fd: i64) -> Option<Fd> {
        self.fds.remove(&fd)
    }

    /// A successful exec: the fds with close-on-exec go; the rest (redirections, sockets handed
    /// down) stay open in the new program.
    pub fn exec(&mut self) {
        self.fds.retain(|_, f| !f.cloexec);
    }

    fn put(&mut self, fd: i64, entry: Fd) -> &Fd {
        let slot = self.fds.entry(fd).or_default();
        *slot = entry;
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(t: &mut FdTable, fd: i64, path: &str, flags: u32) {
        t.open(fd, path.into(), path, flags);
    }

    #[test]
    fn exec_closes_only_close_on_exec_fds() {
        let mut t = FdTable::default();
        file(&mut t, 3, "/etc/passwd", oflags::O_CLOEXEC);
        file(&mut t, 4, "/tmp", oflags::O_DIRECTORY);
        t.socket(5, AF_INET, 1, true, Semantics::Kernel);
        t.memfd(6, "payload".into(), false);
        assert_eq!(t.get(4).map(|f| f.kind), Some(fdkind::DIRECTORY));
        // The name as passed is kept only where it differs from the resolved one.
        assert_eq!(t.open(7, "/etc/shadow".into(), "../../etc/shadow", 0).raw, "../../etc/shadow");
        assert_eq!(t.dup(7, 8, false, Semantics::Kernel).map(|f| f.raw.as_str()), Some("../../etc/shadow"));
        assert!(t.get(3).unwrap().raw.is_empty());
        t.close(7);
        t.close(8);
        t.exec();
        assert!(t.get(3).is_none() && t.get(5).is_none());
        assert_eq!(t.get(4).map(|f| f.name.as_str()), Some("/tmp"));
        assert_eq!(t.get(6).map(|f| f.kind), Some(fdkind::MEMFD));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn a_duplicate_takes_close_on_exec_from_the_call_in_the_kernel_and_from_the_old_fd_in_libsinsp() {
        for (s, plain, asked) in [(Semantics::Kernel, false, true), (Semantics::Libsinsp, true, true)] {
            let mut t = FdTable::default();
            file(&mut t, 3, "/etc/shadow", oflags::O_CLOEXEC);
            assert_eq!(t.dup(3, 7, false, s).map(|f| f.cloexec), Some(plain), "{s:?}");
            assert_eq!(t.dup(3, 8, true, s).map(|f| f.cloexec), Some(asked), "{s:?}");
            assert_eq!(t.get(7).map(|f| f.name.as_str()), Some("/etc/shadow"));
            // Unknown old fds leave the table alone.
            assert!(t.dup(42, 9, false, s).is_none() && t.get(9).is_none());
        }
        let mut t = FdTable::default();
        file(&mut t, 3, "/etc/hosts", 0);
        assert_eq!(t.dup(3, 4, true, Semantics::Libsinsp).map(|f| f.cloexec), Some(false));
    }

    #[test]
    fn fcntl_dup_commands_in_both_spellings() {
        assert_eq!(fcntl_dup(0, FcntlCodes::Native), Some(false));
        assert_eq!(fcntl_dup(1030, FcntlCodes::Native), Some(true));
        assert_eq!(fcntl_dup(1, FcntlCodes::Native), None, "F_GETFD");
        assert_eq!(fcntl_dup(1, FcntlCodes::Ppm), Some(false));
        assert_eq!(fcntl_dup(26, FcntlCodes::Ppm), Some(true));
        assert_eq!(fcntl_dup(0, FcntlCodes::Ppm), None, "PPM_FCNTL_UNKNOWN");
    }

    #[test]
    fn sockets_keep_close_on_exec_through_naming_and_only_the_kernel_reads_the_call_flag() {
        let mut t = FdTable::default();
        t.socket(3, AF_INET6, 1, true, Semantics::Kernel);
        assert_eq!(t.get(3).map(|f| (f.kind, f.l4)), Some((fdkind::IPV6, fdkind::L4_TCP)));
        let named = t.name_socket(3, "[::1]:80".into(), server_kind(true), 0, 0);
        assert!(named.cloexec && named.kind == fdkind::IPV6_SERVER && named.l4 == fdkind::L4_TCP);
        t.socket(4, AF_UNIX, 1, true, Semantics::Libsinsp);
        assert!(!t.get(4).unwrap().cloexec && t.get(4).unwrap().l4 == fdkind::L4_UNKNOWN);
        let tcp = fdkind::L4_TCP;
        let a = t.accept(5, "a->b".into(), connection_kind(false), tcp, true, Semantics::Kernel);
        assert!(a.cloexec && a.role == fdkind::ROLE_SERVER);
        assert!(!t.accept(6, "a->b".into(), connection_kind(false), tcp, true, Semantics::Libsinsp).cloexec);
        // A socket named again (a reconnect) takes the new name; a UDP socket's connect names
        // its client end.
        t.name_socket(5, "a->c".into(), connection_kind(false), 0, fdkind::ROLE_CLIENT);
        assert_eq!(t.get(5).unwrap().name, "a->c");
        t.socket(7, AF_INET, 2, false, Semantics::Kernel);
        let m = t.name_socket(7, "x->y".into(), connection_kind(false), 0, fdkind::ROLE_CLIENT).mode();
        assert_eq!(
            m,
            FdMode { kind: fdkind::IPV4, l4: fdkind::L4_UDP, role: fdkind::ROLE_CLIENT, ..Default::default() }
        );
        assert_eq!(socket_kind(AF_NETLINK), fdkind::NETLINK);
        assert_eq!(socket_kind(99), fdkind::UNKNOWN);
        assert_eq!(t.close(5).map(|f| f.name), Some("a->c".into()));
        assert!(t.close(5).is_none());
    }

    #[test]
    fn in_progress_connects_name_the_socket() {
        assert!(connect_names_socket(0));
        assert!(connect_names_socket(-EINPROGRESS));
        assert!(!connect_names_socket(-111));
    }
}
