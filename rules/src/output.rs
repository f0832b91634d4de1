//! Rule output strings: literal text with `%field` tokens, rendered per alert.

use serde_json::{Map, Value};

use super::fields::{EventView, Field, FieldValue};

/// A parsed output format.
#[derive(Debug, Clone)]
pub struct OutputFormat {
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Field(String, Field),
}

impl OutputFormat {
    /// Parses `text`; `Err` names the first unknown field.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(i) = rest.find('%') {
            lit.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let (name, consumed) = if let Some(inner) = after.strip_prefix('(') {
                // %(field) form.
                match inner.find(')') {
                    Some(end) => (&inner[..end], end + 2),
                    None => return Err("unterminated %( in output".into()),
                }
            } else {
                let end = token_end(after);
                (&after[..end], end)
            };
            if name.is_empty() {
                lit.push('%');
                rest = after;
                continue;
            }
            let field = Field::parse(name).map_err(|_| format!("invalid formatting token {name}"))?;
            if !lit.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut lit)));
            }
            parts.push(Part::Field(name.to_owned(), field));
            rest = &after[consumed..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Text(lit));
        }
        Ok(Self { parts })
    }

    /// The fields the output prints.
    pub fn fields(&self) -> impl Iterator<Item = &Field> {
        self.parts.iter().filter_map(|p| if let Part::Field(_, f) = p { Some(f) } else { None })
    }

    /// Renders the text only when every field has a value (sysdig's rule for `-p` formats
    /// that do not start with `*`).
    pub fn render_complete(&self, view: &EventView<'_>) -> Option<String> {
        let mut s = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => s.push_str(t),
                Part::Field(_, f) => match view.get(f) {
                    FieldValue::Missing => return None,
                    v => s.push_str(&v.render()),
                },
            }
        }
        Some(s)
    }

    /// Renders the text and the `output_fields` map for one event.
    pub fn render(&self, view: &EventView<'_>) -> (String, Map<String, Value>) {
        let mut s = String::new();
        let mut fields = Map::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => s.push_str(t),
                Part::Field(name, f) => {
                    let v = view.get(f);
                    s.push_str(&v.render());
                    let json = match (&v, f) {
                        (_, Field::EvtTime) => Value::from(view.ev.ts_ns),
                        (FieldValue::Missing, _) => Value::Null,
                        (FieldValue::Str(x), _) => Value::from(x.as_ref()),
                        (FieldValue::Int(i), _) => Value::from(*i),
                        (FieldValue::Bool(b), _) => Value::from(*b),
                    };
                    fields.insert(name.clone(), json);
                }
            }
        }
        (s, fields)
    }
}

fn token_end(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' {
            i += 1;
        } else if c == b'[' {
            match s[i..].find(']') {
                Some(j) => i += j + 1,
                None => break,
            }
        } else {
            break;
        }
    }
    // A trailing dot is punctuation ("... by %proc.name.").
    while i > 0 && b[i - 1] == b'.' {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_stop_at_punctuation() {
        let f = OutputFormat::parse("read %fd.name by %proc.name (parent=%proc.aname[1]). 100%").unwrap();
        let names: Vec<_> =
            f.parts.iter().filter_map(|p| if let Part::Field(n, _) = p { Some(n.as_str()) } else { None }).collect();
        assert_eq!(names, vec!["fd.name", "proc.name", "proc.aname[1]"]);
        assert_eq!(OutputFormat::parse("x %proc.bogus").unwrap_err(), "invalid formatting token proc.bogus");
    }
}
