//! Parsing and planning never panic, whatever prefix of a real fly.toml they
//! are given: every outcome is a plan or an error with a message.

mod common;

use common::fixture;
use hangar_fly_toml::FlyToml;

#[test]
fn every_prefix_of_the_seed_files_parses_or_errors_cleanly() {
    let mut errors = 0;
    let mut plans = 0;
    for name in ["seed002.toml", "seed003.toml", "seed000/fly.toml"] {
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
