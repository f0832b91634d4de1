//! Writes `.scap` files (format 1.2 blocks that sysdig 0.29 and later read): section header,
//! machine info, a version-8 process list, a user list and version-2 event blocks.

use std::io::Write;

use crate::params::ParamType;
use crate::reader::ThreadInfo;

use crate::blocks::{EV_V2, MI, PL_V8, SHB, SHB_MAGIC, UL};

/// Longest string libscap accepts in a process-list entry.
const MAX_LIST_STRING: usize = 4096;

/// A parameter value to encode with the type the event table gives it.
#[derive(Debug, Clone)]
pub enum Value {
    /// An integer (encoded in the parameter type's width).
    Int(i64),
    /// A string (NUL-terminated).
    Str(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
}

/// Encodes `v` as a parameter of type `t`; a missing value becomes the type's zero.
pub fn encode(t: ParamType, v: Option<&Value>) -> Vec<u8> {
    use ParamType as P;
    let int = || match v {
        Some(Value::Int(i)) => *i,
        _ => 0,
    };
    match t {
        P::Int8 | P::Uint8 | P::Flags8 | P::Sigtype | P::L4proto | P::Sockfamily => vec![int() as u8],
        P::Int16 | P::Uint16 | P::Flags16 | P::Port | P::Syscallid => (int() as u16).to_le_bytes().to_vec(),
        P::Int32 | P::Uint32 | P::Flags32 | P::Mode | P::Uid | P::Gid | P::Ipv4addr | P::Bool | P::Sigset => {
            (int() as u32).to_le_bytes().to_vec()
        }
        P::Int64 | P::Uint64 | P::Errno | P::Fd | P::Pid | P::Reltime | P::Abstime | P::Double => {
            int().to_le_bytes().to_vec()
        }
        P::Charbuf | P::Fspath | P::Fsrelpath => {
            let mut b = match v {
                Some(Value::Str(s)) => s.as_bytes().to_vec(),
                Some(Value::Bytes(b)) => b.clone(),
                _ => Vec::new(),
            };
            b.push(0);
            b
        }
        _ => match v {
            Some(Value::Bytes(b)) => b.clone(),
            Some(Value::Str(s)) => s.as_bytes().to_vec(),
            Some(Value::Int(i)) => i.to_le_bytes().to_vec(),
            None => Vec::new(),
        },
    }
}

/// Writes blocks to `out`.
pub struct ScapWriter<W: Write> {
    out: W,
    body: Vec<u8>,
}

impl<W: Write> ScapWriter<W> {
    /// Starts a capture: section header and machine info.
    pub fn new(out: W, hostname: &str, num_cpus: u32) -> std::io::Result<Self> {
        let mut w = Self { out, body: Vec::new() };
        let mut b = Vec::new();
        b.extend_from_slice(&SHB_MAGIC.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&u64::MAX.to_le_bytes()); // section length: unknown
        w.block(SHB, &b)?;
        let mut b = Vec::new();
        b.extend_from_slice(&num_cpus.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes()); // memory
        b.extend_from_slice(&0u64.to_le_bytes()); // max pid
        let mut host = [0u8; 128];
        let n = hostname.len().min(127);
        host[..n].copy_from_slice(&hostname.as_bytes()[..n]);
        b.extend_from_slice(&host);
        b.extend_from_slice(&[0u8; 32]); // reserved
        w.block(MI, &b)?;
        Ok(w)
    }

    fn block(&mut self, btype: u32, body: &[u8]) -> std::io::Result<()> {
        let pad = (4 - body.len() % 4) % 4;
        let total = (8 + body.len() + pad + 4) as u32;
        self.out.write_all(&btype.to_le_bytes())?;
        self.out.write_all(&total.to_le_bytes())?;
        self.out.write_all(body)?;
        self.out.write_all(&[0u8; 3][..pad])?;
        self.out.write_all(&total.to_le_bytes())
    }

    /// Writes the process list.
    pub fn threads(&mut self, threads: &[ThreadInfo]) -> std::io::Result<()> {
        let mut b = Vec::new();
        // libscap refuses process-list strings longer than its buffers (SCAP_MAX_PATH_SIZE,
        // SCAP_MAX_ARGS_SIZE: 4096 bytes); longer values are cut.
        let s = |b: &mut Vec<u8>, v: &[u8]| {
            let v = &v[..v.len().min(MAX_LIST_STRING)];
            b.extend_from_slice(&(v.len() as u16).to_le_bytes());
            b.extend_from_slice(v);
        };
        for t in threads {
            for v in [t.tid, t.pid, t.ptid, 0 /* sid */, 0 /* vpgid */] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            s(&mut b, t.comm.as_bytes());
            s(&mut b, t.exe.as_bytes());
            s(&mut b, t.exepath.as_bytes());
            s(&mut b, &nul_list(&t.args));
            s(&mut b, t.cwd.as_bytes());
            b.extend_from_slice(&1024u64.to_le_bytes()); // fdlimit
            b.extend_from_slice(&0u32.to_le_bytes()); // flags
            b.extend_from_slice(&t.uid.to_le_bytes());
            b.extend_from_slice(&t.gid.to_le_bytes());
            b.extend_from_slice(&[0u8; 4 * 3 + 8 * 2]); // vm sizes, page faults
            s(&mut b, b""); // environment
            b.extend_from_slice(&t.tid.to_le_bytes()); // vtid
            b.extend_from_slice(&t.vpid.to_le_bytes()); // vpid
            s(&mut b, &nul_list(&t.cgroups));
            s(&mut b, b"/"); // root
        }
        self.block(PL_V8, &b)
    }

    /// Writes the user list (users only).
    pub fn users(&mut self, users: &[(u32, String)]) -> std::io::Result<()> {
        let mut b = Vec::new();
        for (uid, name) in users {
            b.push(0);
            b.extend_from_slice(&uid.to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
            for v in [name.as_str(), "", ""] {
                b.extend_from_slice(&(v.len() as u16).to_le_bytes());
                b.extend_from_slice(v.as_bytes());
            }
        }
        self.block(UL, &b)
    }

    /// Writes one event with its encoded parameters.
    pub fn event(&mut self, cpu: u16, ts: u64, tid: u64, etype: u16, params: &[Vec<u8>]) -> std::io::Result<()> {
        let plen = |p: &Vec<u8>| p.len().min(u16::MAX as usize);
        let len = 26 + params.len() * 2 + params.iter().map(plen).sum::<usize>();
        let mut b = std::mem::take(&mut self.body);
        b.clear();
        b.extend_from_slice(&cpu.to_le_bytes());
        b.extend_from_slice(&ts.to_le_bytes());
        b.extend_from_slice(&tid.to_le_bytes());
        b.extend_from_slice(&(len as u32).to_le_bytes());
        b.extend_from_slice(&etype.to_le_bytes());
        b.extend_from_slice(&(params.len() as u32).to_le_bytes());
        for p in params {
            b.extend_from_slice(&(plen(p) as u16).to_le_bytes());
        }
        for p in params {
            b.extend_from_slice(&p[..plen(p)]);
        }
        let r = self.block(EV_V2, &b);
        self.body = b;
        r
    }

    /// Flushes and returns the output.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

fn nul_list(items: &[String]) -> Vec<u8> {
    let mut v = Vec::new();
    for i in items {
        v.extend_from_slice(i.as_bytes());
        v.push(0);
    }
    v
}
