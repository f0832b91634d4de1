//! Rules compiled to one branching program: every check is a node with a successor for true
//! and one for false, so a rule is evaluated by a loop over a flat array (no recursion, no
//! allocation per event).
//!
//! Per chunk, process entries whose rule-visible properties are identical (same interned
//! strings, same ids, same ancestry) share a class, and checks that read only the process are
//! memoized per class: an exec storm of a thousand `/bin/true` is one class. Checks that read
//! only the fd path are memoized per interned path. For each (class, event type) met, a plan
//! lists the rules that can still match, each with the node to start at once the checks the
//! class and the type decide are skipped; most events find an empty plan.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use lanner_formats::event::{ArchivedChunk, ArchivedProcess, NONE};
use lanner_formats::syscall::type_bits;

use super::fields::{EventView, Field};
use super::filter::{Check, Dependency, Filter};

/// Successor meaning "the rule matches".
const ACCEPT: u32 = u32::MAX;
/// Successor meaning "the rule does not match".
const REJECT: u32 = u32::MAX - 1;
/// An event type no rule can match.
const NO_TYPE: u32 = u32::MAX;

/// What one node's result depends on.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A plain `evt.type` test: the index of its (mask, negated) in `Program::types` (kept
    /// apart so that nodes stay 16 bytes).
    Type(u32),
    /// Only the process entry (and its ancestors): memo slot per process class.
    Process(u32),
    /// Only the fd path: memo slot per path.
    Path(u32),
    /// Anything else: memo slot per event.
    Event(u32),
}

#[derive(Debug, Clone, Copy)]
struct Node {
    kind: Kind,
    on_true: u32,
    on_false: u32,
}

/// Every enabled rule of a set as one branching program, with the rules indexed by event type.
#[derive(Debug, Clone, Default)]
pub struct Program {
    nodes: Vec<Node>,
    /// The check of each node (same index).
    checks: Vec<Check>,
    /// (event type mask, negated) of the `evt.type` tests.
    types: Vec<(u128, bool)>,
    /// Each rule's first node.
    entries: Vec<u32>,
    /// Rule indices per event type.
    by_type: Vec<Vec<usize>>,
    /// Per event type: its index among the types some rule can match, or [`NO_TYPE`].
    type_slot: Vec<u32>,
    typed: usize,
    process_slots: usize,
    path_slots: usize,
    event_slots: usize,
    /// Memo slot of each distinct check (by its printed form), per dependency: rules that
    /// share a macro share its memo cells.
    slot_of: HashMap<String, u32>,
    /// Some process check reads pids: processes that differ only by pid are then told apart.
    reads_pids: bool,
}

