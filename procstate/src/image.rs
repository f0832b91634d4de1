//! What a process runs (the part an exec replaces and a fork copies) and where it runs it.

use crate::FdTable;

/// A process's program, identity and working directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Image {
    /// `comm`: the kernel's 15-character task name.
    pub comm: String,
    /// `argv[0]`.
    pub exe: String,
    /// `argv[1..]`.
    pub args: Vec<String>,
    /// The executable's absolute path.
    pub exepath: String,
    /// Working directory, ending in `/` as libsinsp keeps it (so `proc.cwd startswith "/tmp/"`
    /// holds for a process whose cwd is `/tmp`). Empty: unknown.
    pub cwd: String,
    /// Real uid.
    pub uid: u32,
    /// Real gid.
    pub gid: u32,
    /// Controlling terminal (`tty_nr`; 0: none).
    pub tty: u32,
    /// Login uid (`u32::MAX`: unset).
    pub loginuid: u32,
    /// When the current program started, unix ns.
    pub start_ns: u64,
    /// Container id (`host` outside containers).
    pub container_id: String,
    /// What the kernel said of the task at its exec, or what a fork copied from the parent
    /// (`flags` 0: nothing known).
    pub task: lanner_formats::wire::TaskInfo,
    /// The environment the program started with (`None`: unknown).
    pub env: Option<Vec<String>>,
}

/// What a successful exec tells about the new program.
#[derive(Debug, Clone, Default)]
pub struct Exec {
    /// `argv[0]`.
    pub exe: String,
    /// `argv[1..]`.
    pub args: Vec<String>,
    /// The executable's absolute path.
    pub exepath: String,
    /// The new task name.
    pub comm: String,
    /// When the exec returned, unix ns.
    pub start_ns: u64,
    /// The terminal, when the source reports it at exec.
    pub tty: Option<u32>,
    /// The login uid, when the source reports it at exec.
    pub loginuid: Option<u32>,
    /// The real uid, when the source reports it at exec.
    pub uid: Option<u32>,
    /// The kernel's view of the task and its environment, when the source reports them.
    pub task: Option<(lanner_formats::wire::TaskInfo, Vec<String>)>,
}

impl Image {
    /// A successful exec: the program and its start change, the working directory and the
    /// container stay, and `fds` (the process's table) loses its close-on-exec fds.
    pub fn exec(&mut self, fds: &mut FdTable, e: Exec) {
        (self.exe, self.args, self.exepath, self.comm, self.start_ns) = (e.exe, e.args, e.exepath, e.comm, e.start_ns);
        if let Some(v) = e.tty {
            self.tty = v;
        }
        if let Some(v) = e.loginuid {
            self.loginuid = v;
        }
        if let Some(v) = e.uid {
            self.uid = v;
        }
        // An exec the kernel did not describe leaves nothing of the old program's inode or
        // environment; its ids and capabilities may have changed too.
        (self.task, self.env) = match e.task {
            Some((t, env)) => (t, Some(env)),
            None => (Default::default(), None),
        };
        fds.exec();
    }

    /// A successful `chdir`/`fchdir` (or a working directory read elsewhere) to absolute `dir`.
    pub fn set_cwd(&mut self, dir: &str) {
        self.cwd = dir_with_slash(dir);
    }

    /// The working directory as a path (without libsinsp's trailing `/`, except for `/`).
    pub fn cwd_path(&self) -> Option<&str> {
        match self.cwd.as_str() {
            "" => None,
            "/" => Some("/"),
            d => Some(d.strip_suffix('/').unwrap_or(d)),
        }
    }
}

/// `dir` ending in `/`, as libsinsp keeps directories (empty stays empty).
pub fn dir_with_slash(dir: &str) -> String {
    if dir.is_empty() || dir.ends_with('/') {
        dir.to_owned()
    } else {
        format!("{dir}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lanner_formats::event::oflags;

    #[test]
    fn exec_replaces_the_program_and_keeps_the_directory_and_container() {
        let mut fds = FdTable::default();
        fds.open(3, "/etc/shadow".into(), "/etc/shadow", oflags::O_CLOEXEC);
        fds.open(1, "/tmp/out".into(), "out", oflags::O_WRONLY);
        let mut img = Image {
            comm: "sh".into(),
            exe: "sh".into(),
            uid: 0,
            tty: 34816,
            container_id: "host".into(),
            ..Default::default()
        };
        img.set_cwd("/tmp");
        img.exec(
            &mut fds,
            Exec {
                exe: "cat".into(),
                args: vec!["/etc/shadow".into()],
                exepath: "/usr/bin/cat".into(),
                comm: "cat".into(),
                start_ns: 7,
                tty: None,
                loginuid: Some(1000),
                uid: None,
                task: None,
            },
        );
        assert_eq!((img.comm.as_str(), img.exepath.as_str(), img.start_ns), ("cat", "/usr/bin/cat", 7));
        assert_eq!((img.cwd.as_str(), img.tty, img.loginuid), ("/tmp/", 34816, 1000));
        assert_eq!(img.container_id, "host");
        assert!(fds.get(3).is_none() && fds.get(1).is_some());
    }

    #[test]
    fn the_working_directory_ends_in_a_slash_and_reads_back_as_a_path() {
        let mut img = Image::default();
        assert_eq!(img.cwd_path(), None);
        img.set_cwd("/dev/shm");
        assert_eq!((img.cwd.as_str(), img.cwd_path()), ("/dev/shm/", Some("/dev/shm")));
        img.set_cwd("/");
        assert_eq!((img.cwd.as_str(), img.cwd_path()), ("/", Some("/")));
    }
}
