//! Compiled conditions: a tree of checks over typed values (macros expanded).

use std::borrow::Cow;

use base64::Engine as _;
use regex::Regex;

use super::condition::{Op, Transformer};
use super::fields::{End, EventView, Field, FieldType, FieldValue};

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

impl Filter {
    /// Compiles a bare condition with no macros or lists (`proc.name = cat and fd.name
    /// startswith /etc`); errors name the filter `filter` and the column. To use the macros and
    /// lists of rule files, see [`crate::RuleSet::compile_filter`].
    pub fn parse(condition: &str) -> Result<Filter, Vec<crate::Diagnostic>> {
        crate::RuleSet::compile_filter(&[], "filter", condition)
    }

    /// Calls `f` with every comparison of the filter and whether it counts as written (true) or
    /// negated by an odd number of enclosing `not`s (false).
    fn visit_checks(&self, positive: bool, f: &mut impl FnMut(&Check, bool)) {
        match self {
            Filter::And(v) | Filter::Or(v) => v.iter().for_each(|x| x.visit_checks(positive, f)),
            Filter::Not(x) => x.visit_checks(!positive, f),
            Filter::Check(c) => f(c, positive),
        }
    }

    /// Calls `f` with every field the filter reads.
    pub fn visit_fields(&self, f: &mut impl FnMut(&Field)) {
        self.visit_checks(true, &mut |c, _| {
            f(&c.field);
            if let Values::Field(o, _) = &c.values {
                f(o);
            }
        });
    }

    /// Adds to `out` every host name the filter compares an `fd.*.name` field with.
    pub fn names_compared(&self, out: &mut std::collections::BTreeSet<String>) {
        self.visit_checks(true, &mut |c, _| {
            if matches!(c.field, Field::FdIpName(_)) && matches!(c.op, Op::Eq | Op::Ne | Op::In) {
                match &c.values {
                    Values::Str(v) => out.extend(v.iter().cloned()),
                    Values::Set(v) => out.extend(v.iter().cloned()),
                    _ => {}
                }
            }
        });
    }

    /// Adds to `out` every event type name the filter asks for (`evt.type =` or `in`, or `!=`
    /// under a `not`), as opposed to one it excludes.
    pub fn event_types_named(&self, out: &mut std::collections::BTreeSet<String>) {
        self.visit_checks(true, &mut |c, positive| {
            if let Values::Types(_, names) = &c.values {
                if (c.op == Op::Ne) != positive {
                    out.extend(names.iter().cloned());
                }
            }
        });
    }

    /// Evaluates the filter on one event (the plain tree walk; rule sets evaluate through
    /// their compiled [`Program`](super::Program)).
    pub fn matches(&self, v: &EventView<'_>) -> bool {
        match self {
            Filter::And(fs) => fs.iter().all(|f| f.matches(v)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(v)),
            Filter::Not(f) => !f.matches(v),
            Filter::Check(c) => c.matches(v),
        }
    }
}

/// A compiled field comparison.
#[derive(Debug, Clone)]
pub struct Check {
    field: Field,
    transformers: Vec<Transformer>,
    op: Op,
    values: Values,
}

/// What a check's result depends on, which decides where it may be memoized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dependency {
    /// A plain `evt.type` test: the types of the mask, negated or not.
    Type(u128, bool),
    /// Only the event's process entry (and its ancestors).
    Process,
    /// Only the event's fd path.
    Path,
    /// Anything else.
    Event,
}

#[derive(Debug, Clone)]
enum Values {
    None,
    Str(Vec<String>),
    /// `in` / `intersects` over many strings.
    Set(std::collections::HashSet<String>),
    /// `evt.type` against names: a bitmap of event types, and the names as written.
    Types(u128, Vec<String>),
    Bytes(Vec<u8>),
    Int(Vec<i64>),
    Bool(bool),
    Regex(Box<Regex>),
    /// Networks (`fd.net in ("10.0.0.0/8")`): address and prefix length.
    Nets(Vec<(std::net::IpAddr, u8)>),
    Field(Field, Vec<Transformer>),
}

