//! Turns loaded items into a [`RuleSet`]: appends and overrides applied, exceptions turned into
//! conditions, macros and lists expanded, fields resolved, values typed, rules indexed by the
//! event types they can match. Errors and warnings use Falco's codes and messages.

use std::collections::{BTreeSet, HashMap, HashSet};

use lanner_formats::syscall::{EventType, TABLE};

use super::condition::{self, Expr, FieldRef, ListEntry, Op, Operand};
use super::fields::Field;
use super::filter::{Check, Filter};
use super::loader::{
    self, Code, Diagnostic, ExceptionFields, ExceptionItem, ExceptionValue, Item, ListItem, Located, MacroItem,
    OverrideMode, Pos, RuleItem, Source,
};
use super::output::OutputFormat;
use super::program::Program;
pub use lanner_formats::alert::Priority;

/// One rule ready to evaluate.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    /// Name.
    pub name: String,
    /// Priority.
    pub priority: Priority,
    /// Output format.
    pub output: OutputFormat,
    /// Tags.
    pub tags: Vec<String>,
    /// The condition, exceptions included.
    pub filter: Filter,
    /// Where the rule is defined.
    pub pos: Pos,
    /// Fields the rule reads or prints that capture does not record yet (always `<NA>`).
    pub not_captured: Vec<&'static str>,
    /// Host names the rule compares `fd.*.name` with: capture must resolve them (`--resolve`).
    pub names_to_resolve: Vec<String>,
    /// Event types the rule asks for that capture does not record by default, each with what it
    /// takes: `--syscalls all`, an imported `.scap` capture, or nothing Lanner knows.
    pub types_not_recorded: Vec<(String, &'static str)>,
}

/// What became of one rule of the loaded files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleStatus {
    /// Compiled and enabled.
    Ok,
    /// Compiled, but `enabled: false`.
    Disabled,
    /// Not loaded, with the reason (unsupported source, unknown field with skip-if-unknown-filter).
    Skipped(String),
}

/// Falco's `rule_matching`: whether an event raises only the first matching rule's alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuleMatching {
    /// The first matching rule, in file order (Falco's default).
    #[default]
    First,
    /// Every matching rule.
    All,
}

/// Every enabled rule, compiled, with an index by event type.
#[derive(Debug, Clone)]
pub struct RuleSet {
    /// The enabled rules, in definition order.
    pub rules: Vec<CompiledRule>,
    program: Program,
    /// Every rule of the files with what became of it, in definition order.
    pub statuses: Vec<(String, Pos, RuleStatus)>,
    /// Warnings (Falco's codes: LOAD_NO_EVTTYPE, LOAD_UNUSED_MACRO, …).
    pub warnings: Vec<Diagnostic>,
    /// First or all matching rules per event.
    pub rule_matching: RuleMatching,
}

