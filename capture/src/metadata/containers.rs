//! cgroup → container id: the kernel gives each record the thread's cgroup v2 id; the cgroup's
//! path names the container (docker, containerd/CRI, CRI-O, podman; systemd and cgroupfs
//! drivers). Processes outside any container get Falco's `host`.
//!
//! On cgroup v1 and hybrid hosts a runtime using the cgroupfs driver puts containers only in
//! the v1 hierarchies: the v2 id the kernel gives names the unified cgroup the process was born
//! in (a service's, or the root), not the container. There the container comes from
//! `/proc/PID/cgroup` ([`ids_from_proc_cgroup`]): read when a process is first seen, when its
//! v2 cgroup changes and at each exec, and inherited by forks. That is exact for processes a
//! runtime starts (they exec after joining the container's cgroups); a process moved into a v1
//! cgroup without exec'ing keeps its old id until its next exec, and a process gone before its
//! `/proc` entry is read keeps the one it was seen with (its parent's, for a fork).

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Falco's container id for processes not in a container.
pub const HOST: &str = "host";

/// Resolves cgroup ids to container ids, rescanning the cgroup tree when an id is unknown.
pub struct ContainerResolver {
    root: Option<PathBuf>,
    ids: HashMap<u64, (String, Option<String>)>,
    last_scan: Option<Instant>,
    /// Unknown ids a scan was already made for (each new id gets one scan, throttled or not).
    scanned_for: HashSet<u64>,
    v1: bool,
}

impl ContainerResolver {
    /// A resolver over the cgroup v2 hierarchy mounted on this host (none: everything is `host`).
    pub fn new() -> Self {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        Self {
            root: cgroup2_mount(&mounts),
            ids: HashMap::new(),
            last_scan: None,
            scanned_for: HashSet::new(),
            v1: cgroup1_mounted(&mounts),
        }
    }

    /// Whether cgroup v1 hierarchies are mounted (v1 or hybrid host): then containers the v2 id
    /// does not name are looked for in `/proc/PID/cgroup`.
    pub fn uses_v1(&self) -> bool {
        self.v1
    }

    /// The container id for cgroup `id` (`host` when it names no container).
    pub fn resolve(&mut self, id: u64) -> String {
        if id == 0 {
            return HOST.to_owned();
        }
        if let Some((c, _)) = self.ids.get(&id) {
            return c.clone();
        }
        // New cgroups appear with new containers: rescan for each id not seen before, and else
        // (ids of cgroups already gone, or outside the hierarchy) not more than 20 times a second.
        if self.scanned_for.insert(id) || self.last_scan.is_none_or(|t| t.elapsed() > Duration::from_millis(50)) {
            if self.scanned_for.len() > 100_000 {
                self.scanned_for.clear();
            }
            self.scan();
        }
        self.ids.get(&id).map_or_else(|| HOST.to_owned(), |(c, _)| c.clone())
    }

    /// The container id and pod UID of process `pid` in cgroup v2 id `cgroup_id`: what the v2
    /// cgroup's path names; on v1 hosts, when that is no container, `known` (what the process's
    /// `/proc` cgroup file named, or its parent's), else what its `/proc` cgroup file names now.
    pub fn resolve_process(&mut self, pid: u32, cgroup_id: u64, known: Option<(String, String)>) -> (String, String) {
        let container = self.resolve(cgroup_id);
        let pod = self.pod_uid(cgroup_id).unwrap_or_default();
        if container != HOST || !pod.is_empty() || !self.v1 {
            return (container, pod);
        }
        known.or_else(|| ids_of_process(pid).map(ids_or_host)).unwrap_or((container, pod))
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
                (container, crate::metadata::k8s::pod_uid_from_path(&dir))
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
/// `/sys/fs/cgroup/unified`), per `/proc/self/mounts` text.
fn cgroup2_mount(mounts: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (_, dir, fstype) = (f.next()?, f.next()?, f.next()?);
        (fstype == "cgroup2").then(|| PathBuf::from(dir))
    })
}

/// Whether `/proc/self/mounts` text mounts any cgroup v1 hierarchy.
fn cgroup1_mounted(mounts: &str) -> bool {
    mounts.lines().any(|l| l.split_whitespace().nth(2) == Some("cgroup"))
}

/// The container id and pod UID `/proc/PID/cgroup` contents name: from the v2 line (`0::/path`)
/// when it names a container, else from the v1 hierarchy lines (`N:controllers:/path`), the
/// `name=systemd`, `cpu` and `memory` ones first (runtimes place containers in all of them).
pub fn ids_from_proc_cgroup(text: &str) -> (Option<String>, Option<String>) {
    let mut lines: Vec<(u8, &str)> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
            let rank = match controllers {
                "" => 0,
                c if c.split(',').any(|c| c == "name=systemd") => 1,
                c if c.split(',').any(|c| c == "cpu") => 2,
                c if c.split(',').any(|c| c == "memory") => 3,
                _ => 4,
            };
            Some((rank, path))
        })
        .collect();
    lines.sort_by_key(|(rank, _)| *rank);
    let ids = |path: &str| {
        let path = Path::new(path);
        (container_id_from_path(path), crate::metadata::k8s::pod_uid_from_path(path))
    };
    lines.iter().map(|(_, path)| ids(path)).find(|(c, _)| c.is_some()).unwrap_or_else(|| {
        // No container anywhere: a pod UID alone (a pod's sandbox) still counts.
        lines.iter().map(|(_, path)| ids(path)).find(|(_, pod)| pod.is_some()).unwrap_or_default()
    })
}

