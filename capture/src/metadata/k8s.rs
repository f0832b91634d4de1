//! Kubernetes pod metadata: the pod UID a process's cgroup path names, and a cache of this
//! node's pods kept by a background thread (a list, then a watch from the list's version;
//! relisted when the version expires or the stream breaks), so the event path only reads a
//! shared map (never waits on the network).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// Where the service account's token is mounted in a pod.
pub const TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// Where the service account's CA certificate is mounted in a pod.
pub const CA_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
/// First wait before listing again after a failure; doubled per failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between attempts while the API server fails.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long the API server keeps one watch open (`timeoutSeconds`); then it is renewed.
const WATCH_SECONDS: u64 = 300;
/// The longest watch event line accepted.
const MAX_EVENT: u64 = 16 << 20;
/// Errors are logged at most this often.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// The largest pod list accepted.
const MAX_BODY: u64 = 64 << 20;

/// The pod UID (with dashes) named by a cgroup path, for both kubelet cgroup drivers: systemd
/// (`kubepods-burstable-pod<uid with _>.slice`) and cgroupfs (`/kubepods/burstable/pod<uid>/…`).
pub fn pod_uid_from_path(path: &Path) -> Option<String> {
    let names: Vec<&str> = path.components().filter_map(|c| c.as_os_str().to_str()).collect();
    let valid = |u: &str| !u.is_empty() && u.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-' || b == b'_');
    names.iter().enumerate().rev().find_map(|(i, name)| {
        let uid = if let Some(slice) = name.strip_suffix(".slice").filter(|n| n.starts_with("kubepods")) {
            &slice[slice.rfind("-pod")? + 4..]
        } else if names[..i].contains(&"kubepods") {
            name.strip_prefix("pod")?
        } else {
            return None;
        };
        valid(uid).then(|| uid.replace('_', "-"))
    })
}

/// A pod's name and namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
}

/// A container of a pod, as its status reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// The container's name in the pod spec.
    pub name: String,
    /// The image it runs (`repo:tag` or `repo@digest`).
    pub image: String,
    /// UID of the pod it belongs to.
    pub pod_uid: String,
    /// Its privilege, start and mounts, where the source said.
    pub info: ContainerInfo,
}

/// What a container's spec or runtime says beyond its name: `container.privileged`,
/// `container.start_ts` and `container.mounts` (each `None` where the source did not say).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Runs privileged (`securityContext.privileged`, `HostConfig.Privileged`).
    pub privileged: Option<bool>,
    /// When it started, unix ns.
    pub started_ns: Option<u64>,
    /// Its mounts as libsinsp lists them: `source:dest:mode:rw:propagation` items, space-separated.
    pub mounts: Option<String>,
}

/// An RFC 3339 time as unix ns (`None` for a zero or unparsable time, as runtimes write for a
/// container not started).
pub fn rfc3339_ns(t: &str) -> Option<u64> {
    let ns = chrono::DateTime::parse_from_rfc3339(t).ok()?.timestamp_nanos_opt()?;
    (ns > 0).then_some(ns as u64)
}

/// This node's pods: pod UID → pod, and 12-character container id → container.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PodIndex {
    /// By pod UID.
    pub pods: HashMap<String, Pod>,
    /// By the container id's first 12 characters (as `container.id` shows it).
    pub containers: HashMap<String, Container>,
}

