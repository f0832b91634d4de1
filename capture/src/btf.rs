//! Kernel struct member offsets read from the running kernel's BTF (`/sys/kernel/btf/vmlinux`)
//! at load time, so the eBPF programs follow kernel pointers without hard-coded layouts.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{anyhow, Result};
use btfparse::{Offset, Readable, TypeInformation};
use lanner_formats::wire::sock_offsets as so;

/// Where the kernel publishes its BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

struct BtfFile(File);

impl Readable for BtfFile {
    fn read(&self, offset: u64, buffer: &mut [u8]) -> btfparse::Result<()> {
        self.0.read_exact_at(buffer, offset).map_err(|e| e.into())
    }
}

/// Byte offsets of the members the socket description follows, indexed as in
/// [`lanner_formats::wire::sock_offsets`].
pub fn sock_offsets(path: &Path) -> Result<[u32; so::COUNT]> {
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
    for (i, ty, member) in [
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
    ] {
        o[i] = byte_offset(ty, member)?;
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
        let o = sock_offsets(p).unwrap();
        // task_struct.files is far into the struct; the sock_common members come first in sock.
        assert!(o[so::TASK_FILES] > 64, "{o:?}");
        assert!(o[so::SK_FAMILY] < 64 && o[so::SK_DADDR] < o[so::SK_FAMILY], "{o:?}");
        assert!(o[so::FILES_FDT] > 0 && o[so::FILE_PRIVATE_DATA] > 0, "{o:?}");
    }
}
