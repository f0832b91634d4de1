//! Reads Falco rule files (YAML) into items that remember their file, line and column, and
//! reports malformed content the way Falco does (same codes and messages).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};
use marked_yaml::{LoaderOptions, Node, Span};

/// A rules file: its name (for messages) and its text.
#[derive(Debug, Clone)]
pub struct Source {
    /// File name as given by the user (or `<default rules>`).
    pub name: String,
    /// The YAML text.
    pub text: String,
}

/// A position in a rules file (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pos {
    /// File name.
    pub file: Arc<str>,
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// Falco's load result codes (errors `LOAD_ERR_*`, warnings the others).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Code {
    /// The text is not valid YAML.
    ErrYamlParse,
    /// The YAML does not have the shape of a rules file.
    ErrYamlValidate,
    /// Items are inconsistent (dangling append, undefined macro, bad exception…).
    ErrValidate,
    /// A condition does not compile.
    ErrCompileCondition,
    /// An output does not compile.
    ErrCompileOutput,
    /// A rule matches every event type.
    NoEvttype,
    /// A macro is never used.
    UnusedMacro,
    /// A list is never used.
    UnusedList,
    /// A rule uses an unknown field and asked to be skipped (`skip-if-unknown-filter`).
    UnknownField,
    /// A key Falco ignores or Lanner does not implement.
    UnknownKey,
    /// A rule for an event source other than `syscall`.
    UnsupportedSource,
}

impl Code {
    /// The name Falco uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::ErrYamlParse => "LOAD_ERR_YAML_PARSE",
            Code::ErrYamlValidate => "LOAD_ERR_YAML_VALIDATE",
            Code::ErrValidate => "LOAD_ERR_VALIDATE",
            Code::ErrCompileCondition => "LOAD_ERR_COMPILE_CONDITION",
            Code::ErrCompileOutput => "LOAD_ERR_COMPILE_OUTPUT",
            Code::NoEvttype => "LOAD_NO_EVTTYPE",
            Code::UnusedMacro => "LOAD_UNUSED_MACRO",
            Code::UnusedList => "LOAD_UNUSED_LIST",
            Code::UnknownField => "LOAD_UNKNOWN_FIELD",
            Code::UnknownKey => "LOAD_UNKNOWN_KEY",
            Code::UnsupportedSource => "LOAD_UNSUPPORTED_SOURCE",
        }
    }

    /// True for error codes (the rules cannot be used).
    pub fn is_error(self) -> bool {
        self <= Code::ErrCompileOutput
    }
}

/// An error or warning about a rules file, with where it is and which item it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where.
    pub pos: Pos,
    /// Falco's code.
    pub code: Code,
    /// `rule`, `macro`, `list`, `rules content`, `required_engine_version`…
    pub item_type: String,
    /// The item's name (may be empty).
    pub item_name: String,
    /// What is wrong, in Falco's words where Falco has words for it.
    pub message: String,
}

/// A diagnostic that prevents loading.
pub type RuleError = Diagnostic;

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ", self.pos, self.code.as_str())?;
        if self.item_name.is_empty() {
            write!(f, "({})", self.item_type)?;
        } else {
            write!(f, "({} '{}')", self.item_type, self.item_name)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for Diagnostic {}

/// A string value and where it starts.
#[derive(Debug, Clone)]
pub struct Located {
    /// The text.
    pub text: String,
    /// Its position.
    pub pos: Pos,
}

/// Whether `override` appends to or replaces a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverrideMode {
    /// Add to the earlier definition.
    Append,
    /// Replace the earlier definition.
    Replace,
}

/// One `exceptions` entry.
#[derive(Debug, Clone)]
pub struct ExceptionItem {
    /// `name`.
    pub name: String,
    /// `fields`: one field (values are then plain values) or several (values are tuples).
    pub fields: Option<ExceptionFields>,
    /// `comps`, in the same shape as `fields`.
    pub comps: Option<ExceptionFields>,
    /// `values`.
    pub values: Vec<ExceptionValue>,
    /// Where the entry starts.
    pub pos: Pos,
}

/// `fields` / `comps` of an exception: a single string or a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExceptionFields {
    /// `fields: proc.name`
    Single(String),
    /// `fields: [proc.name, fd.name]`
    List(Vec<String>),
}

/// One entry of an exception's `values`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExceptionValue {
    /// A scalar (a value, or a list name).
    Scalar(String),
    /// A sequence: a tuple (multi-field) or a list of values.
    List(Vec<ExceptionValue>),
}

