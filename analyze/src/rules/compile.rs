//! Turns loaded items into a [`RuleSet`]: appends applied, macros and lists expanded, fields
//! resolved, values typed, rules indexed by the event types they can match.

use std::collections::{BTreeSet, HashMap};

use lanner_formats::syscall::{EventType, TABLE};
use regex::Regex;

use super::condition::{self, Expr, ListEntry, Op, Operand};
use super::fields::{EventView, Field, FieldType, FieldValue};
use super::loader::{self, Item, ListItem, Located, MacroItem, Pos, RuleError, RuleItem, Source};
use super::output::OutputFormat;

/// Falco priorities, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// `Emergency`
    Emergency,
    /// `Alert`
    Alert,
    /// `Critical`
    Critical,
    /// `Error`
    Error,
    /// `Warning`
    Warning,
    /// `Notice`
    Notice,
    /// `Informational` (also `Info`)
    Informational,
    /// `Debug`
    Debug,
}

impl Priority {
    /// Parses a priority name, case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "emergency" => Self::Emergency,
            "alert" => Self::Alert,
            "critical" => Self::Critical,
            "error" => Self::Error,
            "warning" => Self::Warning,
            "notice" => Self::Notice,
            "informational" | "info" => Self::Informational,
            "debug" => Self::Debug,
            _ => return None,
        })
    }

    /// The name Falco prints.
    pub fn name(self) -> &'static str {
        match self {
            Self::Emergency => "Emergency",
            Self::Alert => "Alert",
            Self::Critical => "Critical",
            Self::Error => "Error",
            Self::Warning => "Warning",
            Self::Notice => "Notice",
            Self::Informational => "Informational",
            Self::Debug => "Debug",
        }
    }
}

/// A compiled condition.
#[derive(Debug, Clone)]
pub enum Filter {
    /// All must hold.
    And(Vec<Filter>),
    /// Any must hold.
    Or(Vec<Filter>),
    /// Negation.
    Not(Box<Filter>),
    /// One field comparison.
    Check(Check),
}

/// A compiled field comparison with typed values.
#[derive(Debug, Clone)]
pub struct Check {
    field: Field,
    op: Op,
    values: Values,
}

#[derive(Debug, Clone)]
enum Values {
    None,
    Str(Vec<String>),
    Int(Vec<i64>),
    Bool(bool),
    Regex(Regex),
}

impl Filter {
    /// Evaluates the filter on one event.
    pub fn matches(&self, v: &EventView<'_>) -> bool {
        match self {
            Filter::And(fs) => fs.iter().all(|f| f.matches(v)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(v)),
            Filter::Not(f) => !f.matches(v),
            Filter::Check(c) => c.matches(v),
        }
    }
}

impl Check {
    fn matches(&self, v: &EventView<'_>) -> bool {
        let val = v.get(&self.field);
        if self.op == Op::Exists {
            return val != FieldValue::Missing;
        }
        match (&val, &self.values) {
            (FieldValue::Missing, _) => false,
            (FieldValue::Str(s), Values::Str(vals)) => str_op(self.op, s, vals),
            (FieldValue::Str(s), Values::Regex(re)) => re.is_match(s),
            (FieldValue::Int(i), Values::Int(vals)) => match self.op {
                Op::Eq | Op::In | Op::Intersects => vals.contains(i),
                Op::Ne => !vals.contains(i),
                Op::Lt => *i < vals[0],
                Op::Le => *i <= vals[0],
                Op::Gt => *i > vals[0],
                Op::Ge => *i >= vals[0],
                _ => false,
            },
            (FieldValue::Bool(b), Values::Bool(x)) => match self.op {
                Op::Eq | Op::In => b == x,
                Op::Ne => b != x,
                _ => false,
            },
            _ => false,
        }
    }
}

