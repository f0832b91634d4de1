//! Parses ring-buffer bytes into [`Record`]s; malformed records are rejected, never trusted.

use lanner_formats::wire::{RecordHeader, RecordKind, HEADER_LEN};

/// One decoded kernel record.
#[derive(Debug, Clone)]
pub struct Record {
    /// What happened.
    pub kind: RecordKind,
    /// Native syscall number.
    pub nr: u32,
    /// `CLOCK_BOOTTIME` ns.
    pub ts_boot_ns: u64,
    /// Thread-group id.
    pub tgid: u32,
    /// Thread id.
    pub tid: u32,
    /// Real uid.
    pub uid: u32,
    /// Real gid.
    pub gid: u32,
    /// Syscall return value.
    pub ret: i64,
    /// Raw arguments.
    pub args: [u64; 6],
    /// Thread name.
    pub comm: String,
    /// The two blobs, NUL terminator removed.
    pub blobs: [Vec<u8>; 2],
    /// cgroup v2 id of the thread.
    pub cgroup_id: u64,
    /// Controlling terminal (`tty_nr`), exec records only.
    pub tty: u32,
    /// Login uid, exec records only.
    pub loginuid: u32,
}

/// Decodes one record; `Err` says why the bytes are not a valid record.
pub fn decode(bytes: &[u8]) -> Result<Record, String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!("record of {} bytes is shorter than the {HEADER_LEN}-byte header", bytes.len()));
    }
    // SAFETY: length checked; RecordHeader is plain old data, read unaligned.
    let h: RecordHeader = unsafe { std::ptr::read_unaligned(bytes.as_ptr() as *const RecordHeader) };
    let kind = RecordKind::from_u16(h.kind).ok_or_else(|| format!("unknown record kind {}", h.kind))?;
    let (l1, l2) = (h.blob_lens[0] as usize, h.blob_lens[1] as usize);
    if HEADER_LEN + l1 + l2 > bytes.len() {
        return Err(format!("blob lengths {l1}+{l2} exceed the {}-byte record", bytes.len()));
    }
    let blob = |from: usize, len: usize| {
        let b = &bytes[from..from + len];
        b.strip_suffix(&[0]).unwrap_or(b).to_vec()
    };
    Ok(Record {
        kind,
        nr: h.nr,
        ts_boot_ns: h.ts_boot_ns,
        tgid: (h.pid_tgid >> 32) as u32,
        tid: h.pid_tgid as u32,
        uid: h.uid_gid as u32,
        gid: (h.uid_gid >> 32) as u32,
        ret: h.ret,
        args: h.args,
        comm: cstr(&h.comm),
        blobs: [blob(HEADER_LEN, l1), blob(HEADER_LEN + l1, l2)],
        cgroup_id: h.cgroup_id,
        tty: h.tty,
        loginuid: h.loginuid,
    })
}

/// A NUL-terminated byte array as a (lossy) string.
pub fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Splits a NUL-separated argv blob.
pub fn split_argv(b: &[u8]) -> Vec<String> {
    if b.is_empty() {
        return Vec::new();
    }
    b.split(|&c| c == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u16, lens: [u16; 2]) -> Vec<u8> {
        let h = RecordHeader {
            kind,
            blob_lens: lens,
            _pad: 0,
            nr: 257,
            _pad2: 0,
            ts_boot_ns: 5,
            pid_tgid: (10u64 << 32) | 11,
            uid_gid: (7u64 << 32) | 1000,
            ret: 3,
            args: [1, 2, 3, 4, 5, 6],
            comm: *b"cat\0\0\0\0\0\0\0\0\0\0\0\0\0",
            cgroup_id: 1,
            tty: 0,
            loginuid: u32::MAX,
        };
        h.to_bytes().to_vec()
    }

    #[test]
    fn decodes_header_and_blobs() {
        let mut b = header(1, [12, 0]);
        b.extend_from_slice(b"/etc/shadow\0");
        let r = decode(&b).unwrap();
        assert_eq!((r.tgid, r.tid, r.uid, r.gid), (10, 11, 1000, 7));
        assert_eq!(r.comm, "cat");
        assert_eq!(r.blobs[0], b"/etc/shadow");
        assert!(r.blobs[1].is_empty());
    }

    #[test]
    fn rejects_short_and_inconsistent_records() {
        assert!(decode(&[0u8; 10]).unwrap_err().contains("shorter"));
        let b = header(1, [100, 0]);
        assert!(decode(&b).unwrap_err().contains("exceed"));
        let b = header(99, [0, 0]);
        assert!(decode(&b).unwrap_err().contains("unknown record kind"));
    }

    #[test]
    fn argv_blob_splits_on_nul() {
        assert_eq!(split_argv(b"ls\0-l\0/tmp"), vec!["ls", "-l", "/tmp"]);
        assert!(split_argv(b"").is_empty());
    }
}
