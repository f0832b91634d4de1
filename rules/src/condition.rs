//! The libsinsp condition grammar: lexer and recursive-descent parser producing an [`Expr`].
//!
//! ```text
//! expr  := and ("or" and)*          and := unary ("and" unary)*
//! unary := "not" unary | "(" expr ")" | check | macro-name
//! check := field [op value | listop "(" item ("," item)* ")" | "exists"]
//! ```

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=` / `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `in`
    In,
    /// `intersects`
    Intersects,
    /// `pmatch`
    Pmatch,
    /// `contains`
    Contains,
    /// `icontains`
    Icontains,
    /// `bcontains`
    Bcontains,
    /// `startswith`
    Startswith,
    /// `bstartswith`
    Bstartswith,
    /// `endswith`
    Endswith,
    /// `glob`
    Glob,
    /// `iglob`
    Iglob,
    /// `regex`
    Regex,
    /// `exists`
    Exists,
}

impl Op {
    fn from_word(w: &str) -> Option<Op> {
        Some(match w {
            "=" | "==" => Op::Eq,
            "!=" => Op::Ne,
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "in" => Op::In,
            "intersects" => Op::Intersects,
            "pmatch" => Op::Pmatch,
            "contains" => Op::Contains,
            "icontains" => Op::Icontains,
            "bcontains" => Op::Bcontains,
            "startswith" => Op::Startswith,
            "bstartswith" => Op::Bstartswith,
            "endswith" => Op::Endswith,
            "glob" => Op::Glob,
            "iglob" => Op::Iglob,
            "regex" => Op::Regex,
            "exists" => Op::Exists,
            _ => return None,
        })
    }

    /// The operator as written in conditions.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::In => "in",
            Op::Intersects => "intersects",
            Op::Pmatch => "pmatch",
            Op::Contains => "contains",
            Op::Icontains => "icontains",
            Op::Bcontains => "bcontains",
            Op::Startswith => "startswith",
            Op::Bstartswith => "bstartswith",
            Op::Endswith => "endswith",
            Op::Glob => "glob",
            Op::Iglob => "iglob",
            Op::Regex => "regex",
            Op::Exists => "exists",
        }
    }

    /// True for operators whose right-hand side is a parenthesised list.
    pub fn takes_list(self) -> bool {
        matches!(self, Op::In | Op::Intersects | Op::Pmatch)
    }
}

/// A parsed condition (macros not yet expanded).
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// All must hold.
    And(Vec<Expr>),
    /// Any must hold.
    Or(Vec<Expr>),
    /// Negation.
    Not(Box<Expr>),
    /// A reference to a macro, at a byte offset of the condition.
    Macro(String, usize),
    /// `field op operand`, at a byte offset of the condition.
    Check {
        /// The field, possibly with `[arg]` and transformers.
        field: FieldRef,
        /// Operator.
        op: Op,
        /// Right-hand side.
        operand: Operand,
        /// Byte offset of the field in the condition.
        at: usize,
    },
}

/// Value transformers applied to a field (`tolower(proc.name)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transformer {
    /// `tolower()`
    Tolower,
    /// `toupper()`
    Toupper,
    /// `b64()`: base64-decode.
    B64,
    /// `basename()`
    Basename,
    /// `len()`: length of the string (a number).
    Len,
}

impl Transformer {
    fn from_word(w: &str) -> Option<Self> {
        Some(match w {
            "tolower" => Self::Tolower,
            "toupper" => Self::Toupper,
            "b64" => Self::B64,
            "basename" => Self::Basename,
            "len" => Self::Len,
            _ => return None,
        })
    }
}

/// A field reference: name (with optional `[arg]`) and transformers, innermost first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRef {
    /// Field name as written (`proc.aname[2]`).
    pub name: String,
    /// Transformers, innermost first.
    pub transformers: Vec<Transformer>,
}

impl FieldRef {
    /// A plain field.
    pub fn plain(name: impl Into<String>) -> Self {
        Self { name: name.into(), transformers: Vec::new() }
    }
}

/// Right-hand side of a check.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// Unary operator (`exists`).
    None,
    /// One value.
    Value(String),
    /// Another field's value: `val(field)`.
    Field(FieldRef),
    /// A list; bare items may name `list` items, expanded at compile time.
    List(Vec<ListEntry>),
}

/// One entry of a parenthesised list.
#[derive(Debug, Clone, PartialEq)]
pub struct ListEntry {
    /// The text.
    pub text: String,
    /// True when it was quoted (never a list reference).
    pub quoted: bool,
}

