//! Reads Falco rule files (YAML) into items that remember their file, line and column.

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

/// A problem in a rules file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// Where.
    pub pos: Pos,
    /// What.
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.message)
    }
}

impl std::error::Error for RuleError {}

/// A string value and where it starts.
#[derive(Debug, Clone)]
pub struct Located {
    /// The text.
    pub text: String,
    /// Its position.
    pub pos: Pos,
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
    pub output: Option<String>,
    /// `desc`.
    pub desc: Option<String>,
    /// `priority`.
    pub priority: Option<Located>,
    /// `tags`.
    pub tags: Vec<String>,
    /// `enabled`.
    pub enabled: Option<bool>,
    /// Legacy `append: true`.
    pub append: bool,
    /// `source` (defaults to `syscall`).
    pub source: Option<String>,
    /// Keys Lanner does not implement yet, with their positions.
    pub unsupported: Vec<(String, Pos)>,
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
}

/// One top-level entry of a rules file.
#[derive(Debug, Clone)]
pub enum Item {
    /// A rule.
    Rule(RuleItem),
    /// A macro.
    Macro(MacroItem),
    /// A list.
    List(ListItem),
    /// `required_engine_version` (accepted; Lanner implements the language it documents).
    EngineVersion(String),
}

struct Ctx {
    file: Arc<str>,
}

impl Ctx {
    fn pos(&self, span: &Span) -> Pos {
        let (line, col) = span.start().map_or((0, 0), |m| (m.line(), m.column()));
        Pos { file: Arc::clone(&self.file), line, col }
    }

    fn err(&self, span: &Span, message: impl Into<String>) -> RuleError {
        RuleError { pos: self.pos(span), message: message.into() }
    }

    fn scalar<'a>(&self, map: &'a MarkedMappingNode, key: &str) -> Result<Option<&'a MarkedScalarNode>, RuleError> {
        match map.get_node(key) {
            None => Ok(None),
            Some(Node::Scalar(s)) => Ok(Some(s)),
            Some(n) => Err(self.err(n.span(), format!("'{key}' must be a string"))),
        }
    }

    fn string(&self, map: &MarkedMappingNode, key: &str) -> Result<Option<String>, RuleError> {
        Ok(self.scalar(map, key)?.map(|s| s.as_str().to_owned()))
    }

    fn located(&self, map: &MarkedMappingNode, key: &str) -> Result<Option<Located>, RuleError> {
        Ok(self.scalar(map, key)?.map(|s| Located { text: s.as_str().to_owned(), pos: self.pos(s.span()) }))
    }

    fn bool(&self, map: &MarkedMappingNode, key: &str) -> Result<Option<bool>, RuleError> {
        match self.scalar(map, key)? {
            None => Ok(None),
            Some(s) => s
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.err(s.span(), format!("'{key}' must be true or false, not '{}'", s.as_str()))),
        }
    }

    fn strings(&self, map: &MarkedMappingNode, key: &str) -> Result<Vec<String>, RuleError> {
        match map.get_node(key) {
            None => Ok(Vec::new()),
            Some(Node::Sequence(seq)) => seq
                .iter()
                .map(|n| match n {
                    Node::Scalar(s) => Ok(s.as_str().to_owned()),
                    other => Err(self.err(other.span(), format!("items of '{key}' must be strings"))),
                })
                .collect(),
            // `items: []` written as an empty scalar, or a single bare value.
            Some(Node::Scalar(s)) if s.as_str().is_empty() => Ok(Vec::new()),
            Some(n) => Err(self.err(n.span(), format!("'{key}' must be a list"))),
        }
    }
}