/// A (container id, pod UID) pair with `host` and an empty pod UID for what is not named.
pub fn ids_or_host((container, pod): (Option<String>, Option<String>)) -> (String, String) {
    (container.unwrap_or_else(|| HOST.to_owned()), pod.unwrap_or_default())
}

/// [`ids_from_proc_cgroup`] for process `pid` (`None` when its `/proc` entry is gone).
pub fn ids_of_process(pid: u32) -> Option<(Option<String>, Option<String>)> {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok().map(|t| ids_from_proc_cgroup(&t))
}

pub use lanner_formats::container::container_id_from_path;

#[cfg(test)]
mod tests {
    use super::*;

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

    const ID: &str = "3f0c1a2b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";

    /// `/proc/PID/cgroup` of a process on a cgroup v1 host, every hierarchy at `path`, as the
    /// kernel lists them (the named systemd hierarchy first).
    fn v1(path: &str) -> String {
        [
            "12:name=systemd",
            "11:cpuset",
            "10:pids",
            "9:devices",
            "8:freezer",
            "7:memory",
            "6:blkio",
            "5:perf_event",
            "4:net_cls,net_prio",
            "3:hugetlb",
            "2:cpu,cpuacct",
            "1:rdma",
        ]
        .iter()
        .map(|h| format!("{h}:{}\n", if *h == "1:rdma" { "/" } else { path }))
        .collect()
    }

    #[test]
    fn cgroup_v1_contents_name_the_container() {
        let short = Some(ID[..12].to_owned());
        let uid = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";
        for (path, pod) in [
            // docker, cgroupfs driver
            (format!("/docker/{ID}"), None),
            // docker, systemd driver
            (format!("/system.slice/docker-{ID}.scope"), None),
            // containerd (CRI) and CRI-O, cgroupfs driver
            (format!("/kubepods/burstable/pod{uid}/{ID}"), Some(uid)),
            (format!("/kubepods/pod{uid}/{ID}"), Some(uid)),
            // CRI-O and containerd, systemd driver
            (
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/crio-{ID}.scope",
                    uid.replace('-', "_")
                ),
                Some(uid),
            ),
            (
                format!("/kubepods.slice/kubepods-pod{}.slice/cri-containerd-{ID}.scope", uid.replace('-', "_")),
                Some(uid),
            ),
            // podman
            (format!("/machine.slice/libpod-{ID}.scope"), None),
            (format!("/machine.slice/libpod-{ID}.scope/container"), None),
        ] {
            let want = (short.clone(), pod.map(str::to_owned));
            assert_eq!(ids_from_proc_cgroup(&v1(&path)), want, "v1: {path}");
            // Hybrid: the same v1 lines plus a unified one that names no container (cgroupfs
            // driver: the process stays in the unified cgroup of the service that started it).
            let hybrid = format!("{}0::/system.slice/containerd.service\n", v1(&path));
            assert_eq!(ids_from_proc_cgroup(&hybrid), want, "hybrid: {path}");
        }
        // Only some hierarchies moved (a runtime that places only cpu and memory): still found.
        let partial = format!("12:name=systemd:/user.slice/user-0.slice/session-3.scope\n7:memory:/docker/{ID}\n2:cpu,cpuacct:/docker/{ID}\n1:rdma:/\n");
        assert_eq!(ids_from_proc_cgroup(&partial).0, short);
        // A v2 line naming a container wins over v1 lines naming another.
        let other = "0123456789ab".repeat(5) + "0123";
        let mixed = format!("{}0::/system.slice/docker-{other}.scope\n", v1(&format!("/docker/{ID}")));
        assert_eq!(ids_from_proc_cgroup(&mixed).0.as_deref(), Some("0123456789ab"));
        // Host processes, v1 and hybrid; garbage.
        for text in [
            v1("/user.slice/user-1000.slice/session-2.scope"),
            format!("{}0::/user.slice/user-1000.slice/session-2.scope\n", v1("/user.slice")),
            "0::/\n".to_owned(),
            String::new(),
            "garbage\n::\n7:memory\n".to_owned(),
        ] {
            assert_eq!(ids_from_proc_cgroup(&text), (None, None), "{text}");
        }
        // A pod's cgroup without a container id in it still names the pod.
        let sandbox = v1(&format!("/kubepods/besteffort/pod{uid}"));
        assert_eq!(ids_from_proc_cgroup(&sandbox), (None, Some(uid.to_owned())));
    }

    #[test]
    fn mounts_tell_v1_and_v2_apart() {
        let hybrid = "tmpfs /sys/fs/cgroup tmpfs rw 0 0\ncgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n";
        assert_eq!(cgroup2_mount(hybrid), Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert!(cgroup1_mounted(hybrid));
        let v2 = "cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n";
        assert_eq!(cgroup2_mount(v2), Some(PathBuf::from("/sys/fs/cgroup")));
        assert!(!cgroup1_mounted(v2));
        let v1 = "cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\n";
        assert_eq!(cgroup2_mount(v1), None);
        assert!(cgroup1_mounted(v1));
    }
}
