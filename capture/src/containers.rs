//! cgroup → container id: the kernel gives each record the thread's cgroup v2 id; the cgroup's
//! path names the container (docker, containerd/CRI, CRI-O, podman; systemd and cgroupfs
//! drivers). Processes outside any container get Falco's `host`.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Falco's container id for processes not in a container.
pub const HOST: &str = "host";

/// Resolves cgroup ids to container ids, rescanning the cgroup tree when an id is unknown.
pub struct ContainerResolver {
    root: Option<PathBuf>,
    ids: HashMap<u64, (String, Option<String>)>,
    /// Ids looked up but not found, with when they were first looked up.
    unresolved: HashMap<u64, Instant>,
    last_scan: Option<Instant>,
}

impl ContainerResolver {
    /// A resolver over the cgroup v2 hierarchy mounted on this host (none: everything is `host`).
    pub fn new() -> Self {
        Self { root: cgroup2_mount(), ids: HashMap::new(), unresolved: HashMap::new(), last_scan: None }
    }

    /// The container id for cgroup `id` (`host` when it names no container).
    pub fn resolve(&mut self, id: u64) -> String {
        if id == 0 {
            return HOST.to_owned();
        }
        if let Some((c, _)) = self.ids.get(&id) {
            return c.clone();
        }
        // New cgroups appear with new containers; rescan, but not more than 20 times a second,
        // except that an id never seen before always gets one scan made after it was first seen
        // (its cgroup existed then), so a burst of new containers cannot leave one unresolved.
        let first_seen = *self.unresolved.entry(id).or_insert_with(Instant::now);
        if self.last_scan.is_none_or(|t| t.elapsed() > Duration::from_millis(50) || t < first_seen) {
            self.scan();
            if self.ids.contains_key(&id) {
                self.unresolved.remove(&id);
            } else if self.unresolved.len() > 4096 {
                // Cgroups that vanished before they were resolved; forget them.
                self.unresolved.clear();
            }
        }
        self.ids.get(&id).map_or_else(|| HOST.to_owned(), |(c, _)| c.clone())
    }

    /// The Kubernetes pod UID cgroup `id`'s path names, as of the last [`Self::resolve`].
    pub fn pod_uid(&self, id: u64) -> Option<String> {
        self.ids.get(&id).and_then(|(_, pod)| pod.clone())
    }

    fn scan(&mut self) {
        self.last_scan = Some(Instant::now());
        let Some(root) = self.root.clone() else { return };
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            let Ok(meta) = std::fs::metadata(&dir) else { continue };
            self.ids.entry(meta.ino()).or_insert_with(|| {
                let container = container_id_from_path(&dir).unwrap_or_else(|| HOST.to_owned());
                (container, crate::k8s::pod_uid_from_path(&dir))
            });
            if let Ok(rd) = std::fs::read_dir(&dir) {
                stack.extend(
                    rd.filter_map(|e| e.ok()).filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()),
                );
            }
        }
    }
}

impl Default for ContainerResolver {
    fn default() -> Self {
        Self::new()
    }
}

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup` or, on hybrid hosts,
/// `/sys/fs/cgroup/unified`).
fn cgroup2_mount() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (_, dir, fstype) = (f.next()?, f.next()?, f.next()?);
        (fstype == "cgroup2").then(|| PathBuf::from(dir))
    })
}

pub use lanner_formats::container::container_id_from_path;

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_cgroup_created_right_after_a_scan_still_resolves() {
        let mut r = ContainerResolver::new();
        let Some(root) = r.root.clone() else {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "no cgroup v2 hierarchy mounted (CI=true)");
            eprintln!("SKIPPED: no cgroup v2 hierarchy mounted");
            return;
        };
        // A lookup that scans, then a new container's cgroup within the 50 ms scan limit.
        assert_eq!(r.resolve(u64::MAX), HOST);
        let id = format!("{:064x}", 0xfeed_u64 + std::process::id() as u64);
        let cg = root.join(format!("docker-{id}.scope"));
        if let Err(e) = std::fs::create_dir(&cg) {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "cannot create {} (CI=true): {e}", cg.display());
            eprintln!("SKIPPED: cannot create {}: {e}", cg.display());
            return;
        }
        let ino = std::fs::metadata(&cg).unwrap().ino();
        let got = r.resolve(ino);
        std::fs::remove_dir(&cg).unwrap();
        assert_eq!(got, &id[..12]);
    }

    #[test]
    fn runtime_cgroup_names() {
        let id = "3f0c1a2b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";
        for p in [
            format!("/sys/fs/cgroup/system.slice/docker-{id}.scope"),
            format!("/sys/fs/cgroup/docker/{id}"),
            format!("/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice/cri-containerd-{id}.scope"),
            format!("/sys/fs/cgroup/kubepods/besteffort/pod1234-5678/{id}"),
            format!("/sys/fs/cgroup/machine.slice/crio-{id}.scope"),
            format!("/sys/fs/cgroup/machine.slice/libpod-{id}.scope/container"),
        ] {
            assert_eq!(container_id_from_path(Path::new(&p)).as_deref(), Some("3f0c1a2b4d5e"), "{p}");
        }
        assert_eq!(container_id_from_path(Path::new("/sys/fs/cgroup/user.slice/user-0.slice/session-1.scope")), None);
    }
}