impl Check {
    /// Compiles `field op values`, typing the values for the field; `Err` explains why not.
    pub fn new(field: Field, transformers: Vec<Transformer>, op: Op, raw: Vec<String>) -> Result<Self, String> {
        let values = if field == Field::EvtType && transformers.is_empty() && matches!(op, Op::Eq | Op::Ne | Op::In) {
            let mask = raw
                .iter()
                .filter_map(|n| lanner_formats::syscall::EventType::from_name(n))
                .fold(0u128, |m, t| m | (1u128 << (t as u16)));
            Values::Types(mask, raw)
        } else {
            typed_values(&field, &transformers, op, raw)?
        };
        Ok(Self { field, transformers, op, values })
    }

    /// Compiles `field op val(other)`.
    pub fn with_field(
        field: Field,
        transformers: Vec<Transformer>,
        op: Op,
        other: Field,
        other_transformers: Vec<Transformer>,
    ) -> Result<Self, String> {
        if op.takes_list() || op == Op::Regex {
            return Err(format!("operator '{}' cannot take val()", op.as_str()));
        }
        Ok(Self { field, transformers, op, values: Values::Field(other, other_transformers) })
    }

    /// For a plain `evt.type` comparison: the operator and the names compared against.
    pub fn event_type_names(&self) -> Option<(Op, Vec<String>)> {
        match (&self.field, &self.values) {
            (Field::EvtType, Values::Types(_, names)) => Some((self.op, names.clone())),
            _ => None,
        }
    }

    /// The field compared.
    pub(super) fn field(&self) -> &Field {
        &self.field
    }

    /// What the result depends on.
    pub(super) fn dependency(&self) -> Dependency {
        match &self.values {
            Values::Types(mask, _) => Dependency::Type(*mask, self.op == Op::Ne),
            Values::Field(..) => Dependency::Event,
            _ if self.field.is_process_only() => Dependency::Process,
            _ if self.field.is_fd_path_only() => Dependency::Path,
            _ => Dependency::Event,
        }
    }

    /// Evaluates the comparison on one event.
    pub(super) fn matches(&self, v: &EventView<'_>) -> bool {
        if let Values::Types(mask, _) = &self.values {
            let t = lanner_formats::syscall::type_bits(v.ev.etype);
            let hit = t < 128 && mask & (1u128 << t) != 0;
            return if self.op == Op::Ne { !hit } else { hit };
        }
        if matches!(
            self.field,
            Field::ProcAnameAny
                | Field::ProcApidAny
                | Field::FdIp(End::Either)
                | Field::FdNet(End::Either)
                | Field::FdPort(End::Either)
        ) {
            return v.get_all(&self.field).into_iter().any(|x| self.compare(transform(x, &self.transformers), v));
        }
        if let Field::FdIpName(end) = self.field {
            return self.matches_name(v, end);
        }
        let val = v.get(&self.field);
        if self.transformers.is_empty() {
            self.compare(val, v)
        } else {
            self.compare(transform(val, &self.transformers), v)
        }
    }

    /// `fd.*.name` as libsinsp compares it: `=` and `in` ask whether a name given resolved to
    /// the socket's address, `!=` whether it did not; other operators test each name that did.
    /// False for an event without an IP socket at that end, whatever the operator.
    fn matches_name(&self, v: &EventView<'_>, end: End) -> bool {
        let Some(names) = v.ip_names(end) else { return false };
        let given = |n: &str| match &self.values {
            Values::Set(set) => set.contains(n),
            Values::Str(vals) => vals.iter().any(|x| x == n),
            _ => false,
        };
        match self.op {
            Op::Eq | Op::In => names.into_iter().any(given),
            Op::Ne => !names.into_iter().any(given),
            Op::Exists => !names.is_empty(),
            _ => names.into_iter().any(|n| self.compare(transform(FieldValue::Str(n.into()), &self.transformers), v)),
        }
    }