/// A syntax error at a byte offset of the condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Byte offset.
    pub at: usize,
    /// What was expected or found.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    Comma,
    Word(String),
    Quoted(String),
    Sym(String),
}

fn lex(s: &str) -> Result<Vec<(Tok, usize)>, SyntaxError> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                out.push((Tok::LParen, i));
                i += 1
            }
            b')' => {
                out.push((Tok::RParen, i));
                i += 1
            }
            b',' => {
                out.push((Tok::Comma, i));
                i += 1
            }
            b'"' | b'\'' => {
                let start = i;
                i += 1;
                let mut v = String::new();
                loop {
                    let Some(ch) = s[i..].chars().next() else {
                        return Err(SyntaxError { at: start, message: "unterminated quoted string".into() });
                    };
                    i += ch.len_utf8();
                    if ch as u32 == c as u32 {
                        break;
                    }
                    if ch == '\\' {
                        if let Some(n) = s[i..].chars().next() {
                            if n as u32 == c as u32 || n == '\\' {
                                v.push(n);
                                i += n.len_utf8();
                                continue;
                            }
                        }
                    }
                    v.push(ch);
                }
                out.push((Tok::Quoted(v), start));
            }
            b'=' | b'!' | b'<' | b'>' => {
                let start = i;
                i += 1;
                if i < b.len() && b[i] == b'=' {
                    i += 1;
                }
                let sym = &s[start..i];
                if sym == "!" {
                    return Err(SyntaxError { at: start, message: "unexpected '!'".into() });
                }
                out.push((Tok::Sym(sym.to_owned()), start));
            }
            _ => {
                let start = i;
                while i < b.len()
                    && !matches!(
                        b[i],
                        b' ' | b'\t' | b'\n' | b'\r' | b'(' | b')' | b',' | b'"' | b'\'' | b'=' | b'<' | b'>'
                    )
                    && !(b[i] == b'!' && b.get(i + 1) == Some(&b'='))
                {
                    // Brackets belong to field arguments such as proc.aname[2] or fd.name[/x y].
                    if b[i] == b'[' {
                        while i < b.len() && b[i] != b']' {
                            i += 1;
                        }
                    }
                    i += 1;
                }
                let end = i.min(b.len());
                out.push((Tok::Word(s[start..end].to_owned()), start));
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    i: usize,
    end: usize,
}

/// Parses a condition string.
pub fn parse(s: &str) -> Result<Expr, SyntaxError> {
    let toks = lex(s)?;
    let mut p = Parser { toks, i: 0, end: s.len() };
    if p.toks.is_empty() {
        return Err(SyntaxError { at: 0, message: "empty condition".into() });
    }
    let e = p.or()?;
    if let Some((_, at)) = p.toks.get(p.i) {
        return Err(SyntaxError { at: *at, message: p.unexpected_after(false) });
    }
    Ok(e)
}