impl Program {
    /// Compiles `filters` (one per rule, in rule order) with their index by event type.
    pub fn build<'a>(filters: impl IntoIterator<Item = &'a Filter>, by_type: Vec<Vec<usize>>) -> Self {
        let mut p = Program { by_type, ..Default::default() };
        for f in filters {
            let entry = p.lower(f, ACCEPT, REJECT);
            p.entries.push(entry);
        }
        let mut typed = 0;
        p.type_slot = p
            .by_type
            .iter()
            .map(|v| {
                if v.is_empty() {
                    NO_TYPE
                } else {
                    typed += 1;
                    typed as u32 - 1
                }
            })
            .collect();
        p.typed = typed;
        p
    }

    /// Adds the nodes of `f`, whose outcome continues at `t` (true) or `e` (false); returns the
    /// first node.
    ///
    /// The operands of `and` and `or` that only the event type and the process decide come
    /// first (plans decide them once per class and type); the others keep their order, which
    /// rule authors tune (cheap event tests before path matching). Checks are pure, so the
    /// order changes no result, only how soon one decides.
    fn lower(&mut self, f: &Filter, t: u32, e: u32) -> u32 {
        match f {
            Filter::And(v) => by_cost(v).into_iter().rev().fold(t, |next, x| self.lower(x, next, e)),
            Filter::Or(v) => by_cost(v).into_iter().rev().fold(e, |next, x| self.lower(x, t, next)),
            Filter::Not(x) => self.lower(x, e, t),
            Filter::Check(c) => {
                let dep = c.dependency();
                let mut slot = |n: &mut usize| {
                    // Equal printed forms are equal checks (a set may print in another order:
                    // then the two only do not share a slot).
                    *self.slot_of.entry(format!("{dep:?} {c:?}")).or_insert_with(|| {
                        *n += 1;
                        *n as u32 - 1
                    })
                };
                let kind = match dep {
                    Dependency::Type(mask, negated) => {
                        self.types.push((mask, negated));
                        Kind::Type(self.types.len() as u32 - 1)
                    }
                    Dependency::Process => {
                        self.reads_pids |= matches!(
                            c.field(),
                            Field::ProcPid
                                | Field::ProcPpid
                                | Field::ProcApid(_)
                                | Field::ProcApidAny
                                | Field::ProcVpid
                                | Field::ProcVpgid
                                | Field::ProcSid
                                | Field::ProcSname
                                | Field::ProcIsVpgidLeader
                                | Field::ProcIsSidLeader
                        );
                        Kind::Process(slot(&mut self.process_slots))
                    }
                    Dependency::Path => Kind::Path(slot(&mut self.path_slots)),
                    Dependency::Event => Kind::Event(slot(&mut self.event_slots)),
                };
                self.nodes.push(Node { kind, on_true: t, on_false: e });
                self.checks.push(c.clone());
                self.nodes.len() as u32 - 1
            }
        }
    }

    /// Indices of the rules that can match event type `etype`.
    pub fn rules_for(&self, etype: u16) -> &[usize] {
        self.by_type.get(etype as usize).map_or(&[], |v| v.as_slice())
    }

    /// Bit `n` set when some rule can match event type `n`.
    pub fn event_type_mask(&self) -> u128 {
        self.by_type.iter().enumerate().filter(|(t, v)| *t < 128 && !v.is_empty()).fold(0, |m, (t, _)| m | (1u128 << t))
    }

    /// Fresh evaluation state for one chunk with `paths` event paths.
    pub fn chunk_state(&self, chunk: &ArchivedChunk, paths: usize) -> ChunkState {
        let mut ids: HashMap<[u32; CLASS_KEY_LEN], u32, BuildHasherDefault<FxHasher>> = HashMap::default();
        let mut class_of = Vec::with_capacity(chunk.processes.len());
        for p in chunk.processes.iter() {
            // Parents come first in a chunk (decoding checks it), so their class is known.
            let parent = p.parent.to_native();
            let parent_class =
                if parent == NONE { NONE } else { class_of.get(parent as usize).copied().unwrap_or(NONE) };
            let key = class_key(p, parent_class, self.reads_pids);
            let n = ids.len() as u32;
            class_of.push(*ids.entry(key).or_insert(n));
        }
        let classes = ids.len();
        ChunkState {
            class_of,
            by_class: vec![0; classes * self.process_slots],
            by_path: vec![0; (paths + 1) * self.path_slots],
            plan_of: vec![0; classes * self.typed],
            by_event: vec![0; self.event_slots],
            event: 0,
            plans: Vec::new(),
            items: Vec::new(),
            seen: vec![0; self.nodes.len()],
            stamp: 0,
            stack: Vec::new(),
        }
    }

    /// Calls `hit` with each rule (in rule order) that matches the event in `v` until it
    /// returns false; `st` must come from [`Program::chunk_state`] for the event's chunk.
    pub fn for_each_match(&self, v: &EventView<'_>, st: &mut ChunkState, mut hit: impl FnMut(usize) -> bool) {
        let t = type_bits(v.ev.etype);
        let Some(&ts) = self.type_slot.get(t as usize) else { return };
        if ts == NO_TYPE {
            return;
        }
        st.event = st.event.wrapping_add(1);
        if st.event >= 1 << 31 {
            st.by_event.iter_mut().for_each(|c| *c = 0);
            st.event = 1;
        }
        let Some(&class) = st.class_of.get(v.ev.process as usize) else {
            // Not a process of this chunk (decoding rules it out): no memo applies.
            for &i in self.rules_for(t) {
                if self.run(self.entries[i], v, st, None) && !hit(i) {
                    return;
                }
            }
            return;
        };
        let cell = class as usize * self.typed + ts as usize;
        let mut plan = st.plan_of[cell];
        if plan == 0 {
            plan = self.plan(t, v, st, class);
            st.plan_of[cell] = plan;
        }
        let (a, b) = st.plans[plan as usize - 1];
        for k in a..b {
            let (rule, start) = st.items[k as usize];
            if (start == ACCEPT || self.run(start, v, st, Some(class))) && !hit(rule as usize) {
                return;
            }
        }
    }

    /// Builds the plan for `class` and event type `t` from the event in `v` (of that class
    /// and type); returns its number + 1.
    fn plan(&self, t: u16, v: &EventView<'_>, st: &mut ChunkState, class: u32) -> u32 {
        let first = st.items.len() as u32;
        for &i in self.rules_for(t) {
            let mut pc = self.entries[i];
            // Skip the checks the class and the type decide.
            while let Some(n) = self.nodes.get(pc as usize) {
                match n.kind {
                    Kind::Type(..) | Kind::Process(_) => {
                        pc = if self.test(pc, n.kind, v, st, Some(class)) { n.on_true } else { n.on_false }
                    }
                    Kind::Path(_) | Kind::Event(_) => break,
                }
            }
            if pc == ACCEPT || (pc != REJECT && self.can_accept(pc, v, st, class)) {
                st.items.push((i as u32, pc));
            }
        }
        st.plans.push((first, st.items.len() as u32));
        st.plans.len() as u32
    }

    /// Whether some event of this class and type could reach [`ACCEPT`] from node `pc`.
    fn can_accept(&self, pc: u32, v: &EventView<'_>, st: &mut ChunkState, class: u32) -> bool {
        st.stamp = st.stamp.wrapping_add(1);
        if st.stamp == 0 {
            st.seen.iter_mut().for_each(|s| *s = 0);
            st.stamp = 1;
        }
        let mut stack = std::mem::take(&mut st.stack);
        stack.clear();
        stack.push(pc);
        let mut found = false;
        while let Some(pc) = stack.pop() {
            if pc == ACCEPT {
                found = true;
                break;
            }
            let Some(&n) = self.nodes.get(pc as usize) else { continue };
            if st.seen[pc as usize] == st.stamp {
                continue;
            }
            st.seen[pc as usize] = st.stamp;
            match n.kind {
                Kind::Type(..) | Kind::Process(_) => {
                    stack.push(if self.test(pc, n.kind, v, st, Some(class)) { n.on_true } else { n.on_false })
                }
                Kind::Path(_) | Kind::Event(_) => stack.extend([n.on_false, n.on_true]),
            }
        }
        st.stack = stack;
        found
    }

    /// Runs the program from node `pc` on one event.
    fn run(&self, mut pc: u32, v: &EventView<'_>, st: &mut ChunkState, class: Option<u32>) -> bool {
        while let Some(&n) = self.nodes.get(pc as usize) {
            pc = if self.test(pc, n.kind, v, st, class) { n.on_true } else { n.on_false };
        }
        pc == ACCEPT
    }

    /// Evaluates node `pc`'s check, through the memos when it has one.
    #[inline]
    fn test(&self, pc: u32, kind: Kind, v: &EventView<'_>, st: &mut ChunkState, class: Option<u32>) -> bool {
        let check = &self.checks[pc as usize];
        match kind {
            Kind::Type(i) => {
                let (mask, negated) = self.types[i as usize];
                let t = type_bits(v.ev.etype);
                (t < 128 && mask & (1u128 << t) != 0) != negated
            }
            Kind::Process(slot) => {
                let cell = class.and_then(|c| st.by_class.get_mut(c as usize * self.process_slots + slot as usize));
                memo(cell, || check.matches(v))
            }
            // On fd-table events (close, dup…) `fd.directory` and `fd.filename` also depend on
            // the fd's kind, so the path alone does not decide them there.
            Kind::Path(_) if v.etype().is_some_and(|t| t.uses_fd()) => check.matches(v),
            Kind::Path(slot) => {
                let key = v.fd_path_id().map_or(0, |id| id as usize + 1);
                memo(st.by_path.get_mut(key * self.path_slots + slot as usize), || check.matches(v))
            }
            Kind::Event(slot) => match st.by_event.get_mut(slot as usize) {
                Some(c) if *c >> 1 == st.event => *c & 1 == 1,
                Some(c) => {
                    let r = check.matches(v);
                    *c = st.event << 1 | r as u32;
                    r
                }
                None => check.matches(v),
            },
        }
    }
}