    fn compare(&self, val: FieldValue<'_>, v: &EventView<'_>) -> bool {
        if self.op == Op::Exists {
            return val != FieldValue::Missing;
        }
        match (&val, &self.values) {
            (FieldValue::Missing, _) => false,
            (FieldValue::Str(s), Values::Set(set)) => set.contains(s.as_ref()),
            (FieldValue::Str(s), Values::Str(vals)) => str_op(self.op, s, vals),
            (FieldValue::Str(s), Values::Bytes(b)) => bytes_op(self.op, s.as_bytes(), b),
            (FieldValue::Str(s), Values::Regex(re)) => re.is_match(s),
            (FieldValue::Str(s), Values::Nets(nets)) => {
                let hit = s.parse::<std::net::IpAddr>().is_ok_and(|ip| nets.iter().any(|n| in_net(ip, *n)));
                if self.op == Op::Ne {
                    !hit
                } else {
                    hit
                }
            }
            (FieldValue::Int(i), Values::Int(vals)) => int_op(self.op, *i, vals),
            // Fields typed as text that carry numbers for some events (`evt.arg.*`).
            (FieldValue::Int(i), Values::Str(vals)) => match self.op {
                Op::Lt | Op::Le | Op::Gt | Op::Ge => vals[0].parse::<i64>().is_ok_and(|x| int_op(self.op, *i, &[x])),
                _ => str_op(self.op, &i.to_string(), vals),
            },
            (FieldValue::Int(i), Values::Set(set)) => set.contains(&i.to_string()),
            (FieldValue::Bool(b), Values::Bool(x)) => match self.op {
                Op::Eq | Op::In => b == x,
                Op::Ne => b != x,
                _ => false,
            },
            (_, Values::Field(f, t)) => match (&val, transform(v.get(f), t)) {
                (FieldValue::Str(a), FieldValue::Str(b)) => str_op(self.op, a, &[b.into_owned()]),
                (FieldValue::Int(a), FieldValue::Int(b)) => int_op(self.op, *a, &[b]),
                (FieldValue::Bool(a), FieldValue::Bool(b)) => match self.op {
                    Op::Eq => *a == b,
                    Op::Ne => *a != b,
                    _ => false,
                },
                _ => false,
            },
            _ => false,
        }
    }
}

/// Parses `addr/prefix` (or a bare address: a one-host network).
fn parse_net(v: &str) -> Result<(std::net::IpAddr, u8), String> {
    // List items may keep the quotes they were written with (`"\"10.0.0.0/8\""`).
    let v = v.trim_matches(|c| c == '"' || c == '\'');
    let (addr, len) = v.split_once('/').unwrap_or((v, ""));
    let ip: std::net::IpAddr = addr.parse().map_err(|_| format!("'{v}' is not an IP network"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len =
        if len.is_empty() { max } else { len.parse::<u8>().map_err(|_| format!("'{v}' is not an IP network"))? };
    if len > max {
        return Err(format!("'{v}': prefix length {len} is longer than {max}"));
    }
    Ok((ip, len))
}

fn in_net(ip: std::net::IpAddr, (net, len): (std::net::IpAddr, u8)) -> bool {
    use std::net::IpAddr::{V4, V6};
    match (ip, net) {
        (V4(a), V4(n)) => len == 0 || (u32::from(a) ^ u32::from(n)) >> (32 - len as u32) == 0,
        (V6(a), V6(n)) => len == 0 || (u128::from(a) ^ u128::from(n)) >> (128 - len as u32) == 0,
        _ => false,
    }
}

/// Applies transformers (innermost first) to a value.
pub fn transform<'a>(mut v: FieldValue<'a>, ts: &[Transformer]) -> FieldValue<'a> {
    for t in ts {
        v = match (t, v) {
            (_, FieldValue::Missing) => FieldValue::Missing,
            (Transformer::Tolower, FieldValue::Str(s)) => FieldValue::Str(Cow::Owned(s.to_lowercase())),
            (Transformer::Toupper, FieldValue::Str(s)) => FieldValue::Str(Cow::Owned(s.to_uppercase())),
            (Transformer::Basename, FieldValue::Str(s)) => {
                let b = s.rsplit('/').next().unwrap_or("").to_owned();
                FieldValue::Str(Cow::Owned(b))
            }
            (Transformer::B64, FieldValue::Str(s)) => {
                match base64::engine::general_purpose::STANDARD.decode(s.as_bytes()) {
                    Ok(d) => FieldValue::Str(Cow::Owned(String::from_utf8_lossy(&d).into_owned())),
                    Err(_) => FieldValue::Missing,
                }
            }
            (Transformer::Len, FieldValue::Str(s)) => FieldValue::Int(s.len() as i64),
            (_, other) => other,
        };
    }
    v
}

