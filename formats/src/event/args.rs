//! Which numeric column holds each named argument of each event type: the one map capture and
//! `.scap` import write through, and the analyzer and `.scap` export read through.
//!
//! An event has three numeric columns (`flags`, `mode`, `dirfd`); what they hold depends on its
//! type (a uid sits in `mode` for chown, a signal in `flags` for kill). [`slots`] lists, per
//! type, each argument by its libsinsp name with its column, its position among the syscall's
//! own arguments and how its number is spelled. Fd events are the exception, and a fixed one:
//! `dirfd` holds the fd, `mode` its kind and `path` its name (see `FORMAT.md`).

use crate::syscall::EventType;

/// A numeric column of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// `flags` (u32).
    Flags,
    /// `mode` (u32).
    Mode,
    /// `dirfd` (i32).
    Dirfd,
}

/// How an argument's number is spelled, in the archive and in libscap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// The same number everywhere: ids, fds, pids, signals.
    Plain,
    /// Permission bits (shown in octal; libscap's `PPM_S_*` bits are the same).
    Mode,
    /// Open flags with their x86_64 `O_*` values (libscap renumbers them as `PPM_O_*`:
    /// [`super::oflags`] converts).
    OpenFlags,
    /// The kernel's own value, which libscap renumbers into an enum or flag set of its own
    /// (ptrace requests, clone, mount and unlinkat flags): stored as the kernel gave it.
    Kernel,
}

/// One argument's place in an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// libsinsp's name for it (`evt.arg.NAME`).
    pub name: &'static str,
    /// The column that holds it.
    pub column: Column,
    /// Its index among the syscall's arguments (None: it comes from elsewhere, such as a
    /// fork's clone flags read in the kernel).
    pub native: Option<u8>,
    /// How its number is spelled.
    pub encoding: Encoding,
}

const fn slot(name: &'static str, column: Column, native: u8, encoding: Encoding) -> Slot {
    Slot { name, column, native: Some(native), encoding }
}

use Column::{Dirfd, Flags, Mode};
use Encoding::{Kernel, Mode as Perm, OpenFlags, Plain};

const OPEN: &[Slot] = &[slot("flags", Flags, 1, OpenFlags), slot("mode", Mode, 2, Perm)];
const OPENAT: &[Slot] =
    &[slot("dirfd", Dirfd, 0, Plain), slot("flags", Flags, 2, OpenFlags), slot("mode", Mode, 3, Perm)];
const CHOWN: &[Slot] = &[slot("uid", Mode, 1, Plain), slot("gid", Flags, 2, Plain)];

/// Every argument held in a numeric column, for event type `t` (empty for fd events and types
/// whose arguments are all paths).
pub fn slots(t: EventType) -> &'static [Slot] {
    use EventType::*;
    match t {
        Open => OPEN,
        Openat | Openat2 => OPENAT,
        Creat => const { &[slot("mode", Mode, 1, Perm)] },
        Mkdir => const { &[slot("mode", Mode, 1, Perm)] },
        Mkdirat => const { &[slot("dirfd", Dirfd, 0, Plain), slot("mode", Mode, 2, Perm)] },
        Unlinkat => const { &[slot("dirfd", Dirfd, 0, Plain), slot("flags", Flags, 2, Kernel)] },
        Renameat => const { &[slot("olddirfd", Dirfd, 0, Plain)] },
        Renameat2 => const { &[slot("olddirfd", Dirfd, 0, Plain), slot("flags", Flags, 4, Kernel)] },
        Execveat => const { &[slot("dirfd", Dirfd, 0, Plain), slot("flags", Flags, 4, Kernel)] },
        Linkat => const { &[slot("olddir", Dirfd, 0, Plain), slot("flags", Flags, 4, Kernel)] },
        Symlinkat => const { &[slot("linkdirfd", Dirfd, 1, Plain)] },
        Fchdir => const { &[slot("fd", Dirfd, 0, Plain)] },
        Chmod => const { &[slot("mode", Mode, 1, Perm)] },
        Fchmod => const { &[slot("fd", Dirfd, 0, Plain), slot("mode", Mode, 1, Perm)] },
        Fchmodat => const { &[slot("dirfd", Dirfd, 0, Plain), slot("mode", Mode, 2, Perm)] },
        Chown | Lchown => CHOWN,
        Fchown => const { &[slot("fd", Dirfd, 0, Plain), slot("uid", Mode, 1, Plain), slot("gid", Flags, 2, Plain)] },
        Fchownat => {
            const { &[slot("dirfd", Dirfd, 0, Plain), slot("uid", Mode, 2, Plain), slot("gid", Flags, 3, Plain)] }
        }
        Mount => const { &[slot("flags", Flags, 3, Kernel)] },
        Umount2 => const { &[slot("flags", Flags, 1, Kernel)] },
        Setuid => const { &[slot("uid", Mode, 0, Plain)] },
        Setgid => const { &[slot("gid", Mode, 0, Plain)] },
        Setreuid => const { &[slot("ruid", Mode, 0, Plain), slot("euid", Flags, 1, Plain)] },
        Setregid => const { &[slot("rgid", Mode, 0, Plain), slot("egid", Flags, 1, Plain)] },
        Setresuid => {
            const { &[slot("ruid", Mode, 0, Plain), slot("euid", Flags, 1, Plain), slot("suid", Dirfd, 2, Plain)] }
        }
        Setresgid => {
            const { &[slot("rgid", Mode, 0, Plain), slot("egid", Flags, 1, Plain), slot("sgid", Dirfd, 2, Plain)] }
        }
        Ptrace => const { &[slot("request", Flags, 0, Kernel), slot("pid", Dirfd, 1, Plain)] },
        Kill => const { &[slot("pid", Dirfd, 0, Plain), slot("sig", Flags, 1, Plain)] },
        Tkill => const { &[slot("tid", Dirfd, 0, Plain), slot("sig", Flags, 1, Plain)] },
        Tgkill => const { &[slot("pid", Mode, 0, Plain), slot("tid", Dirfd, 1, Plain), slot("sig", Flags, 2, Plain)] },
        MemfdCreate => const { &[slot("flags", Flags, 1, Kernel)] },
        Bpf => const { &[slot("cmd", Flags, 0, Kernel)] },
        // Fd events keep their fd, its kind and name in dirfd, mode and path; these two also
        // record what the call asked for.
        Socket => const { &[slot("type", Flags, 1, Kernel)] },
        Fcntl => const { &[slot("cmd", Flags, 1, Kernel)] },
        // Clone flags come with the fork record, not from a syscall argument.
        Clone => const { &[Slot { name: "flags", column: Flags, native: None, encoding: Kernel }] },
        _ => &[],
    }
}

