//! Incident-response views over archives: filtered event listings (`query`), a per-process
//! timeline, the process tree and statistics. All read archives in order, one chunk at a time.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;

use crate::engine::Window;
use crate::rules::fields::{format_time_of_day, EventView};
use crate::rules::output::OutputFormat;
use crate::rules::Filter;
use crate::segments::{discover_selected, Selection};

/// Problems met while reading (reported, not fatal).
pub type Problems = Vec<String>;

/// Calls `f` for every event inside `window`, in archive order; returns the problems met.
pub fn for_each_event(paths: &[PathBuf], window: Window, mut f: impl FnMut(&EventView<'_>)) -> Result<Problems> {
    let mut problems = Vec::new();
    for p in discover_selected(paths, &Selection { window, ..Default::default() })? {
        let r = match p.open() {
            Ok(r) => r,
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        if let Some(t) = r.truncation() {
            problems.push(t.to_string());
        }
        for c in r.chunks() {
            if !window.overlaps(c.header.t_first, c.header.t_last) {
                continue;
            }
            let d = match r.decode(c) {
                Ok(d) => d,
                Err(e) => {
                    problems.push(e.to_string());
                    continue;
                }
            };
            let (chunk, paths) = (d.chunk(), d.paths());
            for (i, ev) in chunk.events.iter().enumerate() {
                if window.contains(ev.ts_ns) {
                    f(&EventView { chunk, paths, ev, num: c.first_event + i as u64 + 1, meta: r.meta() });
                }
            }
        }
    }
    Ok(problems)
}

/// The default `query` format (sysdig's, without the fields Lanner does not record).
pub const DEFAULT_QUERY_FORMAT: &str = "%evt.time %proc.name (%thread.tid) %evt.type %evt.args";

/// Prints the events matching `filter` with `format` (one line per event); returns the count.
pub fn query(
    paths: &[PathBuf],
    window: Window,
    filter: Option<&Filter>,
    format: &OutputFormat,
    require_all: bool,
    out: &mut dyn Write,
) -> Result<(u64, Problems)> {
    let mut n = 0;
    let mut err = None;
    let problems = for_each_event(paths, window, |v| {
        if err.is_some() || filter.is_some_and(|f| !f.matches(v)) {
            return;
        }
        let line = if require_all { format.render_complete(v) } else { Some(format.render(v).0) };
        let Some(line) = line else { return };
        n += 1;
        if let Err(e) = writeln!(out, "{line}") {
            err = Some(e);
        }
    })?;
    if let Some(e) = err {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e.into());
        }
    }
    Ok((n, problems))
}

/// One process in the tree.
#[derive(Debug, Default, Clone)]
struct Node {
    ppid: u32,
    name: String,
    cmdline: String,
    first_ns: u64,
    execs: Vec<(u64, String)>,
    exited_ns: Option<u64>,
}

/// Prints who spawned what (`pid` restricts the output to that process and its descendants).
pub fn proctree(paths: &[PathBuf], window: Window, pid: Option<u32>, out: &mut dyn Write) -> Result<Problems> {
    use crate::rules::Field;
    let mut nodes: BTreeMap<u32, Node> = BTreeMap::new();
    let problems = for_each_event(paths, window, |v| {
        let p = v.get(&Field::ProcPid).render().parse::<u32>().unwrap_or(0);
        let n = nodes.entry(p).or_insert_with(|| Node { first_ns: v.ev.ts_ns, ..Default::default() });
        n.ppid = v.get(&Field::ProcPpid).render().parse().unwrap_or(0);
        n.name = v.get(&Field::ProcName).render();
        n.cmdline = v.get(&Field::ProcCmdline).render();
        match v.etype().filter(|_| !v.is_enter()) {
            Some(lanner_formats::syscall::EventType::Execve | lanner_formats::syscall::EventType::Execveat)
                if v.ev.ret == 0 =>
            {
                n.execs.push((v.ev.ts_ns, v.get(&Field::ProcCmdline).render()))
            }
            Some(lanner_formats::syscall::EventType::Procexit) if v.ev.tid == p => n.exited_ns = Some(v.ev.ts_ns),
            _ => {}
        }
    })?;
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (&p, n) in &nodes {
        children.entry(n.ppid).or_default().push(p);
    }
    let roots: Vec<u32> = match pid {
        Some(p) => vec![p],
        None => nodes.iter().filter(|(_, n)| !nodes.contains_key(&n.ppid)).map(|(&p, _)| p).collect(),
    };
    fn print(
        p: u32,
        depth: usize,
        nodes: &BTreeMap<u32, Node>,
        children: &HashMap<u32, Vec<u32>>,
        out: &mut dyn Write,
    ) -> std::io::Result<()> {
        let Some(n) = nodes.get(&p) else { return Ok(()) };
        let indent = "  ".repeat(depth);
        let exit = n.exited_ns.map_or(String::new(), |t| format!(", exited {}", format_time_of_day(t)));
        writeln!(out, "{indent}{p} {} [{}] (first seen {}{exit})", n.name, n.cmdline, format_time_of_day(n.first_ns))?;
        for (t, cmd) in &n.execs {
            writeln!(out, "{indent}    exec {} {cmd}", format_time_of_day(*t))?;
        }
        for &c in children.get(&p).map_or(&[][..], |v| v.as_slice()) {
            if c != p {
                print(c, depth + 1, nodes, children, out)?;
            }
        }
        Ok(())
    }
    for r in roots {
        print(r, 0, &nodes, &children, out)?;
    }
    Ok(problems)
}

