//! Reading typed values out of the spanned tree: each getter names the dotted
//! key and the position of what it rejects, and tables warn about keys Hangar
//! does not know.

use std::path::Path;

use hangar_types::Duration;
use serde_json::Value;

use crate::error::{FlyTomlError, Pos, Warning};
use crate::tree::{Entry, Kind, Node};

/// A value read from the fly.toml, with its dotted key and position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct At<T> {
    pub value: T,
    pub key: String,
    pub pos: Pos,
}

/// Parsing context: the file name for errors, and the warnings so far.
pub(crate) struct Cx<'a> {
    pub file: &'a Path,
    pub warnings: Vec<Warning>,
}

pub(crate) type R<T> = Result<T, FlyTomlError>;

impl Cx<'_> {
    pub fn err(&self, pos: Pos, key: &str, message: impl Into<String>) -> FlyTomlError {
        FlyTomlError::at(self.file, Some(pos), key, message)
    }

    fn warn(&mut self, pos: Pos, key: String, message: &str) {
        self.warnings.push(Warning {
            file: self.file.to_owned(),
            line: pos.line,
            column: pos.column,
            key,
            message: message.to_owned(),
        });
    }

    /// "expected X, found Y" at the node.
    pub fn expected(&self, node: &Node, key: &str, what: &str) -> FlyTomlError {
        self.err(
            node.pos,
            key,
            format!("expected {what}, found {}", node.kind.describe()),
        )
    }

    /// Open `node` as a table at `path`. `known` keys are read by the caller;
    /// `ignored` keys are valid fly.toml that Hangar does not act on. Every other
    /// key gets an "unknown key" warning.
    pub fn table<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        known: &[&str],
        ignored: &[&str],
    ) -> R<Tbl<'n>> {
        let Kind::Table(entries) = &node.kind else {
            return Err(self.expected(node, path, "a table"));
        };
        for e in entries {
            let key = join(path, &e.key);
            if ignored.contains(&e.key.as_str()) {
                self.warn(e.key_pos, key, "not used by hangar, ignored");
            } else if !known.contains(&e.key.as_str()) {
                self.warn(e.key_pos, key, "unknown key, ignored");
            }
        }
        Ok(Tbl {
            entries,
            path: path.to_owned(),
            pos: node.pos,
        })
    }
}

/// `a.b` from `a` and `b`; `b` alone at the root.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// A table being read.
pub(crate) struct Tbl<'n> {
    pub entries: &'n [Entry],
    pub path: String,
    pub pos: Pos,
}