/// Parses one rules file into items; errors name the file, line and column.
pub fn load(src: &Source) -> Result<Vec<Item>, Vec<RuleError>> {
    let ctx = Ctx { file: Arc::from(src.name.as_str()) };
    if src.text.trim().is_empty() || src.text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
        return Ok(Vec::new());
    }
    let root = marked_yaml::parse_yaml_with_options(0, &src.text, LoaderOptions::default().toplevel_sequence())
        .map_err(|e| vec![yaml_error(&ctx, &e)])?;
    let Node::Sequence(seq) = root else {
        return Err(vec![RuleError {
            pos: Pos { file: ctx.file.clone(), line: 1, col: 1 },
            message: "rules content is not a list of items".into(),
        }]);
    };
    let mut items = Vec::new();
    let mut errors = Vec::new();
    for node in seq.iter() {
        match item(&ctx, node) {
            Ok(Some(i)) => items.push(i),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(items)
    } else {
        Err(errors)
    }
}

fn yaml_error(ctx: &Ctx, e: &marked_yaml::LoadError) -> RuleError {
    use marked_yaml::LoadError::*;
    let (m, what) = match e {
        TopLevelMustBeSequence(m) => (m, "rules content is not a list of items".to_owned()),
        TopLevelMustBeMapping(m) => (m, "rules content is not a list of items".to_owned()),
        UnexpectedAnchor(m) => (m, "YAML anchors are not supported".to_owned()),
        MappingKeyMustBeScalar(m) => (m, "mapping keys must be plain strings".to_owned()),
        UnexpectedTag(m) => (m, "YAML tags are not supported".to_owned()),
        ScanError(m, se) => (m, format!("invalid YAML: {}", se.info())),
        DuplicateKey(d) => {
            (d.key.span().start().expect("key has a position"), format!("duplicate key '{}'", d.key.as_str()))
        }
    };
    RuleError { pos: Pos { file: ctx.file.clone(), line: m.line(), col: m.column() }, message: what }
}

fn item(ctx: &Ctx, node: &Node) -> Result<Option<Item>, RuleError> {
    let Node::Mapping(map) = node else {
        return Err(ctx.err(node.span(), "an item must be a mapping with one of the keys rule, macro, list"));
    };
    // A mapping's own span starts at its first value; its first key is where the item starts.
    let span = map.keys().next().map_or(map.span(), |k| k.span());
    if let Some(name) = ctx.string(map, "rule")? {
        let known = [
            "rule",
            "condition",
            "output",
            "desc",
            "priority",
            "tags",
            "enabled",
            "append",
            "source",
            "warn_evttypes",
            "skip-if-unknown-filter",
        ];
        let unsupported = map
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .map(|k| (k.as_str().to_owned(), ctx.pos(k.span())))
            .collect();
        return Ok(Some(Item::Rule(RuleItem {
            name,
            pos: ctx.pos(span),
            condition: ctx.located(map, "condition")?,
            output: ctx.string(map, "output")?.map(|s| s.trim().to_owned()),
            desc: ctx.string(map, "desc")?,
            priority: ctx.located(map, "priority")?,
            tags: ctx.strings(map, "tags")?,
            enabled: ctx.bool(map, "enabled")?,
            append: ctx.bool(map, "append")?.unwrap_or(false),
            source: ctx.string(map, "source")?,
            unsupported,
        })));
    }
    if let Some(name) = ctx.string(map, "macro")? {
        let condition =
            ctx.located(map, "condition")?.ok_or_else(|| ctx.err(span, format!("macro '{name}' has no condition")))?;
        return Ok(Some(Item::Macro(MacroItem {
            name,
            pos: ctx.pos(span),
            condition,
            append: ctx.bool(map, "append")?.unwrap_or(false),
        })));
    }
    if let Some(name) = ctx.string(map, "list")? {
        if map.get_node("items").is_none() {
            return Err(ctx.err(span, format!("list '{name}' has no items")));
        }
        return Ok(Some(Item::List(ListItem {
            name,
            pos: ctx.pos(span),
            items: ctx.strings(map, "items")?,
            append: ctx.bool(map, "append")?.unwrap_or(false),
        })));
    }
    if let Some(v) = ctx.string(map, "required_engine_version")? {
        return Ok(Some(Item::EngineVersion(v)));
    }
    let keys: Vec<&str> = map.keys().map(|k| k.as_str()).collect();
    Err(ctx.err(
        span,
        format!(
            "unknown top level item (keys: {}); expected rule, macro, list or required_engine_version",
            keys.join(", ")
        ),
    ))
}
