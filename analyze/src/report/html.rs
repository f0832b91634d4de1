//! Draws a [`Report`] as one HTML page: inline CSS and JavaScript written here, an inline SVG
//! timeline, and a Content-Security-Policy that forbids every load from elsewhere, so the page
//! opens offline and cannot call out.

use std::fmt::Write as _;

use crate::rules::fields::format_time_of_day;

use super::collect::{Activity, Proc, Report, Table, ROW_CAP};

/// Processes drawn on the timeline (those with alerts first).
const TIMELINE_ROWS: usize = 300;

/// Text made safe for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn time(ts_ns: u64) -> String {
    chrono::DateTime::from_timestamp_nanos(ts_ns as i64).format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

const STYLE: &str = r#"
body{font:14px/1.4 system-ui,sans-serif;margin:0 2em 3em;color:#1d2330}
h1{margin:.6em 0 .1em}h2{margin-top:1.6em;border-bottom:1px solid #ccd;padding-bottom:.2em}
.muted{color:#667}.drops{background:#b3261e;color:#fff;padding:.5em 1em;font-weight:bold;border-radius:4px}
.ok{color:#1b6e2d}.bad{color:#b3261e;font-weight:bold}
table{border-collapse:collapse;margin:.4em 0;width:100%}th,td{border:1px solid #dde;padding:.2em .5em;text-align:left;vertical-align:top}
th{background:#eef0f6;cursor:pointer;user-select:none}td.num{text-align:right}
code,pre{font:12px ui-monospace,monospace}pre{white-space:pre-wrap;margin:.2em 0}
.tree ul{list-style:none;margin:0;padding-left:1.4em;border-left:1px dotted #aab}.tree>ul{border:0;padding:0}
.tree .count{font-weight:bold}.tree summary{cursor:pointer}.alerted>details>summary .name{color:#b3261e;font-weight:bold}
.badge{background:#b3261e;color:#fff;border-radius:8px;padding:0 .5em;font-size:12px}
.context>details>summary{opacity:.6}button{font-size:12px;margin-left:.5em}
input.filter{margin:.3em 0;padding:.2em;width:24em}
#timeline{border:1px solid #ccd;width:100%;height:auto;cursor:grab;background:#fafbfe}
.Emergency,.Alert,.Critical,.Error{color:#b3261e;font-weight:bold}.Warning{color:#a15c00;font-weight:bold}
#selection{display:none;background:#fff6d6;padding:.3em .8em;border:1px solid #e5c56b}
"#;

const SCRIPT: &str = r#"
const parents = JSON.parse(document.getElementById('parents').textContent);
function subtree(root) {
  const kids = {};
  for (const [p, pp] of Object.entries(parents)) (kids[pp] = kids[pp] || []).push(+p);
  const out = new Set(), stack = [root];
  while (stack.length) { const p = stack.pop(); if (!out.has(p)) { out.add(p); (kids[p] || []).forEach(c => stack.push(c)); } }
  return out;
}
function applyFilters() {
  const sel = window.selectedPids;
  document.querySelectorAll('table.data').forEach(t => {
    const text = (document.getElementById('filter-' + t.id) || {value: ''}).value.toLowerCase();
    t.querySelectorAll('tbody tr').forEach(r => {
      const bySel = !sel || sel.has(+r.dataset.pid);
      const byText = !text || r.textContent.toLowerCase().includes(text);
      r.style.display = bySel && byText ? '' : 'none';
    });
  });
  document.querySelectorAll('#timeline [data-pid]').forEach(e => {
    e.style.display = !sel || sel.has(+e.dataset.pid) ? '' : 'none';
  });
}
document.querySelectorAll('input.filter').forEach(i => i.addEventListener('input', applyFilters));
function selectSubtree(pid) {
  window.selectedPids = subtree(pid);
  document.getElementById('selection').style.display = 'block';
  document.getElementById('selection-text').textContent = 'Showing process ' + pid + ' and its descendants (' + window.selectedPids.size + ' processes).';
  applyFilters();
}
document.querySelectorAll('button.subtree').forEach(b => b.addEventListener('click', ev => {
  ev.preventDefault();
  selectSubtree(+b.dataset.pid);
}));
// A link to the page with #pid=N opens it filtered to that subtree.
const linked = location.hash.match(/^#pid=(\d+)$/);
if (linked) selectSubtree(+linked[1]);
document.getElementById('clear-selection').addEventListener('click', () => {
  window.selectedPids = null;
  document.getElementById('selection').style.display = 'none';
  applyFilters();
});
document.querySelectorAll('table.data th').forEach((th, col) => th.addEventListener('click', () => {
  const tbody = th.closest('table').querySelector('tbody');
  const rows = Array.from(tbody.rows), asc = th.dataset.dir !== 'asc';
  th.dataset.dir = asc ? 'asc' : 'desc';
  const key = r => { const c = r.cells[th.cellIndex]; return c.dataset.sort !== undefined ? +c.dataset.sort : c.textContent; };
  rows.sort((a, b) => { const x = key(a), y = key(b); return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1); });
  rows.forEach(r => tbody.appendChild(r));
}));
const svg = document.getElementById('timeline');
if (svg) {
  const full = svg.viewBox.baseVal, w0 = full.width, x0 = full.x;
  let drag = null;
  svg.addEventListener('wheel', ev => {
    ev.preventDefault();
    const vb = svg.viewBox.baseVal, r = svg.getBoundingClientRect();
    const at = vb.x + (ev.clientX - r.left) / r.width * vb.width;
    const w = Math.min(w0, Math.max(w0 / 10000, vb.width * (ev.deltaY > 0 ? 1.25 : 0.8)));
    vb.x = Math.min(x0 + w0 - w, Math.max(x0, at - (at - vb.x) * w / vb.width));
    vb.width = w;
  }, {passive: false});
  svg.addEventListener('mousedown', ev => { drag = {x: ev.clientX, vx: svg.viewBox.baseVal.x}; });
  window.addEventListener('mouseup', () => { drag = null; });
  window.addEventListener('mousemove', ev => {
    if (!drag) return;
    const vb = svg.viewBox.baseVal, r = svg.getBoundingClientRect();
    vb.x = Math.min(x0 + w0 - vb.width, Math.max(x0, drag.vx - (ev.clientX - drag.x) / r.width * vb.width));
  });
  svg.querySelectorAll('circle[data-alert]').forEach(c => c.addEventListener('click', () => {
    const d = document.getElementById('alert-' + c.dataset.alert);
    if (d) { d.open = true; d.scrollIntoView({block: 'center'}); }
  }));
}
"#;

/// The page for `report`; `title` names what it is about (the selection).
pub fn render(report: &Report, title: &str) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\
         <title>Lanner incident report: {t}</title><style>{STYLE}</style></head><body>\
         <h1>Lanner incident report</h1><p class=\"muted\">{t}</p>",
        t = esc(title)
    );
    summary(&mut h, report);
    h.push_str("<div id=\"selection\"><span id=\"selection-text\"></span><button id=\"clear-selection\">show everything</button></div>");
    alerts(&mut h, report);
    timeline(&mut h, report);
    tree(&mut h, report);
    for (id, name, t) in [
        ("files", "Files written, created and deleted", &report.files),
        ("network", "Network connections", &report.network),
        ("privilege", "Privilege changes, ptrace, mounts, bpf", &report.privilege),
    ] {
        activity(&mut h, id, name, t);
    }
    integrity(&mut h, report);
    let parents: serde_json::Map<String, serde_json::Value> =
        report.processes.values().map(|p| (p.pid.to_string(), p.ppid.into())).collect();
    // `</` cannot occur in JSON numbers and keys made of digits: the block cannot end early.
    let _ = writeln!(
        h,
        "<script type=\"application/json\" id=\"parents\">{}</script><script>{SCRIPT}</script></body></html>",
        serde_json::Value::Object(parents)
    );
    h
}

fn summary(h: &mut String, r: &Report) {
    h.push_str("<h2 id=\"summary\">Summary</h2><table class=\"kv\"><tbody>");
    let range = r.t_range.map_or("no events".to_owned(), |(a, b)| format!("{} .. {} (UTC)", time(a), time(b)));
    let nodes: Vec<&str> = r.nodes.iter().map(String::as_str).collect();
    let _ = write!(
        h,
        "<tr><th>time range</th><td>{}</td></tr><tr><th>node(s)</th><td>{}</td></tr>\
         <tr><th>events</th><td id=\"events\">{}</td></tr><tr><th>kernel drops</th><td id=\"drops\">{}</td></tr>\
         <tr><th>alerts</th><td id=\"alert-count\">{}</td></tr><tr><th>processes shown</th><td>{}</td></tr></tbody></table>",
        esc(&range),
        esc(&nodes.join(", ")),
        r.events,
        r.drops,
        r.alerts_total,
        r.processes.len()
    );
    if r.drops > 0 {
        let _ = write!(
            h,
            "<p class=\"drops\" id=\"drops-warning\">{} event(s) were dropped by the kernel while recording: \
             the archive is incomplete around them.</p>",
            r.drops
        );
    }
    for p in &r.problems {
        let _ = write!(h, "<p class=\"bad\">{}</p>", esc(p));
    }
    h.push_str("<table class=\"data\" id=\"by-rule\"><thead><tr><th>rule</th><th>priority</th><th>alerts</th></tr></thead><tbody>");
    for ((rule, prio), n) in &r.by_rule {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"{p}\">{p}</td><td class=\"num\" data-sort=\"{n}\">{n}</td></tr>",
            esc(rule),
            p = esc(prio)
        );
    }
    h.push_str("</tbody></table>");
}

fn alerts(h: &mut String, r: &Report) {
    let _ = write!(h, "<h2 id=\"alerts\">Alerts ({})</h2>", r.alerts_total);
    if r.alerts_total > r.alerts.len() as u64 {
        let _ =
            write!(h, "<p class=\"muted\">The first {} are listed; the counts above are complete.</p>", r.alerts.len());
    }
    h.push_str(
        "<input class=\"filter\" id=\"filter-alert-table\" placeholder=\"filter alerts\">\
         <table class=\"data\" id=\"alert-table\"><thead><tr><th>time</th><th>priority</th><th>rule</th>\
         <th>process</th><th>output</th></tr></thead><tbody>",
    );
    for (i, a) in r.alerts.iter().enumerate() {
        let fields = serde_json::to_string_pretty(&a.fields).unwrap_or_default();
        let _ = write!(
            h,
            "<tr class=\"alert\" data-pid=\"{pid}\"><td data-sort=\"{ts}\">{t}</td><td class=\"{p}\">{p}</td><td>{rule}</td>\
             <td>{name} ({pid})</td><td><details id=\"alert-{i}\"><summary>{out}</summary><pre>{fields}</pre></details></td></tr>",
            pid = a.pid,
            ts = a.ts_ns,
            t = time(a.ts_ns),
            p = esc(&a.priority),
            rule = esc(&a.rule),
            name = esc(&a.proc_name),
            out = esc(&a.output),
            fields = esc(&fields),
        );
    }
    h.push_str("</tbody></table>");
}

/// Process lifetimes as bars and alerts as dots on one time axis (wheel: zoom, drag: pan,
/// click a dot: its alert's fields).
fn timeline(h: &mut String, r: &Report) {
    let Some((t0, t1)) = r.t_range else { return };
    let span = (t1.saturating_sub(t0)).max(1) as f64;
    let x = |t: u64| (t.saturating_sub(t0)) as f64 / span * 1000.0;
    let mut procs: Vec<_> = r.processes.values().filter(|p| r.selected.contains(&p.pid)).collect();
    procs.sort_by_key(|p| (p.alerts == 0, p.first_ns));
    procs.truncate(TIMELINE_ROWS);
    let row_of: std::collections::HashMap<u32, usize> = procs.iter().enumerate().map(|(i, p)| (p.pid, i)).collect();
    let height = procs.len() * 14 + 30;
    let _ = write!(
        h,
        "<h2 id=\"timeline-title\">Timeline</h2><p class=\"muted\">Process lifetimes and alerts (red). \
         Wheel to zoom, drag to pan, click an alert for its fields. {} of {} processes drawn.</p>\
         <svg id=\"timeline\" viewBox=\"-200 0 1220 {height}\" preserveAspectRatio=\"none\" xmlns=\"http://www.w3.org/2000/svg\">",
        procs.len(),
        r.selected.len()
    );
    for (i, p) in procs.iter().enumerate() {
        let y = i * 14 + 20;
        let (a, b) = (x(p.first_ns), x(p.exit_ns.unwrap_or(t1)));
        let _ = write!(
            h,
            "<g data-pid=\"{pid}\"><text x=\"-195\" y=\"{ty}\" font-size=\"10\">{name} ({pid})</text>\
             <rect x=\"{a:.3}\" y=\"{y}\" width=\"{w:.3}\" height=\"9\" fill=\"#7a8cc2\"><title>{name} ({pid}) {cmd}</title></rect></g>",
            pid = p.pid,
            ty = y + 8,
            name = esc(&p.name),
            cmd = esc(&p.cmdline),
            w = (b - a).max(0.5),
        );
    }
    for (i, a) in r.alerts.iter().enumerate() {
        let Some(&row) = row_of.get(&a.pid) else { continue };
        let _ = write!(
            h,
            "<circle data-alert=\"{i}\" data-pid=\"{pid}\" cx=\"{cx:.3}\" cy=\"{cy}\" r=\"4\" fill=\"#b3261e\"><title>{t} {rule}</title></circle>",
            pid = a.pid,
            cx = x(a.ts_ns),
            cy = row * 14 + 24,
            t = format_time_of_day(a.ts_ns),
            rule = esc(&a.rule),
        );
    }
    let _ = write!(
        h,
        "<text x=\"0\" y=\"12\" font-size=\"10\">{}</text><text x=\"1000\" y=\"12\" font-size=\"10\" text-anchor=\"end\">{}</text></svg>",
        esc(&time(t0)),
        esc(&time(t1))
    );
}

fn tree(h: &mut String, r: &Report) {
    h.push_str("<h2 id=\"tree-title\">Process tree</h2><p class=\"muted\">Processes with alerts are marked; \
                \u{201c}only this\u{201d} filters the tables and the timeline to a subtree.</p><div class=\"tree\" id=\"tree\"><ul>");
    let mut children: std::collections::BTreeMap<u32, Vec<u32>> = Default::default();
    for p in r.processes.values() {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    let roots: Vec<u32> =
        r.processes.values().filter(|p| !r.processes.contains_key(&p.ppid) || p.ppid == p.pid).map(|p| p.pid).collect();
    // Iterative, so that a deep tree cannot overflow the stack.
    enum Step {
        Open(u32),
        Group(Vec<u32>),
        Close,
    }
    let mut stack: Vec<Step> = roots.into_iter().rev().map(Step::Open).collect();
    let mut seen = std::collections::HashSet::new();
    while let Some(step) = stack.pop() {
        let pid = match step {
            Step::Close => {
                h.push_str("</ul></details></li>");
                continue;
            }
            Step::Group(pids) => {
                group(h, r, &pids);
                continue;
            }
            Step::Open(pid) => pid,
        };
        let Some(p) = r.processes.get(&pid) else { continue };
        if !seen.insert(pid) {
            continue;
        }
        let mut class = Vec::new();
        if p.alerts > 0 {
            class.push("alerted");
        }
        if !r.selected.contains(&pid) {
            class.push("context");
        }
        let badge =
            if p.alerts > 0 { format!(" <span class=\"badge\">{} alert(s)</span>", p.alerts) } else { String::new() };
        let exit = p.exit_ns.map_or(String::new(), |t| format!(", exited {}", format_time_of_day(t)));
        let _ = write!(
            h,
            "<li class=\"{cls}\" data-pid=\"{pid}\"><details open><summary><span class=\"name\">{name}</span> \
             <code>{pid}</code> [{cmd}] <span class=\"muted\">user {user}, container {ctr}, first seen {first}{exit}</span>{badge}\
             <button class=\"subtree\" data-pid=\"{pid}\">only this</button></summary>",
            cls = class.join(" "),
            name = esc(&p.name),
            cmd = esc(&p.cmdline),
            user = esc(&p.user),
            ctr = esc(&p.container),
            first = format_time_of_day(p.first_ns),
        );
        for (t, cmd) in &p.execs {
            let _ = write!(h, "<div class=\"muted\">exec {} <code>{}</code></div>", format_time_of_day(*t), esc(cmd));
        }
        h.push_str("<ul>");
        stack.push(Step::Close);
        let kids: Vec<u32> = children.get(&pid).into_iter().flatten().copied().filter(|&c| c != pid).collect();
        for step in siblings(r, &children, &kids).into_iter().rev() {
            stack.push(step);
        }
    }
    /// A parent's children in order, with runs of alike leaves (same name, command line, user and
    /// container; no children, no alert, at most one exec) as one group: an exec storm of
    /// thousands of `/bin/true` is one line, not thousands of tree nodes.
    fn siblings(r: &Report, children: &std::collections::BTreeMap<u32, Vec<u32>>, kids: &[u32]) -> Vec<Step> {
        /// What makes two leaves alike: name, command line, user, container.
        type Alike = (String, String, String, String);
        let key = |pid: u32| {
            let p = r.processes.get(&pid)?;
            let leaf = !children.contains_key(&pid) && p.alerts == 0 && p.execs.len() <= 1;
            leaf.then(|| (p.name.clone(), p.cmdline.clone(), p.user.clone(), p.container.clone()))
        };
        let mut groups: Vec<(Option<Alike>, Vec<u32>)> = Vec::new();
        let mut index: std::collections::HashMap<Alike, usize> = Default::default();
        for &c in kids {
            match key(c) {
                Some(k) => match index.get(&k) {
                    Some(&i) => groups[i].1.push(c),
                    None => {
                        index.insert(k.clone(), groups.len());
                        groups.push((Some(k), vec![c]));
                    }
                },
                None => groups.push((None, vec![c])),
            }
        }
        let mut out = Vec::new();
        for (k, pids) in groups {
            if k.is_some() && pids.len() >= GROUP_AT {
                out.push(Step::Group(pids));
            } else {
                out.extend(pids.into_iter().map(Step::Open));
            }
        }
        out
    }
    h.push_str("</ul></div>");
}

/// Alike sibling leaves are shown as one line from this many on.
const GROUP_AT: usize = 3;

/// One line for `pids`, alike sibling leaves: how many, their pid range and when they ran.
fn group(h: &mut String, r: &Report, pids: &[u32]) {
    let procs: Vec<&Proc> = pids.iter().filter_map(|p| r.processes.get(p)).collect();
    let Some(first) = procs.first() else { return };
    let (lo, hi) = (pids.iter().min().copied().unwrap_or(0), pids.iter().max().copied().unwrap_or(0));
    let t0 = procs.iter().map(|p| p.first_ns).min().unwrap_or(0);
    let t1 = procs.iter().filter_map(|p| p.exit_ns).max();
    let cls = if pids.iter().all(|p| !r.selected.contains(p)) { "group context" } else { "group" };
    let _ = write!(
        h,
        "<li class=\"{cls}\" data-pid=\"{lo}\" data-pids=\"{n}\"><span class=\"name\">{name}</span> \
         <span class=\"count\">\u{d7}{n}</span> [{cmd}] <span class=\"muted\">pids {lo}\u{2013}{hi}, user {user}, \
         container {ctr}, from {from}{to}</span></li>",
        n = pids.len(),
        name = esc(&first.name),
        cmd = esc(&first.cmdline),
        user = esc(&first.user),
        ctr = esc(&first.container),
        from = format_time_of_day(t0),
        to = t1.map_or(String::new(), |t| format!(" to {}", format_time_of_day(t))),
    );
}

fn activity(h: &mut String, id: &str, name: &str, t: &Table) {
    let _ = write!(
        h,
        "<h2 id=\"{id}-title\">{name} ({total})</h2>{more}<input class=\"filter\" id=\"filter-{id}\" placeholder=\"filter\">\
         <table class=\"data\" id=\"{id}\"><thead><tr><th>time</th><th>process</th><th>what</th><th>on</th><th>result</th></tr></thead><tbody>",
        total = t.total,
        more = if t.total > t.rows.len() as u64 {
            format!("<p class=\"muted\">The first {ROW_CAP} are listed.</p>")
        } else {
            String::new()
        },
    );
    for Activity { ts_ns, pid, proc_name, action, target, result } in &t.rows {
        let _ = write!(
            h,
            "<tr data-pid=\"{pid}\"><td data-sort=\"{ts_ns}\">{t}</td><td>{n} ({pid})</td><td>{a}</td><td><code>{target}</code></td><td>{res}</td></tr>",
            t = time(*ts_ns),
            n = esc(proc_name),
            a = esc(action),
            target = esc(target),
            res = esc(result),
        );
    }
    h.push_str("</tbody></table>");
}

fn integrity(h: &mut String, r: &Report) {
    let bad = r.integrity.iter().filter(|s| !s.ok).count();
    let _ = write!(
        h,
        "<h2 id=\"integrity-title\">Integrity</h2><p class=\"{cls}\" id=\"integrity-verdict\">{verdict}</p>\
         <table class=\"data\" id=\"integrity\"><thead><tr><th>segment</th><th>verify</th><th>last chain hash (BLAKE3)</th></tr></thead><tbody>",
        cls = if bad == 0 { "ok" } else { "bad" },
        verdict = if bad == 0 {
            format!("All {} segment(s) this report read verify: their chunk hashes and the chain between them are intact.", r.integrity.len())
        } else {
            format!("{bad} finding(s) mean data was altered or lost: see below.")
        },
    );
    for s in &r.integrity {
        let _ = write!(
            h,
            "<tr data-pid=\"0\"><td><code>{}</code></td><td class=\"{}\">{}</td><td><code>{}</code></td></tr>",
            esc(&s.path),
            if s.ok { "ok" } else { "bad" },
            esc(&s.verdict),
            esc(&s.chain)
        );
    }
    h.push_str("</tbody></table>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::collect::AlertRow;

    #[test]
    fn alike_sibling_leaves_are_one_line_and_the_rest_stay_nodes() {
        let mut r = Report::default();
        let p = |pid, ppid, name: &str, alerts| Proc {
            pid,
            ppid,
            name: name.into(),
            cmdline: name.into(),
            alerts,
            first_ns: pid as u64,
            ..Default::default()
        };
        r.processes.insert(10, p(10, 1, "sh", 0));
        for pid in 11..=15 {
            r.processes.insert(pid, p(pid, 10, "true", 0));
        }
        // Alike but alerted, a different command, and a leaf with a child: nodes of their own.
        r.processes.insert(16, p(16, 10, "true", 1));
        r.processes.insert(17, p(17, 10, "cat", 0));
        r.processes.insert(18, p(18, 10, "true", 0));
        r.processes.insert(19, p(19, 18, "cat", 0));
        r.selected.extend(r.processes.keys().copied());
        let mut h = String::new();
        tree(&mut h, &r);
        assert_eq!(h.matches("class=\"group\"").count(), 1, "{h}");
        assert!(
            h.contains(
                "data-pid=\"11\" data-pids=\"5\"><span class=\"name\">true</span> <span class=\"count\">\u{d7}5</span>"
            ),
            "{h}"
        );
        assert!(h.contains("pids 11\u{2013}15"), "{h}");
        for pid in [10, 16, 17, 18, 19] {
            assert!(h.contains(&format!("data-pid=\"{pid}\"><details open>")), "{pid}: {h}");
        }
        // Two alike leaves stay two nodes.
        r.processes.retain(|&pid, _| pid <= 12);
        let mut h = String::new();
        tree(&mut h, &r);
        assert_eq!(h.matches("class=\"group").count(), 0, "{h}");
    }

    #[test]
    fn text_is_escaped_everywhere_it_is_written() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        let mut r = Report::default();
        let evil = "sh -c '<img src=x onerror=alert(1)>'";
        r.processes.insert(7, Proc { pid: 7, ppid: 1, name: "<b>".into(), cmdline: evil.into(), ..Default::default() });
        r.selected.insert(7);
        r.t_range = Some((1, 2));
        r.alerts.push(AlertRow {
            ts_ns: 1,
            rule: "</script><script>x</script>".into(),
            priority: "Warning".into(),
            pid: 7,
            proc_name: "<b>".into(),
            output: evil.into(),
            fields: Default::default(),
        });
        let page = render(&r, "<title>");
        assert!(!page.contains("<img") && !page.contains("<b>") && !page.contains("</script><script>x"));
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
        // Exactly the two scripts the page brings, and nothing that loads from elsewhere.
        assert_eq!(page.matches("<script").count(), 2);
        assert!(page.contains("default-src 'none'"));
        assert!(!page.contains("src=\"http") && !page.contains("href=\"http"));
    }
}
