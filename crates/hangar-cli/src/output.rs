//! What commands print: aligned tables for people, pretty JSON for scripts
//! (`--json`), and small helpers to read fields out of API answers.

use serde_json::Value;

/// A table with a header row; columns are padded to their widest cell.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, one line per row, without trailing spaces.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                if i >= widths.len() {
                    widths.push(0);
                }
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, c) in r.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(c);
                let pad = widths[i].saturating_sub(c.chars().count());
                line.extend(std::iter::repeat_n(' ', pad));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    pub fn print(&self) {
        print!("{}", self.render());
    }
}

/// Prints a JSON value, pretty.
/// Prints the array at `key` of an API answer: as JSON with `json`, else as
/// a table of `columns` (header, JSON pointer into each item).
pub fn print_list(answer: &Value, key: &str, json: bool, columns: &[(&str, &str)]) {
    let list = answer
        .get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if json {
        print_json(&Value::Array(list));
        return;
    }
    let header: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
    let mut t = Table::new(&header);
    for item in &list {
        t.row(columns.iter().map(|(_, p)| field(item, p)).collect());
    }
    t.print();
}

pub fn print_json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

/// `v[key]` as text: strings as they are, other values as JSON, absent as "".
pub fn field(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The image a machine runs: `config.image`, else its containers' images.
pub fn machine_image(m: &Value) -> String {
    if let Some(i) = m.pointer("/config/image").and_then(Value::as_str) {
        return i.to_owned();
    }
    m.pointer("/config/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("image").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// The process group of a machine (`metadata.fly_process_group`), "app" when
/// it has none, as flyctl does.
pub fn process_group(m: &Value) -> String {
    m.pointer("/config/metadata/fly_process_group")
        .and_then(Value::as_str)
        .unwrap_or("app")
        .to_owned()
}

/// Whether a machine is a standby for another (`config.standbys`).
pub fn is_standby(m: &Value) -> bool {
    m.pointer("/config/standbys")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_columns() {
        let mut t = Table::new(&["ID", "STATE"]);
        t.row(vec!["abc".into(), "started".into()]);
        t.row(vec!["a".into(), "".into()]);
        assert_eq!(t.render(), "ID   STATE\nabc  started\na\n");
    }

    #[test]
    fn machine_fields() {
        let m = json!({"config": {"containers": [{"image": "a"}, {"image": "b"}],
                                   "metadata": {"fly_process_group": "web"}}});
        assert_eq!(machine_image(&m), "a,b");
        assert_eq!(process_group(&m), "web");
        assert_eq!(process_group(&json!({})), "app");
        assert!(!is_standby(&m));
        assert_eq!(field(&json!({"a": {"b": 3}}), "/a/b"), "3");
    }
}
