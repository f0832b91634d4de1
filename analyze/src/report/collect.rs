//! Walks an archive once: each chunk is decoded once, its rules evaluated and its processes and
//! activity gathered (chunks in parallel, merged in archive order), then the selection is cut.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

use anyhow::Result;
use lanner_formats::archive::{verify_checked, ArchiveError, ChunkRef, SegmentReader};
use lanner_formats::syscall::EventType;
use rayon::prelude::*;

use crate::engine::{evaluate_chunk, ChunkStats, Window};
use crate::rules::fields::EventView;
use crate::rules::{Field, RuleSet};
use crate::segments::discover;

/// Rows kept per table (alerts and each activity table); the counts stay whole.
pub const ROW_CAP: usize = 5000;

/// What part of the archive the page is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Everything.
    All,
    /// This process and its descendants.
    Pid(u32),
    /// The processes of this container (an id or its prefix).
    Container(String),
    /// The processes that fired this rule, and their descendants.
    Alert(String),
}

/// One alert.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRow {
    /// Event time, unix ns.
    pub ts_ns: u64,
    /// Rule name.
    pub rule: String,
    /// Priority name.
    pub priority: String,
    /// Process id of the event.
    pub pid: u32,
    /// Its `proc.name`.
    pub proc_name: String,
    /// The rule's output text.
    pub output: String,
    /// The output's fields, as the alert carries them.
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// One process as the archive shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Proc {
    /// Process id.
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// `proc.name` (the latest seen).
    pub name: String,
    /// `proc.cmdline` (the latest seen).
    pub cmdline: String,
    /// `user.name`.
    pub user: String,
    /// `container.id`.
    pub container: String,
    /// First event seen, unix ns.
    pub first_ns: u64,
    /// Each successful exec: time and command line.
    pub execs: Vec<(u64, String)>,
    /// Exit time, when seen.
    pub exit_ns: Option<u64>,
    /// Alerts its events fired.
    pub alerts: u64,
}

/// One row of an activity table.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    /// Event time, unix ns.
    pub ts_ns: u64,
    /// Process id.
    pub pid: u32,
    /// Its `proc.name`.
    pub proc_name: String,
    /// What happened (`created`, `written`, `deleted`, `renamed`, `connect`, `setuid`…).
    pub action: String,
    /// What it happened to (a path, `old → new`, a connection, the call's arguments).
    pub target: String,
    /// `evt.res`.
    pub result: String,
}

/// One activity table: its kept rows and how many there were.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    /// The first [`ROW_CAP`] rows, in time order.
    pub rows: Vec<Activity>,
    /// All rows, kept or not.
    pub total: u64,
    /// All rows per process, so that a selection counts the rows the cap left out too.
    per_pid: HashMap<u32, u64>,
}

impl Table {
    /// Counts a row of process `pid`, and makes it (only) while there is room for it.
    fn push(&mut self, pid: u32, make: impl FnOnce() -> Activity) {
        self.total += 1;
        *self.per_pid.entry(pid).or_default() += 1;
        if self.rows.len() < ROW_CAP {
            self.rows.push(make());
        }
    }

    fn extend(&mut self, other: Table) {
        self.total += other.total;
        for (pid, n) in other.per_pid {
            *self.per_pid.entry(pid).or_default() += n;
        }
        let room = ROW_CAP.saturating_sub(self.rows.len());
        self.rows.extend(other.rows.into_iter().take(room));
    }

    /// Keeps the rows (and the counts) of the processes in `pids`.
    fn select(&mut self, pids: &BTreeSet<u32>) {
        self.rows.retain(|a| pids.contains(&a.pid));
        self.per_pid.retain(|pid, _| pids.contains(pid));
        self.total = self.per_pid.values().sum();
    }
}

/// What `verify` says of one segment the report read, with its last chain hash.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentIntegrity {
    /// The segment file.
    pub path: String,
    /// Its last chunk's chain value (hex): the hash that commits to everything before it.
    pub chain: String,
    /// `verify`'s verdict.
    pub verdict: String,
    /// True when the verdict is no problem (ok, or a torn tail of a killed writer).
    pub ok: bool,
}

