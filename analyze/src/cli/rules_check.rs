//! `lanner-analyze rules check`: what became of every rule, warnings, counts.

use serde_json::{json, Value};

use lanner_analyze::rules::{Diagnostic, RuleSet, RuleStatus, Source};

fn diag_json(d: &Diagnostic) -> Value {
    json!({
        "file": d.pos.file.as_ref(),
        "line": d.pos.line,
        "column": d.pos.col,
        "code": d.code.as_str(),
        "item_type": d.item_type,
        "item_name": d.item_name,
        "message": d.message,
    })
}

/// Loads `sources` and prints the report; returns true when the rules load.
pub fn run(sources: &[Source], as_json: bool) -> bool {
    let (rules, errors) = match RuleSet::load(sources) {
        Ok(rs) => (Some(rs), Vec::new()),
        Err(all) => (None, all),
    };
    let (errors, warnings): (Vec<Diagnostic>, Vec<Diagnostic>) = match &rules {
        Some(rs) => (Vec::new(), rs.warnings.clone()),
        None => errors.into_iter().partition(|d| d.code.is_error()),
    };
    let mut rows = Vec::new();
    let (mut ok, mut disabled, mut skipped, mut partial, mut unrecorded_types) = (0, 0, 0, 0, 0);
    let mut names = std::collections::BTreeSet::new();
    if let Some(rs) = &rules {
        for r in &rs.rules {
            names.extend(r.names_to_resolve.iter().cloned());
        }
        for (name, pos, status) in &rs.statuses {
            let compiled = rs.rules.iter().find(|r| &r.name == name);
            let not_captured: Vec<&str> = compiled.map(|r| r.not_captured.clone()).unwrap_or_default();
            let types: Vec<(String, &str)> = compiled.map(|r| r.types_not_recorded.clone()).unwrap_or_default();
            let (word, reason) = match status {
                RuleStatus::Ok => {
                    ok += 1;
                    if !not_captured.is_empty() {
                        partial += 1;
                    }
                    if !types.is_empty() {
                        unrecorded_types += 1;
                    }
                    ("ok", String::new())
                }
                RuleStatus::Disabled => {
                    disabled += 1;
                    ("disabled", String::new())
                }
                RuleStatus::Skipped(why) => {
                    skipped += 1;
                    ("unsupported", why.clone())
                }
            };
            rows.push((name.clone(), pos.clone(), word, reason, not_captured, types));
        }
    }
    if as_json {
        let out = json!({
            "loaded": rules.is_some(),
            "rules": rows.iter().map(|(name, pos, status, reason, nc, types)| json!({
                "name": name, "file": pos.file.as_ref(), "line": pos.line, "status": status,
                "reason": reason, "fields_not_captured": nc,
                "event_types_not_recorded": types.iter().map(|(t, why)| json!({"type": t, "recorded": why})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "errors": errors.iter().map(diag_json).collect::<Vec<_>>(),
            "warnings": warnings.iter().map(diag_json).collect::<Vec<_>>(),
            "names_to_resolve": names,
            "counts": { "ok": ok, "disabled": disabled, "unsupported": skipped,
                        "ok_with_fields_not_captured": partial, "ok_with_event_types_not_recorded": unrecorded_types, "errors": errors.len(), "warnings": warnings.len() },
        });
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
    } else {
        for (name, pos, status, reason, nc, types) in &rows {
            let mut line = format!("{status:<11} {pos}  {name}");
            if !reason.is_empty() {
                line.push_str(&format!(": {reason}"));
            }
            if !nc.is_empty() {
                line.push_str(&format!("  [not captured yet, always <NA>: {}]", nc.join(", ")));
            }
            if !types.is_empty() {
                let t: Vec<String> = types.iter().map(|(t, why)| format!("{t}: {why}")).collect();
                line.push_str(&format!("  [event types capture does not record by default: {}]", t.join(", ")));
            }
            println!("{line}");
        }
        for w in &warnings {
            println!("warning     {w}");
        }
        if !names.is_empty() {
            let flags: Vec<String> = names.iter().map(|n| format!("--resolve {n}")).collect();
            println!(
                "note        rules compare fd.*.name with {} host name(s); capture records their addresses with: lanner-capture {}",
                names.len(),
                flags.join(" ")
            );
        }
        for e in &errors {
            println!("error       {e}");
        }
        println!(
            "{} rule(s): {ok} ok ({partial} of them read fields capture does not record yet, {unrecorded_types} ask for event types it does not record by default), {disabled} disabled, {skipped} unsupported; {} warning(s), {} error(s)",
            rows.len(),
            warnings.len(),
            errors.len()
        );
    }
    rules.is_some()
}
