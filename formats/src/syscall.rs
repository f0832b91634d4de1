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
}

const fn sc(event: EventType, name: &'static str, x86: Option<u32>, arm: Option<u32>, desc: u32) -> SyscallSpec {
    SyscallSpec { event, name, nr_x86_64: x86, nr_aarch64: arm, desc }
}

const P0: u32 = desc::make(Some(0), None, None, 0);
const P1: u32 = desc::make(Some(1), None, None, 0);
const NONE: u32 = desc::make(None, None, None, 0);

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

    /// True for the open family (`open`, `openat`, `openat2`, `creat`).
    pub fn is_open(self) -> bool {
        matches!(self, Self::Open | Self::Openat | Self::Openat2 | Self::Creat)
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