/// Everything the page shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// First and last event time, unix ns.
    pub t_range: Option<(u64, u64)>,
    /// Hosts the segments were recorded on.
    pub nodes: BTreeSet<String>,
    /// Events read.
    pub events: u64,
    /// Kernel drops recorded in the archive.
    pub drops: u64,
    /// Alerts in time order (the first [`ROW_CAP`]).
    pub alerts: Vec<AlertRow>,
    /// All alerts of the selection.
    pub alerts_total: u64,
    /// Alerts per (rule, priority).
    pub by_rule: BTreeMap<(String, String), u64>,
    /// The selected processes, and their ancestors for context, by pid.
    pub processes: BTreeMap<u32, Proc>,
    /// The pids the selection chose (the rest of `processes` are ancestors).
    pub selected: BTreeSet<u32>,
    /// Files written, created, deleted, renamed, linked, chmod'ed.
    pub files: Table,
    /// Sockets connected, accepted, bound, listening.
    pub network: Table,
    /// Identity changes, ptrace, mounts, bpf.
    pub privilege: Table,
    /// Integrity of every segment read.
    pub integrity: Vec<SegmentIntegrity>,
    /// Problems met while reading (not fatal).
    pub problems: Vec<String>,
}

/// What one chunk contributes.
#[derive(Default)]
struct Partial {
    alerts: Vec<AlertRow>,
    procs: BTreeMap<u32, Proc>,
    files: Table,
    network: Table,
    privilege: Table,
    events: u64,
    /// All the chunk's events, in the window or not (what `verify` counts).
    chunk_events: u64,
    t_range: Option<(u64, u64)>,
}

/// Fields the walk reads, resolved once.
struct Fields {
    user: Field,
    res: Field,
    args: Field,
    fd_name: Field,
    l4: Field,
}

impl Fields {
    fn new() -> Self {
        let f = |n: &str| Field::parse(n).expect("a field this build knows");
        Self {
            user: f("user.name"),
            res: f("evt.res"),
            args: f("evt.args"),
            fd_name: f("fd.name"),
            l4: f("fd.l4proto"),
        }
    }
}