fn str_op(op: Op, s: &str, vals: &[String]) -> bool {
    match op {
        Op::Eq | Op::In | Op::Intersects => vals.iter().any(|v| v == s),
        Op::Ne => vals[0] != s,
        Op::Lt => s < vals[0].as_str(),
        Op::Le => s <= vals[0].as_str(),
        Op::Gt => s > vals[0].as_str(),
        Op::Ge => s >= vals[0].as_str(),
        Op::Contains => s.contains(vals[0].as_str()),
        Op::Icontains => s.to_lowercase().contains(&vals[0].to_lowercase()),
        Op::Startswith | Op::Bstartswith => s.starts_with(vals[0].as_str()),
        Op::Endswith => s.ends_with(vals[0].as_str()),
        Op::Pmatch => vals.iter().any(|p| {
            s == p || (s.starts_with(p.as_str()) && (p.ends_with('/') || s.as_bytes().get(p.len()) == Some(&b'/')))
        }),
        Op::Glob => glob_match(vals[0].as_bytes(), s.as_bytes()),
        Op::Iglob => glob_match(vals[0].to_lowercase().as_bytes(), s.to_lowercase().as_bytes()),
        Op::Bcontains => s.contains(vals[0].as_str()),
        Op::Regex | Op::Exists => false,
    }
}

/// Shell-style glob (`*`, `?`, `[...]`) as libsinsp's `glob` operator uses (fnmatch semantics).
fn glob_match(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let (mut star_p, mut star_s) = (usize::MAX, 0);
    while si < s.len() {
        if pi < p.len() {
            match p[pi] {
                b'*' => {
                    star_p = pi;
                    star_s = si;
                    pi += 1;
                    continue;
                }
                b'?' => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class_match(&p[pi..], s[si]) {
                        if matched {
                            pi += next;
                            si += 1;
                            continue;
                        }
                    } else if p[pi] == s[si] {
                        pi += 1;
                        si += 1;
                        continue;
                    }
                }
                c if c == s[si] => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                _ => {}
            }
        }
        if star_p == usize::MAX {
            return false;
        }
        pi = star_p + 1;
        star_s += 1;
        si = star_s;
    }
    p[pi..].iter().all(|&c| c == b'*')
}

fn class_match(p: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(1), Some(b'!') | Some(b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() && (p[i] != b']' || first) {
        first = false;
        if i + 2 < p.len() && p[i + 1] == b'-' && p[i + 2] != b']' {
            matched |= p[i] <= c && c <= p[i + 2];
            i += 3;
        } else {
            matched |= p[i] == c;
            i += 1;
        }
    }
    if i >= p.len() {
        return None;
    }
    Some((matched != negate, i + 1))
}

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
    /// The condition.
    pub filter: Filter,
    /// Where the rule is defined.
    pub pos: Pos,
}

/// Every enabled rule, compiled, with an index by event type.
#[derive(Debug, Clone)]
pub struct RuleSet {
    /// The rules, in definition order.
    pub rules: Vec<CompiledRule>,
    by_type: Vec<Vec<usize>>,
    /// Non-fatal findings (rules skipped as unsupported, rules matching every event type…).
    pub warnings: Vec<String>,
}

