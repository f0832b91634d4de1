//! Container names and images from a container runtime's Docker-compatible Engine API (docker,
//! podman) over its unix socket. Containers are looked up by id in a background thread and
//! cached (misses too, asked again after [`RETRY`]); the event path only reads the cache,
//! through the same generation-stamped index as the Kubernetes pod metadata.

use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::metadata::k8s::{rfc3339_ns, Container, ContainerInfo, PodIndex, PodMetadata};

/// The sockets asked when `--container-socket` is not given (docker's, then rootful podman's).
pub const DEFAULT_SOCKETS: [&str; 2] = ["/var/run/docker.sock", "/run/podman/podman.sock"];
/// A container no runtime knew is asked about again after this long (when a process of it is
/// seen again).
pub const RETRY: Duration = Duration::from_secs(30);
/// Connect, send and receive time limit for one request.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest response accepted (a container's inspect document is a few KiB).
const MAX_BODY: u64 = 4 << 20;
/// The largest response head accepted.
const MAX_HEAD: usize = 64 << 10;
/// Containers kept in the cache; beyond it the oldest looked-up ones are dropped.
const MAX_CACHED: usize = 10_000;
/// Lookups waiting for the background thread; more are dropped (and asked again later).
const QUEUE: usize = 1024;

/// Why a runtime socket gave no answer.
#[derive(Debug, PartialEq, Eq)]
pub enum LookupError {
    /// Nothing at the socket's path: that runtime is not installed or not running.
    Absent,
    /// The socket refused the connection or answered with something that is not the Engine API.
    Failed(String),
}

/// `GET /containers/<id>/json` on the Engine API at `socket`: the container's name (`.Name`
/// without its leading `/`), image (`.Config.Image`), privilege (`.HostConfig.Privileged`), start
/// (`.State.StartedAt`) and mounts (`.Mounts`), or `None` when the runtime does not know it.
pub fn inspect(socket: &Path, id: &str) -> Result<Option<(String, String, ContainerInfo)>, LookupError> {
    if !id.bytes().all(|b| b.is_ascii_alphanumeric()) || id.is_empty() {
        return Ok(None);
    }
    let (status, body) = http_get(socket, &format!("/containers/{id}/json"))?;
    match status {
        200 => {}
        404 => return Ok(None),
        s => {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_owned();
            return Err(LookupError::Failed(format!("HTTP status {s} for container {id}: {text}")));
        }
    }
    #[derive(Deserialize)]
    struct Inspect {
        #[serde(rename = "Name", default)]
        name: String,
        #[serde(rename = "Config", default)]
        config: Option<Config>,
        #[serde(rename = "HostConfig", default)]
        host_config: Option<HostConfig>,
        #[serde(rename = "State", default)]
        state: Option<State>,
        #[serde(rename = "Mounts", default)]
        mounts: Option<Vec<Mount>>,
    }
    #[derive(Deserialize)]
    struct HostConfig {
        #[serde(rename = "Privileged", default)]
        privileged: Option<bool>,
    }
    #[derive(Deserialize)]
    struct State {
        #[serde(rename = "StartedAt", default)]
        started_at: Option<String>,
    }
    #[derive(Deserialize)]
    struct Mount {
        #[serde(rename = "Source", default)]
        source: String,
        #[serde(rename = "Destination", default)]
        destination: String,
        #[serde(rename = "Mode", default)]
        mode: String,
        #[serde(rename = "RW", default)]
        rw: bool,
        #[serde(rename = "Propagation", default)]
        propagation: String,
    }
    #[derive(Deserialize)]
    struct Config {
        #[serde(rename = "Image", default)]
        image: Option<String>,
    }
    let doc: Inspect = serde_json::from_slice(&body)
        .map_err(|e| LookupError::Failed(format!("container {id}: not an Engine API inspect document: {e}")))?;
    let image = doc.config.and_then(|c| c.image).unwrap_or_default();
    let mounts = doc.mounts.map(|ms| {
        let items: Vec<String> = ms
            .iter()
            .map(|m| format!("{}:{}:{}:{}:{}", m.source, m.destination, m.mode, m.rw, m.propagation))
            .collect();
        items.join(" ")
    });
    let info = ContainerInfo {
        privileged: doc.host_config.and_then(|h| h.privileged),
        started_ns: doc.state.and_then(|s| s.started_at).as_deref().and_then(rfc3339_ns),
        mounts,
    };
    Ok(Some((doc.name.trim_start_matches('/').to_owned(), image, info)))
}

