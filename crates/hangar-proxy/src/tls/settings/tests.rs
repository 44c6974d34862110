//! How `tls_options` (and the port's handlers) become TLS settings.

use hangar_types::config::TlsOptions;
use serde_json::json;

use super::TlsSettings;

fn options(v: serde_json::Value) -> TlsOptions {
    serde_json::from_value(v).unwrap()
}

fn protocols(s: &TlsSettings) -> Vec<&str> {
    s.alpn
        .iter()
        .map(|p| std::str::from_utf8(p).unwrap())
        .collect()
}

#[test]
fn without_options_http_ports_offer_h2_then_http1_and_raw_ports_nothing() {
    let http = TlsSettings::of(None, true);
    assert_eq!(protocols(&http), ["h2", "http/1.1"]);
    assert!(http.tls12 && http.tls13 && !http.default_self_signed);
    let raw = TlsSettings::of(None, false);
    assert!(raw.alpn.is_empty());
    assert!(raw.tls12 && raw.tls13);
    // Options without `alpn` keep the default of the handlers.
    let o = options(json!({"versions": ["TLSv1.3"]}));
    assert_eq!(
        protocols(&TlsSettings::of(Some(&o), true)),
        ["h2", "http/1.1"]
    );
    assert!(TlsSettings::of(Some(&o), false).alpn.is_empty());
}

#[test]
fn alpn_is_offered_as_listed_skipping_empty_names() {
    let o = options(json!({"alpn": ["http/1.1", "", "h2"]}));
    assert_eq!(
        protocols(&TlsSettings::of(Some(&o), true)),
        ["http/1.1", "h2"]
    );
    let o = options(json!({"alpn": ["h2"]}));
    assert_eq!(protocols(&TlsSettings::of(Some(&o), false)), ["h2"]);
    // An empty list offers nothing, even with the http handler.
    let o = options(json!({"alpn": []}));
    assert!(TlsSettings::of(Some(&o), true).alpn.is_empty());
}

#[test]
fn versions_pick_tls12_or_tls13_in_any_case_and_unknown_ones_allow_both() {
    let one = |v: serde_json::Value| {
        let s = TlsSettings::of(Some(&options(json!({ "versions": v }))), true);
        (s.tls12, s.tls13)
    };
    assert_eq!(one(json!(["TLSv1.3"])), (false, true));
    assert_eq!(one(json!(["tlsv1.2"])), (true, false));
    assert_eq!(one(json!(["TLSv1.2", "TLSv1.3"])), (true, true));
    assert_eq!(one(json!(["TLSv1.1", "TLSv1.3"])), (false, true));
    assert_eq!(one(json!(["TLSv1.0"])), (true, true));
    assert_eq!(one(json!([])), (true, true));
}

#[test]
fn default_self_signed_only_when_true_and_equal_options_make_equal_settings() {
    let on = options(json!({"default_self_signed": true}));
    let off = options(json!({"default_self_signed": false}));
    assert!(TlsSettings::of(Some(&on), true).default_self_signed);
    assert!(!TlsSettings::of(Some(&off), true).default_self_signed);
    assert_eq!(
        TlsSettings::of(Some(&off), true),
        TlsSettings::of(None, true)
    );
    assert_ne!(
        TlsSettings::of(Some(&on), true),
        TlsSettings::of(None, true)
    );
}
