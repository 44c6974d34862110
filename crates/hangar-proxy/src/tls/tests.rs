//! The per-settings config cache and the self-signed certificates' cache.

use std::sync::Arc;

use super::{SELF_SIGNED_NAMES, TlsSettings, server_config};

#[test]
fn equal_settings_share_one_config_and_the_cache_is_bounded() {
    let setup = server_config(None, None, None, "localhost").unwrap();
    let configs = setup.configs;
    let http = TlsSettings::of(None, true);
    let raw = TlsSettings::of(None, false);
    let a = configs.get(&http).unwrap();
    assert!(Arc::ptr_eq(&a, &configs.get(&http).unwrap()));
    let b = configs.get(&raw).unwrap();
    assert!(!Arc::ptr_eq(&a, &b));
    assert_eq!(a.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
    assert!(b.alpn_protocols.is_empty());
    for n in 0..super::MAX_CONFIGS * 2 {
        let mut s = http.clone();
        s.alpn = vec![format!("proto-{n}").into_bytes()];
        configs.get(&s).unwrap();
        assert!(configs.len() <= super::MAX_CONFIGS);
    }
}

#[test]
fn self_signed_names_are_kept_up_to_the_bound_oldest_dropped_first() {
    let setup = server_config(None, None, None, "localhost").unwrap();
    let resolver = setup.configs.self_signed().clone();
    let default = setup.configs.sni().default_key().clone();
    // Names of the default certificate, and no name, get the default one.
    assert!(Arc::ptr_eq(&resolver.pick(Some("localhost")), &default));
    assert!(Arc::ptr_eq(&resolver.pick(None), &default));
    let first = resolver.pick(Some("n0.example.test"));
    assert!(!Arc::ptr_eq(&first, &default));
    assert!(Arc::ptr_eq(
        &first,
        &resolver.pick(Some("N0.example.test."))
    ));
    for n in 1..SELF_SIGNED_NAMES + 10 {
        resolver.pick(Some(&format!("n{n}.example.test")));
    }
    assert_eq!(resolver.kept(), SELF_SIGNED_NAMES);
    // The first name was dropped: it gets a new certificate.
    assert!(!Arc::ptr_eq(
        &first,
        &resolver.pick(Some("n0.example.test"))
    ));
}
