//! Parsing and planning never panic, whatever prefix of a real fly.toml they
//! are given: every outcome is a plan or an error with a message.

mod common;

use common::fixture;
use hangar_fly_toml::FlyToml;

#[test]
fn every_prefix_of_the_seed_files_parses_or_errors_cleanly() {
    let mut errors = 0;
    let mut plans = 0;
    for name in [
        "seed002.toml",
        "seed003.toml",
        "seed000/fly.toml",
        "seed000_inline/fly.toml",
    ] {
        let path = fixture(name);
        let text = std::fs::read_to_string(&path).unwrap();
        for end in (0..=text.len()).filter(|&i| text.is_char_boundary(i)) {
            match FlyToml::parse(&text[..end], &path) {
                Ok(t) => match t.plan("registry.local/app:1") {
                    Ok(p) => {
                        assert!(!p.is_empty());
                        plans += 1;
                    }
                    Err(e) => {
                        assert!(!e.message.is_empty());
                        errors += 1;
                    }
                },
                Err(e) => {
                    assert!(!e.message.is_empty());
                    assert!(e.line.is_some(), "{e}");
                    errors += 1;
                }
            }
        }
    }
    // Both outcomes happen: prefixes that cut a value in half fail, prefixes
    // that end between lines plan.
    assert!(plans > 10, "{plans}");
    assert!(errors > 10, "{errors}");
}

#[test]
fn deleting_any_one_character_parses_or_errors_cleanly() {
    let text = r#"app = 'a'
machine_config = '''{"containers": [{"name": "app", "image": "x"}]}'''
[[services]]
  internal_port = 8080
  [[services.ports]]
    port = 443
    handlers = ["tls", "http"]
[[vm]]
  memory = '1gb'
"#;
    let path = std::path::Path::new("fly.toml");
    let whole = FlyToml::parse(text, path).unwrap();
    assert_eq!(whole.plan("img").unwrap().len(), 1);
    let mut outcomes = [0usize; 2];
    for (i, c) in text.char_indices() {
        let mut cut = text.to_owned();
        cut.replace_range(i..i + c.len_utf8(), "");
        let result = FlyToml::parse(&cut, path).and_then(|t| t.plan("img"));
        if let Err(e) = &result {
            assert!(!e.message.is_empty());
        }
        outcomes[usize::from(result.is_ok())] += 1;
    }
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}