fn int_op(op: Op, i: i64, vals: &[i64]) -> bool {
    match op {
        Op::Eq | Op::In | Op::Intersects => vals.contains(&i),
        Op::Ne => !vals.contains(&i),
        Op::Lt => i < vals[0],
        Op::Le => i <= vals[0],
        Op::Gt => i > vals[0],
        Op::Ge => i >= vals[0],
        _ => false,
    }
}

fn bytes_op(op: Op, s: &[u8], b: &[u8]) -> bool {
    match op {
        Op::Bcontains => s.windows(b.len().max(1)).any(|w| w == b) || b.is_empty(),
        Op::Bstartswith => s.starts_with(b),
        _ => false,
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
        Op::Startswith => s.starts_with(vals[0].as_str()),
        Op::Endswith => s.ends_with(vals[0].as_str()),
        Op::Pmatch => vals.iter().any(|p| path_prefix(p, s)),
        Op::Glob => glob_match(vals[0].as_bytes(), s.as_bytes()),
        Op::Iglob => glob_match(vals[0].to_lowercase().as_bytes(), s.to_lowercase().as_bytes()),
        Op::Bcontains | Op::Bstartswith | Op::Regex | Op::Exists => false,
    }
}

/// `pmatch`: `s` is `p` or lies below directory `p`.
fn path_prefix(p: &str, s: &str) -> bool {
    let p = p.strip_suffix('/').unwrap_or(p);
    s == p || (s.starts_with(p) && s.as_bytes().get(p.len()) == Some(&b'/'))
}

