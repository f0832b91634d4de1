//! Container ids from cgroup paths (docker, containerd, cri-o, podman naming).

use std::path::Path;

fn is_hex_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The 12-character container id a cgroup path names, if any (innermost match wins).
pub fn container_id_from_path(path: &Path) -> Option<String> {
    path.components().rev().find_map(|c| {
        let name = c.as_os_str().to_str()?;
        let name = name.strip_suffix(".scope").unwrap_or(name);
        let id = ["docker-", "cri-containerd-", "crio-", "libpod-", "containerd-"]
            .iter()
            .find_map(|p| name.strip_prefix(p))
            .unwrap_or(name);
        is_hex_id(id).then(|| id[..12].to_owned())
    })
}