/// Reads `paths` (segments or directories) within `window`, evaluating `rules`, and keeps
/// what `selection` chooses.
pub fn collect(rules: &RuleSet, paths: &[PathBuf], window: Window, selection: &Selection) -> Result<Report> {
    let files = discover(paths)?;
    let mut report = Report::default();
    let mut jobs: Vec<(usize, ChunkRef)> = Vec::new();
    let mut readers: Vec<Result<SegmentReader, ArchiveError>> = Vec::new();
    for (i, p) in files.iter().enumerate() {
        let opened = p.open();
        match &opened {
            Ok(r) => {
                report.nodes.insert(r.meta().hostname.clone());
                report.problems.extend(r.warnings().iter().cloned());
                for c in r.chunks() {
                    report.drops += c.header.drops as u64;
                    if window.overlaps(c.header.t_first, c.header.t_last) && c.header.event_count > 0 {
                        jobs.push((i, *c));
                    }
                }
            }
            Err(e) => report.problems.push(e.to_string()),
        }
        readers.push(opened);
    }
    let fields = Fields::new();
    let partials: Vec<Result<Partial, ArchiveError>> = jobs
        .par_iter()
        .map(|(i, c)| {
            let r = readers[*i].as_ref().expect("only opened segments have jobs");
            let d = r.decode(c)?;
            let mut p = chunk_partial(rules, &fields, &d, r.meta(), c, window);
            p.chunk_events = d.chunk().events.len() as u64;
            Ok(p)
        })
        .collect();
    // What each decoded chunk told, for `verify` below: it does not decode a chunk twice.
    let mut decoded: HashMap<(usize, usize), Result<u64, ArchiveError>> = HashMap::new();
    let mut procs: BTreeMap<u32, Proc> = BTreeMap::new();
    let mut alerts = Vec::new();
    for (p, (i, c)) in partials.into_iter().zip(&jobs) {
        let p = match p {
            Ok(p) => {
                decoded.insert((*i, c.index), Ok(p.chunk_events));
                p
            }
            Err(e) => {
                report.problems.push(e.to_string());
                decoded.insert((*i, c.index), Err(e));
                continue;
            }
        };
        report.events += p.events;
        if let Some((a, b)) = p.t_range {
            report.t_range = Some(report.t_range.map_or((a, b), |(x, y)| (x.min(a), y.max(b))));
        }
        alerts.extend(p.alerts);
        for (pid, q) in p.procs {
            merge_proc(procs.entry(pid).or_insert_with(|| Proc { first_ns: q.first_ns, ..Default::default() }), q);
        }
        report.files.extend(p.files);
        report.network.extend(p.network);
        report.privilege.extend(p.privilege);
    }
    for a in &alerts {
        if let Some(p) = procs.get_mut(&a.pid) {
            p.alerts += 1;
        }
    }
    let selected = select(&procs, &alerts, selection);
    let keep = |pid: u32| selected.as_ref().is_none_or(|s| s.contains(&pid));
    alerts.retain(|a| keep(a.pid));
    alerts.sort_by_key(|a| a.ts_ns);
    report.alerts_total = alerts.len() as u64;
    for a in &alerts {
        *report.by_rule.entry((a.rule.clone(), a.priority.clone())).or_default() += 1;
    }
    alerts.truncate(ROW_CAP);
    report.alerts = alerts;
    if let Some(s) = &selected {
        for t in [&mut report.files, &mut report.network, &mut report.privilege] {
            t.select(s);
        }
    }
    report.selected = selected.clone().unwrap_or_else(|| procs.keys().copied().collect());
    // The selection with its ancestors, so that the tree shows where it came from.
    let mut shown: HashSet<u32> = report.selected.iter().copied().collect();
    for &pid in &report.selected {
        let mut cur = procs.get(&pid).map(|p| p.ppid);
        while let Some(pp) = cur.filter(|pp| procs.contains_key(pp) && shown.insert(*pp)) {
            cur = procs.get(&pp).map(|p| p.ppid);
        }
    }
    procs.retain(|pid, _| shown.contains(pid));
    report.processes = procs;
    let chains: HashMap<PathBuf, String> = files
        .iter()
        .zip(&readers)
        .filter_map(|(p, r)| Some((p.path(), hex(&r.as_ref().ok()?.chunks().last()?.header.chain))))
        .collect();
    let segments = files.iter().map(|s| s.path()).zip(readers);
    let findings = verify_checked(segments, |i, r, c| {
        decoded.remove(&(i, c.index)).unwrap_or_else(|| r.decode(c).map(|d| d.chunk().events.len() as u64))
    });
    for f in findings {
        let chain = chains.get(f.path()).cloned().unwrap_or_default();
        let path = f.path().display().to_string();
        report.integrity.push(SegmentIntegrity { path, chain, verdict: f.to_string(), ok: !f.is_problem() });
    }
    Ok(report)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Adds a later chunk's view of a process to the earlier one.
fn merge_proc(p: &mut Proc, later: Proc) {
    p.pid = later.pid;
    p.ppid = later.ppid;
    (p.name, p.cmdline, p.user, p.container) = (later.name, later.cmdline, later.user, later.container);
    p.first_ns = p.first_ns.min(later.first_ns);
    // The same exec read twice (the same segment given twice, copies of one archive) is one exec.
    for e in later.execs {
        if !p.execs.contains(&e) {
            p.execs.push(e);
        }
    }
    p.exit_ns = later.exit_ns.or(p.exit_ns);
}

/// The pids `selection` chooses (None: all).
fn select(procs: &BTreeMap<u32, Proc>, alerts: &[AlertRow], selection: &Selection) -> Option<BTreeSet<u32>> {
    let roots: Vec<u32> = match selection {
        Selection::All => return None,
        Selection::Pid(p) => vec![*p],
        Selection::Container(id) => {
            return Some(
                procs
                    .values()
                    .filter(|p| !id.is_empty() && p.container.starts_with(id.as_str()))
                    .map(|p| p.pid)
                    .collect(),
            )
        }
        Selection::Alert(rule) => alerts.iter().filter(|a| &a.rule == rule).map(|a| a.pid).collect(),
    };
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for p in procs.values() {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    let mut out = BTreeSet::new();
    let mut stack = roots;
    while let Some(p) = stack.pop() {
        if out.insert(p) {
            stack.extend(children.get(&p).into_iter().flatten().filter(|&&c| c != p).copied());
        }
    }
    Some(out)
}

/// Evaluates one chunk and gathers its processes and activity.
fn chunk_partial(
    rules: &RuleSet,
    f: &Fields,
    d: &lanner_formats::archive::DecodedChunk,
    meta: &lanner_formats::archive::SegmentMeta,
    c: &ChunkRef,
    window: Window,
) -> Partial {
    use EventType::*;
    let first_event = c.first_event;
    let mut out = Partial::default();
    let mut stats = ChunkStats::default();
    // As replay does: a chunk with no event type any rule reads cannot alert, and is not evaluated.
    let alerts = if c.header.event_types & rules.event_type_mask() != 0 {
        evaluate_chunk(rules, d, meta, first_event, window, &mut stats)
    } else {
        for ev in d.chunk().events.iter().filter(|ev| window.contains(ev.ts_ns)) {
            stats.events += 1;
            let t = ev.ts_ns;
            stats.t_range = Some(stats.t_range.map_or((t, t), |(a, b)| (a.min(t), b.max(t))));
        }
        Vec::new()
    };
    for ((a, (proc_name, _)), pid) in alerts.into_iter().zip(stats.alert_procs).zip(stats.alert_pids) {
        let ts_ns = chrono::DateTime::parse_from_rfc3339(&a.time)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt())
            .map_or(0, |t| t.max(0) as u64);
        out.alerts.push(AlertRow {
            ts_ns,
            rule: a.rule,
            priority: a.priority,
            pid,
            proc_name,
            output: a.output,
            fields: a.output_fields,
        });
    }
    out.events = stats.events;
    out.t_range = stats.t_range;
    let (chunk, paths) = (d.chunk(), d.paths());
    // A chunk's process entries are shared by its events: each is read once per chunk.
    let mut pid_of_entry: HashMap<u32, Option<u32>> = HashMap::new();
    for (i, ev) in chunk.events.iter().enumerate() {
        if !window.contains(ev.ts_ns) || ev.etype & lanner_formats::syscall::ENTER != 0 {
            continue;
        }
        let v = EventView { chunk, paths, ev, num: first_event + i as u64 + 1, meta };
        let get = |field: &Field| v.get(field).render();
        let arg = |name: &str| v.get(&Field::EvtArg(name.to_owned())).render();
        let pid = *pid_of_entry.entry(ev.process).or_insert_with(|| {
            let pid = get(&Field::ProcPid).parse::<u32>().ok()?;
            let entry = out.procs.entry(pid).or_insert_with(|| Proc { pid, first_ns: ev.ts_ns, ..Default::default() });
            entry.ppid = get(&Field::ProcPpid).parse::<i64>().map_or(0, |p| p.max(0) as u32);
            entry.name = get(&Field::ProcName);
            entry.cmdline = get(&Field::ProcCmdline);
            entry.user = get(&f.user);
            entry.container = get(&Field::ContainerId);
            Some(pid)
        });
        let Some(pid) = pid else { continue };
        let Some(t) = v.etype() else { continue };
        let entry = out.procs.get_mut(&pid).expect("added with its entry");
        match t {
            // An exec makes a new process entry, so its command line was read just above.
            Execve | Execveat if ev.ret == 0 => entry.execs.push((ev.ts_ns, entry.cmdline.clone())),
            Procexit if ev.tid == pid => entry.exit_ns = Some(ev.ts_ns),
            _ => {}
        }
        let proc_name: &str = &entry.name;
        let ok = ev.ret >= 0;
        let row = |action: &str, target: String| Activity {
            ts_ns: ev.ts_ns,
            pid,
            proc_name: proc_name.to_owned(),
            action: action.to_owned(),
            target,
            result: get(&f.res),
        };
        let path = || v.get(&f.fd_name).render();
        let flags = ev.flags;
        use lanner_formats::event::oflags::{O_ACCMODE, O_CREAT, O_RDONLY};
        match t {
            t if t.is_open() && flags & O_CREAT != 0 => out.files.push(pid, || row("created", path())),
            t if t.is_open() && flags & O_ACCMODE != O_RDONLY => out.files.push(pid, || row("written", path())),
            Unlink | Rmdir => out.files.push(pid, || row("deleted", arg("path"))),
            Unlinkat => out.files.push(pid, || row("deleted", arg("name"))),
            Rename | Renameat | Renameat2 => {
                out.files.push(pid, || row("renamed", format!("{} → {}", arg("oldpath"), arg("newpath"))))
            }
            Mkdir | Mkdirat => out.files.push(pid, || row("mkdir", arg("path"))),
            Link | Linkat | Symlink | Symlinkat | Chmod | Fchmod | Fchmodat | Chown | Lchown | Fchown | Fchownat => {
                out.files.push(pid, || row(t.name(), get(&f.args)))
            }
            Connect | Accept | Accept4 | Bind | Listen if ok || t == Connect => {
                out.network.push(pid, || row(t.name(), format!("{} {}", path(), get(&f.l4).replace("<NA>", ""))))
            }
            Setuid | Setgid | Setreuid | Setregid | Setresuid | Setresgid | Ptrace | Mount | Umount2 | Bpf => {
                out.privilege.push(pid, || row(t.name(), get(&f.args)))
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: u32, ppid: u32, container: &str) -> Proc {
        Proc { pid, ppid, container: container.into(), ..Default::default() }
    }

    #[test]
    fn selections_take_subtrees_containers_and_the_processes_of_a_rule() {
        let procs: BTreeMap<u32, Proc> = [
            proc(1, 0, "host"),
            proc(10, 1, "host"),
            proc(11, 10, "abc123"),
            proc(12, 11, "abc123"),
            proc(20, 1, "host"),
        ]
        .into_iter()
        .map(|p| (p.pid, p))
        .collect();
        let alert = AlertRow {
            ts_ns: 0,
            rule: "r".into(),
            priority: "Warning".into(),
            pid: 11,
            proc_name: "cat".into(),
            output: String::new(),
            fields: Default::default(),
        };
        let set =
            |s: Selection| select(&procs, std::slice::from_ref(&alert), &s).map(|s| s.into_iter().collect::<Vec<_>>());
        assert_eq!(set(Selection::All), None);
        assert_eq!(set(Selection::Pid(10)), Some(vec![10, 11, 12]));
        assert_eq!(set(Selection::Container("abc".into())), Some(vec![11, 12]));
        assert_eq!(set(Selection::Alert("r".into())), Some(vec![11, 12]));
        assert_eq!(set(Selection::Alert("other".into())), Some(vec![]));
    }

    #[test]
    fn tables_keep_the_first_rows_and_count_them_all() {
        let a = |n: u64| Activity {
            ts_ns: n,
            pid: 1,
            proc_name: "p".into(),
            action: "written".into(),
            target: format!("/f{n}"),
            result: "SUCCESS".into(),
        };
        let mut t = Table::default();
        for n in 0..ROW_CAP as u64 + 10 {
            t.push(1, || a(n));
        }
        let mut u = Table::default();
        u.push(1, || a(1));
        u.extend(t);
        assert_eq!((u.rows.len(), u.total), (ROW_CAP, ROW_CAP as u64 + 11));
        assert_eq!(u.rows[1].target, "/f0");
        // A selection counts the rows the cap left out as well.
        let mut v = u.clone();
        v.push(2, || Activity { pid: 2, ..a(9) });
        v.select(&[1].into());
        assert_eq!((v.rows.len(), v.total), (ROW_CAP, ROW_CAP as u64 + 11));
        let mut w = u.clone();
        w.select(&[2].into());
        assert_eq!((w.rows.len(), w.total), (0, 0));
    }
}