impl<'n> Tbl<'n> {
    pub fn get(&self, key: &str) -> Option<&'n Entry> {
        self.entries.iter().find(|e| e.key == key)
    }

    pub fn key(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// An error about a key that should be in this table but is not.
    pub fn missing(&self, cx: &Cx<'_>, key: &str, message: &str) -> FlyTomlError {
        cx.err(self.pos, &self.key(key), message)
    }

    pub fn str(&self, cx: &Cx<'_>, key: &str) -> R<Option<At<String>>> {
        let Some(e) = self.get(key) else {
            return Ok(None);
        };
        match &e.node.kind {
            Kind::Str(s) => Ok(Some(At {
                value: s.clone(),
                key: self.key(key),
                pos: e.node.pos,
            })),
            _ => Err(cx.expected(&e.node, &self.key(key), "a string")),
        }
    }

    pub fn string(&self, cx: &Cx<'_>, key: &str) -> R<Option<String>> {
        Ok(self.str(cx, key)?.map(|a| a.value))
    }

    pub fn int(&self, cx: &Cx<'_>, key: &str) -> R<Option<At<i64>>> {
        let Some(e) = self.get(key) else {
            return Ok(None);
        };
        match &e.node.kind {
            Kind::Int(n) => Ok(Some(At {
                value: *n,
                key: self.key(key),
                pos: e.node.pos,
            })),
            _ => Err(cx.expected(&e.node, &self.key(key), "an integer")),
        }
    }

    /// An integer that must be at least `min`.
    pub fn int_min(&self, cx: &Cx<'_>, key: &str, min: i64) -> R<Option<i64>> {
        match self.int(cx, key)? {
            Some(a) if a.value < min => Err(cx.err(
                a.pos,
                &a.key,
                format!("must be at least {min} (got {})", a.value),
            )),
            other => Ok(other.map(|a| a.value)),
        }
    }

    pub fn bool(&self, cx: &Cx<'_>, key: &str) -> R<Option<bool>> {
        let Some(e) = self.get(key) else {
            return Ok(None);
        };
        match &e.node.kind {
            Kind::Bool(b) => Ok(Some(*b)),
            _ => Err(cx.expected(&e.node, &self.key(key), "a boolean")),
        }
    }

    /// A TCP/UDP port, 1–65535.
    pub fn port(&self, cx: &Cx<'_>, key: &str) -> R<Option<i64>> {
        match self.int(cx, key)? {
            Some(a) if !(1..=65535).contains(&a.value) => Err(cx.err(
                a.pos,
                &a.key,
                format!("port {} is outside 1-65535", a.value),
            )),
            other => Ok(other.map(|a| a.value)),
        }
    }

    /// A duration: a Go-style string (`"10s"`, `"1m30s"`) or an integer number
    /// of seconds. Returned as the JSON the Machines API takes, as written.
    pub fn duration(&self, cx: &Cx<'_>, key: &str) -> R<Option<Value>> {
        let Some(e) = self.get(key) else {
            return Ok(None);
        };
        let k = self.key(key);
        match &e.node.kind {
            Kind::Str(s) => match Duration::parse(s) {
                Ok(_) => Ok(Some(Value::String(s.clone()))),
                Err(_) => Err(cx.err(
                    e.node.pos,
                    &k,
                    format!(
                        "invalid duration {s:?} (expected a number and a unit, like \"10s\", \"500ms\" or \"1m30s\")"
                    ),
                )),
            },
            Kind::Int(n) if *n < 0 => Err(cx.err(
                e.node.pos,
                &k,
                format!("a duration cannot be negative (got {n})"),
            )),
            Kind::Int(n) => Ok(Some(Value::from(*n))),
            _ => Err(cx.expected(
                &e.node,
                &k,
                "a duration (a string like \"10s\", or seconds)",
            )),
        }
    }

    /// An array of strings.
    pub fn strings(&self, cx: &Cx<'_>, key: &str) -> R<Option<At<Vec<At<String>>>>> {
        let Some(e) = self.get(key) else {
            return Ok(None);
        };
        let k = self.key(key);
        let Kind::Array(items) = &e.node.kind else {
            return Err(cx.expected(&e.node, &k, "an array of strings"));
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, n) in items.iter().enumerate() {
            let ik = format!("{k}[{i}]");
            match &n.kind {
                Kind::Str(s) => out.push(At {
                    value: s.clone(),
                    key: ik,
                    pos: n.pos,
                }),
                _ => return Err(cx.expected(n, &ik, "a string")),
            }
        }
        Ok(Some(At {
            value: out,
            key: k,
            pos: e.node.pos,
        }))
    }

    /// The `processes = [...]` of a section (empty: every group).
    pub fn processes(&self, cx: &Cx<'_>) -> R<Vec<At<String>>> {
        Ok(self
            .strings(cx, "processes")?
            .map(|a| a.value)
            .unwrap_or_default())
    }

    /// A sub-table.
    pub fn node(&self, key: &str) -> Option<&'n Node> {
        self.get(key).map(|e| &e.node)
    }

    /// An array of tables at `key` (`[[x]]` or `x = [{...}]`); a single table
    /// (`[x]`) is read as an array of one. Yields each node with its key path.
    pub fn tables(&self, cx: &Cx<'_>, key: &str) -> R<Vec<(String, &'n Node)>> {
        let Some(e) = self.get(key) else {
            return Ok(Vec::new());
        };
        let k = self.key(key);
        match &e.node.kind {
            Kind::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, n) in items.iter().enumerate() {
                    let ik = format!("{k}[{i}]");
                    if !matches!(n.kind, Kind::Table(_)) {
                        return Err(cx.expected(n, &ik, "a table"));
                    }
                    out.push((ik, n));
                }
                Ok(out)
            }
            Kind::Table(_) => Ok(vec![(k, &e.node)]),
            _ => Err(cx.expected(&e.node, &k, "an array of tables")),
        }
    }
}

/// The JSON form of a TOML value (for option tables passed through as written).
pub(crate) fn to_json(node: &Node) -> Value {
    match &node.kind {
        Kind::Str(s) | Kind::Datetime(s) => Value::String(s.clone()),
        Kind::Int(n) => Value::from(*n),
        Kind::Float(f) => Value::from(*f),
        Kind::Bool(b) => Value::Bool(*b),
        Kind::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Kind::Table(entries) => Value::Object(
            entries
                .iter()
                .map(|e| (e.key.clone(), to_json(&e.node)))
                .collect(),
        ),
    }
}