/// The slot of argument `name` of event type `t`.
pub fn slot_of(t: EventType, name: &str) -> Option<Slot> {
    slots(t).iter().find(|s| s.name == name).copied()
}

/// The three numeric columns of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Columns {
    /// `flags`.
    pub flags: u32,
    /// `mode`.
    pub mode: u32,
    /// `dirfd` (`AT_FDCWD` when unused).
    pub dirfd: i32,
}

impl Default for Columns {
    fn default() -> Self {
        Self { flags: 0, mode: 0, dirfd: super::AT_FDCWD }
    }
}

impl Columns {
    /// The value in column `c`.
    pub fn get(&self, c: Column) -> i64 {
        match c {
            Column::Flags => self.flags as i64,
            Column::Mode => self.mode as i64,
            Column::Dirfd => self.dirfd as i64,
        }
    }

    /// Puts `v` in column `c` (truncated to the column's 32 bits, as the kernel's `int`
    /// and `unsigned int` arguments are).
    pub fn set(&mut self, c: Column, v: i64) {
        match c {
            Column::Flags => self.flags = v as u32,
            Column::Mode => self.mode = v as u32,
            Column::Dirfd => self.dirfd = v as i32,
        }
    }

    /// Argument `name` of an event of type `t`, when a column holds it.
    pub fn arg(&self, t: EventType, name: &str) -> Option<i64> {
        slot_of(t, name).map(|s| self.get(s.column))
    }

    /// Columns filled from a syscall's own arguments `args` for event type `t`; `open_flags`
    /// converts the native open flags to the stored x86_64 ones.
    pub fn from_syscall(t: EventType, args: &[u64; 6], open_flags: impl Fn(u64) -> u32) -> Self {
        let mut c = Self::default();
        for s in slots(t) {
            let Some(i) = s.native else { continue };
            let raw = args[i as usize];
            let v = if s.encoding == Encoding::OpenFlags { open_flags(raw) as i64 } else { raw as i64 };
            c.set(s.column, v);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::TABLE;

    #[test]
    fn every_event_type_round_trips_its_arguments_through_distinct_columns() {
        let mut typed = 0;
        for spec in TABLE {
            let t = spec.event;
            let slots = slots(t);
            // No two arguments of one type share a column, and names are unique.
            for (i, a) in slots.iter().enumerate() {
                for b in &slots[i + 1..] {
                    assert_ne!(a.column, b.column, "{t:?}: {} and {} share a column", a.name, b.name);
                    assert_ne!(a.name, b.name, "{t:?}");
                }
                assert!(a.native.is_none_or(|n| n < 6), "{t:?}.{}", a.name);
            }
            // Write distinct values through the syscall view, read each back by name.
            let mut args = [0u64; 6];
            for s in slots {
                if let Some(n) = s.native {
                    args[n as usize] = 1000 + n as u64;
                }
            }
            let c = Columns::from_syscall(t, &args, |f| f as u32);
            for s in slots {
                let want = s.native.map_or(0, |n| 1000 + n as i64);
                assert_eq!(c.arg(t, s.name), Some(want), "{t:?}.{}", s.name);
            }
            // A column no argument uses keeps its default.
            let used = |col| slots.iter().any(|s| s.column == col);
            if !used(Column::Dirfd) {
                assert_eq!(c.dirfd, crate::event::AT_FDCWD, "{t:?}");
            }
            if !used(Column::Flags) {
                assert_eq!(c.flags, 0, "{t:?}");
            }
            assert_eq!(c.arg(t, "no-such-argument"), None);
            typed += usize::from(!slots.is_empty());
        }
        assert!(typed >= 30, "only {typed} types have column arguments");
    }

    #[test]
    fn negative_and_wide_values_keep_the_kernels_32_bits() {
        // A dirfd of AT_FDCWD passed sign-extended or not, and a uid of -1 (unchanged).
        let mut args = [0u64; 6];
        args[0] = (-100i64) as u64;
        args[2] = u32::MAX as u64;
        let c = Columns::from_syscall(EventType::Fchownat, &args, |f| f as u32);
        assert_eq!((c.dirfd, c.mode), (crate::event::AT_FDCWD, u32::MAX));
        args[0] = 0xffff_ff9c;
        assert_eq!(Columns::from_syscall(EventType::Fchownat, &args, |f| f as u32).dirfd, crate::event::AT_FDCWD);
        // Open flags go through the caller's conversion.
        let mut args = [0u64; 6];
        args[2] = 0o42;
        let c = Columns::from_syscall(EventType::Openat, &args, |f| f as u32 | 0o100);
        assert_eq!(c.flags, 0o142);
    }
}