impl RuleSet {
    /// Loads and compiles rule files in order; `Err` lists every error (warnings included
    /// after them, as Falco reports both).
    pub fn load(sources: &[Source]) -> Result<Self, Vec<Diagnostic>> {
        let mut items = Vec::new();
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        for s in sources {
            match loader::load(s) {
                Ok((v, w)) => {
                    items.extend(v);
                    warnings.extend(w);
                }
                Err(e) => errors.extend(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Compiler::merge(items)?.compile(warnings)
    }

    /// Compiles a bare filter, a condition in the rule language, against the macros and lists of
    /// `sources` (which may be empty), as `query` and `timeline` use it; `name` names the filter
    /// in messages. The sources' rules are not compiled.
    pub fn compile_filter(sources: &[Source], name: &str, condition: &str) -> Result<Filter, Vec<Diagnostic>> {
        let mut items = Vec::new();
        let mut errors = Vec::new();
        for s in sources {
            match loader::load(s) {
                Ok((v, _)) => items.extend(v),
                Err(e) => errors.extend(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let compiler = Compiler::merge(items)?;
        let pos = Pos { file: name.into(), line: 1, col: 1 };
        let ctx = Ctx { item_type: "filter", item_name: name, pos: &pos, skip_unknown: false };
        let expr = condition::parse(condition)
            .map_err(|e| vec![ctx.err(Code::ErrCompileCondition, located(&e, condition))])?;
        compiler.compile_expr(&expr, &ctx, &mut Vec::new(), &mut Usage::default()).map_err(|d| vec![d])
    }

    /// Loads rules from one YAML text named `name` (for messages).
    pub fn from_yaml(name: &str, text: &str) -> Result<Self, Vec<Diagnostic>> {
        Self::load(&[Source { name: name.to_owned(), text: text.to_owned() }])
    }

    /// Bit `n` set when some rule can match event type `n` (for index pruning).
    pub fn event_type_mask(&self) -> u128 {
        self.program.event_type_mask()
    }

    /// Keeps only the rules `keep` accepts (Falco's `-o priority=`, `-t`/`-T` tags, `-D`).
    pub fn retain(&mut self, mut keep: impl FnMut(&CompiledRule) -> bool) {
        let mut new_index = vec![usize::MAX; self.rules.len()];
        let mut n = 0;
        for (i, r) in self.rules.iter().enumerate() {
            if keep(r) {
                new_index[i] = n;
                n += 1;
            }
        }
        let mut i = 0;
        self.rules.retain(|_| {
            i += 1;
            new_index[i - 1] != usize::MAX
        });
        let by_type = (0..=TABLE.len())
            .map(|t| {
                let old = self.program.rules_for(t as u16);
                old.iter().filter(|&&r| new_index[r] != usize::MAX).map(|&r| new_index[r]).collect()
            })
            .collect();
        self.program = Program::build(self.rules.iter().map(|r| &r.filter), by_type);
    }

    /// Indices of the rules that can match event type `etype`.
    pub fn rules_for(&self, etype: u16) -> &[usize] {
        self.program.rules_for(etype)
    }

    /// The rules compiled for evaluation.
    pub fn program(&self) -> &Program {
        &self.program
    }
}

struct Compiler {
    lists: HashMap<String, ListItem>,
    macros: Vec<MacroItem>,
    rules: Vec<RuleItem>,
}

fn diag(pos: &Pos, code: Code, item_type: &str, item_name: &str, message: impl Into<String>) -> Diagnostic {
    Diagnostic {
        pos: pos.clone(),
        code,
        item_type: item_type.to_owned(),
        item_name: item_name.to_owned(),
        message: message.into(),
    }
}

fn append_text(base: &mut Option<Located>, extra: &Located) {
    match base {
        Some(b) => b.text = format!("{} {}", b.text, extra.text),
        None => *base = Some(extra.clone()),
    }
}

impl Compiler {
    /// Applies definitions, appends and overrides in file order.
    fn merge(items: Vec<Item>) -> Result<Self, Vec<Diagnostic>> {
        let mut c = Compiler { lists: HashMap::new(), macros: Vec::new(), rules: Vec::new() };
        let mut errors = Vec::new();
        for item in items {
            match item {
                Item::List(l) => c.merge_list(l, &mut errors),
                Item::Macro(m) => c.merge_macro(m, &mut errors),
                Item::Rule(r) => c.merge_rule(*r, &mut errors),
                Item::EngineVersion | Item::PluginVersions => {}
            }
        }
        if errors.is_empty() {
            Ok(c)
        } else {
            Err(errors)
        }
    }

    fn merge_list(&mut self, l: ListItem, errors: &mut Vec<Diagnostic>) {
        let mode = if l.append { Some(OverrideMode::Append) } else { l.overrides.get("items").copied() };
        match (mode, self.lists.get_mut(&l.name)) {
            (None, _) => {
                self.lists.insert(l.name.clone(), l);
            }
            (Some(OverrideMode::Append), Some(base)) => base.items.extend(l.items),
            (Some(OverrideMode::Replace), Some(base)) => base.items = l.items,
            (Some(_), None) => errors.push(diag(
                &l.pos,
                Code::ErrValidate,
                "list",
                &l.name,
                "List has 'append' key but no list by that name already exists",
            )),
        }
    }

    fn merge_macro(&mut self, m: MacroItem, errors: &mut Vec<Diagnostic>) {
        let mode = if m.append { Some(OverrideMode::Append) } else { m.overrides.get("condition").copied() };
        let existing = self.macros.iter_mut().find(|x| x.name == m.name);
        match (mode, existing) {
            (None, Some(base)) => *base = m,
            (None, None) => self.macros.push(m),
            (Some(OverrideMode::Append), Some(base)) => {
                base.condition.text = format!("{} {}", base.condition.text, m.condition.text)
            }
            (Some(OverrideMode::Replace), Some(base)) => base.condition = m.condition,
            (Some(_), None) => errors.push(diag(
                &m.pos,
                Code::ErrValidate,
                "macro",
                &m.name,
                "Macro has 'append' key but no macro by that name already exists",
            )),
        }
    }

    fn merge_rule(&mut self, r: RuleItem, errors: &mut Vec<Diagnostic>) {
        let existing = self.rules.iter_mut().find(|x| x.name == r.name);
        let err = |msg: &str| diag(&r.pos, Code::ErrValidate, "rule", &r.name, msg);
        if r.append {
            let Some(base) = existing else {
                errors.push(err("Rule has 'append' key but no rule by that name already exists"));
                return;
            };
            if r.condition.is_none() && r.exceptions.is_none() && r.output.is_none() {
                errors.push(err("Appended rule must have exceptions or condition property"));
                return;
            }
            if let Some(c) = &r.condition {
                append_text(&mut base.condition, c);
            }
            if let Some(o) = &r.output {
                append_text(&mut base.output, o);
            }
            if let Some(ex) = r.exceptions {
                if let Err(e) = append_exceptions(base, ex) {
                    errors.push(e);
                }
            }
            if r.enabled.is_some() {
                base.enabled = r.enabled;
            }
            return;
        }
        if !r.overrides.is_empty() {
            let Some(base) = existing else {
                errors.push(err("Rule has 'override' key but no rule by that name already exists"));
                return;
            };
            for (key, mode) in &r.overrides {
                let append = *mode == OverrideMode::Append;
                match key.as_str() {
                    "condition" if append => append_text(&mut base.condition, r.condition.as_ref().expect("checked")),
                    "condition" => base.condition = r.condition.clone(),
                    "output" if append => append_text(&mut base.output, r.output.as_ref().expect("checked")),
                    "output" => base.output = r.output.clone(),
                    "desc" if append => {
                        base.desc = Some(format!(
                            "{} {}",
                            base.desc.clone().unwrap_or_default(),
                            r.desc.clone().unwrap_or_default()
                        ))
                    }
                    "desc" => base.desc = r.desc.clone(),
                    "priority" => base.priority = r.priority.clone(),
                    "enabled" => base.enabled = r.enabled,
                    "tags" if append => {
                        base.tags.get_or_insert_with(Vec::new).extend(r.tags.clone().unwrap_or_default())
                    }
                    "tags" => base.tags = r.tags.clone(),
                    "exceptions" if append => {
                        if let Err(e) = append_exceptions(base, r.exceptions.clone().unwrap_or_default()) {
                            errors.push(e);
                        }
                    }
                    "exceptions" => base.exceptions = r.exceptions.clone(),
                    _ => {}
                }
            }
            return;
        }
        let enable_only = r.condition.is_none() && r.output.is_none() && r.priority.is_none() && r.enabled.is_some();
        match existing {
            Some(base) if enable_only => base.enabled = r.enabled,
            None if enable_only => errors.push(err("Rule has 'enabled' key but no rule by that name already exists")),
            // A full redefinition replaces the earlier rule, keeping its place in the order.
            Some(base) => *base = r,
            None => self.rules.push(r),
        }
    }

    fn compile(self, mut warnings: Vec<Diagnostic>) -> Result<RuleSet, Vec<Diagnostic>> {
        let mut errors = Vec::new();
        let mut used = Usage::default();
        // Every macro must parse and refer only to defined macros, used or not.
        for m in &self.macros {
            match condition::parse(&m.condition.text) {
                Ok(e) => {
                    let mut refs = Vec::new();
                    macro_refs(&e, &mut refs);
                    for r in refs {
                        if self.find_macro(&r).is_none() {
                            errors.push(diag(
                                &m.pos,
                                Code::ErrValidate,
                                "macro",
                                &m.name,
                                format!("Undefined macro '{r}' used in filter."),
                            ));
                        }
                    }
                }
                Err(e) => errors.push(diag(
                    &m.condition.pos,
                    Code::ErrCompileCondition,
                    "macro",
                    &m.name,
                    located(&e, &m.condition.text),
                )),
            }
        }
        let mut rules = Vec::new();
        let mut statuses = Vec::new();
        let mut by_type = vec![Vec::new(); TABLE.len() + 1];
        for r in &self.rules {
            if let Some(src) = r.source.as_deref().filter(|s| *s != "syscall") {
                let why = format!("event source '{src}' is not supported (only syscall)");
                warnings.push(diag(&r.pos, Code::UnsupportedSource, "rule", &r.name, why.clone()));
                statuses.push((r.name.clone(), r.pos.clone(), RuleStatus::Skipped(why)));
                continue;
            }
            match self.compile_rule(r, &mut used) {
                Ok(rule) => {
                    let types = event_types(&rule.filter, true);
                    if event_types(&rule.filter, false).len() == TABLE.len() && r.warn_evttypes != Some(false) {
                        warnings.push(diag(
                            &r.pos,
                            Code::NoEvttype,
                            "rule",
                            &r.name,
                            "Rule matches too many evt.type values. This has a significant performance penalty.",
                        ));
                    }
                    if r.enabled == Some(false) {
                        statuses.push((r.name.clone(), r.pos.clone(), RuleStatus::Disabled));
                        continue;
                    }
                    for t in types {
                        by_type[t as usize].push(rules.len());
                    }
                    statuses.push((r.name.clone(), r.pos.clone(), RuleStatus::Ok));
                    rules.push(rule);
                }
                Err(e) if e.code == Code::UnknownField => {
                    statuses.push((r.name.clone(), r.pos.clone(), RuleStatus::Skipped(e.message.clone())));
                    warnings.push(e);
                }
                Err(e) => errors.push(e),
            }
        }
        // Macros used only by other macros count as used (as in Falco).
        for m in &self.macros {
            if let Ok(e) = condition::parse(&m.condition.text) {
                let mut refs = Vec::new();
                macro_refs(&e, &mut refs);
                used.macros.extend(refs.into_iter().filter(|r| *r != m.name));
            }
        }
        for m in &self.macros {
            if !used.macros.contains(&m.name) {
                warnings.push(diag(
                    &m.pos,
                    Code::UnusedMacro,
                    "macro",
                    &m.name,
                    "Macro not referred to by any other rule/macro",
                ));
            }
        }
        let mut lists: Vec<&ListItem> = self.lists.values().collect();
        lists.sort_by(|a, b| (a.pos.file.as_ref(), a.pos.line).cmp(&(b.pos.file.as_ref(), b.pos.line)));
        for l in lists {
            let referenced_by_list = self.lists.values().any(|o| o.name != l.name && o.items.contains(&l.name));
            if !used.lists.contains(&l.name) && !referenced_by_list {
                warnings.push(diag(
                    &l.pos,
                    Code::UnusedList,
                    "list",
                    &l.name,
                    "List not referred to by any other rule/macro",
                ));
            }
        }
        let program = Program::build(rules.iter().map(|r| &r.filter), by_type);
        if errors.is_empty() {
            Ok(RuleSet { rules, program, statuses, warnings, rule_matching: RuleMatching::First })
        } else {
            errors.extend(warnings);
            Err(errors)
        }
    }

    fn find_macro(&self, name: &str) -> Option<&MacroItem> {
        self.macros.iter().find(|m| m.name == name)
    }

    fn compile_rule(&self, r: &RuleItem, used: &mut Usage) -> Result<CompiledRule, Diagnostic> {
        let missing = |k: &str| {
            diag(&r.pos, Code::ErrYamlValidate, "rule", &r.name, format!("Item has no mapping for key '{k}'"))
        };
        let cond = r.condition.as_ref().ok_or_else(|| missing("condition"))?;
        let output_text = r.output.as_ref().ok_or_else(|| missing("output"))?;
        let prio = r.priority.as_ref().ok_or_else(|| missing("priority"))?;
        let priority = Priority::parse(prio.text.trim()).ok_or_else(|| {
            diag(&prio.pos, Code::ErrValidate, "rule", &r.name, format!("Invalid priority level: {}", prio.text))
        })?;
        let ctx = Ctx {
            item_type: "rule",
            item_name: &r.name,
            pos: &cond.pos,
            skip_unknown: r.skip_if_unknown_filter == Some(true),
        };
        let mut expr =
            condition::parse(&cond.text).map_err(|e| ctx.err(Code::ErrCompileCondition, located(&e, &cond.text)))?;
        if let Some(ex) = &r.exceptions {
            if let Some(not_ex) = self.exceptions_expr(ex)? {
                expr = Expr::And(vec![expr, Expr::Not(Box::new(not_ex))]);
            }
        }
        let filter = self.compile_expr(&expr, &ctx, &mut Vec::new(), used)?;
        let output = OutputFormat::parse(&output_text.text)
            .map_err(|e| diag(&output_text.pos, Code::ErrCompileOutput, "rule", &r.name, e))?;
        let mut not_captured = BTreeSet::new();
        let mut note = |f: &Field| {
            if let Field::NotCaptured(n, _) = f {
                not_captured.insert(*n);
            }
        };
        filter.visit_fields(&mut note);
        output.fields().for_each(&mut note);
        let mut names_to_resolve = BTreeSet::new();
        filter.names_compared(&mut names_to_resolve);
        let mut types = BTreeSet::new();
        filter.event_types_named(&mut types);
        let types_not_recorded = types
            .into_iter()
            .filter_map(|n| {
                use lanner_formats::wire::desc;
                let why = match lanner_formats::syscall::EventType::from_name(&n) {
                    None => "an event type Lanner does not know",
                    Some(t) if desc::traced(t.spec().desc, false) => return None,
                    Some(t) if desc::traced(t.spec().desc, true) => "recorded with --syscalls all",
                    Some(_) => "only in imported .scap captures",
                };
                Some((n, why))
            })
            .collect();
        Ok(CompiledRule {
            name: r.name.clone(),
            priority,
            output,
            tags: r.tags.clone().unwrap_or_default(),
            filter,
            pos: r.pos.clone(),
            not_captured: not_captured.into_iter().collect(),
            names_to_resolve: names_to_resolve.into_iter().collect(),
            types_not_recorded,
        })
    }

    /// `(tuple1) or (tuple2) …` for a rule's exceptions, or `None` when there are no values.
    fn exceptions_expr(&self, items: &[ExceptionItem]) -> Result<Option<Expr>, Diagnostic> {
        let mut alternatives = Vec::new();
        for ex in items {
            let err = |m: &str| diag(&ex.pos, Code::ErrValidate, "exception", &ex.name, m);
            let Some(fields) = &ex.fields else {
                return Err(diag(
                    &ex.pos,
                    Code::ErrYamlValidate,
                    "exception",
                    &ex.name,
                    "Item has no mapping for key 'fields'",
                ));
            };
            match fields {
                ExceptionFields::Single(f) => {
                    check_exception_field(f).map_err(|m| err(&m))?;
                    let comp = match &ex.comps {
                        None => Op::In,
                        Some(ExceptionFields::Single(c)) => parse_comp(c).map_err(|m| err(&m))?,
                        Some(ExceptionFields::List(_)) => {
                            return Err(err("Fields and comps lists must have equal length"))
                        }
                    };
                    if ex.values.is_empty() {
                        continue;
                    }
                    let mut entries = Vec::new();
                    for v in &ex.values {
                        flatten_value(v, &mut entries);
                    }
                    alternatives.push(check_expr(f, comp, Operand::List(entries)));
                }
                ExceptionFields::List(fs) => {
                    for f in fs {
                        check_exception_field(f).map_err(|m| err(&m))?;
                    }
                    let comps: Vec<Op> = match &ex.comps {
                        None => vec![Op::Eq; fs.len()],
                        Some(ExceptionFields::List(cs)) if cs.len() == fs.len() => {
                            cs.iter().map(|c| parse_comp(c)).collect::<Result<_, _>>().map_err(|m| err(&m))?
                        }
                        Some(_) => return Err(err("Fields and comps lists must have equal length")),
                    };
                    for v in &ex.values {
                        let ExceptionValue::List(tuple) = v else {
                            return Err(err("Fields and values lists must have equal length"));
                        };
                        if tuple.len() != fs.len() {
                            return Err(err("Fields and values lists must have equal length"));
                        }
                        let checks = fs
                            .iter()
                            .zip(&comps)
                            .zip(tuple)
                            .map(|((f, &op), val)| {
                                let operand = if op.takes_list() {
                                    let mut entries = Vec::new();
                                    flatten_value(val, &mut entries);
                                    Operand::List(entries)
                                } else {
                                    match val {
                                        ExceptionValue::Scalar(s) => Operand::Value(unquote(s).to_owned()),
                                        ExceptionValue::List(_) => {
                                            let mut entries = Vec::new();
                                            flatten_value(val, &mut entries);
                                            Operand::List(entries)
                                        }
                                    }
                                };
                                check_expr(f, op, operand)
                            })
                            .collect();
                        alternatives.push(Expr::And(checks));
                    }
                }
            }
        }
        Ok(match alternatives.len() {
            0 => None,
            1 => alternatives.pop(),
            _ => Some(Expr::Or(alternatives)),
        })
    }

    fn compile_expr(
        &self,
        e: &Expr,
        ctx: &Ctx<'_>,
        stack: &mut Vec<String>,
        used: &mut Usage,
    ) -> Result<Filter, Diagnostic> {
        Ok(match e {
            Expr::And(v) => {
                Filter::And(v.iter().map(|x| self.compile_expr(x, ctx, stack, used)).collect::<Result<_, _>>()?)
            }
            Expr::Or(v) => {
                Filter::Or(v.iter().map(|x| self.compile_expr(x, ctx, stack, used)).collect::<Result<_, _>>()?)
            }
            Expr::Not(x) => Filter::Not(Box::new(self.compile_expr(x, ctx, stack, used)?)),
            Expr::Macro(name, _) => {
                let m = self
                    .find_macro(name)
                    .ok_or_else(|| ctx.err(Code::ErrValidate, format!("Undefined macro '{name}' used in filter.")))?;
                if stack.contains(name) {
                    return Err(ctx.err(Code::ErrValidate, format!("Macro '{name}' refers to itself")));
                }
                used.macros.insert(name.clone());
                stack.push(name.clone());
                let parsed = condition::parse(&m.condition.text).map_err(|e| {
                    diag(&m.condition.pos, Code::ErrCompileCondition, "macro", &m.name, located(&e, &m.condition.text))
                })?;
                let f = self.compile_expr(&parsed, ctx, stack, used)?;
                stack.pop();
                f
            }
            Expr::Check { field, op, operand, .. } => {
                let f = resolve_field(&field.name).map_err(|m| ctx.unknown_field(m))?;
                let rhs = match operand {
                    Operand::None => Vec::new(),
                    // Falco substitutes a bare list name anywhere in a condition: with one
                    // item, `proc.name=cat_binaries` compares with that item.
                    Operand::Value(v) => match self.lists.get(v) {
                        Some(l) if l.items.len() == 1 && !op.takes_list() => {
                            used.lists.insert(l.name.clone());
                            vec![l.items[0].clone()]
                        }
                        _ => vec![v.clone()],
                    },
                    Operand::List(items) => {
                        let mut out = Vec::new();
                        self.expand_list(items, &mut out, &mut Vec::new(), used)
                            .map_err(|m| ctx.err(Code::ErrCompileCondition, m))?;
                        out
                    }
                    Operand::Field(other) => {
                        let of = resolve_field(&other.name).map_err(|m| ctx.unknown_field(m))?;
                        return Check::with_field(f, field.transformers.clone(), *op, of, other.transformers.clone())
                            .map(Filter::Check)
                            .map_err(|m| ctx.err(Code::ErrCompileCondition, m));
                    }
                };
                Filter::Check(
                    Check::new(f, field.transformers.clone(), *op, rhs)
                        .map_err(|m| ctx.err(Code::ErrCompileCondition, m))?,
                )
            }
        })
    }

    fn expand_list(
        &self,
        items: &[ListEntry],
        out: &mut Vec<String>,
        seen: &mut Vec<String>,
        used: &mut Usage,
    ) -> Result<(), String> {
        for i in items {
            match (i.quoted, self.lists.get(&i.text)) {
                (false, Some(l)) => {
                    if seen.contains(&l.name) {
                        return Err(format!("List '{}' refers to itself", l.name));
                    }
                    used.lists.insert(l.name.clone());
                    seen.push(l.name.clone());
                    let entries: Vec<ListEntry> =
                        l.items.iter().map(|t| ListEntry { text: t.clone(), quoted: false }).collect();
                    self.expand_list(&entries, out, seen, used)?;
                    seen.pop();
                }
                _ => out.push(i.text.clone()),
            }
        }
        Ok(())
    }
}

/// Which macros and lists compiled rules referred to.
#[derive(Default)]
struct Usage {
    macros: HashSet<String>,
    lists: HashSet<String>,
}

/// The item being compiled, for messages.
struct Ctx<'a> {
    item_type: &'static str,
    item_name: &'a str,
    pos: &'a Pos,
    skip_unknown: bool,
}

impl Ctx<'_> {
    fn err(&self, code: Code, message: impl Into<String>) -> Diagnostic {
        diag(self.pos, code, self.item_type, self.item_name, message)
    }

    fn unknown_field(&self, message: String) -> Diagnostic {
        let code = if self.skip_unknown { Code::UnknownField } else { Code::ErrCompileCondition };
        self.err(code, message)
    }
}

/// A syntax error's message with where in the condition it is.
fn located(e: &condition::SyntaxError, text: &str) -> String {
    let start = text.floor_char_boundary(e.at.min(text.len()));
    let rest: String = text[start..].chars().take(30).collect();
    let rest = rest.split_whitespace().collect::<Vec<_>>().join(" ");
    if rest.is_empty() {
        format!("{} (at the end of the condition)", e.message)
    } else {
        format!("{} (at offset {} of the condition: '{rest}')", e.message, e.at)
    }
}

fn resolve_field(name: &str) -> Result<Field, String> {
    Field::parse(name).map_err(|e| {
        if e.starts_with("unknown field") {
            format!("filter_check called with nonexistent field {name}")
        } else {
            e
        }
    })
}

fn check_exception_field(f: &str) -> Result<(), String> {
    match Field::parse(f) {
        Ok(_) => Ok(()),
        Err(e) if e.starts_with("unknown field") => Err(format!("'{f}' is not a supported filter field")),
        Err(e) => Err(e),
    }
}

fn parse_comp(c: &str) -> Result<Op, String> {
    condition::parse(&format!("x.y {c} (z)"))
        .ok()
        .or_else(|| condition::parse(&format!("x.y {c} z")).ok())
        .and_then(|e| match e {
            Expr::Check { op, .. } if op != Op::Exists => Some(op),
            _ => None,
        })
        .ok_or_else(|| format!("'{c}' is not a supported comparison operator"))
}

/// An exception value written with its own quotes (`'"cat /dev/null"'`): Falco pastes values
/// into the condition text, so the quotes delimit a string there.
fn unquote(s: &str) -> &str {
    let t = s.trim();
    for q in ['"', '\''] {
        if let Some(inner) = t.strip_prefix(q).and_then(|x| x.strip_suffix(q)) {
            return inner;
        }
    }
    s
}

fn flatten_value(v: &ExceptionValue, out: &mut Vec<ListEntry>) {
    match v {
        // A scalar may name a list; `(list)` is accepted as well.
        ExceptionValue::Scalar(s) => {
            let t = s.trim();
            let t = t.strip_prefix('(').and_then(|x| x.strip_suffix(')')).unwrap_or(t);
            let inner = unquote(t);
            out.push(ListEntry { text: inner.to_owned(), quoted: inner.len() != t.len() })
        }
        ExceptionValue::List(items) => items.iter().for_each(|i| flatten_value(i, out)),
    }
}

fn check_expr(field: &str, op: Op, operand: Operand) -> Expr {
    Expr::Check { field: FieldRef::plain(field), op, operand, at: 0 }
}

fn macro_refs(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::And(v) | Expr::Or(v) => v.iter().for_each(|x| macro_refs(x, out)),
        Expr::Not(x) => macro_refs(x, out),
        Expr::Macro(n, _) => out.push(n.clone()),
        Expr::Check { .. } => {}
    }
}

/// The event types a filter can match: `and` intersects, `or` unites, checks on other fields
/// allow every type. With `precise`, negations of event-type tests are complemented (used for
/// the index); without, they allow every type, as Falco 0.33 computes them for its
/// "matches too many evt.type values" warning.
fn event_types(f: &Filter, precise: bool) -> BTreeSet<u16> {
    let all: BTreeSet<u16> = TABLE.iter().map(|s| s.event as u16).collect();
    fn go(f: &Filter, all: &BTreeSet<u16>, precise: bool) -> BTreeSet<u16> {
        match f {
            Filter::And(v) => {
                v.iter().fold(all.clone(), |acc, x| acc.intersection(&go(x, all, precise)).copied().collect())
            }
            Filter::Or(v) => {
                v.iter().fold(BTreeSet::new(), |acc, x| acc.union(&go(x, all, precise)).copied().collect())
            }
            Filter::Not(x) => match x.as_ref() {
                Filter::Check(c) if precise && c.event_type_names().is_some() => {
                    all.difference(&go(x, all, precise)).copied().collect()
                }
                _ => all.clone(),
            },
            Filter::Check(c) => match c.event_type_names() {
                Some((op, names)) => {
                    let named: BTreeSet<u16> =
                        names.iter().filter_map(|n| EventType::from_name(n)).map(|t| t as u16).collect();
                    match op {
                        Op::Eq | Op::In => named,
                        Op::Ne if precise => all.difference(&named).copied().collect(),
                        _ => all.clone(),
                    }
                }
                None => all.clone(),
            },
        }
    }
    go(f, &all, precise)
}

fn append_exceptions(base: &mut RuleItem, extra: Vec<ExceptionItem>) -> Result<(), Diagnostic> {
    let list = base.exceptions.get_or_insert_with(Vec::new);
    for ex in extra {
        if let Some(existing) = list.iter_mut().find(|e| e.name == ex.name) {
            existing.values.extend(ex.values);
        } else {
            if ex.fields.is_none() {
                return Err(diag(
                    &ex.pos,
                    Code::ErrValidate,
                    "exception",
                    &ex.name,
                    "Rule exception must have fields property with a list of fields",
                ));
            }
            list.push(ex);
        }
    }
    Ok(())
}