/// `v` in evaluation order: stable-sorted by what each operand depends on at most.
fn by_cost(v: &[Filter]) -> Vec<&Filter> {
    let mut out: Vec<&Filter> = v.iter().collect();
    out.sort_by_cached_key(|f| cost(f));
    out
}

/// 0: decided by the event type, 1: by the process class, 2: by the event.
fn cost(f: &Filter) -> u8 {
    match f {
        Filter::And(v) | Filter::Or(v) => v.iter().map(cost).max().unwrap_or(0),
        Filter::Not(x) => cost(x),
        Filter::Check(c) => match c.dependency() {
            Dependency::Type(..) => 0,
            Dependency::Process => 1,
            Dependency::Path | Dependency::Event => 2,
        },
    }
}

/// Per-chunk memos and plans of a [`Program`].
#[derive(Debug, Default)]
pub struct ChunkState {
    /// Class of each process entry.
    class_of: Vec<u32>,
    /// `classes × process_slots` cells: 0 = not computed, 1 = false, 2 = true.
    by_class: Vec<u8>,
    /// `(paths + 1) × path_slots` cells, keyed by path id + 1 (0: no fd path).
    by_path: Vec<u8>,
    /// `classes × typed` cells: plan number + 1, 0 = not built.
    plan_of: Vec<u32>,
    /// Each plan's range of `items`.
    plans: Vec<(u32, u32)>,
    /// (rule, start node) of every plan.
    items: Vec<(u32, u32)>,
    /// Per event check: (event number << 1) | result, for the event being evaluated.
    by_event: Vec<u32>,
    /// Number of the event being evaluated (from 1).
    event: u32,
    /// Reachability scratch: the stamp of the last search that visited each node.
    seen: Vec<u32>,
    stamp: u32,
    stack: Vec<u32>,
}

