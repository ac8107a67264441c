//! Where a config error is: every error names `file:line:col` and the key, whether serde found
//! it (at the top level, with a span) or validation did (with a key path such as
//! `store[2].primary.remote`, inside a `[[store]]` block that serde saw only as a raw table).
//!
//! The file is parsed a second time with `toml_edit`, which keeps the position of every key and
//! value, to translate in both directions: key path → position, position → key path. Configs
//! are small; the second parse costs nothing worth keeping one representation for.

use std::ops::Range;

use toml_edit::{ImDocument, Item, Table, TableLike, Value};

use super::ConfigError;

/// A problem found at a key, not yet placed in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    /// A key path: `max_frame`, `store[2].primary.remote`, `--max-frame` for a flag.
    pub key: String,
    pub message: String,
}

impl KeyError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> KeyError {
        KeyError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The text of a config file, for placing errors in it.
pub struct Source<'a> {
    /// The file as errors name it.
    pub name: String,
    text: &'a str,
    doc: Option<ImDocument<&'a str>>,
}

impl<'a> Source<'a> {
    /// Parses `text` for positions; a syntax error is returned placed (and without a key when
    /// it is not inside one).
    pub fn parse(name: String, text: &'a str) -> Result<Source<'a>, ConfigError> {
        let mut source = Source {
            name,
            text,
            doc: None,
        };
        match ImDocument::parse(text) {
            Ok(doc) => source.doc = Some(doc),
            Err(e) => {
                let at = e.span().map_or(0, |s| s.start);
                return Err(source.placed(None, Some(at), e.message()));
            }
        }
        Ok(source)
    }

    /// A source with no text (no config file: every setting came from flags or defaults).
    pub fn none(name: String) -> Source<'static> {
        Source {
            name,
            text: "",
            doc: None,
        }
    }

    /// Places a validation error: at its key when the file has it; a flag's (`--max-frame`)
    /// is the command line's.
    pub fn key_error(&self, e: KeyError) -> ConfigError {
        if e.key.starts_with("--") {
            return ConfigError {
                file: "command line".into(),
                at: None,
                key: Some(e.key),
                message: e.message,
            };
        }
        let at = self.position_of(&e.key);
        self.placed(Some(e.key), at, &e.message)
    }

    /// Places serde's error: the key is the innermost one whose text holds the error's span,
    /// and the position is that key's.
    pub fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        let found = e.span().and_then(|span| self.key_at(span.start));
        match found {
            Some((key, at)) => self.placed(Some(key), Some(at), e.message()),
            None => self.placed(None, e.span().map(|s| s.start), e.message()),
        }
    }

    fn placed(&self, key: Option<String>, offset: Option<usize>, message: &str) -> ConfigError {
        ConfigError {
            file: self.name.clone(),
            at: offset.map(|o| line_col(self.text, o)),
            key,
            // One line: toml's syntax errors come as several ("...\nexpected `.`, `]]`").
            message: message.trim_end().replace('\n', "; "),
        }
    }

    /// The byte offset of a key path's last key found in the file (of the deepest part of the
    /// path that exists: a missing key is reported where it should have been).
    fn position_of(&self, path: &str) -> Option<usize> {
        let doc = self.doc.as_ref()?;
        let mut node = Node::Table(doc.as_table());
        let mut at = None;
        for part in path.split('.') {
            let (name, index) = split_index(part);
            let Some((key, item)) = node.table_like().and_then(|t| t.get_key_value(name)) else {
                break;
            };
            at = start(key.span()).or(at);
            node = Node::Item(item);
            if let Some(i) = index {
                match node.index(i) {
                    Some((child, span)) => {
                        at = start(span).or(at);
                        node = child;
                    }
                    None => break,
                }
            }
        }
        at
    }

    /// The innermost key path whose key or value holds `offset`, and the key's offset.
    fn key_at(&self, offset: usize) -> Option<(String, usize)> {
        let doc = self.doc.as_ref()?;
        find(Node::Table(doc.as_table()), offset, "")
    }
}

