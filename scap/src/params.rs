//! Parameter types of libscap's event table and decoders for the values Lanner uses.

use crate::reader::{lossy, FdKind};

/// libscap's `PT_*` parameter types, in libscap's numbering.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    None,
    Int8,
    Int16,
    Int32,
    Int64,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Charbuf,
    Bytebuf,
    Errno,
    Sockaddr,
    Socktuple,
    Fd,
    Pid,
    Fdlist,
    Fspath,
    Syscallid,
    Sigtype,
    Reltime,
    Abstime,
    Port,
    L4proto,
    Sockfamily,
    Bool,
    Ipv4addr,
    Dyn,
    Flags8,
    Flags16,
    Flags32,
    Uid,
    Gid,
    Double,
    Sigset,
    Charbufarray,
    CharbufPairArray,
    Ipv4net,
    Ipv6addr,
    Ipv6net,
    Ipaddr,
    Ipnet,
    Mode,
    Fsrelpath,
}

/// A signed integer parameter of 1, 2, 4 or 8 bytes (sign-extended); `None` for other sizes.
pub fn int(b: &[u8]) -> Option<i64> {
    Some(match b.len() {
        1 => b[0] as i8 as i64,
        2 => i16::from_le_bytes([b[0], b[1]]) as i64,
        4 => i32::from_le_bytes(b.try_into().ok()?) as i64,
        8 => i64::from_le_bytes(b.try_into().ok()?),
        _ => return None,
    })
}

/// An unsigned integer parameter of 1, 2, 4 or 8 bytes; `None` for other sizes.
pub fn uint(b: &[u8]) -> Option<u64> {
    Some(match b.len() {
        1 => b[0] as u64,
        2 => u16::from_le_bytes([b[0], b[1]]) as u64,
        4 => u32::from_le_bytes(b.try_into().ok()?) as u64,
        8 => u64::from_le_bytes(b.try_into().ok()?),
        _ => return None,
    })
}

/// A NUL-terminated string parameter.
pub fn string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    lossy(&b[..end])
}

/// A NUL-separated list (`execve` arguments, environment).
pub fn string_list(b: &[u8]) -> Vec<String> {
    if b.is_empty() {
        return Vec::new();
    }
    let b = b.strip_suffix(&[0]).unwrap_or(b);
    b.split(|&c| c == 0).map(|s| String::from_utf8_lossy(s).into_owned()).collect()
}

const PPM_AF_UNIX: u8 = 1;
const PPM_AF_INET: u8 = 2;
const PPM_AF_INET6: u8 = 10;

/// The socket an address or tuple parameter describes: IPv4/IPv6 ends, or a unix path.
pub fn socket(b: &[u8], tuple: bool) -> Option<(FdKind, String)> {
    let fam = *b.first()?;
    let k = match (fam, tuple) {
        (PPM_AF_INET, true) if b.len() >= 13 => FdKind::Ipv4 {
            sip: b[1..5].try_into().ok()?,
            sport: u16::from_le_bytes([b[5], b[6]]),
            dip: b[7..11].try_into().ok()?,
            dport: u16::from_le_bytes([b[11], b[12]]),
            l4: 0,
        },
        (PPM_AF_INET6, true) if b.len() >= 37 => FdKind::Ipv6 {
            sip: b[1..17].try_into().ok()?,
            sport: u16::from_le_bytes([b[17], b[18]]),
            dip: b[19..35].try_into().ok()?,
            dport: u16::from_le_bytes([b[35], b[36]]),
            l4: 0,
        },
        (PPM_AF_INET, false) if b.len() >= 7 => {
            FdKind::Ipv4Server { ip: b[1..5].try_into().ok()?, port: u16::from_le_bytes([b[5], b[6]]), l4: 0 }
        }
        (PPM_AF_INET6, false) if b.len() >= 19 => {
            FdKind::Ipv6Server { ip: b[1..17].try_into().ok()?, port: u16::from_le_bytes([b[17], b[18]]), l4: 0 }
        }
        (PPM_AF_UNIX, _) => {
            let path = if tuple { b.get(17..).map(string).unwrap_or_default() } else { string(&b[1..]) };
            return Some((FdKind::Unix, path));
        }
        _ => return None,
    };
    let name = tuple_name(&k);
    Some((k, name))
}

/// libsinsp's fd name for a socket: `sip:sport->dip:dport`, or `ip:port` for a server socket.
pub fn tuple_name(k: &FdKind) -> String {
    use lanner_formats::event::sock_name::{connection, end};
    use std::net::{Ipv4Addr, Ipv6Addr};
    match k {
        FdKind::Ipv4 { sip, sport, dip, dport, .. } => {
            connection(&end(Ipv4Addr::from(*sip), *sport), &end(Ipv4Addr::from(*dip), *dport))
        }
        FdKind::Ipv6 { sip, sport, dip, dport, .. } => {
            connection(&end(Ipv6Addr::from(*sip), *sport), &end(Ipv6Addr::from(*dip), *dport))
        }
        FdKind::Ipv4Server { ip, port, .. } => end(Ipv4Addr::from(*ip), *port),
        FdKind::Ipv6Server { ip, port, .. } => end(Ipv6Addr::from(*ip), *port),
        _ => String::new(),
    }
}
