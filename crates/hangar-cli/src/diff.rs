//! A line diff of two JSON documents, shown before `machine update` as seed
//! 004 shows it: changed lines as `-`/`+`, a few lines of context, and long
//! unchanged stretches folded into `... // N identical lines`.

use serde_json::Value;

/// Lines of context kept around each change.
const CONTEXT: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op<'a> {
    Same(&'a str),
    Removed(&'a str),
    Added(&'a str),
}

/// Longest-common-subsequence diff of two line lists (configs are small).
fn ops<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<Op<'a>> {
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push(Op::Same(a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(Op::Removed(a[i]));
            i += 1;
        } else {
            out.push(Op::Added(b[j]));
            j += 1;
        }
    }
    out
}

/// The diff of two texts; empty when they are equal.
pub fn diff_text(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let ops = ops(&a, &b);
    if ops.iter().all(|o| matches!(o, Op::Same(_))) {
        return String::new();
    }
    // Which lines to show: changes and CONTEXT lines either side.
    let mut show = vec![false; ops.len()];
    for (k, o) in ops.iter().enumerate() {
        if !matches!(o, Op::Same(_)) {
            let lo = k.saturating_sub(CONTEXT);
            let hi = (k + CONTEXT + 1).min(ops.len());
            show[lo..hi].iter_mut().for_each(|s| *s = true);
        }
    }
    let mut out = String::new();
    let mut hidden = 0;
    for (k, o) in ops.iter().enumerate() {
        if !show[k] {
            hidden += 1;
            continue;
        }
        if hidden > 0 {
            out.push_str(&format!("... // {hidden} identical lines\n"));
            hidden = 0;
        }
        let line = match o {
            Op::Same(l) => format!("  {l}"),
            Op::Removed(l) => format!("- {l}"),
            Op::Added(l) => format!("+ {l}"),
        };
        out.push_str(&line);
        out.push('\n');
    }
    if hidden > 0 {
        out.push_str(&format!("... // {hidden} identical lines\n"));
    }
    out
}

/// The diff of two JSON values, pretty-printed.
pub fn diff_json(old: &Value, new: &Value) -> String {
    let p = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
    diff_text(&p(old), &p(new))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_documents_have_no_diff() {
        assert_eq!(diff_json(&json!({"a": 1}), &json!({"a": 1})), "");
    }

    #[test]
    fn a_changed_field_shows_old_and_new_with_context() {
        let mut old = json!({"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6,
                             "guest": {"cpus": 1, "memory_mb": 256}});
        let new = {
            old["guest"]["memory_mb"] = json!(512);
            old.clone()
        };
        old["guest"]["memory_mb"] = json!(256);
        let d = diff_json(&old, &new);
        assert!(d.starts_with("... // 6 identical lines\n"), "{d}");
        assert!(
            d.contains("-     \"memory_mb\": 256\n+     \"memory_mb\": 512\n"),
            "{d}"
        );
        assert!(d.contains("      \"cpus\": 1,\n"), "{d}");
    }
}
