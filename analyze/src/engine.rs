//! Evaluates a [`RuleSet`] over the events of one chunk and builds Falco-shaped alerts.

use chrono::SecondsFormat;
use lanner_formats::alert::Alert;
use lanner_formats::archive::{DecodedChunk, SegmentMeta};

use crate::rules::fields::{format_time_of_day, EventView};
use crate::rules::{RuleMatching, RuleSet};

/// Which events an evaluation considers (`--since` / `--until`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    /// Only events at or after this time (unix ns).
    pub since: Option<u64>,
    /// Only events at or before this time (unix ns).
    pub until: Option<u64>,
}

impl Window {
    /// True when an event at `ts` is inside the window.
    pub fn contains(&self, ts: u64) -> bool {
        self.since.is_none_or(|s| ts >= s) && self.until.is_none_or(|u| ts <= u)
    }

    /// True when a chunk spanning `first..=last` may hold events inside the window.
    pub fn overlaps(&self, first: u64, last: u64) -> bool {
        self.since.is_none_or(|s| last >= s) && self.until.is_none_or(|u| first <= u)
    }
}

/// Counts gathered while evaluating one chunk.
#[derive(Debug, Default, Clone)]
pub struct ChunkStats {
    /// Events evaluated.
    pub events: u64,
    /// First and last event time (unix ns).
    pub t_range: Option<(u64, u64)>,
    /// `proc.name` and `container.id` of each alert's event, in alert order.
    pub alert_procs: Vec<(String, String)>,
    /// `proc.pid` of each alert's event, in alert order.
    pub alert_pids: Vec<u32>,
}

/// Evaluates every event of `chunk`; the first matching rule (in file order) fires, as Falco's
/// default `rule_matching: first`, or every matching rule with [`RuleMatching::All`].
pub fn evaluate_chunk(
    rules: &RuleSet,
    decoded: &DecodedChunk,
    meta: &SegmentMeta,
    first_event: u64,
    window: Window,
    stats: &mut ChunkStats,
) -> Vec<Alert> {
    let (chunk, paths) = (decoded.chunk(), decoded.paths());
    let program = rules.program();
    let mut state = program.chunk_state(chunk, paths.len());
    let mut alerts = Vec::new();
    for (i, ev) in chunk.events.iter().enumerate() {
        let ts = ev.ts_ns;
        if !window.contains(ts) {
            continue;
        }
        stats.events += 1;
        stats.t_range = Some(stats.t_range.map_or((ts, ts), |(a, b)| (a.min(ts), b.max(ts))));
        let view = EventView { chunk, paths, ev, num: first_event + i as u64 + 1, meta };
        program.for_each_match(&view, &mut state, |i| {
            let rule = &rules.rules[i];
            let (text, output_fields) = rule.output.render(&view);
            stats.alert_procs.push((
                view.get(&crate::rules::Field::ProcName).render(),
                view.get(&crate::rules::Field::ContainerId).render(),
            ));
            stats.alert_pids.push(view.get(&crate::rules::Field::ProcPid).render().parse().unwrap_or(0));
            alerts.push(Alert {
                time: chrono::DateTime::from_timestamp_nanos(ts as i64).to_rfc3339_opts(SecondsFormat::Nanos, true),
                rule: rule.name.clone(),
                priority: rule.priority.name().to_owned(),
                output: format!("{}: {} {}", format_time_of_day(ts), rule.priority.name(), text),
                output_fields,
                source: "syscall".to_owned(),
                tags: rule.tags.clone(),
                hostname: meta.hostname.clone(),
                cluster: (!meta.cluster.is_empty()).then(|| meta.cluster.clone()),
            });
            rules.rule_matching == RuleMatching::All
        });
    }
    alerts
}
