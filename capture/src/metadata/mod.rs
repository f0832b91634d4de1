//! What the kernel's records do not carry, looked up beside them: `/proc` (`procfs`), container
//! ids from cgroups (`containers`), container names from the runtime's API (`runtime`) and pod
//! names from the Kubernetes API (`k8s`). Lookups run off the event path; the event path reads caches.

pub mod containers;
pub mod k8s;
pub mod procfs;
pub mod runtime;