/// One HTTP/1.1 GET over the unix socket `socket`: the status and the (de-chunked) body.
fn http_get(socket: &Path, target: &str) -> Result<(u16, Vec<u8>), LookupError> {
    let failed = |what: &str, e: &dyn std::fmt::Display| LookupError::Failed(format!("{what}: {e}"));
    let mut stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(LookupError::Absent),
        Err(e) => return Err(failed("cannot connect", &e)),
    };
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|_| stream.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| failed("cannot set a timeout", &e))?;
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: lanner-capture\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(|e| failed("sending the request", &e))?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let (status, head_len, chunked, length) = loop {
        let n = stream.read(&mut chunk).map_err(|e| failed("reading the response", &e))?;
        if n == 0 {
            let got = String::from_utf8_lossy(&buf[..buf.len().min(80)]).into_owned();
            return Err(LookupError::Failed(format!("connection closed before a complete HTTP response ({got:?})")));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let header = |name: &str| {
                    resp.headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
                };
                let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
                let length = match header("content-length") {
                    Some(v) => Some(v.parse::<u64>().map_err(|_| failed("bad Content-Length", &v))?),
                    None => None,
                };
                break (resp.code.unwrap_or(0), len, chunked, length);
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            Ok(httparse::Status::Partial) => {
                return Err(LookupError::Failed(format!("response head longer than {MAX_HEAD} bytes")))
            }
            Err(e) => {
                let got = String::from_utf8_lossy(&buf[..buf.len().min(80)]).into_owned();
                return Err(LookupError::Failed(format!("not an HTTP response ({e}): {got:?}")));
            }
        }
    };
    if length.is_some_and(|l| l > MAX_BODY) {
        return Err(LookupError::Failed(format!("response body larger than {MAX_BODY} bytes")));
    }
    let rest = std::io::Cursor::new(buf.split_off(head_len)).chain(stream);
    let mut body = Vec::new();
    let read = if chunked {
        chunked_transfer::Decoder::new(rest).take(MAX_BODY + 1).read_to_end(&mut body)
    } else {
        rest.take(length.unwrap_or(MAX_BODY + 1)).read_to_end(&mut body)
    };
    read.map_err(|e| failed("reading the response body", &e))?;
    if body.len() as u64 > MAX_BODY {
        return Err(LookupError::Failed(format!("response body larger than {MAX_BODY} bytes")));
    }
    if length.is_some_and(|l| (body.len() as u64) < l) {
        return Err(LookupError::Failed(format!(
            "response body cut short ({} of {} bytes)",
            body.len(),
            length.unwrap_or(0)
        )));
    }
    Ok((status, body))
}

/// The runtime metadata cache as the event path holds it: the published index (read without
/// waiting) and the queue of containers to look up.
pub struct RuntimeMetadata {
    cache: PodMetadata,
    requests: SyncSender<String>,
    /// When each container was last asked about (so each is queued at most once per [`RETRY`]).
    asked: HashMap<String, Instant>,
}

impl RuntimeMetadata {
    /// Starts the lookup thread over `sockets` (asked in order; the first that knows a container
    /// names it).
    pub fn start(sockets: Vec<PathBuf>) -> Result<Self> {
        let (me, rx) = Self::detached();
        let cache = me.cache.clone();
        std::thread::Builder::new()
            .name("runtime-meta".into())
            .spawn(move || serve(&sockets, &rx, &cache, RETRY))
            .context("starting the container runtime metadata thread")?;
        Ok(me)
    }

    /// A cache with no thread behind it: lookups arrive on the returned receiver and results are
    /// published into [`Self::cache`].
    pub fn detached() -> (Self, Receiver<String>) {
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        (Self { cache: PodMetadata::empty(), requests: tx, asked: HashMap::new() }, rx)
    }

    /// The published containers (pod fields unused), with its generation.
    pub fn cache(&self) -> &PodMetadata {
        &self.cache
    }

    /// Asks for container `id` to be looked up, unless it was asked within [`RETRY`]; never waits.
    pub fn want(&mut self, id: &str) {
        if id == crate::metadata::containers::HOST || self.asked.get(id).is_some_and(|t| t.elapsed() < RETRY) {
            return;
        }
        if self.asked.len() >= MAX_CACHED {
            self.asked.retain(|_, t| t.elapsed() < RETRY);
        }
        match self.requests.try_send(id.to_owned()) {
            Ok(()) => {
                self.asked.insert(id.to_owned(), Instant::now());
            }
            // Full: asked again with the container's next process; gone: the thread ended.
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {}
        }
    }
}

