//! The process and fd state machine libsinsp keeps, in one copy: capture drives it with the
//! kernel's records, `.scap` import with a capture's events.
//!
//! Key design decision: this crate owns the transitions (what fork, exec, chdir and each fd call
//! change) and nothing about where their inputs come from. Each caller decodes its own input
//! (ring-buffer records, scap parameters) into these calls and keeps its source-only data (pod
//! names, chunk indexes) beside the state. Where the kernel and libsinsp disagree, [`Semantics`]
//! names the difference; a caller picks one, and there is no other switch.

pub mod fd;
pub mod image;

pub use fd::{Fd, FdTable};
pub use image::{Exec, Image};

/// Whose behaviour a table follows where the kernel and libsinsp disagree.
///
/// They differ in exactly two places, both about close-on-exec (which decides the fds an exec
/// keeps):
/// - **A duplicated fd** (`dup`, `dup2`, `dup3`, `fcntl(F_DUPFD)`, `fcntl(F_DUPFD_CLOEXEC)`).
///   The kernel gives the new fd close-on-exec only when the call asks for it (`dup3`'s
///   `O_CLOEXEC`, `F_DUPFD_CLOEXEC`). libsinsp copies the old fd's entry whole, flag included.
/// - **A new socket** (`socket`, `accept`, `accept4`). The kernel sets close-on-exec from
///   `SOCK_CLOEXEC`. libsinsp's socket and accept events carry no such flag, so it never sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Semantics {
    /// The kernel's: capture sees each call's flags and records what the kernel did.
    Kernel,
    /// libsinsp's: `.scap` import is judged by whether a capture reads as sysdig reads it.
    Libsinsp,
}