fn memo(cell: Option<&mut u8>, compute: impl FnOnce() -> bool) -> bool {
    match cell {
        Some(c) if *c != 0 => *c == 2,
        Some(c) => {
            let r = compute();
            *c = 1 + r as u8;
            r
        }
        None => compute(),
    }
}

/// Length of a [`class_key`].
const CLASS_KEY_LEN: usize = 38;

/// Everything a process-only field can read of entry `p`: equal keys give equal values for
/// every such field. Listing the fields by name (no `..`) makes a new column a compile error
/// here until it is considered.
fn class_key(p: &ArchivedProcess, parent_class: u32, pids: bool) -> [u32; CLASS_KEY_LEN] {
    let ArchivedProcess {
        pid,
        ppid,
        parent: _,
        uid,
        gid,
        name,
        exe,
        exepath,
        args,
        cwd,
        // Read only by `proc.duration`, which depends on the event too.
        start_ns: _,
        container_id,
        tty,
        loginuid,
        container_name,
        container_image,
        k8s_pod,
        k8s_ns,
        task,
        container,
    } = p;
    let (pid, ppid) = if pids { (pid.to_native(), ppid.to_native()) } else { (0, 0) };
    // The ids in the pid namespace count as pids; the rest of the task facts always count.
    let (vpid, vpgid, sid) =
        if pids { (task.vpid.to_native(), task.vpgid.to_native(), task.sid.to_native()) } else { (0, 0, 0) };
    let halves = |v: u64| [v as u32, (v >> 32) as u32];
    let [c0, c1] = halves(task.caps[0].to_native());
    let [c2, c3] = halves(task.caps[1].to_native());
    let [c4, c5] = halves(task.caps[2].to_native());
    let [i0, i1] = halves(task.exe_ino.to_native());
    let [t0, t1] = halves(task.exe_ctime_ns.to_native());
    let [t2, t3] = halves(task.exe_mtime_ns.to_native());
    let [s0, s1] = halves(container.start_ns.to_native());
    [
        parent_class,
        pid,
        ppid,
        uid.to_native(),
        gid.to_native(),
        name.to_native(),
        exe.to_native(),
        exepath.to_native(),
        args.to_native(),
        cwd.to_native(),
        container_id.to_native(),
        tty.to_native(),
        loginuid.to_native(),
        container_name.to_native(),
        container_image.to_native(),
        k8s_pod.to_native(),
        k8s_ns.to_native(),
        vpid,
        vpgid,
        sid,
        task.flags.to_native(),
        task.env.to_native(),
        c0,
        c1,
        c2,
        c3,
        c4,
        c5,
        i0,
        i1,
        t0,
        t1,
        t2,
        t3,
        container.privileged as u32,
        s0,
        s1,
        container.mounts.to_native(),
    ]
}

