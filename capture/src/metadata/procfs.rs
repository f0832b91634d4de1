//! Reads process state from `/proc`: the start-up snapshot, and late lookups for processes
//! first seen through an event.

use std::collections::HashMap;
use std::fs;

/// What `/proc/<pid>` says about a process.
#[derive(Debug, Clone, Default)]
pub struct ProcSnapshot {
    /// Thread-group id.
    pub pid: u32,
    /// Parent pid.
    pub ppid: u32,
    /// Real uid.
    pub uid: u32,
    /// Real gid.
    pub gid: u32,
    /// `comm`.
    pub comm: String,
    /// Resolved executable path.
    pub exepath: String,
    /// Command line (argv).
    pub argv: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// Open file descriptors that name filesystem paths.
    pub fds: HashMap<i32, String>,
    /// Start time, boot-relative ns.
    pub start_boot_ns: u64,
    /// Container id and pod UID its /proc/PID/cgroup names (v2 line, else v1 lines).
    pub cgroup_ids: (Option<String>, Option<String>),
    /// Controlling terminal (`tty_nr` of /proc/PID/stat; 0: none).
    pub tty: u32,
    /// Login uid (/proc/PID/loginuid; `u32::MAX`: unset).
    pub loginuid: u32,
}

/// Reads one process; `None` when it is gone or not a thread-group leader.
pub fn read_process(pid: u32) -> Option<ProcSnapshot> {
    let base = format!("/proc/{pid}");
    let status = fs::read_to_string(format!("{base}/status")).ok()?;
    let mut s = ProcSnapshot { pid, ..Default::default() };
    for line in status.lines() {
        let (k, v) = line.split_once(':')?;
        let v = v.trim();
        match k {
            "Name" => s.comm = v.to_owned(),
            "Tgid" if v.parse::<u32>().ok()? != pid => return None,
            "PPid" => s.ppid = v.parse().unwrap_or(0),
            "Uid" => s.uid = v.split_whitespace().next()?.parse().unwrap_or(0),
            "Gid" => s.gid = v.split_whitespace().next()?.parse().unwrap_or(0),
            _ => {}
        }
    }
    s.exepath = fs::read_link(format!("{base}/exe")).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    s.cwd = fs::read_link(format!("{base}/cwd")).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    if let Ok(c) = fs::read(format!("{base}/cmdline")) {
        let c = c.strip_suffix(&[0]).unwrap_or(&c);
        s.argv = crate::kernel::decode::split_argv(c);
    }
    if let Ok(dir) = fs::read_dir(format!("{base}/fd")) {
        for e in dir.flatten() {
            let Some(fd) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
            if let Ok(t) = fs::read_link(e.path()) {
                s.fds.insert(fd, t.to_string_lossy().into_owned());
            }
        }
    }
    s.start_boot_ns = start_time_boot_ns(&base).unwrap_or(0);
    s.tty = stat_field(&base, 4).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0) as u32;
    s.loginuid = fs::read_to_string(format!("{base}/loginuid"))
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(u32::MAX);
    s.cgroup_ids = fs::read_to_string(format!("{base}/cgroup"))
        .map(|c| crate::metadata::containers::ids_from_proc_cgroup(&c))
        .unwrap_or_default();
    Some(s)
}

/// Field `i` (0-based, counted from the one after the parenthesised comm, i.e. field 3 + i of
/// proc(5)) of /proc/PID/stat.
fn stat_field(base: &str, i: usize) -> Option<String> {
    let stat = fs::read_to_string(format!("{base}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(i).map(str::to_owned)
}

fn start_time_boot_ns(base: &str) -> Option<u64> {
    // Field 22 (starttime).
    let ticks: u64 = stat_field(base, 19)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(ticks * (1_000_000_000 / hz))
}

/// Reads every process in `/proc`.
pub fn snapshot() -> Vec<ProcSnapshot> {
    let Ok(dir) = fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter_map(read_process)
        .collect()
}

/// User names by uid from `/etc/passwd` (empty when unreadable).
pub fn users() -> std::collections::BTreeMap<u32, String> {
    parse_id_names(&fs::read_to_string("/etc/passwd").unwrap_or_default())
}

/// Group names by gid, from `/etc/group`.
pub fn groups() -> std::collections::BTreeMap<u32, String> {
    parse_id_names(&fs::read_to_string("/etc/group").unwrap_or_default())
}

/// The users and groups of container `container_id`, from the `/etc/passwd` and `/etc/group`
/// of process `pid`'s root directory (a process of that container); a file the container does
/// not have counts as empty. `None` when the process's root cannot be read (it exited).
pub fn container_accounts(container_id: &str, pid: u32) -> Option<lanner_formats::event::ContainerAccounts> {
    use lanner_formats::event::{ContainerAccounts, IdName};
    let root = std::path::PathBuf::from(format!("/proc/{pid}/root"));
    fs::read_dir(&root).ok()?;
    let read = |file: &str| -> Option<Vec<IdName>> {
        let text = match fs::read_to_string(root.join(file)) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(_) => return None,
        };
        Some(parse_id_names(&text).into_iter().map(|(id, name)| IdName { id, name }).collect())
    };
    Some(ContainerAccounts {
        container_id: container_id.to_owned(),
        users: read("etc/passwd")?,
        groups: read("etc/group")?,
    })
}

/// `name:password:id:...` lines (`/etc/passwd`, `/etc/group`) to an id → name map; malformed
/// lines are skipped.
pub fn parse_id_names(text: &str) -> std::collections::BTreeMap<u32, String> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let uid = f.nth(1)?.parse().ok()?;
            (!name.is_empty() && !name.starts_with('#')).then(|| (uid, name.to_owned()))
        })
        .collect()
}

/// Target of `/proc/<pid>/fd/<fd>`, when it still exists.
pub fn fd_path(pid: u32, fd: i32) -> Option<String> {
    fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok().map(|p| p.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwd_lines_map_uids_to_names() {
        let m = super::parse_id_names(
            "root:x:0:0:root:/root:/bin/bash\n# comment\nbad line\nnobody:x:65534:65534::/:/sbin/nologin\n",
        );
        assert_eq!(m.len(), 2);
        assert_eq!(m.get(&0).map(String::as_str), Some("root"));
        assert_eq!(m.get(&65534).map(String::as_str), Some("nobody"));
    }
}