/// A `rule` item.
#[derive(Debug, Clone)]
pub struct RuleItem {
    /// Rule name.
    pub name: String,
    /// Where the item starts.
    pub pos: Pos,
    /// `condition`.
    pub condition: Option<Located>,
    /// `output`.
    pub output: Option<Located>,
    /// `desc`.
    pub desc: Option<String>,
    /// `priority`.
    pub priority: Option<Located>,
    /// `tags`.
    pub tags: Option<Vec<String>>,
    /// `enabled`.
    pub enabled: Option<bool>,
    /// Legacy `append: true`.
    pub append: bool,
    /// `override`: key → mode.
    pub overrides: BTreeMap<String, OverrideMode>,
    /// `source` (defaults to `syscall`).
    pub source: Option<String>,
    /// `exceptions`.
    pub exceptions: Option<Vec<ExceptionItem>>,
    /// `skip-if-unknown-filter`.
    pub skip_if_unknown_filter: Option<bool>,
    /// `warn_evttypes`.
    pub warn_evttypes: Option<bool>,
}

/// A `macro` item.
#[derive(Debug, Clone)]
pub struct MacroItem {
    /// Macro name.
    pub name: String,
    /// Where the item starts.
    pub pos: Pos,
    /// `condition`.
    pub condition: Located,
    /// Legacy `append: true`.
    pub append: bool,
    /// `override`: key → mode.
    pub overrides: BTreeMap<String, OverrideMode>,
}

/// A `list` item.
#[derive(Debug, Clone)]
pub struct ListItem {
    /// List name.
    pub name: String,
    /// Where the item starts.
    pub pos: Pos,
    /// The items (may name other lists).
    pub items: Vec<String>,
    /// Legacy `append: true`.
    pub append: bool,
    /// `override`: key → mode.
    pub overrides: BTreeMap<String, OverrideMode>,
}

/// One top-level entry of a rules file.
#[derive(Debug, Clone)]
pub enum Item {
    /// A rule.
    Rule(Box<RuleItem>),
    /// A macro.
    Macro(MacroItem),
    /// A list.
    List(ListItem),
    /// `required_engine_version`, already checked.
    EngineVersion,
    /// `required_plugin_versions` (plugins are not supported: their rules are reported).
    PluginVersions,
}

/// The engine version Lanner's rule language corresponds to (Falco's numbering).
pub const ENGINE_VERSION: (u64, u64, u64) = (0, 57, 0);

struct Ctx {
    file: Arc<str>,
    line_offset: usize,
    warnings: Vec<Diagnostic>,
}

impl Ctx {
    fn pos(&self, span: &Span) -> Pos {
        let (line, col) = span.start().map_or((0, 0), |m| (m.line(), m.column()));
        Pos { file: Arc::clone(&self.file), line: line + self.line_offset, col }
    }

    fn diag(
        &self,
        span: &Span,
        code: Code,
        item_type: &str,
        item_name: &str,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            pos: self.pos(span),
            code,
            item_type: item_type.to_owned(),
            item_name: item_name.to_owned(),
            message: message.into(),
        }
    }
}

/// Reads item fields with Falco's validation messages.
struct ItemReader<'a> {
    ctx: &'a Ctx,
    map: &'a MarkedMappingNode,
    item_type: &'static str,
    name: String,
}