/// A small fast hasher for fixed-size integer keys (the Firefox/rustc "Fx" mix).
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }

    fn write_u32(&mut self, i: u32) {
        self.write_u64(i as u64);
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

#[cfg(test)]
mod tests {
    use lanner_formats::archive::{ChunkBuilder, DecodedChunk, SegmentMeta};
    use lanner_formats::event::{fdkind, oflags, Event, Process};
    use lanner_formats::syscall::EventType;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::{RuleMatching, RuleSet};

    /// Checks of every kind the program treats differently: process (pids included), path,
    /// plain event type, other event fields, and a comparison with another field.
    const ATOMS: &[&str] = &[
        "proc.name in (sh, cat, true)",
        "proc.name = bash",
        "proc.pname = sh",
        "proc.aname in (init, bash)",
        "proc.aname[2] = init",
        "proc.cmdline contains etc",
        "proc.args startswith -c",
        "proc.pid = 103",
        "proc.ppid = 100",
        "proc.apid = 1",
        "user.uid = 0",
        "user.name = root",
        "proc.exepath startswith /usr/bin/b",
        "fd.name startswith /etc",
        "fd.name = /etc/shadow",
        "fd.directory = /tmp",
        "fd.directory in (/dev, /)",
        "fd.filename = null",
        "fd.filename in (shadow, x)",
        "evt.type = openat",
        "evt.type in (open, openat, mkdir)",
        "evt.type != execve",
        "evt.type = execve",
        "evt.rawres >= 0",
        "evt.failed = true",
        "evt.is_open_write = true",
        "fd.num = 3",
        "thread.tid = 104",
        "proc.name = val(proc.pname)",
    ];

    /// A process entry named `name` (also its `exe`), other strings unset.
    fn process(pid: u32, ppid: u32, parent: u32, uid: u32, name: u32) -> Process {
        Process {
            pid,
            ppid,
            parent,
            uid,
            gid: 0,
            name,
            exe: name,
            exepath: name,
            args: NONE,
            cwd: NONE,
            start_ns: 0,
            container_id: NONE,
            tty: 0,
            loginuid: u32::MAX,
            container_name: NONE,
            container_image: NONE,
            k8s_pod: NONE,
            k8s_ns: NONE,
            task: lanner_formats::event::TaskFacts::UNKNOWN,
            container: lanner_formats::event::ContainerFacts::UNKNOWN,
        }
    }

    fn condition(rng: &mut StdRng, depth: u32) -> String {
        if depth == 0 || rng.random_bool(0.3) {
            return ATOMS[rng.random_range(0..ATOMS.len())].to_owned();
        }
        match rng.random_range(0..3) {
            0 => format!("not ({})", condition(rng, depth - 1)),
            k => {
                let op = if k == 1 { " and " } else { " or " };
                let n = rng.random_range(2..4);
                let parts: Vec<String> = (0..n).map(|_| format!("({})", condition(rng, depth - 1))).collect();
                parts.join(op)
            }
        }
    }

    fn ruleset(rng: &mut StdRng, matching: RuleMatching) -> RuleSet {
        let mut yaml = String::new();
        for i in 0..24 {
            let c = condition(rng, 3);
            yaml.push_str(&format!(
                "- rule: r{i}\n  desc: d\n  condition: {c}\n  output: o\n  priority: info\n  warn_evttypes: false\n"
            ));
        }
        let mut rs = RuleSet::from_yaml("random.yaml", &yaml).unwrap();
        rs.rule_matching = matching;
        rs
    }

    /// A chunk where many processes repeat the same name, arguments and parent (so they share
    /// classes unless pids matter), with random events.
    fn chunk(rng: &mut StdRng) -> DecodedChunk {
        let mut b = ChunkBuilder::new();
        let names = ["init", "sh", "bash", "cat", "true"];
        let args = ["", "-c\0ls", "/etc/shadow", "-c"];
        let mut procs: Vec<u32> = Vec::new();
        for k in 0..rng.random_range(1..30) {
            let parent =
                if procs.is_empty() || rng.random_bool(0.2) { NONE } else { procs[rng.random_range(0..procs.len())] };
            let name = b.intern(names[rng.random_range(0..names.len())]);
            let exepath = b.intern(if rng.random_bool(0.5) { "/usr/bin/bash" } else { "/bin/cat" });
            let args = b.intern(args[rng.random_range(0..args.len())]);
            let cwd = b.intern("/");
            let container_id = b.intern("host");
            let (pid, uid) = (100 + k, rng.random_range(0..2) * 1000);
            let ppid = if rng.random_bool(0.5) { 100 } else { 1 };
            procs.push(b.add_process(Process {
                exepath,
                args,
                cwd,
                container_id,
                ..process(pid, ppid, parent, uid, name)
            }));
        }
        let types = [
            EventType::Openat,
            EventType::Open,
            EventType::Mkdir,
            EventType::Execve,
            EventType::Unlink,
            EventType::Close,
        ];
        let paths = ["/etc/shadow", "/etc/x", "/tmp/x", "/home/u/shadow", "/tmp", "/dev/null", ""];
        for i in 0..200 {
            let path = b.intern_path(paths[rng.random_range(0..paths.len())]);
            b.push(Event {
                ts_ns: 1_700_000_000_000_000_000 + i,
                tid: rng.random_range(100..106),
                process: procs[rng.random_range(0..procs.len())],
                etype: types[rng.random_range(0..types.len())] as u16,
                ret: [-2, 0, 3][rng.random_range(0..3)],
                flags: [oflags::O_RDONLY, oflags::O_WRONLY | oflags::O_CREAT][rng.random_range(0..2)],
                // The fd kind, for fd-table events such as close.
                mode: [fdkind::UNKNOWN, fdkind::FILE, fdkind::FIFO][rng.random_range(0..3)],
                dirfd: -100,
                path,
                path2: NONE,
            });
        }
        DecodedChunk::from_chunk(&b.take()).unwrap()
    }

    /// An (event, rule) pair that fires.
    type Fired = (usize, usize);

    /// (event, rule) pairs that fire: from the compiled program, and from the plain tree walk
    /// over every rule (no index, no memo, no plan).
    fn both(rs: &RuleSet, d: &DecodedChunk, meta: &SegmentMeta) -> (Vec<Fired>, Vec<Fired>) {
        let (chunk, paths) = (d.chunk(), d.paths());
        let mut st = rs.program().chunk_state(chunk, paths.len());
        let (mut compiled, mut reference) = (Vec::new(), Vec::new());
        for (k, ev) in chunk.events.iter().enumerate() {
            let v = EventView { chunk, paths, ev, num: 0, meta };
            rs.program().for_each_match(&v, &mut st, |i| {
                compiled.push((k, i));
                rs.rule_matching == RuleMatching::All
            });
            for (i, r) in rs.rules.iter().enumerate() {
                if r.filter.matches(&v) {
                    reference.push((k, i));
                    if rs.rule_matching == RuleMatching::First {
                        break;
                    }
                }
            }
        }
        (compiled, reference)
    }

    #[test]
    fn compiled_program_agrees_with_the_tree_walk_on_random_rules_and_events() {
        let mut rng = StdRng::seed_from_u64(0x1a22e5);
        let mut meta = SegmentMeta::default();
        meta.users.insert(0, "root".into());
        let (mut fired, mut total) = (0, 0);
        for round in 0..60 {
            let matching = if round % 2 == 0 { RuleMatching::All } else { RuleMatching::First };
            let rs = ruleset(&mut rng, matching);
            for _ in 0..3 {
                let d = chunk(&mut rng);
                let (compiled, reference) = both(&rs, &d, &meta);
                if let Some(k) = (0..compiled.len().max(reference.len())).find(|&k| compiled.get(k) != reference.get(k))
                {
                    panic!(
                        "round {round}: compiled {:?} but the tree walk {:?} (event, rule)",
                        compiled.get(k),
                        reference.get(k)
                    );
                }
                fired += reference.len();
                total += d.chunk().events.len() * rs.rules.len();
            }
        }
        // The inputs must exercise both outcomes.
        assert!(fired > total / 50 && fired < total / 2, "{fired} of {total}");
    }

    #[test]
    fn processes_differing_only_by_pid_share_a_class_unless_a_rule_reads_pids() {
        let mut b = ChunkBuilder::new();
        let name = b.intern("true");
        for pid in [10, 11] {
            b.add_process(Process { start_ns: pid as u64, ..process(pid, 1, NONE, 0, name) });
        }
        let d = DecodedChunk::from_chunk(&b.take()).unwrap();
        let rule = |c: &str| {
            RuleSet::from_yaml(
                "t.yaml",
                &format!("- rule: r\n  desc: d\n  condition: {c}\n  output: o\n  priority: info\n"),
            )
            .unwrap()
        };
        let classes = |rs: &RuleSet| rs.program().chunk_state(d.chunk(), 0).class_of;
        assert_eq!(classes(&rule("evt.type = execve and proc.name = true")), vec![0, 0]);
        assert_eq!(classes(&rule("evt.type = execve and proc.pid = 11")), vec![0, 1]);
    }
}
