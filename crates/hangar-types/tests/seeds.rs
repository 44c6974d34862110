//! The JSON examples of the product guides (copied from the seeds into
//! `tests/fixtures/`): each parses, validates unchanged, and serializes back to
//! the same JSON value.

use hangar_types::parse_machine_config_document;
use serde_json::Value;

const FIXTURES: &[(&str, &str)] = &[
    (
        "seed_example_configuration.json",
        include_str!("fixtures/seed_example_configuration.json"),
    ),
    (
        "seed_cli_config.json",
        include_str!("fixtures/seed_cli_config.json"),
    ),
    (
        "seed_rate_limiter.json",
        include_str!("fixtures/seed_rate_limiter.json"),
    ),
    (
        "seed_litefs.json",
        include_str!("fixtures/seed_litefs.json"),
    ),
];

/// The config part of a fixture, as a plain JSON value.
fn config_value(text: &str) -> Value {
    let v: Value = serde_json::from_str(text).unwrap();
    match v.get("config") {
        Some(c) => c.clone(),
        None => v,
    }
}

#[test]
fn every_seed_example_round_trips_to_the_same_json() {
    for (name, text) in FIXTURES {
        let config = parse_machine_config_document(text)
            .unwrap_or_else(|e| panic!("{name} does not parse: {e}"));
        let echoed = serde_json::to_value(&config).unwrap();
        assert_eq!(echoed, config_value(text), "{name} is not echoed unchanged");
    }
}