/// A place in a `toml_edit` tree that may hold keys or elements.
#[derive(Clone, Copy)]
enum Node<'d> {
    Item(&'d Item),
    Table(&'d Table),
    Value(&'d Value),
}

impl<'d> Node<'d> {
    fn table_like(self) -> Option<&'d dyn TableLike> {
        match self {
            Node::Item(i) => i.as_table_like(),
            Node::Table(t) => Some(t),
            Node::Value(v) => v.as_inline_table().map(|t| t as &dyn TableLike),
        }
    }

    /// Element `i` of an array (of tables, or inline) and its span.
    fn index(self, i: usize) -> Option<(Node<'d>, Option<Range<usize>>)> {
        let array = match self {
            Node::Item(Item::ArrayOfTables(a)) => {
                let t = a.get(i)?;
                return Some((Node::Table(t), t.span()));
            }
            Node::Item(Item::Value(Value::Array(a))) | Node::Value(Value::Array(a)) => a,
            _ => return None,
        };
        let v = array.get(i)?;
        Some((Node::Value(v), v.span()))
    }

    /// How many elements, if an array.
    fn len(self) -> usize {
        match self {
            Node::Item(Item::ArrayOfTables(a)) => a.len(),
            Node::Item(Item::Value(Value::Array(a))) | Node::Value(Value::Array(a)) => a.len(),
            _ => 0,
        }
    }

    fn span(self) -> Option<Range<usize>> {
        match self {
            Node::Item(i) => i.span(),
            Node::Table(t) => t.span(),
            Node::Value(v) => v.span(),
        }
    }
}

/// Depth-first: the deepest key (or array element) whose text holds `offset`.
fn find(node: Node<'_>, offset: usize, path: &str) -> Option<(String, usize)> {
    for i in 0..node.len() {
        let (child, span) = node.index(i)?;
        let here = format!("{path}[{i}]");
        if let Some(deeper) = find(child, offset, &here) {
            return Some(deeper);
        }
        if let Some(s) = span.filter(|s| s.contains(&offset)) {
            return Some((here, s.start));
        }
    }
    let table = node.table_like()?;
    for (name, _) in table.iter() {
        let (key, item) = table.get_key_value(name)?;
        let here = if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        };
        if let Some(deeper) = find(Node::Item(item), offset, &here) {
            return Some(deeper);
        }
        let key_start = start(key.span());
        let end = Node::Item(item).span().map(|s| s.end);
        let held = match (key_start, end) {
            (Some(a), Some(b)) => (a..b.max(a + 1)).contains(&offset),
            (Some(a), None) => key.span().is_some_and(|s| s.contains(&offset)) || a == offset,
            _ => false,
        };
        if held {
            return Some((here, key_start.unwrap_or(offset)));
        }
    }
    None
}

fn start(span: Option<Range<usize>>) -> Option<usize> {
    span.map(|s| s.start)
}

/// `stores[1]` → (`stores`, Some(1)); `remote` → (`remote`, None).
fn split_index(part: &str) -> (&str, Option<usize>) {
    match part.strip_suffix(']').and_then(|p| p.split_once('[')) {
        Some((name, i)) => match i.parse() {
            Ok(i) => (name, Some(i)),
            Err(_) => (part, None),
        },
        None => (part, None),
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_and_positions_translate_both_ways() {
        let text = "a = 1\n[[store]]\ntype = \"x\"\n[[store]]\n  type = \"y\"\n\
                    [store.primary]\nremote = [\"h\", \"i\"]\n";
        let s = Source::parse("f".into(), text).unwrap();
        let at = |path: &str| s.position_of(path).map(|o| line_col(text, o));
        assert_eq!(at("a"), Some((1, 1)));
        assert_eq!(at("store[1].type"), Some((5, 3)));
        assert_eq!(at("store[1].primary.remote"), Some((7, 1)));
        assert_eq!(at("store[1].primary.remote[1]"), Some((7, 16)));
        // A missing key: where its table is.
        assert_eq!(at("store[0].nope"), Some((2, 1)));
        let value = text.find("\"y\"").unwrap();
        assert_eq!(
            s.key_at(value).map(|(k, _)| k),
            Some("store[1].type".into())
        );
    }

    #[test]
    fn columns_count_characters() {
        assert_eq!(line_col("é = 1\nab", 8), (2, 2));
        assert_eq!(line_col("aé = 1", 3), (1, 3));
        // Inside a character: its start.
        assert_eq!(line_col("aé = 1", 2), (1, 2));
        assert_eq!(line_col("x", 99), (1, 2));
    }
}