/// Counts by event type, process name and user, with the time range and drops.
pub fn stats(paths: &[PathBuf], window: Window) -> Result<(Stats, Problems)> {
    use crate::rules::Field;
    let mut total = 0u64;
    let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_proc: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_uid: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_container: BTreeMap<String, u64> = BTreeMap::new();
    let mut range: Option<(u64, u64)> = None;
    let problems = for_each_event(paths, window, |v| {
        // Count syscalls once: the enter rows of imported scap data are not extra syscalls.
        if v.is_enter() {
            return;
        }
        total += 1;
        *by_type.entry(v.get(&Field::EvtType).render()).or_default() += 1;
        *by_proc.entry(v.get(&Field::ProcName).render()).or_default() += 1;
        *by_uid.entry(v.get(&Field::UserUid).render()).or_default() += 1;
        *by_container.entry(v.get(&Field::ContainerId).render()).or_default() += 1;
        let t = v.ev.ts_ns;
        range = Some(range.map_or((t, t), |(a, b)| (a.min(t), b.max(t))));
    })?;
    let mut drops = 0u64;
    for p in discover_selected(paths, &Selection::default())? {
        if let Ok(r) = p.open_index() {
            drops += r.chunks().iter().map(|c| c.header.drops as u64).sum::<u64>();
        }
    }
    let top = |m: BTreeMap<String, u64>| {
        let mut v: Vec<Count> = m.into_iter().map(|(name, events)| Count { name, events }).collect();
        v.sort_by(|a, b| b.events.cmp(&a.events).then(a.name.cmp(&b.name)));
        v
    };
    let iso =
        |t: u64| chrono::DateTime::from_timestamp_nanos(t as i64).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    Ok((
        Stats {
            events: total,
            drops,
            first: range.map(|r| iso(r.0)),
            last: range.map(|r| iso(r.1)),
            by_syscall: top(by_type),
            by_process: top(by_proc),
            by_uid: top(by_uid),
            by_container: top(by_container),
        },
        problems,
    ))
}

/// What `stats` counts; serialized as `lanner-analyze stats --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Events (syscalls, not their enter rows).
    pub events: u64,
    /// Kernel drops recorded in the segments.
    pub drops: u64,
    /// The first event's time (RFC 3339, ns), when there is one.
    pub first: Option<String>,
    /// The last event's time.
    pub last: Option<String>,
    /// Events per syscall, most first.
    pub by_syscall: Vec<Count>,
    /// Events per process name, most first.
    pub by_process: Vec<Count>,
    /// Events per uid, most first.
    pub by_uid: Vec<Count>,
    /// Events per container id, most first.
    pub by_container: Vec<Count>,
}

/// One row of a [`Stats`] breakdown.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Count {
    /// What is counted (a syscall, a process name, a uid, a container id).
    pub name: String,
    /// How many events.
    pub events: u64,
}
