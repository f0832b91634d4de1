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
    let groups: [&[(usize, &str, &str)]; 3] = [
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
    ];
    let mut missing = Vec::new();
    // All or nothing too: REGS_WINDOW is set only when the syscall number is known as well.
    let registers = syscall_arg_registers(&byte_offset).and_then(register_window).and_then(|w| {
        let nr = byte_offset("pt_regs", if cfg!(target_arch = "x86_64") { "orig_ax" } else { "syscallno" })?;
        let compat = if cfg!(target_arch = "x86_64") { byte_offset("task_struct", "thread_info.status")? } else { 0 };
        Ok((w, nr, compat))
    });
    match registers {
        Ok(((start, regs), nr, compat)) => {
            o[so::REGS_WINDOW] = start;
            o[so::REGS_ARG0..so::REGS_ARG0 + 6].copy_from_slice(&regs);
            o[so::REGS_NR] = nr;
            o[so::TASK_TI_STATUS] = compat;
        }
        Err(e) => missing.push(format!("{e:#}")),
    }
    for group in groups {
        let found: Result<Vec<(usize, u32)>> =
            group.iter().map(|&(i, ty, member)| byte_offset(ty, member).map(|b| (i, b))).collect();
        match found {
            Ok(v) => v.into_iter().for_each(|(i, b)| o[i] = b),
            Err(e) => missing.push(format!("{e:#}")),
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

/// The window the exit program reads (its start, never 0) and the registers' positions in it.
/// The window ends with the last argument register, so it never reaches past `pt_regs` (at the
/// top of the kernel stack, where a read beyond it faults).
fn register_window(regs: [u32; 6]) -> Result<(u32, [u32; 6])> {
    let bytes = 8 * lanner_formats::wire::REGS_WINDOW_WORDS as u32;
    let end = regs.iter().max().expect("six registers") + 8;
    let start = end.checked_sub(bytes).filter(|&s| s > 0 && regs.iter().all(|&r| r >= s && r % 8 == s % 8));
    let start =
        start.ok_or_else(|| anyhow!("pt_regs: argument registers {regs:?} do not fit one {bytes}-byte window"))?;
    Ok((start, regs.map(|r| r - start)))
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
        // x86_64's pt_regs: r10 (argument 3) comes before the rest, di (argument 0) last of them.
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            (o[so::REGS_WINDOW], &o[so::REGS_ARG0..so::REGS_ARG0 + 6]),
            (56, &[56, 48, 40, 0, 16, 8][..]),
            "{o:?}"
        );
        #[cfg(target_arch = "x86_64")]
        assert_eq!(o[so::REGS_NR], 120, "{o:?}");
    }
}
