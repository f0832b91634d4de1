//! Kernel struct member offsets read from the running kernel's BTF (`/sys/kernel/btf/vmlinux`)
//! at load time, so the eBPF programs follow kernel pointers without hard-coded layouts.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{anyhow, Result};
use btfparse::{Offset, Readable, TypeInformation};
use lanner_formats::wire::kernel_offsets as so;

/// Where the kernel publishes its BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

struct BtfFile(File);

impl Readable for BtfFile {
    fn read(&self, offset: u64, buffer: &mut [u8]) -> btfparse::Result<()> {
        self.0.read_exact_at(buffer, offset).map_err(|e| e.into())
    }
}

/// Byte offsets of the members the kernel side follows (sockets, tty, login uid, syscall
/// argument registers), indexed as in
/// [`lanner_formats::wire::kernel_offsets`].
pub fn kernel_offsets(path: &Path) -> Result<[u32; so::COUNT]> {
    let file = File::open(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let ti = TypeInformation::new(&BtfFile(file)).map_err(|e| anyhow!("{}: parsing BTF: {e:?}", path.display()))?;
    let byte_offset = |ty: &str, member: &str| -> Result<u32> {
        let id = ti.id_of(ty).ok_or_else(|| anyhow!("BTF has no type '{ty}'"))?;
        match ti.offset_of(id, member).map_err(|e| anyhow!("BTF: {ty}.{member}: {e:?}"))?.1 {
            Offset::ByteOffset(b) => Ok(b),
            other => Err(anyhow!("BTF: {ty}.{member} is a bit field ({other:?})")),
        }
    };
    let mut o = [0u32; so::COUNT];
    // Each group is all or nothing: the kernel side uses a group only when its first entry is set.
    let groups: [&[(usize, &str, &str)]; 7] = [
        &[
            (so::TASK_FILES, "task_struct", "files"),
            (so::FILES_FDT, "files_struct", "fdt"),
            (so::FDTABLE_FD, "fdtable", "fd"),
            (so::FDTABLE_MAX_FDS, "fdtable", "max_fds"),
            (so::FILE_PRIVATE_DATA, "file", "private_data"),
            (so::SOCKET_SK, "socket", "sk"),
            (so::SOCKET_TYPE, "socket", "type"),
            (so::SK_FAMILY, "sock", "__sk_common.skc_family"),
            (so::SK_NUM, "sock", "__sk_common.skc_num"),
            (so::SK_DPORT, "sock", "__sk_common.skc_dport"),
            (so::SK_RCV_SADDR, "sock", "__sk_common.skc_rcv_saddr"),
            (so::SK_DADDR, "sock", "__sk_common.skc_daddr"),
            (so::SK_V6_RCV_SADDR, "sock", "__sk_common.skc_v6_rcv_saddr"),
            (so::SK_V6_DADDR, "sock", "__sk_common.skc_v6_daddr"),
        ],
        &[
            (so::TASK_SIGNAL, "task_struct", "signal"),
            (so::SIGNAL_TTY, "signal_struct", "tty"),
            (so::TTY_INDEX, "tty_struct", "index"),
            (so::TTY_DRIVER, "tty_struct", "driver"),
            (so::DRIVER_MAJOR, "tty_driver", "major"),
            (so::DRIVER_MINOR_START, "tty_driver", "minor_start"),
        ],
        // Kernels without CONFIG_AUDIT have no login uid.
        &[(so::TASK_LOGINUID, "task_struct", "loginuid.val")],
        // What every record carries; the kernel side falls back to helper calls without them.
        &[(so::TASK_COMM, "task_struct", "comm")],
        &[
            (so::TASK_PID, "task_struct", "pid"),
            (so::TASK_TGID, "task_struct", "tgid"),
            (so::TASK_CRED, "task_struct", "cred"),
            (so::CRED_UID, "cred", "uid.val"),
            (so::CRED_GID, "cred", "gid.val"),
        ],
        &[
            (so::TASK_CGROUPS, "task_struct", "cgroups"),
            (so::CSS_SET_DFL_CGRP, "css_set", "dfl_cgrp"),
            (so::CGROUP_KN, "cgroup", "kn"),
            (so::KERNFS_NODE_ID, "kernfs_node", "id"),
        ],
        // A 32-bit exec's filename and the new program's argv, which no entry tracepoint sees.
        &[
            (so::BPRM_FILENAME, "linux_binprm", "filename"),
            (so::TASK_MM, "task_struct", "mm"),
            (so::MM_ARG_START, "mm_struct", "arg_start"),
            (so::MM_ARG_END, "mm_struct", "arg_end"),
        ],
    ];
    let mut missing = Vec::new();
    // The task's ids in its pid namespace, its capabilities, and its executable's inode and
    // environment (the ExecInfo record, and a fork's child).
    let task_groups: [&[(usize, &str, &str)]; 4] = [
        &[
            (so::TASK_THREAD_PID, "task_struct", "thread_pid"),
            (so::PID_LEVEL, "pid", "level"),
            (so::PID_NUMBERS, "pid", "numbers"),
            (so::SIGNAL_PIDS, "signal_struct", "pids"),
        ],
        &[
            (so::CRED_CAP_EFFECTIVE, "cred", "cap_effective"),
            (so::CRED_CAP_INHERITABLE, "cred", "cap_inheritable"),
            (so::CRED_CAP_PERMITTED, "cred", "cap_permitted"),
        ],
        &[
            (so::MM_EXE_FILE, "mm_struct", "exe_file"),
            (so::FILE_INODE, "file", "f_inode"),
            (so::INODE_INO, "inode", "i_ino"),
            (so::INODE_SB, "inode", "i_sb"),
            (so::SB_MAGIC, "super_block", "s_magic"),
        ],
        &[(so::MM_ENV_START, "mm_struct", "env_start"), (so::MM_ENV_END, "mm_struct", "env_end")],
    ];
    // The inode's times moved: `i_ctime` (a timespec64) until 6.5, `__i_ctime` from 6.6, and
    // `i_ctime_sec`/`i_ctime_nsec` from 6.11 (`i_mtime` likewise, a release later).
    let inode_time = |t: &str| -> Result<(u32, u32)> {
        byte_offset("inode", &format!("i_{t}_sec"))
            .and_then(|s| Ok((s, byte_offset("inode", &format!("i_{t}_nsec"))?)))
            .or_else(|_| {
                let ts = [format!("__i_{t}"), format!("i_{t}")]
                    .into_iter()
                    .find_map(|m| byte_offset("inode", &format!("{m}.tv_sec")).ok().map(|s| (m, s)));
                let (m, s) = ts.ok_or_else(|| anyhow!("BTF: inode has no {t} time"))?;
                Ok((s, byte_offset("inode", &format!("{m}.tv_nsec"))?))
            })
    };
    let exe_times = inode_time("ctime").and_then(|c| Ok((c, inode_time("mtime")?)));
    let inode_size =
        ti.id_of("inode").and_then(|id| ti.size_of(id).ok()).ok_or_else(|| anyhow!("BTF: no size of struct inode"));
    // All or nothing too: REGS_NR is set only when the argument registers are known as well.
    let registers = syscall_arg_registers(&byte_offset).and_then(|args| {
        let nr = byte_offset("pt_regs", if cfg!(target_arch = "x86_64") { "orig_ax" } else { "syscallno" })?;
        // x86_64 only: a 32-bit (ia32) syscall's marker and its argument registers.
        let (status, compat_args) = if cfg!(target_arch = "x86_64") {
            let mut regs = [0u32; 6];
            for (slot, reg) in regs.iter_mut().zip(["bx", "cx", "dx", "si", "di", "bp"]) {
                *slot = byte_offset("pt_regs", reg)?;
            }
            (byte_offset("task_struct", "thread_info.status")?, regs)
        } else {
            (0, [0; 6])
        };
        Ok((args, nr, status, compat_args))
    });
    match registers {
        Ok((args, nr, status, compat_args)) => {
            o[so::REGS_ARG0..so::REGS_ARG0 + 6].copy_from_slice(&args);
            o[so::REGS_NR] = nr;
            o[so::TASK_TI_STATUS] = status;
            o[so::REGS_COMPAT_ARG0..so::REGS_COMPAT_ARG0 + 6].copy_from_slice(&compat_args);
        }
        Err(e) => missing.push(format!("{e:#}")),
    }
    for group in groups.into_iter().chain(task_groups) {
        let found: Result<Vec<(usize, u32)>> =
            group.iter().map(|&(i, ty, member)| byte_offset(ty, member).map(|b| (i, b))).collect();
        match found {
            Ok(v) => v.into_iter().for_each(|(i, b)| o[i] = b),
            Err(e) => missing.push(format!("{e:#}")),
        }
    }
    match (exe_times, inode_size) {
        (Ok(((cs, cn), (ms, mn))), Ok(size)) if o[so::MM_EXE_FILE] != 0 => {
            (o[so::INODE_CTIME_SEC], o[so::INODE_CTIME_NSEC]) = (cs, cn);
            (o[so::INODE_MTIME_SEC], o[so::INODE_MTIME_NSEC]) = (ms, mn);
            o[so::INODE_SIZE] = size as u32;
        }
        (times, size) => {
            // The executable's inode is read only with its times.
            o[so::MM_EXE_FILE] = 0;
            if let Err(e) = times.and(size.map(|_| ())) {
                missing.push(format!("{e:#}"));
            }
        }
    }
    if !missing.is_empty() {
        log::warn!("kernel BTF lacks some members ({}); the matching details are not recorded", missing.join("; "));
    }
    Ok(o)
}

/// Offsets in `struct pt_regs` of the six syscall arguments as they read at syscall exit.
fn syscall_arg_registers(byte_offset: &dyn Fn(&str, &str) -> Result<u32>) -> Result<[u32; 6]> {
    let mut o = [0u32; 6];
    if cfg!(target_arch = "x86_64") {
        for (slot, reg) in o.iter_mut().zip(["di", "si", "dx", "r10", "r8", "r9"]) {
            *slot = byte_offset("pt_regs", reg)?;
        }
    } else if cfg!(target_arch = "aarch64") {
        // x0 holds the return value at exit; the kernel keeps argument 0 in orig_x0.
        o[0] = byte_offset("pt_regs", "orig_x0")?;
        let regs = byte_offset("pt_regs", "regs")?;
        for (i, slot) in o.iter_mut().enumerate().skip(1) {
            *slot = regs + 8 * i as u32;
        }
    } else {
        return Err(anyhow!("syscall argument registers are not known for this architecture"));
    }
    // Offset 0 means "unknown" to the kernel side; no architecture keeps an argument there.
    if o.contains(&0) {
        return Err(anyhow!("pt_regs: an argument register at offset 0 ({o:?})"));
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_kernel_describes_its_socket_structs() {
        let p = Path::new(VMLINUX_BTF);
        if !p.exists() {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{VMLINUX_BTF} is missing (CI=true)");
            eprintln!("SKIPPED: {VMLINUX_BTF} not found");
            return;
        }
        let o = kernel_offsets(p).unwrap();
        // task_struct.files is far into the struct; the sock_common members come first in sock.
        assert!(o[so::TASK_FILES] > 64, "{o:?}");
        assert!(o[so::SK_FAMILY] < 64 && o[so::SK_DADDR] < o[so::SK_FAMILY], "{o:?}");
        assert!(o[so::FILES_FDT] > 0 && o[so::FILE_PRIVATE_DATA] > 0, "{o:?}");
        assert!(o[so::TASK_LOGINUID] > 0 && o[so::TASK_SIGNAL] > 0 && o[so::SIGNAL_TTY] > 0, "{o:?}");
        // x86_64's pt_regs: di si dx r10 r8 r9 are at these offsets.
        #[cfg(target_arch = "x86_64")]
        assert_eq!(&o[so::REGS_ARG0..so::REGS_ARG0 + 6], &[112, 104, 96, 56, 72, 64][..], "{o:?}");
        assert!(o[so::TASK_COMM] > 64 && o[so::TASK_TGID] == o[so::TASK_PID] + 4, "{o:?}");
        assert!(o[so::TASK_CRED] > 64 && o[so::CRED_GID] > o[so::CRED_UID] && o[so::KERNFS_NODE_ID] > 0, "{o:?}");
        #[cfg(target_arch = "x86_64")]
        assert_eq!(o[so::REGS_NR], 120, "{o:?}");
        // ia32: bx cx dx si di bp.
        #[cfg(target_arch = "x86_64")]
        assert_eq!(&o[so::REGS_COMPAT_ARG0..so::REGS_COMPAT_ARG0 + 6], &[40, 88, 96, 104, 112, 32][..], "{o:?}");
        // mm_struct keeps argv's end right after its start.
        assert!(o[so::TASK_MM] > 64 && o[so::MM_ARG_END] == o[so::MM_ARG_START] + 8, "{o:?}");
        assert!(o[so::BPRM_FILENAME] > 0, "{o:?}");
        // The task's ids, capabilities, executable and environment (6.18 names the inode's
        // times i_ctime_sec/i_ctime_nsec).
        assert!(o[so::TASK_THREAD_PID] > 64 && o[so::PID_NUMBERS] > o[so::PID_LEVEL], "{o:?}");
        assert!(o[so::SIGNAL_PIDS] > 0 && o[so::CRED_CAP_EFFECTIVE] > o[so::CRED_CAP_PERMITTED], "{o:?}");
        assert!(o[so::MM_EXE_FILE] > 0 && o[so::FILE_INODE] > 0 && o[so::INODE_INO] > 0, "{o:?}");
        assert!(o[so::INODE_CTIME_NSEC] > o[so::INODE_CTIME_SEC] && o[so::INODE_MTIME_SEC] > 0, "{o:?}");
        assert!(o[so::INODE_SIZE] > 256 && o[so::SB_MAGIC] > 0, "{o:?}");
        assert!(o[so::MM_ENV_END] == o[so::MM_ENV_START] + 8, "{o:?}");
    }
}
