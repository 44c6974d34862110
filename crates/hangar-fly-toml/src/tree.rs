//! The fly.toml as a tree of values that each know their line and column,
//! built from toml_edit's spanned document. Everything after parsing reads
//! this tree, so every error can point at the text.

use toml_edit::{Array, ArrayOfTables, Document, InlineTable, Item, Table, Value};

use crate::error::Pos;

/// A value and where it starts.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub kind: Kind,
    pub pos: Pos,
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Datetime(String),
    Array(Vec<Node>),
    Table(Vec<Entry>),
}

/// One `key = value` of a table.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub node: Node,
}

impl Kind {
    /// "a string", "an integer", …: how error messages name what was found.
    pub fn describe(&self) -> &'static str {
        match self {
            Kind::Str(_) => "a string",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a float",
            Kind::Bool(_) => "a boolean",
            Kind::Datetime(_) => "a date-time",
            Kind::Array(_) => "an array",
            Kind::Table(_) => "a table",
        }
    }
}

/// Byte offsets to line and column.
pub(crate) struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines { text, starts }
    }

    pub fn pos(&self, offset: usize) -> Pos {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line - 1];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count())
            + 1;
        Pos { line, column }
    }

    /// The byte offset of a position (the inverse of [`Lines::pos`]).
    pub fn offset(&self, pos: Pos) -> usize {
        let Some(&start) = self.starts.get(pos.line.saturating_sub(1)) else {
            return self.text.len();
        };
        self.text[start..]
            .char_indices()
            .nth(pos.column.saturating_sub(1))
            .map_or(self.text.len(), |(i, _)| start + i)
    }

    /// Where the `{` of inline JSON starts inside the TOML string value that
    /// begins at `value`: past the quotes, the newline a multi-line string
    /// drops, and leading whitespace. `None` if the string holds no `{`.
    pub fn inline_json_start(&self, value: Pos) -> Option<Pos> {
        let at = self.offset(value);
        let rest = &self.text[at..];
        let quote = ["'''", "\"\"\"", "'", "\""]
            .into_iter()
            .find(|q| rest.starts_with(q))?;
        let body = &rest[quote.len()..];
        let skip = body.len() - body.trim_start().len();
        if !body[skip..].starts_with('{') {
            return None;
        }
        Some(self.pos(at + quote.len() + skip))
    }

    fn span(&self, span: Option<std::ops::Range<usize>>, fallback: Pos) -> Pos {
        span.map_or(fallback, |r| self.pos(r.start))
    }
}

/// Build the tree of a parsed document.
pub(crate) fn from_document(doc: &Document<&str>, lines: &Lines<'_>) -> Node {
    let start = Pos { line: 1, column: 1 };
    Node {
        kind: Kind::Table(table_entries(doc.as_table(), lines, start)),
        pos: start,
    }
}

fn table_entries(t: &Table, lines: &Lines<'_>, fallback: Pos) -> Vec<Entry> {
    t.iter()
        .map(|(k, item)| {
            let key_pos = lines.span(t.key(k).and_then(|k| k.span()), fallback);
            Entry {
                key: k.to_owned(),
                key_pos,
                node: item_node(item, lines, key_pos),
            }
        })
        .collect()
}

fn inline_entries(t: &InlineTable, lines: &Lines<'_>, fallback: Pos) -> Vec<Entry> {
    t.iter()
        .map(|(k, v)| {
            let key_pos = lines.span(t.key(k).and_then(|k| k.span()), fallback);
            Entry {
                key: k.to_owned(),
                key_pos,
                node: value_node(v, lines, key_pos),
            }
        })
        .collect()
}

fn item_node(item: &Item, lines: &Lines<'_>, fallback: Pos) -> Node {
    match item {
        Item::Value(v) => value_node(v, lines, fallback),
        Item::Table(t) => table_node(t, lines, fallback),
        Item::ArrayOfTables(a) => tables_node(a, lines, fallback),
        // `Item::None` never comes out of the parser; an empty table stands in.
        Item::None => Node {
            kind: Kind::Table(Vec::new()),
            pos: fallback,
        },
    }
}

fn table_node(t: &Table, lines: &Lines<'_>, fallback: Pos) -> Node {
    let pos = lines.span(t.span(), fallback);
    Node {
        kind: Kind::Table(table_entries(t, lines, pos)),
        pos,
    }
}

fn tables_node(a: &ArrayOfTables, lines: &Lines<'_>, fallback: Pos) -> Node {
    let items: Vec<Node> = a.iter().map(|t| table_node(t, lines, fallback)).collect();
    let pos = items.first().map_or(fallback, |n| n.pos);
    Node {
        kind: Kind::Array(items),
        pos,
    }
}

fn array_node(a: &Array, lines: &Lines<'_>, pos: Pos) -> Kind {
    Kind::Array(a.iter().map(|v| value_node(v, lines, pos)).collect())
}

fn value_node(v: &Value, lines: &Lines<'_>, fallback: Pos) -> Node {
    let pos = lines.span(v.span(), fallback);
    let kind = match v {
        Value::String(s) => Kind::Str(s.value().clone()),
        Value::Integer(i) => Kind::Int(*i.value()),
        Value::Float(f) => Kind::Float(*f.value()),
        Value::Boolean(b) => Kind::Bool(*b.value()),
        Value::Datetime(d) => Kind::Datetime(d.value().to_string()),
        Value::Array(a) => array_node(a, lines, pos),
        Value::InlineTable(t) => Kind::Table(inline_entries(t, lines, pos)),
    };
    Node { kind, pos }
}
