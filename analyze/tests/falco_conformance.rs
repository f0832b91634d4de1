//! Falco 0.33.1's own regression suite (`test/falco_tests.yaml`, `test/falco_tests_exceptions.yaml`),
//! read in place from the pinned reference data (`testdata/MANIFEST`): every rule-loading case (expected errors and warnings)
//! must pass; trace cases import their `.scap` file, replay it with the case's rules and rule
//! selection, and compare detections (any, per level, per rule) with what Falco 0.33.1 expects.
//! Cases that check Falco's configuration handling or console text, or whose trace is not
//! shipped, are counted as not applicable, with the reason.

use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use lanner_analyze::replay::{replay, NoProgress, Window};
use lanner_analyze::rules::{Diagnostic, Priority, RuleSet, Source};
use marked_yaml::types::MarkedMappingNode;
use marked_yaml::Node;

fn suite_dir() -> Option<PathBuf> {
    lanner_testdata::require("falco-0.33.1/test", "Falco conformance suite")
}

/// One expected error or warning.
#[derive(Debug)]
struct Expected {
    item_type: String,
    item_name: String,
    code: String,
    message: String,
}

fn strings(m: &MarkedMappingNode, key: &str) -> Vec<String> {
    match m.get_node(key) {
        Some(Node::Sequence(s)) => s.iter().filter_map(|n| n.as_scalar().map(|s| s.as_str().to_owned())).collect(),
        Some(Node::Scalar(s)) => vec![s.as_str().to_owned()],
        _ => Vec::new(),
    }
}

fn expected(m: &MarkedMappingNode, key: &str) -> Vec<Expected> {
    let Some(Node::Sequence(s)) = m.get_node(key) else { return Vec::new() };
    s.iter()
        .filter_map(|n| n.as_mapping())
        .map(|e| {
            let get = |k: &str| e.get_scalar(k).map_or(String::new(), |s| s.as_str().to_owned());
            Expected {
                item_type: get("item_type"),
                item_name: get("item_name"),
                code: get("code"),
                message: get("message"),
            }
        })
        .collect()
}

fn load(dir: &Path, files: &[String]) -> Result<RuleSet, Vec<Diagnostic>> {
    let sources: Vec<Source> = files
        .iter()
        .map(|f| Source { name: f.clone(), text: std::fs::read_to_string(dir.join(f)).expect("suite rules file") })
        .collect();
    RuleSet::load(&sources)
}

/// Whether diagnostic `d` is the one `e` describes. YAML parser messages are the parser's own
/// (yaml-cpp's texts cannot be reproduced), so for them only the code and item are compared;
/// Falco 0.33.1 prints "None" as the message of an engine version mismatch.
fn same(d: &Diagnostic, e: &Expected) -> bool {
    let message_ok = d.code.as_str() == "LOAD_ERR_YAML_PARSE" || e.message == "None" || d.message.contains(&e.message);
    d.code.as_str() == e.code && d.item_type == e.item_type && d.item_name == e.item_name && message_ok
}

#[derive(Default)]
struct Tally {
    passed: Vec<String>,
    failed: Vec<String>,
    not_applicable: Vec<String>,
}