impl ItemReader<'_> {
    fn err(&self, span: &Span, code: Code, message: impl Into<String>) -> Diagnostic {
        self.ctx.diag(span, code, self.item_type, &self.name, message)
    }

    fn scalar(&self, key: &str) -> Result<Option<&MarkedScalarNode>, Diagnostic> {
        match self.map.get_node(key) {
            None => Ok(None),
            Some(Node::Scalar(s)) => Ok(Some(s)),
            Some(n) => {
                Err(self.err(n.span(), Code::ErrYamlValidate, format!("Value for key '{key}' must be a string")))
            }
        }
    }

    fn string(&self, key: &str) -> Result<Option<String>, Diagnostic> {
        Ok(self.scalar(key)?.map(|s| s.as_str().to_owned()))
    }

    fn located(&self, key: &str) -> Result<Option<Located>, Diagnostic> {
        Ok(self.scalar(key)?.map(|s| Located { text: s.as_str().trim().to_owned(), pos: self.ctx.pos(s.span()) }))
    }

    fn required(&self, key: &str) -> Result<Located, Diagnostic> {
        self.located(key)?.ok_or_else(|| {
            self.err(self.map.span(), Code::ErrYamlValidate, format!("Item has no mapping for key '{key}'"))
        })
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, Diagnostic> {
        match self.scalar(key)? {
            None => Ok(None),
            Some(s) => s.as_bool().map(Some).ok_or_else(|| {
                self.err(s.span(), Code::ErrYamlValidate, format!("Can't decode YAML scalar value for key '{key}'"))
            }),
        }
    }

    fn strings(&self, key: &str) -> Result<Option<Vec<String>>, Diagnostic> {
        match self.map.get_node(key) {
            None => Ok(None),
            Some(Node::Sequence(seq)) => seq
                .iter()
                .map(|n| match n {
                    Node::Scalar(s) => Ok(s.as_str().to_owned()),
                    other => {
                        Err(self.err(other.span(), Code::ErrYamlValidate, format!("Items of '{key}' must be strings")))
                    }
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(Node::Scalar(s)) if s.as_str().is_empty() => Ok(Some(Vec::new())),
            Some(n) => {
                Err(self.err(n.span(), Code::ErrYamlValidate, format!("Value for key '{key}' must be a sequence")))
            }
        }
    }

    fn overrides(&self, allowed: &[&str]) -> Result<BTreeMap<String, OverrideMode>, Diagnostic> {
        let mut out = BTreeMap::new();
        let Some(node) = self.map.get_node("override") else { return Ok(out) };
        let Node::Mapping(m) = node else {
            return Err(self.err(node.span(), Code::ErrYamlValidate, "Value for key 'override' must be a mapping"));
        };
        for (k, v) in m.iter() {
            let mode = match v {
                Node::Scalar(s) if s.as_str() == "append" => OverrideMode::Append,
                Node::Scalar(s) if s.as_str() == "replace" => OverrideMode::Replace,
                other => {
                    return Err(self.err(
                        other.span(),
                        Code::ErrYamlValidate,
                        format!("Override for key '{}' must be 'append' or 'replace'", k.as_str()),
                    ))
                }
            };
            if !allowed.contains(&k.as_str()) {
                return Err(self.err(
                    k.span(),
                    Code::ErrValidate,
                    format!("Key '{}' cannot be overridden", k.as_str()),
                ));
            }
            if self.map.get_node(k.as_str()).is_none() {
                return Err(self.err(
                    k.span(),
                    Code::ErrValidate,
                    format!("An override is defined for '{}' but no value is given", k.as_str()),
                ));
            }
            out.insert(k.as_str().to_owned(), mode);
        }
        if !out.is_empty() && self.map.get_node("append").is_some() {
            return Err(self.err(
                self.map.span(),
                Code::ErrValidate,
                "Keys 'override' and 'append: true' cannot be used together",
            ));
        }
        Ok(out)
    }

    fn warn_unknown_keys(&self, ctx: &mut Vec<Diagnostic>, known: &[&str]) {
        for k in self.map.keys() {
            if !known.contains(&k.as_str()) {
                ctx.push(self.err(k.span(), Code::UnknownKey, format!("Unknown key '{}' is ignored", k.as_str())));
            }
        }
    }
}

/// Parses one rules file into items and warnings; errors use Falco's codes and messages.
pub fn load(src: &Source) -> Result<(Vec<Item>, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut items = Vec::new();
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    for (line_offset, doc) in documents(&src.text) {
        let mut ctx = Ctx { file: Arc::from(src.name.as_str()), line_offset, warnings: Vec::new() };
        match load_document(&mut ctx, doc) {
            Ok(v) => items.extend(v),
            Err(e) => errors.extend(e),
        }
        warnings.append(&mut ctx.warnings);
    }
    if errors.is_empty() {
        Ok((items, warnings))
    } else {
        Err(errors)
    }
}

/// Splits a YAML stream into documents at `---` lines, with each document's line offset.
fn documents(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut start_line = 0;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let t = line.trim_end();
        if t == "---" || t.starts_with("--- ") || t == "..." {
            out.push((start_line, &text[start..offset]));
            start = offset + line.len();
            start_line = i + 1;
        }
        offset += line.len();
    }
    out.push((start_line, &text[start..]));
    out
}

/// Rewrites the two constructs yaml-cpp (Falco's parser) accepts and the parser used here
/// refuses, without changing their meaning: plain scalars that start with `!` (read as a tag,
/// e.g. `desc: != after evt.type`) are quoted, and a flow collection's closing `]`/`}` on a line
/// of its own at the parent's indentation is indented further.
///
/// Returns the (possibly rewritten) text and the result of parsing it.
fn repair_for_parser(doc: &str) -> (String, Result<Node, marked_yaml::LoadError>) {
    let mut doc = doc.to_owned();
    let parse = |d: &str| marked_yaml::parse_yaml_with_options(0, d, LoaderOptions::default().toplevel_sequence());
    for _ in 0..256 {
        let err = match parse(&doc) {
            Err(e) => e,
            ok => return (doc, ok),
        };
        let m = match &err {
            marked_yaml::LoadError::UnexpectedTag(m) => *m,
            marked_yaml::LoadError::ScanError(m, e) if e.info().contains("indentation") => *m,
            _ => return (doc, Err(err)),
        };
        let line_start: usize = doc.split_inclusive('\n').take(m.line().saturating_sub(1)).map(str::len).sum();
        let line_end = doc[line_start..].find('\n').map_or(doc.len(), |i| line_start + i);
        let line = &doc[line_start..line_end];
        if let marked_yaml::LoadError::ScanError(..) = err {
            let t = line.trim();
            if !(t.starts_with(']') || t.starts_with('}')) {
                return (doc, Err(err));
            }
            doc.insert_str(line_start, "    ");
            continue;
        }
        // The parser reports where the tagged value starts; the tag is the last `!` token before it.
        let upto = line.char_indices().nth(m.column().saturating_sub(1)).map_or(line.len(), |(i, _)| i);
        let Some(bang) = line[..upto]
            .char_indices()
            .rev()
            .find(|&(i, c)| c == '!' && (i == 0 || matches!(line.as_bytes()[i - 1], b' ' | b':' | b'-')))
            .map(|(i, _)| i)
        else {
            return (doc, Err(err));
        };
        let value = line[bang..].trim_end();
        let quoted = format!("'{}'", value.replace('\'', "''"));
        doc.replace_range(line_start + bang..line_start + bang + value.len(), &quoted);
    }
    let res = parse(&doc);
    (doc, res)
}

fn is_blank(doc: &str) -> bool {
    doc.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#')
    })
}

