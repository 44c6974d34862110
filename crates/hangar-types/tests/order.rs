//! Container start and stop order: chains, diamonds, independent containers,
//! and cycles named in the error.

use hangar_types::config::{ContainerConfig, DependencyCondition, DependsOn};
use hangar_types::{start_groups, stop_order};

fn c(name: &str, deps: &[&str]) -> ContainerConfig {
    let mut c = ContainerConfig::new(name, "img");
    if !deps.is_empty() {
        c.depends_on = Some(
            deps.iter()
                .map(|d| DependsOn::new(d, DependencyCondition::Started))
                .collect(),
        );
    }
    c
}

fn groups(v: &[&[&str]]) -> Vec<Vec<String>> {
    v.iter()
        .map(|g| g.iter().map(|s| s.to_string()).collect())
        .collect()
}

#[test]
fn chain_starts_one_by_one() {
    let cs = [c("web", &["app"]), c("app", &["db"]), c("db", &[])];
    assert_eq!(
        start_groups(&cs).unwrap(),
        groups(&[&["db"], &["app"], &["web"]])
    );
    assert_eq!(
        stop_order(&cs).unwrap(),
        groups(&[&["web"], &["app"], &["db"]])
    );
}

#[test]
fn diamond_starts_the_middle_together() {
    let cs = [
        c("top", &["left", "right"]),
        c("right", &["base"]),
        c("left", &["base"]),
        c("base", &[]),
    ];
    assert_eq!(
        start_groups(&cs).unwrap(),
        groups(&[&["base"], &["left", "right"], &["top"]])
    );
    assert_eq!(
        stop_order(&cs).unwrap(),
        groups(&[&["top"], &["left", "right"], &["base"]])
    );
}

#[test]
fn independent_containers_start_together_in_name_order() {
    let cs = [c("zeta", &[]), c("alpha", &[]), c("mid", &[])];
    assert_eq!(
        start_groups(&cs).unwrap(),
        groups(&[&["alpha", "mid", "zeta"]])
    );
}

#[test]
fn a_deep_dependency_waits_for_its_longest_path() {
    // d depends on a (level 0) and c (level 2): it starts at level 3.
    let cs = [
        c("a", &[]),
        c("b", &["a"]),
        c("c", &["b"]),
        c("d", &["a", "c"]),
    ];
    assert_eq!(
        start_groups(&cs).unwrap(),
        groups(&[&["a"], &["b"], &["c"], &["d"]])
    );
}

#[test]
fn names_derived_from_images_take_part() {
    let app = ContainerConfig {
        image: Some("registry.fly.io/my-app:latest".into()),
        ..Default::default()
    };
    let cs = [c("shipper", &["my-app"]), app];
    assert_eq!(
        start_groups(&cs).unwrap(),
        groups(&[&["my-app"], &["shipper"]])
    );
}

#[test]
fn cycles_are_named() {
    let cs = [c("a", &["b"]), c("b", &["a"]), c("free", &[])];
    let e = start_groups(&cs).unwrap_err();
    assert_eq!(e.cycle, ["a", "b", "a"]);
    assert_eq!(e.to_string(), "dependency cycle a → b → a");

    let cs = [
        c("x", &["y"]),
        c("y", &["z"]),
        c("z", &["x"]),
        c("w", &["x"]),
    ];
    assert_eq!(
        start_groups(&cs).unwrap_err().to_string(),
        "dependency cycle x → y → z → x"
    );
    assert_eq!(
        stop_order(&[c("solo", &["solo"])]).unwrap_err().to_string(),
        "dependency cycle solo → solo"
    );
}

#[test]
fn unknown_dependencies_are_left_to_validation() {
    let cs = [c("a", &["ghost"])];
    assert_eq!(start_groups(&cs).unwrap(), groups(&[&["a"]]));
}