/// The lookup thread: answers queued container ids from the sockets until the queue closes.
fn serve(sockets: &[PathBuf], rx: &Receiver<String>, cache: &PodMetadata, retry: Duration) {
    let mut found = PodIndex::default();
    let mut order = VecDeque::new();
    let mut misses: HashMap<String, Instant> = HashMap::new();
    let mut failing = vec![false; sockets.len()];
    for id in rx {
        if found.containers.contains_key(&id) || misses.get(&id).is_some_and(|t| t.elapsed() < retry) {
            continue;
        }
        let mut answer = None;
        for (socket, failing) in sockets.iter().zip(failing.iter_mut()) {
            match inspect(socket, &id) {
                Ok(a) => {
                    if *failing {
                        log::info!("container runtime socket {} answers again", socket.display());
                        *failing = false;
                    }
                    if a.is_some() {
                        answer = a;
                        break;
                    }
                }
                Err(LookupError::Absent) => log::debug!("container runtime socket {}: absent", socket.display()),
                Err(LookupError::Failed(e)) if !*failing => {
                    log::warn!(
                        "container runtime socket {}: {e} (no container names from it until it answers; logged once)",
                        socket.display()
                    );
                    *failing = true;
                }
                Err(LookupError::Failed(e)) => log::debug!("container runtime socket {}: {e}", socket.display()),
            }
        }
        match answer {
            Some((name, image, info)) => {
                misses.remove(&id);
                log::debug!("container {id}: {name} ({image})");
                found.containers.insert(id.clone(), Container { name, image, pod_uid: String::new(), info });
                order.push_back(id);
                while order.len() > MAX_CACHED {
                    if let Some(old) = order.pop_front() {
                        found.containers.remove(&old);
                    }
                }
                cache.publish(found.clone());
            }
            None => {
                if misses.len() >= MAX_CACHED {
                    misses.retain(|_, t| t.elapsed() < retry);
                }
                misses.insert(id, Instant::now());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    const CID: &str = "3f0c1a2b4d5e";
    const NO_SUCH: &str = r#"{"message":"No such container: 3f0c1a2b4d5e"}"#;

    /// A unix socket in a temp dir answering each connection with the next of `answers` (raw
    /// bytes); returns the socket path and the requests it received.
    fn server(answers: Vec<Vec<u8>>) -> (tempfile::TempDir, PathBuf, std::thread::JoinHandle<Vec<String>>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("engine.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for answer in answers {
                let (mut s, _) = listener.accept().unwrap();
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.ends_with(b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(n) if n > 0 => req.extend_from_slice(&buf[..n]),
                        _ => break,
                    }
                }
                seen.push(String::from_utf8_lossy(&req).into_owned());
                let _ = s.write_all(&answer);
            }
            seen
        });
        (dir, path, handle)
    }

    fn ok(body: &str) -> Vec<u8> {
        format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len())
            .into_bytes()
    }

    #[test]
    fn inspect_reads_name_and_image_plain_and_chunked_and_404() {
        let doc = r#"{"Id":"3f0c1a2b4d5e6f70","Name":"/web","Image":"sha256:abc","Config":{"Image":"nginx:1.25"},"HostConfig":{"Privileged":true},"State":{"StartedAt":"2026-12-07T05:00:00.123456789Z"},"Mounts":[{"Type":"bind","Source":"/proc","Destination":"/host/proc","Mode":"ro","RW":false,"Propagation":"rprivate"},{"Source":"/var/lib/x","Destination":"/data","Mode":"","RW":true,"Propagation":""}]}"#;
        let (a, b) = doc.split_at(30);
        let chunked = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
            a.len(),
            b.len()
        );
        let (_dir, path, server) = server(vec![
            ok(doc),
            chunked.into_bytes(),
            format!("HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\n\r\n{NO_SUCH}", NO_SUCH.len()).into_bytes(),
            ok(r#"{"Name":"podman-ctr"}"#),
        ]);
        let info = ContainerInfo {
            privileged: Some(true),
            started_ns: Some(1_796_619_600_123_456_789),
            mounts: Some("/proc:/host/proc:ro:false:rprivate /var/lib/x:/data::true:".into()),
        };
        let want = Some(("web".to_owned(), "nginx:1.25".to_owned(), info));
        assert_eq!(inspect(&path, CID), Ok(want.clone()));
        assert_eq!(inspect(&path, CID), Ok(want));
        assert_eq!(inspect(&path, CID), Ok(None));
        // No Config: the name alone.
        assert_eq!(inspect(&path, CID), Ok(Some(("podman-ctr".to_owned(), String::new(), ContainerInfo::default()))));
        let seen = server.join().unwrap();
        assert!(seen[0].starts_with(&format!("GET /containers/{CID}/json HTTP/1.1\r\n")), "{seen:?}");
        assert!(seen[0].contains("\r\nHost: "), "{seen:?}");
    }

    #[test]
    fn absent_refusing_and_garbled_sockets_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(inspect(&dir.path().join("none.sock"), CID), Err(LookupError::Absent));
        // A socket file nobody listens on refuses.
        let dead = dir.path().join("dead.sock");
        drop(UnixListener::bind(&dead).unwrap());
        let e = inspect(&dead, CID).unwrap_err();
        assert!(matches!(&e, LookupError::Failed(m) if m.contains("cannot connect")), "{e:?}");
        // A regular file at the path is not a socket.
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(matches!(inspect(&file, CID), Err(LookupError::Failed(_))));

        let (_d, path, server) = server(vec![
            b"SSH-2.0-OpenSSH_9.6\r\n".to_vec(),
            ok("<html>not json</html>"),
            ok(r#"{"Name":5}"#),
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nboom".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"Name\"".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
            b"HTTP/1.1 200".to_vec(),
        ]);
        for want in [
            "not an HTTP response",
            "not an Engine API inspect document",
            "not an Engine API inspect document",
            "HTTP status 500",
            "cut short",
            "larger than",
            "reading the response body",
            "connection closed before a complete HTTP response",
        ] {
            match inspect(&path, CID) {
                Err(LookupError::Failed(m)) => assert!(m.contains(want), "{want}: {m}"),
                other => panic!("{want}: {other:?}"),
            }
        }
        server.join().unwrap();
        // Ids that are not container ids are never sent.
        assert_eq!(inspect(&path, "../../version"), Ok(None));
    }

    #[test]
    fn lookups_are_cached_and_misses_not_asked_again_at_once() {
        let other = "bbbbbbbbbbbb";
        let (_d, path, server) = server(vec![
            format!("HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\n\r\n{NO_SUCH}", NO_SUCH.len()).into_bytes(),
            ok(r#"{"Name":"/db","Config":{"Image":"postgres:16"}}"#),
            ok(r#"{"Name":"/cache","Config":{"Image":"redis"}}"#),
        ]);
        let (mut meta, rx) = RuntimeMetadata::detached();
        let cache = meta.cache().clone();
        // The first socket is absent: asked, skipped silently, the second one answers.
        let sockets = [path.with_file_name("absent.sock"), path];
        let lookup = std::thread::spawn(move || serve(&sockets, &rx, &cache, RETRY));
        meta.want("aaaaaaaaaaaa");
        meta.want("aaaaaaaaaaaa"); // asked already: not queued
        meta.want(crate::metadata::containers::HOST);
        meta.want(CID);
        meta.want(CID);
        meta.want("aaaaaaaaaaaa");
        meta.want(other);
        let cache = meta.cache().clone();
        drop(meta); // closes the queue: the thread ends after the last lookup
        lookup.join().unwrap();
        let index = cache.try_index().unwrap();
        assert_eq!(cache.generation(), 2);
        assert_eq!(index.containers.len(), 2, "{:?}", index.containers);
        assert_eq!((index.containers[CID].name.as_str(), index.containers[CID].image.as_str()), ("db", "postgres:16"));
        assert_eq!(index.containers[other].name, "cache");
        // One request per container, in the order asked (a repeat would have taken the next answer).
        let seen = server.join().unwrap();
        let targets: Vec<&str> = seen.iter().map(|r| r.split(' ').nth(1).unwrap_or("")).collect();
        assert_eq!(
            targets,
            [
                "/containers/aaaaaaaaaaaa/json".to_owned(),
                format!("/containers/{CID}/json"),
                format!("/containers/{other}/json")
            ]
        );
    }

    #[test]
    fn a_miss_is_looked_up_again_only_after_the_retry_interval() {
        let late = || ok(r#"{"Name":"/late","Config":{"Image":"alpine:3"}}"#);
        let not_found =
            || format!("HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\n\r\n{NO_SUCH}", NO_SUCH.len()).into_bytes();
        let other = "cccccccccccc";
        for (retry, asked, named) in [(RETRY, [CID, CID, other], other), (Duration::ZERO, [CID, CID, CID], CID)] {
            let (_d, path, server) = server(vec![not_found(), late()]);
            let (tx, rx) = std::sync::mpsc::sync_channel(8);
            let cache = PodMetadata::empty();
            let c = cache.clone();
            let lookup = std::thread::spawn(move || serve(&[path], &rx, &c, retry));
            for id in asked {
                tx.send(id.to_owned()).unwrap();
            }
            drop(tx);
            lookup.join().unwrap();
            let index = cache.try_index().unwrap();
            assert_eq!(index.containers.keys().collect::<Vec<_>>(), [named], "retry {retry:?}");
            assert_eq!(server.join().unwrap().len(), 2);
        }
    }
}
