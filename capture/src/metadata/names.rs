//! Host names resolved on the recording host (`--resolve`), for the `fd.*.name` fields.
//!
//! libsinsp answers `fd.sip.name = "api.example"` by resolving the name where the rule runs and
//! asking whether the socket's address is one of the answers. An archive is analyzed later and
//! elsewhere, where the name may resolve to other addresses or not at all, so the capture
//! resolves the names it is given, on this host, every [`REFRESH`], and each chunk records every
//! address each name had while the chunk was open.
//!
//! A failed lookup keeps the addresses of the last one that succeeded: a DNS outage should not
//! blind the rules. A name that never resolved has no addresses.

use std::collections::{BTreeMap, BTreeSet};
use std::net::ToSocketAddrs;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use lanner_formats::event::{stored_addr, ResolvedName};

/// How often each name is resolved again (libsinsp's DNS manager starts at 10 s too).
pub const REFRESH: Duration = Duration::from_secs(10);

/// Addresses of one name.
#[derive(Default)]
struct Addrs {
    /// From the last lookup that succeeded.
    current: BTreeSet<[u8; 16]>,
    /// Every address the name had since the last chunk was sealed.
    seen: BTreeSet<[u8; 16]>,
}

/// The names being resolved and their addresses, shared with the refresh thread.
pub struct NameResolver {
    names: Arc<Mutex<BTreeMap<String, Addrs>>>,
    refresher: std::thread::Thread,
}

impl NameResolver {
    /// Resolves `names` once now (so the first chunk has their addresses), then every
    /// [`REFRESH`] on a thread of its own until the resolver is dropped. `None` without names.
    pub fn start(names: &[String]) -> std::io::Result<Option<Self>> {
        if names.is_empty() {
            return Ok(None);
        }
        let table: BTreeMap<String, Addrs> = names.iter().map(|n| (n.clone(), Addrs::default())).collect();
        let names = Arc::new(Mutex::new(table));
        refresh(&names);
        let weak: Weak<Mutex<BTreeMap<String, Addrs>>> = Arc::downgrade(&names);
        let handle = std::thread::Builder::new().name("resolve".into()).spawn(move || loop {
            std::thread::park_timeout(REFRESH);
            let Some(names) = weak.upgrade() else { return };
            refresh(&names);
        })?;
        Ok(Some(Self { names, refresher: handle.thread().clone() }))
    }

    /// The table for the chunk being sealed: each name with every address it had since the last
    /// call (its current ones included); the next chunk then starts from the current ones.
    pub fn take_for_chunk(&self) -> Vec<ResolvedName> {
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        names
            .iter_mut()
            .map(|(name, a)| {
                let seen = std::mem::replace(&mut a.seen, a.current.clone());
                ResolvedName { name: name.clone(), addrs: seen.into_iter().collect() }
            })
            .collect()
    }
}

impl Drop for NameResolver {
    fn drop(&mut self) {
        self.refresher.unpark();
    }
}

/// Looks every name up (outside the lock: a lookup can take seconds) and records the answers.
fn refresh(names: &Mutex<BTreeMap<String, Addrs>>) {
    let list: Vec<String> = names.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
    for name in list {
        let found = lookup(&name);
        let mut names = names.lock().unwrap_or_else(|p| p.into_inner());
        let Some(a) = names.get_mut(&name) else { continue };
        match found {
            Ok(addrs) => {
                a.seen.extend(addrs.iter().copied());
                a.current = addrs;
            }
            Err(e) => log::debug!("resolving {name}: {e} (keeping its last addresses)"),
        }
    }
}

/// The addresses `name` resolves to here (the system resolver: /etc/hosts, then DNS), in the
/// archive's 16-byte form.
fn lookup(name: &str) -> std::io::Result<BTreeSet<[u8; 16]>> {
    Ok((name, 0).to_socket_addrs()?.map(|sa| stored_addr(sa.ip())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_now_and_each_chunk_keeps_every_address_it_saw() {
        let r =
            NameResolver::start(&["localhost".to_owned(), "lanner-no-such-host.invalid".to_owned()]).unwrap().unwrap();
        let first = r.take_for_chunk();
        assert_eq!(first.len(), 2);
        let localhost = &first[1];
        assert_eq!(localhost.name, "localhost");
        assert!(localhost.addrs.contains(&stored_addr("127.0.0.1".parse().unwrap())), "{first:?}");
        assert!(first[0].addrs.is_empty(), "{first:?}");
        // A changed answer: the chunk open during the change has both, the next only the new one.
        {
            let mut t = r.names.lock().unwrap();
            let a = t.get_mut("localhost").unwrap();
            let new = stored_addr("127.0.0.2".parse().unwrap());
            a.seen.insert(new);
            a.current = [new].into();
        }
        let second = r.take_for_chunk();
        assert_eq!(second[1].addrs.len(), localhost.addrs.len() + 1, "{second:?}");
        assert_eq!(r.take_for_chunk()[1].addrs, vec![stored_addr("127.0.0.2".parse().unwrap())]);
        assert!(NameResolver::start(&[]).unwrap().is_none());
    }
}
