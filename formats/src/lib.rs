//! Lanner's shared vocabulary: what the kernel sends, what an archive holds, what an alert is.
//!
//! The key decision: every layout that crosses a boundary (kernel → capture, capture → disk,
//! analyzer → sinks) is defined once, here. The `wire` and `syscall` modules are `no_std` so the
//! eBPF programs use the very same definitions; everything else needs the `std` feature.
#![cfg_attr(not(feature = "std"), no_std)]

pub mod syscall;
pub mod wire;

#[cfg(feature = "std")]
pub mod alert;
#[cfg(feature = "std")]
pub mod archive;
#[cfg(feature = "std")]
pub mod container;
#[cfg(feature = "std")]
pub mod event;
#[cfg(feature = "std")]
pub mod paths;