impl RuleSet {
    /// Loads and compiles rule files in order; `Err` lists every error with file and line.
    pub fn load(sources: &[Source]) -> Result<Self, Vec<RuleError>> {
        let mut items = Vec::new();
        let mut errors = Vec::new();
        for s in sources {
            match loader::load(s) {
                Ok(v) => items.extend(v),
                Err(e) => errors.extend(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Compiler::new(items)?.compile()
    }

    /// Loads rules from one YAML text named `name` (for messages).
    pub fn from_yaml(name: &str, text: &str) -> Result<Self, Vec<RuleError>> {
        Self::load(&[Source { name: name.to_owned(), text: text.to_owned() }])
    }

    /// Bit `n` set when some rule can match event type `n` (for index pruning).
    pub fn event_type_mask(&self) -> u128 {
        self.by_type.iter().enumerate().filter(|(t, v)| *t < 128 && !v.is_empty()).fold(0, |m, (t, _)| m | (1u128 << t))
    }

    /// Indices of the rules that can match event type `etype`.
    pub fn rules_for(&self, etype: u16) -> &[usize] {
        self.by_type.get(etype as usize).map_or(&[], |v| v.as_slice())
    }
}

struct Compiler {
    lists: HashMap<String, ListItem>,
    macros: HashMap<String, MacroItem>,
    rules: Vec<RuleItem>,
}

fn err(pos: &Pos, message: impl Into<String>) -> RuleError {
    RuleError { pos: pos.clone(), message: message.into() }
}

fn append_text(base: &mut Located, extra: &Located) {
    base.text = format!("{} {}", base.text, extra.text);
}

impl Compiler {
    fn new(items: Vec<Item>) -> Result<Self, Vec<RuleError>> {
        let mut c = Compiler { lists: HashMap::new(), macros: HashMap::new(), rules: Vec::new() };
        let mut errors = Vec::new();
        for item in items {
            match item {
                Item::List(l) => match (l.append, c.lists.get_mut(&l.name)) {
                    (true, Some(base)) => base.items.extend(l.items),
                    (true, None) => errors.push(err(
                        &l.pos,
                        format!("list '{}' has 'append: true' but no list by that name was defined before", l.name),
                    )),
                    (false, _) => {
                        c.lists.insert(l.name.clone(), l);
                    }
                },
                Item::Macro(m) => match (m.append, c.macros.get_mut(&m.name)) {
                    (true, Some(base)) => append_text(&mut base.condition, &m.condition),
                    (true, None) => errors.push(err(
                        &m.pos,
                        format!("macro '{}' has 'append: true' but no macro by that name was defined before", m.name),
                    )),
                    (false, _) => {
                        c.macros.insert(m.name.clone(), m);
                    }
                },
                Item::Rule(r) => {
                    let existing = c.rules.iter_mut().find(|x| x.name == r.name);
                    match (r.append, existing) {
                        (true, Some(base)) => {
                            if let (Some(b), Some(extra)) = (base.condition.as_mut(), r.condition.as_ref()) {
                                append_text(b, extra);
                            }
                            if let Some(o) = &r.output {
                                base.output = Some(format!("{} {o}", base.output.clone().unwrap_or_default()));
                            }
                            if r.enabled.is_some() {
                                base.enabled = r.enabled;
                            }
                        }
                        (true, None) => errors.push(err(
                            &r.pos,
                            format!("rule '{}' has 'append: true' but no rule by that name was defined before", r.name),
                        )),
                        (false, Some(base)) => {
                            // Redefinition replaces the earlier rule, keeping its position in order.
                            *base = r;
                        }
                        (false, None) => c.rules.push(r),
                    }
                }
                Item::EngineVersion(_) => {}
            }
        }
        if errors.is_empty() {
            Ok(c)
        } else {
            Err(errors)
        }
    }

    fn compile(self) -> Result<RuleSet, Vec<RuleError>> {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let mut by_type = vec![Vec::new(); TABLE.len() + 1];
        for r in &self.rules {
            if r.enabled == Some(false) {
                continue;
            }
            if let Some((key, pos)) = r.unsupported.first() {
                warnings.push(format!("{pos}: rule '{}' skipped: '{key}' is not supported yet", r.name));
                continue;
            }
            if r.source.as_deref().is_some_and(|s| s != "syscall") {
                warnings.push(format!(
                    "{}: rule '{}' skipped: source '{}' is not supported (only syscall)",
                    r.pos,
                    r.name,
                    r.source.as_deref().unwrap_or("")
                ));
                continue;
            }
            match self.compile_rule(r) {
                Ok((rule, types)) => {
                    if types.len() == TABLE.len() {
                        warnings.push(format!(
                            "{}: rule '{}' matches too many evt.type values; this has a significant performance penalty",
                            r.pos, r.name
                        ));
                    }
                    for t in types {
                        by_type[t as usize].push(rules.len());
                    }
                    rules.push(rule);
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(RuleSet { rules, by_type, warnings })
        } else {
            Err(errors)
        }
    }

    fn compile_rule(&self, r: &RuleItem) -> Result<(CompiledRule, BTreeSet<u16>), RuleError> {
        let cond = r.condition.as_ref().ok_or_else(|| err(&r.pos, format!("rule '{}' has no condition", r.name)))?;
        let output = r.output.as_deref().ok_or_else(|| err(&r.pos, format!("rule '{}' has no output", r.name)))?;
        let prio = r.priority.as_ref().ok_or_else(|| err(&r.pos, format!("rule '{}' has no priority", r.name)))?;
        let priority = Priority::parse(prio.text.trim())
            .ok_or_else(|| err(&prio.pos, format!("rule '{}': invalid priority '{}'", r.name, prio.text)))?;
        let output =
            OutputFormat::parse(output).map_err(|e| err(&r.pos, format!("rule '{}': invalid output: {e}", r.name)))?;
        let mut stack = Vec::new();
        let filter = self.compile_condition(cond, &format!("rule '{}'", r.name), &mut stack)?;
        let types = event_types(&filter);
        Ok((
            CompiledRule { name: r.name.clone(), priority, output, tags: r.tags.clone(), filter, pos: r.pos.clone() },
            types,
        ))
    }

    fn compile_condition(&self, cond: &Located, owner: &str, stack: &mut Vec<String>) -> Result<Filter, RuleError> {
        let expr = condition::parse(&cond.text).map_err(|e| {
            err(
                &cond.pos,
                format!("{owner}: invalid condition at offset {} ({}): {}", e.at, excerpt(&cond.text, e.at), e.message),
            )
        })?;
        self.compile_expr(&expr, cond, owner, stack)
    }

    fn compile_expr(
        &self,
        e: &Expr,
        cond: &Located,
        owner: &str,
        stack: &mut Vec<String>,
    ) -> Result<Filter, RuleError> {
        let at_err = |at: usize, msg: String| {
            err(&cond.pos, format!("{owner}: {msg} (condition offset {at}: {})", excerpt(&cond.text, at)))
        };
        Ok(match e {
            Expr::And(v) => {
                Filter::And(v.iter().map(|x| self.compile_expr(x, cond, owner, stack)).collect::<Result<_, _>>()?)
            }
            Expr::Or(v) => {
                Filter::Or(v.iter().map(|x| self.compile_expr(x, cond, owner, stack)).collect::<Result<_, _>>()?)
            }
            Expr::Not(x) => Filter::Not(Box::new(self.compile_expr(x, cond, owner, stack)?)),
            Expr::Macro(name, at) => {
                let m = self.macros.get(name).ok_or_else(|| at_err(*at, format!("undefined macro '{name}'")))?;
                if stack.contains(name) {
                    return Err(at_err(*at, format!("macro '{name}' refers to itself")));
                }
                stack.push(name.clone());
                let f = self.compile_condition(&m.condition, &format!("macro '{name}'"), stack)?;
                stack.pop();
                f
            }
            Expr::Check { field, op, operand, at } => {
                let f = Field::parse(field).map_err(|m| at_err(*at, m))?;
                let raw: Vec<String> = match operand {
                    Operand::None => Vec::new(),
                    Operand::Value(v) => vec![v.clone()],
                    Operand::List(items) => {
                        let mut out = Vec::new();
                        self.expand_list(items, &mut out, &mut Vec::new()).map_err(|m| at_err(*at, m))?;
                        out
                    }
                };
                let values = typed_values(&f, *op, raw).map_err(|m| at_err(*at, m))?;
                Filter::Check(Check { field: f, op: *op, values })
            }
        })
    }

    fn expand_list(&self, items: &[ListEntry], out: &mut Vec<String>, seen: &mut Vec<String>) -> Result<(), String> {
        for i in items {
            match (i.quoted, self.lists.get(&i.text)) {
                (false, Some(l)) => {
                    if seen.contains(&l.name) {
                        return Err(format!("list '{}' refers to itself", l.name));
                    }
                    seen.push(l.name.clone());
                    let entries: Vec<ListEntry> =
                        l.items.iter().map(|t| ListEntry { text: t.clone(), quoted: false }).collect();
                    self.expand_list(&entries, out, seen)?;
                    seen.pop();
                }
                _ => out.push(i.text.clone()),
            }
        }
        Ok(())
    }
}

/// Up to 30 characters of `text` from byte `at`, quoted, for error messages.
fn excerpt(text: &str, at: usize) -> String {
    let start = text.floor_char_boundary(at.min(text.len()));
    let rest: String = text[start..].chars().take(30).collect();
    let rest = rest.split_whitespace().collect::<Vec<_>>().join(" ");
    if rest.is_empty() {
        "at the end of the condition".to_owned()
    } else {
        format!("'{rest}'")
    }
}

fn typed_values(f: &Field, op: Op, raw: Vec<String>) -> Result<Values, String> {
    if op == Op::Exists {
        return Ok(Values::None);
    }
    if raw.is_empty() && !op.takes_list() {
        return Err(format!("operator '{}' needs a value", op.as_str()));
    }
    if op == Op::Regex {
        let re = Regex::new(&raw[0]).map_err(|e| format!("invalid regex '{}': {e}", raw[0]))?;
        return Ok(Values::Regex(re));
    }
    match f.ftype() {
        // Unknown evt.type names are accepted, as Falco accepts every syscall name; they simply
        // never match until capture records that syscall.
        FieldType::Str => Ok(Values::Str(raw)),
        FieldType::Int => {
            if matches!(
                op,
                Op::Contains
                    | Op::Icontains
                    | Op::Startswith
                    | Op::Endswith
                    | Op::Glob
                    | Op::Iglob
                    | Op::Pmatch
                    | Op::Bcontains
                    | Op::Bstartswith
            ) {
                return Err(format!("operator '{}' cannot be used with numeric field", op.as_str()));
            }
            raw.iter()
                .map(|v| v.parse::<i64>().map_err(|_| format!("'{v}' is not a number")))
                .collect::<Result<Vec<_>, _>>()
                .map(Values::Int)
        }
        FieldType::Bool => match (op, raw[0].as_str()) {
            (Op::Eq | Op::Ne | Op::In, "true") => Ok(Values::Bool(true)),
            (Op::Eq | Op::Ne | Op::In, "false") => Ok(Values::Bool(false)),
            (Op::Eq | Op::Ne | Op::In, v) => Err(format!("'{v}' is not true or false")),
            (op, _) => Err(format!("operator '{}' cannot be used with a boolean field", op.as_str())),
        },
    }
}

/// The event types a filter can match (libsinsp's approach: `and` intersects, `or` unites,
/// `not` complements; checks on other fields allow every type).
fn event_types(f: &Filter) -> BTreeSet<u16> {
    let all: BTreeSet<u16> = TABLE.iter().map(|s| s.event as u16).collect();
    fn go(f: &Filter, all: &BTreeSet<u16>) -> BTreeSet<u16> {
        match f {
            Filter::And(v) => v.iter().fold(all.clone(), |acc, x| acc.intersection(&go(x, all)).copied().collect()),
            Filter::Or(v) => v.iter().fold(BTreeSet::new(), |acc, x| acc.union(&go(x, all)).copied().collect()),
            Filter::Not(x) => {
                // Only a pure event-type test can be complemented; anything else may match any type.
                match x.as_ref() {
                    Filter::Check(c) if c.field == Field::EvtType => all.difference(&go(x, all)).copied().collect(),
                    _ => all.clone(),
                }
            }
            Filter::Check(c) if c.field == Field::EvtType => {
                let Values::Str(names) = &c.values else { return all.clone() };
                let named: BTreeSet<u16> =
                    names.iter().filter_map(|n| EventType::from_name(n)).map(|t| t as u16).collect();
                match c.op {
                    Op::Eq | Op::In => named,
                    Op::Ne => all.difference(&named).copied().collect(),
                    _ => all.clone(),
                }
            }
            Filter::Check(_) => all.clone(),
        }
    }
    go(f, &all)
}