fn run_case(dir: &Path, name: &str, c: &MarkedMappingNode, t: &mut Tally) {
    let validate = strings(c, "validate_rules_file");
    if !validate.is_empty() {
        let errors = expected(c, "validate_errors");
        let warnings = expected(c, "validate_warnings");
        let exit = c.get_scalar("exit_status").map_or("0".to_owned(), |s| s.as_str().to_owned());
        let (got_errors, got_warnings) = match load(dir, &validate) {
            Ok(rs) => (Vec::new(), rs.warnings),
            Err(all) => all.into_iter().partition(|d| d.code.is_error()),
        };
        let mut problems = Vec::new();
        if (exit != "0") == got_errors.is_empty() {
            problems.push(format!("exit status {exit} expected, got errors: {got_errors:#?}"));
        }
        for e in &errors {
            if !got_errors.iter().any(|d| same(d, e)) {
                problems.push(format!(
                    "missing error {e:?}; got {:?}",
                    got_errors.iter().map(|d| d.to_string()).collect::<Vec<_>>()
                ));
            }
        }
        for e in &warnings {
            if !got_warnings.iter().any(|d| same(d, e)) {
                problems.push(format!(
                    "missing warning {e:?}; got {:?}",
                    got_warnings.iter().map(|d| d.to_string()).collect::<Vec<_>>()
                ));
            }
        }
        if problems.is_empty() {
            t.passed.push(name.to_owned());
        } else {
            t.failed.push(format!("{name}: {}", problems.join("; ")));
        }
        return;
    }
    let trace = c.get_scalar("trace_file").map(|s| s.as_str().to_owned()).unwrap_or_default();
    if let Some(why) = not_applicable(dir, c, &trace) {
        t.not_applicable.push(format!("{name} ({why})"));
        return;
    }
    let rules = strings(c, "rules_file");
    let files: Vec<String> = rules
        .iter()
        .flat_map(|f| {
            let p = dir.join(f);
            if p.is_dir() {
                let mut v: Vec<String> = std::fs::read_dir(&p)
                    .unwrap()
                    .map(|e| format!("{f}/{}", e.unwrap().file_name().to_string_lossy()))
                    .collect();
                v.sort();
                v
            } else {
                vec![f.clone()]
            }
        })
        .collect();
    let should_fail = c.get_scalar("exit_status").is_some_and(|s| s.as_str() != "0");
    let mut rs = match load(dir, &files) {
        Ok(rs) => rs,
        Err(e) if should_fail => {
            let _ = e;
            t.passed.push(name.to_owned());
            return;
        }
        Err(e) => {
            let msgs: Vec<String> = e.iter().map(|d| d.to_string()).collect();
            t.failed.push(format!("{name}: rules failed to load: {msgs:?}"));
            return;
        }
    };
    if should_fail {
        t.failed.push(format!("{name}: Falco exits with an error, Lanner loaded the rules"));
        return;
    }
    select_rules(&mut rs, c);
    let counts = match detect(&rs, &dir.join(&trace)) {
        Ok(c) => c,
        Err(e) => {
            t.failed.push(format!("{name}: {e:#}"));
            return;
        }
    };
    let total: u64 = counts.values().sum();
    let mut problems = Vec::new();
    let detect = c.get_scalar("detect").is_some_and(|s| s.as_str().eq_ignore_ascii_case("true"));
    if detect && total == 0 {
        problems.push("expected detections, got none".to_owned());
    }
    if !detect && total > 0 {
        problems.push(format!("expected no detection, got {counts:?}"));
    }
    if detect {
        for level in strings(c, "detect_level") {
            let want = Priority::parse(&level).unwrap_or_else(|| panic!("{name}: level {level}"));
            let n: u64 = counts.iter().filter(|(r, _)| priority_of(&rs, r) == Some(want)).map(|(_, n)| n).sum();
            if n == 0 {
                problems.push(format!("no detection at level {level}: {counts:?}"));
            }
        }
    }
    if let Some(Node::Sequence(seq)) = c.get_node("detect_counts") {
        for m in seq.iter().filter_map(|n| n.as_mapping()) {
            for (rule, n) in m.iter() {
                let want: u64 = n.as_scalar().unwrap().as_str().parse().unwrap();
                let got = counts.get(rule.as_str()).copied().unwrap_or(0);
                if got != want {
                    problems.push(format!("rule {:?}: {want} expected, {got} detected", rule.as_str()));
                }
            }
        }
    }
    if problems.is_empty() {
        t.passed.push(name.to_owned());
    } else {
        t.failed.push(format!("{name}: {}", problems.join("; ")));
    }
}

/// Why a trace case cannot run here, if it cannot: its trace is not in the shared data, or it
/// checks Falco's own configuration handling or console text rather than detections.
fn not_applicable(dir: &Path, c: &MarkedMappingNode, trace: &str) -> Option<String> {
    if strings(c, "rules_file").is_empty() {
        return Some("runs Falco's default ruleset over a trace that is not shipped".into());
    }
    if !dir.join(trace).is_file() {
        return Some(format!("trace {trace} is not in the pinned reference data"));
    }
    for (key, why) in [
        ("conf_file", "tests a falco.yaml setting (syscall drop actions, outputs)"),
        ("grpc", "tests Falco's gRPC output"),
        ("stdout_contains", "checks Falco's console text"),
        ("stderr_contains", "checks Falco's console text"),
        ("output_strictly_contains", "checks Falco's console text"),
        ("stdout_not_contains", "checks Falco's console text"),
        ("time_iso_8601", "checks Falco's console time format"),
        ("json_output", "checks Falco's console JSON settings"),
        ("run_duration", "tests a live-capture duration"),
    ] {
        if c.get_node(key).is_some() {
            return Some(why.into());
        }
    }
    None
}

