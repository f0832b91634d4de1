//! `lanner-capture` as a library: records syscall activity with eBPF into a spool of archive
//! segments.
//!
//! Design: the kernel side only copies raw arguments and strings; all state (process table, fd
//! table, cwd, parent chain) is rebuilt here, then events are written into self-contained chunks
//! so the analyzer can process any chunk alone. The drain loop ([`drain`]) only turns records into
//! events and chunks; a spool writer thread compresses and writes the sealed ones. The loop reads
//! records through a trait, so it is tested without root by feeding it records.
//!
//! - [`kernel`]: what the kernel offers, its BTF, the eBPF programs' loader, record decoding;
//! - [`state`]: the process and fd state machine that turns records into events;
//! - [`metadata`]: `/proc`, container ids, container runtime and Kubernetes names;
//! - [`spool`]: chunks, segments, the writer thread and retention;
//! - [`ship`]: uploads closed segments to object storage;
//! - [`drain`]: the loop that ties them together; [`metrics`]: what it reports.

pub mod drain;
pub mod kernel;
pub mod metadata;
pub mod metrics;
pub mod ship;
pub mod spool;
pub mod state;