fn load_document(ctx: &mut Ctx, doc: &str) -> Result<Vec<Item>, Vec<Diagnostic>> {
    if is_blank(doc) {
        return Ok(Vec::new());
    }
    let top = Span::new_start(marked_yaml::Marker::new(0, 0, 1, 1));
    let (doc, parsed) = repair_for_parser(doc);
    let doc = doc.as_str();
    let root = match parsed {
        Ok(r) => r,
        Err(marked_yaml::LoadError::TopLevelMustBeSequence(_)) => {
            // Falco distinguishes a mapping ("not an array") from anything else ("not yaml").
            let message = match marked_yaml::parse_yaml(0, doc) {
                Ok(_) => "Rules content is not yaml array of objects",
                Err(_) => "Rules content is not yaml",
            };
            return Err(vec![ctx.diag(&top, Code::ErrYamlValidate, "rules content", "", message)]);
        }
        Err(e) => return Err(vec![yaml_error(ctx, &e)]),
    };
    let Node::Sequence(seq) = root else {
        return Err(vec![ctx.diag(
            &top,
            Code::ErrYamlValidate,
            "rules content",
            "",
            "Rules content is not yaml array of objects",
        )]);
    };
    let mut items = Vec::new();
    let mut errors = Vec::new();
    for node in seq.iter() {
        match item(ctx, node) {
            Ok(i) => items.push(i),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(items)
    } else {
        Err(errors)
    }
}

fn yaml_error(ctx: &Ctx, e: &marked_yaml::LoadError) -> Diagnostic {
    use marked_yaml::LoadError::*;
    let (m, code, what) = match e {
        TopLevelMustBeSequence(m) | TopLevelMustBeMapping(m) => {
            (m, Code::ErrYamlValidate, "Rules content is not yaml array of objects".to_owned())
        }
        UnexpectedAnchor(m) => (m, Code::ErrYamlParse, "YAML anchors are not supported".to_owned()),
        MappingKeyMustBeScalar(m) => (m, Code::ErrYamlParse, "mapping keys must be plain strings".to_owned()),
        UnexpectedTag(m) => (m, Code::ErrYamlParse, "YAML tags are not supported".to_owned()),
        ScanError(m, se) => (
            m,
            Code::ErrYamlParse,
            format!("error at line {}, column {}: {}", m.line() + ctx.line_offset, m.column(), se.info()),
        ),
        DuplicateKey(d) => (
            d.key.span().start().expect("key has a position"),
            Code::ErrYamlParse,
            format!("duplicate key '{}'", d.key.as_str()),
        ),
    };
    Diagnostic {
        pos: Pos { file: ctx.file.clone(), line: m.line() + ctx.line_offset, col: m.column() },
        code,
        item_type: "rules content".into(),
        item_name: String::new(),
        message: what,
    }
}

const RULE_KEYS: &[&str] = &[
    "rule",
    "condition",
    "output",
    "desc",
    "priority",
    "tags",
    "enabled",
    "append",
    "override",
    "source",
    "exceptions",
    "warn_evttypes",
    "skip-if-unknown-filter",
    "capture",
    "capture_duration",
];

fn item(ctx: &mut Ctx, node: &Node) -> Result<Item, Diagnostic> {
    let Node::Mapping(map) = node else {
        return Err(ctx.diag(
            node.span(),
            Code::ErrYamlValidate,
            "rules content item",
            "",
            "Unexpected element type. Each element should be a yaml associative array.",
        ));
    };
    // A mapping's own span starts at its first value; its first key is where the item starts.
    let span = map.keys().next().map_or(map.span(), |k| k.span());
    let pos = ctx.pos(span);
    for kind in ["rule", "macro", "list"] {
        let Some(node) = map.get_node(kind) else { continue };
        let name = match node {
            Node::Scalar(s) if !s.as_str().trim().is_empty() => s.as_str().to_owned(),
            _ => {
                return Err(ctx.diag(
                    span,
                    Code::ErrYamlValidate,
                    kind,
                    "",
                    format!("Mapping for key '{kind}' is empty"),
                ))
            }
        };
        let r = ItemReader { ctx, map, item_type: kind, name: name.clone() };
        let append = r.bool("append")?.unwrap_or(false);
        return match kind {
            "rule" => {
                let overrides =
                    r.overrides(&["condition", "output", "desc", "priority", "tags", "exceptions", "enabled"])?;
                let partial = append || !overrides.is_empty() || is_enable_only(map);
                let rule = RuleItem {
                    condition: if partial { r.located("condition")? } else { Some(r.required("condition")?) },
                    output: if partial { r.located("output")? } else { Some(r.required("output")?) },
                    desc: if partial { r.string("desc")? } else { Some(r.required("desc")?.text) },
                    priority: if partial { r.located("priority")? } else { Some(r.required("priority")?) },
                    tags: r.strings("tags")?,
                    enabled: r.bool("enabled")?,
                    append,
                    overrides,
                    source: r.string("source")?,
                    exceptions: exceptions(&r)?,
                    skip_if_unknown_filter: r.bool("skip-if-unknown-filter")?,
                    warn_evttypes: r.bool("warn_evttypes")?,
                    name,
                    pos,
                };
                let mut w = Vec::new();
                r.warn_unknown_keys(&mut w, RULE_KEYS);
                ctx.warnings.extend(w);
                Ok(Item::Rule(Box::new(rule)))
            }
            "macro" => {
                let overrides = r.overrides(&["condition"])?;
                let m = MacroItem { condition: r.required("condition")?, append, overrides, name, pos };
                let mut w = Vec::new();
                r.warn_unknown_keys(&mut w, &["macro", "condition", "append", "override"]);
                ctx.warnings.extend(w);
                Ok(Item::Macro(m))
            }
            _ => {
                let overrides = r.overrides(&["items"])?;
                let items = r
                    .strings("items")?
                    .ok_or_else(|| r.err(map.span(), Code::ErrYamlValidate, "Item has no mapping for key 'items'"))?;
                let mut w = Vec::new();
                r.warn_unknown_keys(&mut w, &["list", "items", "append", "override"]);
                ctx.warnings.extend(w);
                Ok(Item::List(ListItem { items, append, overrides, name, pos }))
            }
        };
    }
    if let Some(v) = map.get_node("required_engine_version") {
        check_engine_version(ctx, v)?;
        return Ok(Item::EngineVersion);
    }
    if map.get_node("required_plugin_versions").is_some() {
        return Ok(Item::PluginVersions);
    }
    let keys: Vec<&str> = map.keys().map(|k| k.as_str()).collect();
    Err(ctx.diag(
        span,
        Code::ErrYamlValidate,
        "rules content item",
        "",
        format!("Unknown top level object: {}", keys.join(", ")),
    ))
}

/// A rule item that only sets `enabled` (Falco's way to switch an existing rule on or off).
fn is_enable_only(map: &MarkedMappingNode) -> bool {
    map.keys().all(|k| matches!(k.as_str(), "rule" | "enabled")) && map.get_node("enabled").is_some()
}

fn check_engine_version(ctx: &Ctx, v: &Node) -> Result<(), Diagnostic> {
    let bad = |span: &Span, msg: String| ctx.diag(span, Code::ErrYamlValidate, "required_engine_version", "", msg);
    let Node::Scalar(s) = v else { return Err(bad(v.span(), "Can't decode YAML scalar value".into())) };
    let text = s.as_str().trim();
    // Old files use an integer N, meaning 0.N.0.
    let wanted = if let Ok(n) = text.parse::<u64>() {
        (0, n, 0)
    } else {
        let parts: Vec<Option<u64>> = text.split('.').map(|p| p.parse().ok()).collect();
        match parts.as_slice() {
            [Some(a), Some(b), Some(c)] => (*a, *b, *c),
            _ => return Err(bad(s.span(), "Can't decode YAML scalar value".into())),
        }
    };
    if wanted > ENGINE_VERSION {
        let (a, b, c) = ENGINE_VERSION;
        return Err(Diagnostic {
            code: Code::ErrValidate,
            ..bad(s.span(), format!("Rules require engine version {text}, but engine version is {a}.{b}.{c}"))
        });
    }
    Ok(())
}

fn exception_fields(
    r: &ItemReader<'_>,
    m: &MarkedMappingNode,
    key: &str,
) -> Result<Option<ExceptionFields>, Diagnostic> {
    match m.get_node(key) {
        None => Ok(None),
        Some(Node::Scalar(s)) => Ok(Some(ExceptionFields::Single(s.as_str().to_owned()))),
        Some(Node::Sequence(seq)) => seq
            .iter()
            .map(|n| match n {
                Node::Scalar(s) => Ok(s.as_str().to_owned()),
                o => Err(r.err(o.span(), Code::ErrYamlValidate, format!("Items of '{key}' must be strings"))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|v| Some(ExceptionFields::List(v))),
        Some(n) => {
            Err(r.err(n.span(), Code::ErrYamlValidate, format!("Value for key '{key}' must be a string or a sequence")))
        }
    }
}

fn exception_value(n: &Node) -> ExceptionValue {
    match n {
        Node::Sequence(seq) => ExceptionValue::List(seq.iter().map(exception_value).collect()),
        Node::Scalar(s) => ExceptionValue::Scalar(s.as_str().to_owned()),
        Node::Mapping(_) => ExceptionValue::Scalar(String::new()),
    }
}

fn exceptions(r: &ItemReader<'_>) -> Result<Option<Vec<ExceptionItem>>, Diagnostic> {
    let Some(node) = r.map.get_node("exceptions") else { return Ok(None) };
    let Node::Sequence(seq) = node else {
        return Err(r.err(node.span(), Code::ErrYamlValidate, "Value for key 'exceptions' must be a sequence"));
    };
    let mut out = Vec::new();
    for e in seq.iter() {
        let Node::Mapping(m) = e else {
            return Err(r.err(e.span(), Code::ErrYamlValidate, "Exception items must be mappings"));
        };
        let name = match m.get_node("name") {
            Some(Node::Scalar(s)) => s.as_str().to_owned(),
            _ => {
                return Err(r.ctx.diag(
                    m.span(),
                    Code::ErrYamlValidate,
                    "exception",
                    "",
                    "Item has no mapping for key 'name'",
                ))
            }
        };
        let values = match m.get_node("values") {
            None => Vec::new(),
            Some(Node::Sequence(v)) => v.iter().map(exception_value).collect(),
            Some(n) => return Err(r.err(n.span(), Code::ErrYamlValidate, "Value for key 'values' must be a sequence")),
        };
        out.push(ExceptionItem {
            name,
            fields: exception_fields(r, m, "fields")?,
            comps: exception_fields(r, m, "comps")?,
            values,
            pos: r.ctx.pos(m.span()),
        });
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_split_on_markers_with_line_offsets() {
        let d = documents("- a: 1\n---\n- b: 2\n--- # c\n");
        assert_eq!(d, vec![(0, "- a: 1\n"), (2, "- b: 2\n"), (4, "")]);
    }
}