/// Applies the case's rule selection, as Falco's `-o priority=`, `-t`, `-T` and `-D` do.
fn select_rules(rs: &mut RuleSet, c: &MarkedMappingNode) {
    let min = c.get_scalar("priority").and_then(|p| Priority::parse(p.as_str()));
    let run = strings(c, "run_tags");
    let skip = strings(c, "disable_tags");
    let disabled = strings(c, "disabled_rules");
    rs.retain(|r| {
        min.is_none_or(|m| r.priority <= m)
            && (run.is_empty() || r.tags.iter().any(|t| run.contains(t)))
            && !r.tags.iter().any(|t| skip.contains(t))
            && !disabled.iter().any(|d| r.name.contains(d.as_str()))
    });
}

fn priority_of(rs: &RuleSet, rule: &str) -> Option<Priority> {
    rs.rules.iter().find(|r| r.name == rule).map(|r| r.priority)
}

/// Alerts per rule name from replaying the trace with `rs`.
fn detect(rs: &RuleSet, trace: &Path) -> anyhow::Result<BTreeMap<String, u64>> {
    let tmp = tempfile::tempdir()?;
    let seg = tmp.path().join("trace.lnr");
    lanner_analyze::scap_input::import_file(trace, &seg)?;
    let summary = replay(rs, &[lanner_analyze::segments::Segment::File(seg)], Window::default(), &mut [], &NoProgress)?;
    anyhow::ensure!(summary.errors.is_empty(), "replay errors: {:?}", summary.errors);
    Ok(summary.hits)
}

fn run_file(dir: &Path, file: &str, t: &mut Tally) {
    let text = std::fs::read_to_string(dir.join(file)).unwrap().replace("!mux", "");
    let root = marked_yaml::parse_yaml(0, &text).unwrap();
    for (_, group) in root.as_mapping().unwrap().iter() {
        for (name, case) in group.as_mapping().unwrap().iter() {
            run_case(dir, name.as_str(), case.as_mapping().unwrap(), t);
        }
    }
}

#[test]
fn falco_0_33_1_regression_cases() {
    let Some(dir) = suite_dir() else { return };
    let mut t = Tally::default();
    run_file(&dir, "falco_tests.yaml", &mut t);
    run_file(&dir, "falco_tests_exceptions.yaml", &mut t);
    eprintln!(
        "Falco 0.33.1 conformance: {} passed, {} failed, {} not applicable",
        t.passed.len(),
        t.failed.len(),
        t.not_applicable.len()
    );
    for p in &t.not_applicable {
        eprintln!("  not applicable: {p}");
    }
    assert!(t.failed.is_empty(), "failed cases:\n{}", t.failed.join("\n"));
    assert!(t.passed.len() >= 100, "only {} cases ran", t.passed.len());
}

#[test]
fn upstream_rule_files_load_with_every_rule_compiled() {
    let Some(dir) = suite_dir() else { return };
    let upstream = dir.join("../../falcosecurity-rules");
    for (file, expected_ok, expected_disabled) in [
        ("current/falco_rules.yaml", 25, 0),
        ("current/falco-incubating_rules.yaml", 31, 0),
        ("current/falco-sandbox_rules.yaml", 25, 12),
        ("falco-rules-1.0.1/falco_rules.yaml", 56, 24),
    ] {
        let text = std::fs::read_to_string(upstream.join(file)).unwrap();
        let rs = RuleSet::load(&[Source { name: file.into(), text }])
            .unwrap_or_else(|e| panic!("{file}: {:?}", e.iter().map(|d| d.to_string()).collect::<Vec<_>>()));
        let ok = rs.statuses.iter().filter(|s| s.2 == lanner_analyze::rules::RuleStatus::Ok).count();
        let disabled = rs.statuses.iter().filter(|s| s.2 == lanner_analyze::rules::RuleStatus::Disabled).count();
        assert_eq!(
            (ok, disabled, rs.statuses.len()),
            (expected_ok, expected_disabled, expected_ok + expected_disabled),
            "{file}"
        );
    }
}