/// The source text of a token.
fn text(t: &Tok) -> String {
    match t {
        Tok::LParen => "(".into(),
        Tok::RParen => ")".into(),
        Tok::Comma => ",".into(),
        Tok::Word(w) | Tok::Sym(w) => w.clone(),
        Tok::Quoted(w) => format!("\"{w}\""),
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::Comma => "','".into(),
        Tok::Word(w) => format!("'{w}'"),
        Tok::Quoted(w) => format!("quoted string \"{w}\""),
        Tok::Sym(s) => format!("'{s}'"),
    }
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|t| &t.0)
    }

    fn at(&self) -> usize {
        self.toks.get(self.i).map_or(self.end, |t| t.1)
    }

    /// libsinsp's message for a token that cannot follow a complete expression.
    fn unexpected_after(&self, in_parens: bool) -> String {
        let prev = self.i.checked_sub(1).and_then(|j| self.toks.get(j)).map_or(String::new(), |t| text(&t.0));
        let expecting = if in_parens { "'or', 'and', ')'" } else { "'or', 'and'" };
        format!("unexpected token after '{prev}', expecting {expecting}")
    }

    fn keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w == k)
    }

    fn or(&mut self) -> Result<Expr, SyntaxError> {
        let mut v = vec![self.and()?];
        while self.keyword("or") {
            self.i += 1;
            v.push(self.and()?);
        }
        Ok(if v.len() == 1 { v.pop().expect("one") } else { Expr::Or(v) })
    }

    fn and(&mut self) -> Result<Expr, SyntaxError> {
        let mut v = vec![self.unary()?];
        while self.keyword("and") {
            self.i += 1;
            v.push(self.unary()?);
        }
        Ok(if v.len() == 1 { v.pop().expect("one") } else { Expr::And(v) })
    }

    fn unary(&mut self) -> Result<Expr, SyntaxError> {
        let at = self.at();
        match self.peek().cloned() {
            Some(Tok::Word(w)) if w == "not" => {
                self.i += 1;
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Some(Tok::LParen) => {
                self.i += 1;
                let e = self.or()?;
                match self.peek() {
                    Some(Tok::RParen) => {
                        self.i += 1;
                        Ok(e)
                    }
                    Some(_) => Err(SyntaxError { at: self.at(), message: self.unexpected_after(true) }),
                    None => Err(SyntaxError { at: self.at(), message: "missing ')'".into() }),
                }
            }
            Some(Tok::Word(w)) if w == "and" || w == "or" => {
                Err(SyntaxError { at, message: format!("unexpected '{w}': expected a field, a macro or '('") })
            }
            Some(Tok::Word(w))
                if Transformer::from_word(&w).is_some()
                    && self.toks.get(self.i + 1).is_some_and(|t| t.0 == Tok::LParen) =>
            {
                let field = self.field_ref()?;
                self.check(field, at)
            }
            Some(Tok::Word(w)) => {
                self.i += 1;
                if !w.contains('.') && !w.contains('[') {
                    // Falco fields always have a dot; a bare identifier is a macro.
                    return Ok(Expr::Macro(w, at));
                }
                self.check(FieldRef::plain(w), at)
            }
            Some(t) => Err(SyntaxError {
                at,
                message: format!("unexpected {}: expected a field, a macro or '('", describe(&t)),
            }),
            None => Err(SyntaxError { at, message: "unexpected end of condition".into() }),
        }
    }

    /// `name`, `transformer(field_ref)` or (with `allow_val`) `val(field_ref)`.
    fn field_ref(&mut self) -> Result<FieldRef, SyntaxError> {
        let at = self.at();
        let Some(Tok::Word(w)) = self.peek().cloned() else {
            return Err(SyntaxError { at, message: "expected a field".into() });
        };
        self.i += 1;
        let Some(t) = Transformer::from_word(&w).filter(|_| self.peek() == Some(&Tok::LParen)) else {
            return Ok(FieldRef::plain(w));
        };
        self.i += 1;
        let mut inner = self.field_ref()?;
        if self.peek() != Some(&Tok::RParen) {
            return Err(SyntaxError { at: self.at(), message: format!("expected ')' to close {w}(") });
        }
        self.i += 1;
        inner.transformers.push(t);
        Ok(inner)
    }

    fn check(&mut self, field: FieldRef, at: usize) -> Result<Expr, SyntaxError> {
        let op_at = self.at();
        let op = match self.peek() {
            Some(Tok::Sym(s)) => Op::from_word(s),
            Some(Tok::Word(w)) => Op::from_word(w),
            _ => None,
        };
        let Some(op) = op else {
            let found = self.peek().map_or("end of condition".to_owned(), describe);
            return Err(SyntaxError {
                at: op_at,
                message: format!("expected an operator after field '{}', found {found}", field.name),
            });
        };
        self.i += 1;
        let operand = if op == Op::Exists {
            Operand::None
        } else if op.takes_list() {
            Operand::List(self.list(op)?)
        } else {
            match self.peek().cloned() {
                Some(Tok::Word(w)) if w == "val" && self.toks.get(self.i + 1).is_some_and(|t| t.0 == Tok::LParen) => {
                    self.i += 2;
                    let f = self.field_ref()?;
                    if self.peek() != Some(&Tok::RParen) {
                        return Err(SyntaxError { at: self.at(), message: "expected ')' to close val(".into() });
                    }
                    self.i += 1;
                    Operand::Field(f)
                }
                Some(Tok::Word(w)) => {
                    self.i += 1;
                    Operand::Value(w)
                }
                Some(Tok::Quoted(w)) => {
                    self.i += 1;
                    Operand::Value(w)
                }
                // Bare `<`/`>` are values too (`evt.dir = <`).
                Some(Tok::Sym(w)) if w == "<" || w == ">" => {
                    self.i += 1;
                    Operand::Value(w)
                }
                other => {
                    let found = other.as_ref().map_or("end of condition".to_owned(), describe);
                    return Err(SyntaxError {
                        at: self.at(),
                        message: format!("expected a value after '{}', found {found}", op.as_str()),
                    });
                }
            }
        };
        Ok(Expr::Check { field, op, operand, at })
    }

    fn list(&mut self, op: Op) -> Result<Vec<ListEntry>, SyntaxError> {
        if self.peek() != Some(&Tok::LParen) {
            return Err(SyntaxError { at: self.at(), message: format!("expected '(' after '{}'", op.as_str()) });
        }
        self.i += 1;
        let mut items = Vec::new();
        if self.peek() == Some(&Tok::RParen) {
            self.i += 1;
            return Ok(items);
        }
        loop {
            match self.peek().cloned() {
                Some(Tok::Word(w)) => items.push(ListEntry { text: w, quoted: false }),
                Some(Tok::Quoted(w)) => items.push(ListEntry { text: w, quoted: true }),
                other => {
                    let found = other.as_ref().map_or("end of condition".to_owned(), describe);
                    return Err(SyntaxError {
                        at: self.at(),
                        message: format!("expected a list value, found {found}"),
                    });
                }
            }
            self.i += 1;
            match self.peek() {
                Some(Tok::Comma) => self.i += 1,
                Some(Tok::RParen) => {
                    self.i += 1;
                    return Ok(items);
                }
                _ => return Err(SyntaxError { at: self.at(), message: "expected ',' or ')' in list".into() }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(field: &str, op: Op, v: &str, at: usize) -> Expr {
        Expr::Check { field: FieldRef::plain(field), op, operand: Operand::Value(v.into()), at }
    }

    #[test]
    fn precedence_not_and_or() {
        let e = parse("a or not b and proc.name=cat").unwrap();
        assert_eq!(
            e,
            Expr::Or(vec![
                Expr::Macro("a".into(), 0),
                Expr::And(vec![Expr::Not(Box::new(Expr::Macro("b".into(), 9))), check("proc.name", Op::Eq, "cat", 15)]),
            ])
        );
    }

    #[test]
    fn lists_quotes_and_brackets() {
        let e = parse("(proc.aname[2] in (bash, \"my shell\", shell_binaries)) and fd.name != '/etc/x y'").unwrap();
        let Expr::And(v) = e else { panic!("{e:?}") };
        let Expr::Check { field, op, operand: Operand::List(items), .. } = &v[0] else { panic!() };
        assert_eq!((field.name.as_str(), *op), ("proc.aname[2]", Op::In));
        assert_eq!(
            items.iter().map(|i| (i.text.as_str(), i.quoted)).collect::<Vec<_>>(),
            vec![("bash", false), ("my shell", true), ("shell_binaries", false)]
        );
        assert_eq!(v[1], check("fd.name", Op::Ne, "/etc/x y", 58));
    }

    #[test]
    fn compact_operators_and_exists() {
        assert_eq!(parse("evt.res>=0").unwrap(), check("evt.res", Op::Ge, "0", 0));
        assert_eq!(
            parse("fd.name exists").unwrap(),
            Expr::Check { field: FieldRef::plain("fd.name"), op: Op::Exists, operand: Operand::None, at: 0 }
        );
    }

    #[test]
    fn errors_have_offsets() {
        assert_eq!(parse("proc.name = ").unwrap_err().at, 12);
        let e = parse("(proc.name = cat").unwrap_err();
        assert!(e.message.contains("missing ')'"), "{e:?}");
        let e = parse("proc.name cat").unwrap_err();
        assert_eq!((e.at, e.message.as_str()), (10, "expected an operator after field 'proc.name', found 'cat'"));
        assert!(parse("proc.name = 'x").unwrap_err().message.contains("unterminated"));
        assert!(parse("a and and b").is_err());
        assert_eq!(
            parse("evt.type=execve foo").unwrap_err().message,
            "unexpected token after 'execve', expecting 'or', 'and'"
        );
        assert_eq!(parse("(a or b c)").unwrap_err().message, "unexpected token after 'b', expecting 'or', 'and', ')'");
    }

    #[test]
    fn transformers_and_val() {
        let e = parse("tolower(basename(proc.exe)) = bash and fd.name = val(proc.cwd)").unwrap();
        let Expr::And(v) = e else { panic!() };
        let Expr::Check { field, .. } = &v[0] else { panic!() };
        assert_eq!(field.name, "proc.exe");
        assert_eq!(field.transformers, vec![Transformer::Basename, Transformer::Tolower]);
        let Expr::Check { operand: Operand::Field(f), .. } = &v[1] else { panic!() };
        assert_eq!(f.name, "proc.cwd");
    }
}