/// Shell-style glob (`*`, `?`, `[...]`), as libsinsp's `glob` operator (fnmatch semantics).
pub fn glob_match(p: &[u8], s: &[u8]) -> bool {
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

fn typed_values(f: &Field, transformers: &[Transformer], op: Op, raw: Vec<String>) -> Result<Values, String> {
    if op == Op::Exists {
        return Ok(Values::None);
    }
    if raw.is_empty() && !op.takes_list() {
        return Err(format!("operator '{}' needs a value", op.as_str()));
    }
    if op == Op::Regex {
        let re = Regex::new(&raw[0]).map_err(|e| format!("invalid regex '{}': {e}", raw[0]))?;
        return Ok(Values::Regex(Box::new(re)));
    }
    if matches!(op, Op::Bcontains | Op::Bstartswith) {
        let hex = raw[0].as_bytes();
        if !hex.len().is_multiple_of(2) || !hex.iter().all(u8::is_ascii_hexdigit) {
            return Err(format!("'{}' is not a hex byte string (operator '{}')", raw[0], op.as_str()));
        }
        let bytes = hex
            .chunks(2)
            .map(|c| u8::from_str_radix(std::str::from_utf8(c).expect("ascii"), 16).expect("hex digits"))
            .collect();
        return Ok(Values::Bytes(bytes));
    }
    if matches!(f, Field::FdNet(_)) && transformers.is_empty() {
        if !matches!(op, Op::Eq | Op::Ne | Op::In) {
            return Err(format!("operator '{}' cannot be used with a network field", op.as_str()));
        }
        return raw.iter().map(|v| parse_net(v)).collect::<Result<Vec<_>, _>>().map(Values::Nets);
    }
    match transformed_type(f, transformers) {
        // Unknown evt.type names are accepted, as Falco accepts every syscall name; they simply
        // never match until capture records that syscall.
        FieldType::Str if matches!(op, Op::In | Op::Intersects) && raw.len() > 4 => {
            Ok(Values::Set(raw.into_iter().collect()))
        }
        FieldType::Str => Ok(Values::Str(raw)),
        FieldType::Int => {
            if !matches!(op, Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::In | Op::Intersects) {
                return Err(format!("operator '{}' cannot be used with a numeric field", op.as_str()));
            }
            raw.iter()
                .map(|v| v.parse::<i64>().map_err(|_| format!("'{v}' is not a number")))
                .collect::<Result<Vec<_>, _>>()
                .map(Values::Int)
        }
        FieldType::Bool => match (op, raw.first().map(String::as_str)) {
            (Op::Eq | Op::Ne | Op::In, Some("true")) => Ok(Values::Bool(true)),
            (Op::Eq | Op::Ne | Op::In, Some("false")) => Ok(Values::Bool(false)),
            (Op::Eq | Op::Ne | Op::In, Some(v)) => Err(format!("'{v}' is not true or false")),
            (op, _) => Err(format!("operator '{}' cannot be used with a boolean field", op.as_str())),
        },
    }
}

/// Field type of `f` after `transformers`.
pub(crate) fn transformed_type(f: &Field, transformers: &[Transformer]) -> FieldType {
    if transformers.last() == Some(&Transformer::Len) {
        FieldType::Int
    } else {
        f.ftype()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_filters_parse_and_report_errors_with_their_place() {
        let f = Filter::parse("proc.name = cat and fd.name startswith /etc").unwrap();
        let mut fields = Vec::new();
        f.visit_fields(&mut |x| fields.push(x.clone()));
        assert_eq!(fields, [Field::parse("proc.name").unwrap(), Field::parse("fd.name").unwrap()]);
        let e = Filter::parse("proc.name = cat and (").unwrap_err();
        assert!(e[0].to_string().contains("filter"), "{}", e[0]);
        let e = Filter::parse("no.such.field = 1").unwrap_err();
        assert!(e[0].to_string().contains("no.such.field"), "{}", e[0]);
    }

    #[test]
    fn glob_and_pmatch() {
        assert!(glob_match(b"/var/*/html/*.PHP", b"/var/www/html/index.PHP"));
        assert!(glob_match(b"/tmp/[a-c]?", b"/tmp/bx"));
        assert!(!glob_match(b"/tmp/[!a-c]?", b"/tmp/bx"));
        assert!(path_prefix("/var/www", "/var/www/x"));
        assert!(path_prefix("/var/www/", "/var/www"));
        assert!(!path_prefix("/var/ww", "/var/www"));
    }

    #[test]
    fn transformers_apply_innermost_first() {
        let v = FieldValue::Str(Cow::Borrowed("/usr/bin/BASH"));
        assert_eq!(
            transform(v.clone(), &[Transformer::Basename, Transformer::Tolower]),
            FieldValue::Str(Cow::Owned("bash".into()))
        );
        assert_eq!(transform(v, &[Transformer::Len]), FieldValue::Int(13));
        assert_eq!(
            transform(FieldValue::Str(Cow::Borrowed("aGVsbG8=")), &[Transformer::B64]),
            FieldValue::Str(Cow::Owned("hello".into()))
        );
    }
}
