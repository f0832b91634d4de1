//! The kernel side as user space sees it: what the running kernel offers (`support`), its BTF
//! (`btf`), loading and attaching the eBPF programs (`loader`), and parsing their records (`decode`).

pub mod btf;
pub mod decode;
pub mod loader;
pub mod support;