#[derive(Deserialize)]
struct PodList {
    #[serde(default)]
    metadata: ListMeta,
    items: Vec<PodItem>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ListMeta {
    #[serde(default)]
    resource_version: String,
}

#[derive(Deserialize)]
struct PodItem {
    metadata: PodMeta,
    #[serde(default)]
    spec: PodSpec,
    #[serde(default)]
    status: PodStatus,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PodSpec {
    #[serde(default)]
    containers: Vec<SpecContainer>,
    #[serde(default)]
    init_containers: Vec<SpecContainer>,
    #[serde(default)]
    ephemeral_containers: Vec<SpecContainer>,
    #[serde(default)]
    volumes: Vec<Volume>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpecContainer {
    name: String,
    #[serde(default)]
    security_context: Option<SecurityContext>,
    #[serde(default)]
    volume_mounts: Vec<VolumeMount>,
}

#[derive(Deserialize)]
struct SecurityContext {
    #[serde(default)]
    privileged: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VolumeMount {
    name: String,
    mount_path: String,
    #[serde(default)]
    read_only: bool,
    #[serde(default)]
    mount_propagation: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Volume {
    name: String,
    #[serde(default)]
    host_path: Option<HostPath>,
}

#[derive(Deserialize)]
struct HostPath {
    path: String,
}

impl PodSpec {
    /// What the spec says of container `name`: its privilege and its mounts (a host path's
    /// source is the path; another volume's, its name).
    fn info(&self, name: &str) -> ContainerInfo {
        let all = self.containers.iter().chain(&self.init_containers).chain(&self.ephemeral_containers);
        let Some(c) = all.into_iter().find(|c| c.name == name) else { return ContainerInfo::default() };
        let mounts: Vec<String> = c
            .volume_mounts
            .iter()
            .map(|m| {
                let vol = self.volumes.iter().find(|v| v.name == m.name);
                let source = vol.and_then(|v| v.host_path.as_ref()).map_or(m.name.as_str(), |h| h.path.as_str());
                let propagation = match m.mount_propagation.as_deref() {
                    Some("Bidirectional") => "rshared",
                    Some("HostToContainer") => "rslave",
                    _ => "rprivate",
                };
                format!("{source}:{}::{}:{propagation}", m.mount_path, !m.read_only)
            })
            .collect();
        ContainerInfo {
            privileged: Some(c.security_context.as_ref().and_then(|s| s.privileged).unwrap_or(false)),
            started_ns: None,
            mounts: Some(mounts.join(" ")),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodMeta {
    name: String,
    #[serde(default)]
    namespace: String,
    uid: String,
    #[serde(default)]
    resource_version: String,
}

/// One line of a watch stream.
#[derive(Deserialize)]
struct WatchEvent {
    #[serde(rename = "type")]
    kind: String,
    object: serde_json::Value,
}

/// What a watch event line did.
#[derive(Debug, PartialEq, Eq)]
enum WatchStep {
    /// A pod was added, changed or deleted.
    Applied,
    /// A bookmark: only the version moved.
    Bookmark,
    /// The version watched from expired (410 Gone): list again.
    Gone,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PodStatus {
    #[serde(default)]
    container_statuses: Vec<ContainerStatus>,
    #[serde(default)]
    init_container_statuses: Vec<ContainerStatus>,
    #[serde(default)]
    ephemeral_container_statuses: Vec<ContainerStatus>,
}

#[derive(Deserialize)]
struct ContainerStatus {
    name: String,
    #[serde(default)]
    image: String,
    #[serde(rename = "containerID", default)]
    container_id: Option<String>,
    #[serde(default)]
    state: Option<serde_json::Value>,
}

/// The 12-character id of a status's `containerID` (`containerd://<64 hex>`, `docker://…`,
/// `cri-o://…`), if it is one.
fn short_container_id(id: &str) -> Option<String> {
    let hex = id.split_once("://").map_or(id, |(_, h)| h);
    (hex.len() >= 12 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| hex[..12].to_owned())
}

impl PodIndex {
    /// Builds the index from a `PodList` JSON document (`GET /api/v1/pods`); also returns the
    /// list's `resourceVersion` (to watch from).
    pub fn from_pod_list(json: &str) -> Result<(Self, String), String> {
        let list: PodList = serde_json::from_str(json).map_err(|e| format!("not a Kubernetes PodList: {e}"))?;
        let mut index = Self::default();
        for item in list.items {
            index.insert(item);
        }
        Ok((index, list.metadata.resource_version))
    }

    fn insert(&mut self, item: PodItem) {
        let uid = item.metadata.uid;
        let s = item.status;
        for c in s.container_statuses.into_iter().chain(s.init_container_statuses).chain(s.ephemeral_container_statuses)
        {
            // A container not started yet has no id.
            if let Some(id) = c.container_id.as_deref().and_then(short_container_id) {
                let mut info = item.spec.info(&c.name);
                info.started_ns = c
                    .state
                    .as_ref()
                    .and_then(|s| s.pointer("/running/startedAt").or_else(|| s.pointer("/terminated/startedAt")))
                    .and_then(|t| t.as_str())
                    .and_then(rfc3339_ns);
                self.containers.insert(id, Container { name: c.name, image: c.image, pod_uid: uid.clone(), info });
            }
        }
        self.pods.insert(uid, Pod { name: item.metadata.name, namespace: item.metadata.namespace });
    }

    /// Applies one line of a watch stream (`{"type":"ADDED","object":{…pod…}}`; MODIFIED,
    /// DELETED, BOOKMARK, ERROR), moving `version` to the event's `resourceVersion`.
    fn apply_watch_line(&mut self, version: &mut String, line: &str) -> Result<WatchStep, String> {
        let ev: WatchEvent =
            serde_json::from_str(line).map_err(|e| format!("not a Kubernetes watch event: {e}: {:.200}", line))?;
        match ev.kind.as_str() {
            "ADDED" | "MODIFIED" | "DELETED" => {
                let item: PodItem = serde_json::from_value(ev.object)
                    .map_err(|e| format!("watch event {}: not a pod: {e}", ev.kind))?;
                if !item.metadata.resource_version.is_empty() {
                    version.clone_from(&item.metadata.resource_version);
                }
                let uid = item.metadata.uid.clone();
                self.containers.retain(|_, c| c.pod_uid != uid);
                self.pods.remove(&uid);
                if ev.kind != "DELETED" {
                    self.insert(item);
                }
                Ok(WatchStep::Applied)
            }
            "BOOKMARK" => {
                if let Some(v) = ev.object.pointer("/metadata/resourceVersion").and_then(|v| v.as_str()) {
                    *version = v.to_owned();
                }
                Ok(WatchStep::Bookmark)
            }
            "ERROR" => {
                let code = ev.object.get("code").and_then(|c| c.as_u64()).unwrap_or(0);
                if code == 410 {
                    return Ok(WatchStep::Gone);
                }
                let msg = ev.object.get("message").and_then(|m| m.as_str()).unwrap_or("");
                Err(format!("watch error {code}: {msg}"))
            }
            other => Err(format!("unknown watch event type `{other}`")),
        }
    }

    /// (container name, image, pod name, namespace) for a process in container `container_id`
    /// and, from its cgroup path, pod `pod_uid` (empty strings where unknown).
    pub fn lookup(&self, container_id: &str, pod_uid: &str) -> [String; 4] {
        let c = self.containers.get(container_id);
        let uid = if pod_uid.is_empty() { c.map_or("", |c| c.pod_uid.as_str()) } else { pod_uid };
        let pod = self.pods.get(uid);
        [
            c.map(|c| c.name.clone()).unwrap_or_default(),
            c.map(|c| c.image.clone()).unwrap_or_default(),
            pod.map(|p| p.name.clone()).unwrap_or_default(),
            pod.map(|p| p.namespace.clone()).unwrap_or_default(),
        ]
    }
}

/// Where and how to ask the API server for this node's pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// API server base URL (`https://host:port`).
    pub api: String,
    /// This node's name (`spec.nodeName` of its pods).
    pub node: String,
    /// Bearer token file (used when it exists).
    pub token: PathBuf,
    /// CA certificate file to trust (used when it exists).
    pub ca: PathBuf,
}

impl ApiConfig {
    /// The configuration from `--k8s-api`/`--k8s-node`, else the in-cluster environment
    /// (`KUBERNETES_SERVICE_HOST`/`_PORT`, `NODE_NAME`); `None` when no API server is configured.
    pub fn resolve(
        api: Option<&str>,
        node: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>> {
        let env = |k: &str| env(k).filter(|v| !v.is_empty());
        let node = node.map(str::to_owned).or_else(|| env("NODE_NAME"));
        let api = match api {
            Some(a) => {
                if !(a.starts_with("http://") || a.starts_with("https://")) {
                    bail!("--k8s-api `{a}` is not an http:// or https:// URL");
                }
                a.trim_end_matches('/').to_owned()
            }
            None => match env("KUBERNETES_SERVICE_HOST") {
                Some(host) => {
                    let port = env("KUBERNETES_SERVICE_PORT").unwrap_or_else(|| "443".into());
                    let host = if host.contains(':') { format!("[{host}]") } else { host };
                    if node.is_none() {
                        log::warn!(
                            "KUBERNETES_SERVICE_HOST is set but neither NODE_NAME nor --k8s-node is: no pod metadata"
                        );
                        return Ok(None);
                    }
                    format!("https://{host}:{port}")
                }
                None => {
                    if node.is_some() {
                        log::warn!("--k8s-node/NODE_NAME given without an API server (--k8s-api): no pod metadata");
                    }
                    return Ok(None);
                }
            },
        };
        let Some(node) = node else { bail!("--k8s-api needs the node's name: give --k8s-node or set NODE_NAME") };
        Ok(Some(Self { api, node, token: TOKEN_PATH.into(), ca: CA_PATH.into() }))
    }
}

/// The pod metadata cache: filled by a background poller, read by the event path without waiting.
#[derive(Clone)]
pub struct PodMetadata {
    index: Arc<RwLock<Arc<PodIndex>>>,
    generation: Arc<AtomicU64>,
}

impl PodMetadata {
    /// Starts polling the API server in a background thread.
    pub fn start(cfg: ApiConfig) -> Result<Self> {
        let agent = agent(&cfg)?;
        let me = Self::empty();
        let shared = me.clone();
        std::thread::Builder::new()
            .name("k8s-pods".into())
            .spawn(move || shared.poll(cfg, agent))
            .context("starting the Kubernetes metadata thread")?;
        Ok(me)
    }

    /// A cache with nothing in it (generation 0), filled by [`Self::publish`].
    pub fn empty() -> Self {
        Self { index: Arc::default(), generation: Arc::default() }
    }

    /// Makes `new` the current index (a new generation) unless it equals the current one.
    pub fn publish(&self, new: PodIndex) {
        if **self.index.read().unwrap_or_else(|e| e.into_inner()) == new {
            return;
        }
        log::debug!("pod metadata: {} pods, {} containers", new.pods.len(), new.containers.len());
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Bumped each time the index changes (0: nothing fetched yet).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The current index, or `None` while the poller is swapping it (try again later).
    pub fn try_index(&self) -> Option<Arc<PodIndex>> {
        self.index.try_read().ok().map(|i| Arc::clone(&i))
    }

    /// Lists this node's pods, then watches them from the list's version; lists again when the
    /// version expires (410 Gone) at once, or, after a wait that grows while it lasts, when the
    /// API server fails or the stream breaks.
    fn poll(self, cfg: ApiConfig, agent: ureq::Agent) {
        let url = format!("{}/api/v1/pods", cfg.api);
        let mut errors = ErrorLog::default();
        let mut backoff = MIN_BACKOFF;
        loop {
            let (mut index, mut version) = match fetch(&agent, &url, &cfg).and_then(|b| PodIndex::from_pod_list(&b)) {
                Ok(listed) => listed,
                Err(e) => {
                    errors.failed(&format!("pod metadata from {url} (node {}): {e}", cfg.node));
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            errors.answered(&cfg.api);
            self.publish(index.clone());
            let listed = Instant::now();
            loop {
                match watch(&agent, &url, &cfg, &mut index, &mut version, &self) {
                    Ok(WatchEnd::Renew) => backoff = MIN_BACKOFF,
                    Ok(WatchEnd::Gone) => {
                        log::debug!("pod watch: resource version {version} expired, listing again");
                        // Expired right after a list: a server that keeps doing that is not
                        // asked again in a tight loop.
                        if listed.elapsed() < Duration::from_secs(1) {
                            std::thread::sleep(backoff);
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                        }
                        break;
                    }
                    Err(e) => {
                        errors.failed(&format!("pod watch at {url} (node {}): {e}", cfg.node));
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        break;
                    }
                }
            }
        }
    }
}

/// Logs API server failures at most once a minute, and the recovery after them.
#[derive(Default)]
struct ErrorLog {
    last: Option<Instant>,
    failing: bool,
}

impl ErrorLog {
    fn failed(&mut self, what: &str) {
        self.failing = true;
        if self.last.is_none_or(|t| t.elapsed() >= ERROR_LOG_INTERVAL) {
            log::warn!("{what} (logged at most once a minute)");
            self.last = Some(Instant::now());
        }
    }

    fn answered(&mut self, api: &str) {
        if std::mem::take(&mut self.failing) {
            log::info!("Kubernetes API server {api} answers again");
        }
    }
}

/// How a watch ended without an error.
#[derive(Debug, PartialEq, Eq)]
enum WatchEnd {
    /// The API server closed it (its `timeoutSeconds`): watch again from the last version.
    Renew,
    /// The version expired: list again.
    Gone,
}

/// Watches this node's pods from `version`, applying each event to `index` and publishing it
/// to `meta`, until the stream ends.
fn watch(
    agent: &ureq::Agent,
    url: &str,
    cfg: &ApiConfig,
    index: &mut PodIndex,
    version: &mut String,
    meta: &PodMetadata,
) -> Result<WatchEnd, String> {
    let started = Instant::now();
    let mut req = agent
        .get(url)
        .query("fieldSelector", format!("spec.nodeName={}", cfg.node))
        .query("watch", "1")
        .query("resourceVersion", version.as_str())
        .query("allowWatchBookmarks", "true")
        .query("timeoutSeconds", WATCH_SECONDS.to_string())
        .config()
        // The stream stays open for timeoutSeconds; a server that goes silent past that is dead.
        .timeout_global(Some(Duration::from_secs(WATCH_SECONDS + 30)))
        .build();
    if let Ok(token) = std::fs::read_to_string(&cfg.token) {
        req = req.header("Authorization", format!("Bearer {}", token.trim()));
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::StatusCode(410)) => return Ok(WatchEnd::Gone),
        Err(e) => return Err(e.to_string()),
    };
    let mut reader = BufReader::new(resp.into_body().into_reader());
    let mut events = 0u64;
    loop {
        let mut line = Vec::new();
        let n = (&mut reader)
            .take(MAX_EVENT + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("reading the watch stream: {e}"))?;
        if n == 0 {
            break;
        }
        if line.len() as u64 > MAX_EVENT {
            return Err(format!("a watch event longer than {MAX_EVENT} bytes"));
        }
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        events += 1;
        match index.apply_watch_line(version, text.trim())? {
            WatchStep::Applied => meta.publish(index.clone()),
            WatchStep::Bookmark => {}
            WatchStep::Gone => return Ok(WatchEnd::Gone),
        }
    }
    // A server that ends every watch at once would otherwise be asked again in a tight loop.
    if events == 0 && started.elapsed() < Duration::from_secs(1) {
        return Err("the watch stream closed at once".into());
    }
    Ok(WatchEnd::Renew)
}

fn agent(cfg: &ApiConfig) -> Result<ureq::Agent> {
    use ureq::tls::{PemItem, RootCerts, TlsConfig};
    let mut builder = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(10)));
    if cfg.ca.exists() {
        let pem = std::fs::read(&cfg.ca).with_context(|| format!("reading {}", cfg.ca.display()))?;
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(&pem) {
            match item {
                Ok(PemItem::Certificate(c)) => certs.push(c),
                Ok(_) => {}
                Err(e) => bail!("{}: not a PEM certificate file: {e}", cfg.ca.display()),
            }
        }
        if certs.is_empty() {
            bail!("{}: no certificate in it", cfg.ca.display());
        }
        builder = builder.tls_config(TlsConfig::builder().root_certs(RootCerts::Specific(Arc::new(certs))).build());
    }
    Ok(builder.build().into())
}

fn fetch(agent: &ureq::Agent, url: &str, cfg: &ApiConfig) -> Result<String, String> {
    let mut req = agent.get(url).query("fieldSelector", format!("spec.nodeName={}", cfg.node));
    // Projected tokens rotate: read it for every request.
    if let Ok(token) = std::fs::read_to_string(&cfg.token) {
        req = req.header("Authorization", format!("Bearer {}", token.trim()));
    }
    let mut resp = req.call().map_err(|e| e.to_string())?;
    resp.body_mut().with_config().limit(MAX_BODY).read_to_string().map_err(|e| format!("reading the pod list: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";
    const CID: &str = "3f0c1a2b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";

    #[test]
    fn pod_uid_from_systemd_and_cgroupfs_paths() {
        let u = UID.replace('-', "_");
        for p in [
            format!("/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u}.slice/cri-containerd-{CID}.scope"),
            format!("/sys/fs/cgroup/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{u}.slice/crio-{CID}.scope"),
            format!("/sys/fs/cgroup/kubepods.slice/kubepods-pod{u}.slice/cri-containerd-{CID}.scope"),
            format!("/kubepods.slice/kubepods-pod{u}.slice"),
            format!("/sys/fs/cgroup/kubepods/burstable/pod{UID}/{CID}"),
            format!("/sys/fs/cgroup/kubepods/pod{UID}/{CID}"),
            format!("/kubepods/besteffort/pod{UID}"),
        ] {
            assert_eq!(pod_uid_from_path(Path::new(&p)).as_deref(), Some(UID), "{p}");
        }
        // Static pods' UIDs are config hashes without dashes.
        assert_eq!(
            pod_uid_from_path(Path::new("/kubepods/podd41d8cd98f00b204e9800998ecf8427e/x")).as_deref(),
            Some("d41d8cd98f00b204e9800998ecf8427e")
        );
        for p in [
            "/sys/fs/cgroup/user.slice/user-0.slice/session-1.scope".to_owned(),
            "/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice".to_owned(),
            "/sys/fs/cgroup/kubepods/burstable".to_owned(),
            format!("/sys/fs/cgroup/system.slice/pod{UID}/{CID}"),
            format!("/sys/fs/cgroup/docker/{CID}"),
            "/sys/fs/cgroup/kubepods.slice/kubepods-podnot-a-uid.slice".to_owned(),
        ] {
            assert_eq!(pod_uid_from_path(Path::new(&p)), None, "{p}");
        }
    }

    #[test]
    fn pod_list_builds_the_pod_and_container_maps() {
        let json = format!(
            r#"{{"kind":"PodList","apiVersion":"v1","metadata":{{"resourceVersion":"1"}},"items":[
              {{"metadata":{{"name":"web-0","namespace":"shop","uid":"{UID}"}},
                "spec":{{"nodeName":"n1","containers":[{{"name":"nginx","securityContext":{{"privileged":true}},
                    "volumeMounts":[{{"name":"host-proc","mountPath":"/host/proc","readOnly":true}},{{"name":"cache","mountPath":"/cache"}}]}}],
                  "volumes":[{{"name":"host-proc","hostPath":{{"path":"/proc"}}}},{{"name":"cache","emptyDir":{{}}}}]}},
                "status":{{"phase":"Running",
                  "initContainerStatuses":[{{"name":"init","image":"busybox:1.36","containerID":"docker://aaaaaaaaaaaabbbb"}}],
                  "containerStatuses":[
                    {{"name":"nginx","image":"docker.io/library/nginx:1.25","containerID":"containerd://{CID}",
                      "state":{{"running":{{"startedAt":"2026-12-07T05:00:00Z"}}}}}},
                    {{"name":"pending","image":"redis:7"}}]}}}},
              {{"metadata":{{"name":"new","namespace":"default","uid":"u2"}},"status":{{"phase":"Pending"}}}},
              {{"metadata":{{"name":"bare","namespace":"default","uid":"u3"}}}}]}}"#
        );
        let (idx, version) = PodIndex::from_pod_list(&json).unwrap();
        assert_eq!(version, "1");
        assert_eq!(idx.pods.len(), 3);
        assert_eq!(idx.pods[UID], Pod { name: "web-0".into(), namespace: "shop".into() });
        assert_eq!(idx.containers.len(), 2, "{:?}", idx.containers);
        assert_eq!(
            idx.containers["3f0c1a2b4d5e"],
            Container {
                name: "nginx".into(),
                image: "docker.io/library/nginx:1.25".into(),
                pod_uid: UID.into(),
                info: ContainerInfo {
                    privileged: Some(true),
                    started_ns: Some(1_796_619_600_000_000_000),
                    mounts: Some("/proc:/host/proc::false:rprivate cache:/cache::true:rprivate".into()),
                },
            }
        );
        // A container the spec does not list: nothing known beyond its status.
        assert_eq!(idx.containers["aaaaaaaaaaaa"].name, "init");
        assert_eq!(idx.containers["aaaaaaaaaaaa"].info, ContainerInfo::default());
        assert_eq!(idx.lookup("3f0c1a2b4d5e", UID), ["nginx", "docker.io/library/nginx:1.25", "web-0", "shop"]);
        // The pod is found through the container when the cgroup path named no pod UID.
        assert_eq!(idx.lookup("3f0c1a2b4d5e", ""), ["nginx", "docker.io/library/nginx:1.25", "web-0", "shop"]);
        // A pod's process whose container is not listed yet still gets the pod.
        assert_eq!(idx.lookup("ffffffffffff", UID), ["", "", "web-0", "shop"]);
        assert_eq!(idx.lookup("host", ""), ["", "", "", ""]);
    }

    #[test]
    fn watch_events_add_change_and_delete_pods() {
        let pod = |kind: &str, rv: &str, name: &str, cid: &str| {
            format!(
                r#"{{"type":"{kind}","object":{{"kind":"Pod","metadata":{{"name":"web-0","namespace":"shop","uid":"{UID}","resourceVersion":"{rv}"}},
                  "status":{{"containerStatuses":[{{"name":"{name}","image":"nginx:1.25","containerID":"containerd://{cid}"}}]}}}}}}"#
            )
        };
        let (mut idx, mut version) =
            PodIndex::from_pod_list(r#"{"metadata":{"resourceVersion":"10"},"items":[]}"#).unwrap();
        assert_eq!(version, "10");
        assert_eq!(idx.apply_watch_line(&mut version, &pod("ADDED", "11", "nginx", CID)), Ok(WatchStep::Applied));
        assert_eq!(version, "11");
        assert_eq!(idx.lookup("3f0c1a2b4d5e", UID), ["nginx", "nginx:1.25", "web-0", "shop"]);
        // The container restarted with a new id: the old one goes.
        let restarted = "ab".repeat(32);
        assert_eq!(
            idx.apply_watch_line(&mut version, &pod("MODIFIED", "12", "nginx", &restarted)),
            Ok(WatchStep::Applied)
        );
        assert_eq!(idx.containers.keys().collect::<Vec<_>>(), ["abababababab"]);
        let bookmark = r#"{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"15"}}}"#;
        assert_eq!(idx.apply_watch_line(&mut version, bookmark), Ok(WatchStep::Bookmark));
        assert_eq!(version, "15");
        assert_eq!(
            idx.apply_watch_line(&mut version, &pod("DELETED", "16", "nginx", &restarted)),
            Ok(WatchStep::Applied)
        );
        assert_eq!(idx, PodIndex::default());
        assert_eq!(version, "16");
        let gone = r#"{"type":"ERROR","object":{"kind":"Status","status":"Failure","message":"too old resource version: 16 (20)","reason":"Expired","code":410}}"#;
        assert_eq!(idx.apply_watch_line(&mut version, gone), Ok(WatchStep::Gone));
        for (line, want) in [
            (
                r#"{"type":"ERROR","object":{"kind":"Status","code":500,"message":"etcd down"}}"#,
                "watch error 500: etcd down",
            ),
            ("{\"type\":\"ADDED\",", "not a Kubernetes watch event"),
            (r#"{"type":"ADDED","object":{"kind":"Pod","metadata":{"name":"x"}}}"#, "not a pod: missing field `uid`"),
            (r#"{"type":"RESYNC","object":{}}"#, "unknown watch event type `RESYNC`"),
        ] {
            let e = idx.apply_watch_line(&mut version, line).unwrap_err();
            assert!(e.contains(want), "{line}: {e}");
        }
        assert_eq!(version, "16", "errors leave the version");
    }

    #[test]
    fn malformed_pod_lists_are_errors_naming_the_problem() {
        for (json, want) in [
            ("", "EOF"),
            ("<html>", "expected value"),
            (r#"{"kind":"Status","status":"Failure"}"#, "missing field `items`"),
            (r#"{"items":[{"metadata":{"name":"x"}}]}"#, "missing field `uid`"),
            (
                r#"{"items":[{"metadata":{"name":"x","uid":"u"},"status":{"containerStatuses":{}}}]}"#,
                "expected a sequence",
            ),
        ] {
            let e = PodIndex::from_pod_list(json).unwrap_err();
            assert!(e.starts_with("not a Kubernetes PodList") && e.contains(want), "{json}: {e}");
        }
    }

    #[test]
    fn api_configuration_from_flags_and_environment() {
        let none = |_: &str| None;
        assert_eq!(ApiConfig::resolve(None, None, none).unwrap(), None);
        assert_eq!(ApiConfig::resolve(None, Some("n1"), none).unwrap(), None);
        let c = ApiConfig::resolve(Some("http://127.0.0.1:8080/"), Some("n1"), none).unwrap().unwrap();
        assert_eq!((c.api.as_str(), c.node.as_str()), ("http://127.0.0.1:8080", "n1"));
        let e = ApiConfig::resolve(Some("http://127.0.0.1:8080"), None, none).unwrap_err().to_string();
        assert!(e.contains("--k8s-node"), "{e}");
        let e = ApiConfig::resolve(Some("127.0.0.1:8080"), Some("n1"), none).unwrap_err().to_string();
        assert!(e.contains("not an http"), "{e}");
        let env = |k: &str| match k {
            "KUBERNETES_SERVICE_HOST" => Some("10.96.0.1".to_owned()),
            "KUBERNETES_SERVICE_PORT" => Some("6443".to_owned()),
            "NODE_NAME" => Some("worker-1".to_owned()),
            _ => None,
        };
        let c = ApiConfig::resolve(None, None, env).unwrap().unwrap();
        assert_eq!((c.api.as_str(), c.node.as_str()), ("https://10.96.0.1:6443", "worker-1"));
        assert_eq!(c.token, Path::new(TOKEN_PATH));
        // The flag wins over the environment.
        assert_eq!(ApiConfig::resolve(None, Some("n2"), env).unwrap().unwrap().node, "n2");
        // In a pod without NODE_NAME: off, not fatal.
        let env = |k: &str| (k == "KUBERNETES_SERVICE_HOST").then(|| "fd00::1".to_owned());
        assert_eq!(ApiConfig::resolve(None, None, env).unwrap(), None);
    }

    #[test]
    fn fetch_sends_the_node_selector_and_token_and_names_http_errors() {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "secret-token\n").unwrap();
        let cfg = ApiConfig {
            api: format!("http://127.0.0.1:{port}"),
            node: "n1".into(),
            token,
            ca: dir.path().join("absent-ca.crt"),
        };
        let client = agent(&cfg).unwrap();
        let serve = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for (status, body) in [(200, r#"{"items":[]}"#), (403, "forbidden")] {
                let req = server.recv().unwrap();
                let auth = req.headers().iter().find(|h| h.field.equiv("Authorization")).map(|h| h.value.to_string());
                seen.push((req.url().to_owned(), auth));
                req.respond(tiny_http::Response::from_string(body).with_status_code(status)).unwrap();
            }
            seen
        });
        let url = format!("{}/api/v1/pods", cfg.api);
        assert_eq!(fetch(&client, &url, &cfg).unwrap(), r#"{"items":[]}"#);
        let e = fetch(&client, &url, &cfg).unwrap_err();
        assert!(e.contains("403"), "{e}");
        let seen = serve.join().unwrap();
        assert_eq!(
            seen[0],
            ("/api/v1/pods?fieldSelector=spec.nodeName%3Dn1".to_owned(), Some("Bearer secret-token".to_owned()))
        );
        // A CA file that holds no certificate is an error naming it.
        std::fs::write(&cfg.ca, "not a certificate").unwrap();
        let e = agent(&cfg).expect_err("bad CA refused").to_string();
        assert!(e.contains("absent-ca.crt"), "{e}");
    }

    #[test]
    fn a_watch_streams_events_into_the_index_and_tells_how_it_ended() {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let cfg = ApiConfig {
            api: format!("http://127.0.0.1:{port}"),
            node: "n1".into(),
            token: dir.path().join("no-token"),
            ca: dir.path().join("no-ca"),
        };
        let added = format!(
            r#"{{"type":"ADDED","object":{{"metadata":{{"name":"web-0","namespace":"shop","uid":"{UID}","resourceVersion":"7"}},"status":{{"containerStatuses":[{{"name":"nginx","image":"nginx:1.25","containerID":"containerd://{CID}"}}]}}}}}}"#
        );
        let bookmark = r#"{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}}"#;
        let answers: Vec<(u16, String)> = vec![
            (200, format!("{added}\n\n{bookmark}\n")),
            (410, r#"{"kind":"Status","code":410}"#.to_owned()),
            (200, String::new()),
            (200, format!("{bookmark}\n{{\"type\":")),
            (403, "forbidden".to_owned()),
        ];
        let serve = std::thread::spawn(move || {
            let mut urls = Vec::new();
            for (status, body) in answers {
                let req = server.recv().unwrap();
                urls.push(req.url().to_owned());
                req.respond(tiny_http::Response::from_string(body).with_status_code(status)).unwrap();
            }
            urls
        });
        let client = agent(&cfg).unwrap();
        let url = format!("{}/api/v1/pods", cfg.api);
        let meta = PodMetadata::empty();
        let (mut index, mut version) = (PodIndex::default(), "5".to_owned());
        // Events, a blank line, a bookmark, then the server ends the watch: renew from version 9.
        assert_eq!(watch(&client, &url, &cfg, &mut index, &mut version, &meta), Ok(WatchEnd::Renew));
        assert_eq!(version, "9");
        assert_eq!(meta.generation(), 1);
        assert_eq!(meta.try_index().unwrap().lookup("3f0c1a2b4d5e", UID), ["nginx", "nginx:1.25", "web-0", "shop"]);
        // 410 when the watch starts: list again.
        assert_eq!(watch(&client, &url, &cfg, &mut index, &mut version, &meta), Ok(WatchEnd::Gone));
        // Closed at once without an event, a garbled line, an HTTP error: errors naming them.
        for want in ["closed at once", "not a Kubernetes watch event", "403"] {
            let e = watch(&client, &url, &cfg, &mut index, &mut version, &meta).unwrap_err();
            assert!(e.contains(want), "{want}: {e}");
        }
        let urls = serve.join().unwrap();
        assert_eq!(
            urls[0],
            "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1&watch=1&resourceVersion=5&allowWatchBookmarks=true&timeoutSeconds=300"
        );
        assert!(urls[1].contains("resourceVersion=9"), "{urls:?}");
    }

    /// An HTTPS server on loopback with a fresh self-signed certificate for 127.0.0.1, answering
    /// `conns` connections with `body`; returns its port and the certificate (PEM).
    fn tls_server(conns: usize, body: &'static str) -> (u16, String, std::thread::JoinHandle<()>) {
        use std::io::{Read, Write};
        let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let der = rustls::pki_types::CertificateDer::from(ck.cert.der().to_vec());
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der], key)
            .unwrap();
        let config = Arc::new(config);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            for tcp in listener.incoming().take(conns) {
                let conn = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp.unwrap());
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                // A client that refuses the certificate ends the handshake: nothing to answer.
                while !req.ends_with(b"\r\n\r\n") {
                    match tls.read(&mut buf) {
                        Ok(n) if n > 0 => req.extend_from_slice(&buf[..n]),
                        _ => break,
                    }
                }
                if req.ends_with(b"\r\n\r\n") {
                    let head =
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                    let _ = tls.write_all(head.as_bytes()).and_then(|_| tls.write_all(body.as_bytes()));
                    let _ = tls.flush();
                }
            }
        });
        (port, ck.cert.pem(), handle)
    }

    #[test]
    fn https_is_verified_against_the_service_account_ca() {
        let (port, pem, server) = tls_server(2, r#"{"items":[]}"#);
        let dir = tempfile::tempdir().unwrap();
        let cfg = ApiConfig {
            api: format!("https://127.0.0.1:{port}"),
            node: "n1".into(),
            token: dir.path().join("no-token"),
            ca: dir.path().join("ca.crt"),
        };
        let url = format!("{}/api/v1/pods", cfg.api);
        // Without the CA (public roots only) the self-signed server is refused ...
        let e = fetch(&agent(&cfg).unwrap(), &url, &cfg).unwrap_err();
        assert!(e.to_lowercase().contains("certificate") || e.contains("UnknownIssuer"), "{e}");
        // ... and with it, trusted.
        std::fs::write(&cfg.ca, pem).unwrap();
        assert_eq!(fetch(&agent(&cfg).unwrap(), &url, &cfg).unwrap(), r#"{"items":[]}"#);
        server.join().unwrap();
    }
}
