//! What the kernel's records do not carry, looked up beside them: `/proc` (`procfs`), container
//! ids from cgroups (`containers`), container names from the runtime's API (`runtime`), pod
//! names from the Kubernetes API (`k8s`) and the addresses of host names rules compare sockets
//! with (`names`). Lookups run off the event path; the event path reads caches.

pub mod containers;
pub mod k8s;
pub mod names;
pub mod procfs;
pub mod runtime;
