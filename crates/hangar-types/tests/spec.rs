//! The types held to the OpenAPI spec (a copy in `tests/fixtures/`):
//!
//! - the spec's `example` values of the schemas Hangar models round-trip
//!   unchanged (as JSON values, so modulo whitespace);
//! - every property of every modeled schema is a field Hangar knows: an object
//!   with all properties set parses with nothing left over in `extra` and
//!   serializes back to the same value.

use hangar_types::app::{
    App, AppOrganizationInfo, CreateAppRequest, CreateAppResponse, ListAppsResponse,
};
use hangar_types::config::*;
use hangar_types::error::ErrorResponse;
use hangar_types::lease::{CreateLeaseRequest, Lease};
use hangar_types::machine::{
    CheckStatus, CreateMachineRequest, ExecRequest, ExecResponse, ImageRef, ListenSocket, Machine,
    MachineEvent, MachineVersion, ProcessStat, SignalRequest, StopRequest, StrippedLease,
    UpdateMachineRequest, UpdateMetadataRequest, WaitMachineResponse,
};
use hangar_types::secret::{
    AppSecret, AppSecrets, AppSecretsUpdateRequest, AppSecretsUpdateResponse,
    DeleteAppSecretResponse, SetAppSecretRequest, SetAppSecretResponse,
};
use hangar_types::token::{
    CreateAppDeployTokenRequest, CreateAppDeployTokenResponse, CurrentTokenResponse, TokenInfo,
};
use hangar_types::volume::{
    CreateVolumeRequest, ExtendVolumeRequest, ExtendVolumeResponse, UpdateVolumeRequest, Volume,
    VolumeSnapshot,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

fn spec() -> Value {
    serde_json::from_str(include_str!("fixtures/machines-openapi.json")).unwrap()
}

fn schema<'a>(spec: &'a Value, name: &str) -> &'a Value {
    &spec["components"]["schemas"][name]
}

fn resolve<'a>(spec: &'a Value, prop: &'a Value) -> &'a Value {
    let r = prop
        .get("$ref")
        .or_else(|| prop.get("allOf").and_then(|a| a[0].get("$ref")));
    match r.and_then(Value::as_str) {
        Some(r) => schema(spec, r.trim_start_matches("#/components/schemas/")),
        None => prop,
    }
}

/// A value for one property: its example, else its first enum value, else a
/// small value of its type.
fn sample(spec: &Value, prop: &Value) -> Value {
    if let Some(e) = prop.get("example") {
        return e.clone();
    }
    let target = resolve(spec, prop);
    if let Some(first) = target.get("enum").and_then(|e| e.get(0)) {
        return first.clone();
    }
    match target.get("type").and_then(Value::as_str) {
        Some("string") => json!("x"),
        Some("integer") => json!(1),
        Some("number") => json!(0.5),
        Some("boolean") => json!(true),
        Some("array") => json!([]),
        _ => match target.get("additionalProperties") {
            Some(ap) if ap.get("type") == Some(&json!("string")) => json!({"k": "v"}),
            Some(_) => json!({"k": {}}),
            None => json!({}),
        },
    }
}

/// An object with every property of `name` set.
fn full_object(spec: &Value, name: &str, overrides: Value) -> Value {
    let mut obj = Map::new();
    for (k, prop) in schema(spec, name)["properties"].as_object().unwrap() {
        obj.insert(k.clone(), sample(spec, prop));
    }
    for (k, v) in overrides.as_object().unwrap() {
        obj.insert(k.clone(), v.clone());
    }
    Value::Object(obj)
}

fn round_trip<T: DeserializeOwned + Serialize>(what: &str, v: &Value) -> T {
    let parsed: T = serde_json::from_value(v.clone())
        .unwrap_or_else(|e| panic!("{what}: does not parse {v}: {e}"));
    let back = serde_json::to_value(&parsed).unwrap();
    assert_eq!(&back, v, "{what}: not echoed unchanged");
    parsed
}

#[test]
fn spec_examples_round_trip() {
    let spec = spec();
    let mut seen = 0;
    // Every modeled schema with property examples.
    for name in [
        "StopRequest",
        "fly.MachineCheck",
        "fly.MachineServiceCheck",
        "fly.StopConfig",
    ] {
        let mut obj = Map::new();
        for (k, prop) in schema(&spec, name)["properties"].as_object().unwrap() {
            if let Some(e) = prop.get("example") {
                obj.insert(k.clone(), e.clone());
            }
        }
        assert!(!obj.is_empty(), "{name} has examples");
        let v = Value::Object(obj);
        match name {
            "StopRequest" => {
                let r: StopRequest = round_trip(name, &v);
                assert_eq!(r.signal.unwrap().number(), Some(15));
                assert_eq!(r.timeout.unwrap().as_std().as_secs(), 1);
            }
            "fly.StopConfig" => {
                let s: StopConfig = round_trip(name, &v);
                assert_eq!(s.timeout_or_default().as_secs(), 10);
            }
            _ => {
                let c: Check = round_trip(name, &v);
                assert_eq!(c.interval.unwrap().as_std().as_secs(), 15);
            }
        }
        seen += 1;
    }
    assert_eq!(seen, 4);
}

/// Parse a full object of a request/config schema: nothing may be left in `extra`.
macro_rules! no_extra {
    ($spec:expr, $name:literal, $ty:ty) => {{
        let v = full_object(&$spec, $name, json!({}));
        let parsed: $ty = round_trip($name, &v);
        assert!(
            parsed.extra.is_empty(),
            "{}: fields not modeled: {:?}",
            $name,
            parsed.extra.keys().collect::<Vec<_>>()
        );
    }};
}

#[test]
fn every_config_and_request_property_is_modeled() {
    let s = spec();
    no_extra!(s, "fly.MachineConfig", MachineConfig);
    no_extra!(s, "fly.ContainerConfig", ContainerConfig);
    no_extra!(s, "fly.ContainerDependency", DependsOn);
    no_extra!(s, "fly.ContainerHealthcheck", HealthCheck);
    no_extra!(s, "fly.HTTPHealthcheck", HttpProbe);
    no_extra!(s, "fly.TCPHealthcheck", TcpProbe);
    no_extra!(s, "fly.ExecHealthcheck", ExecProbe);
    no_extra!(s, "fly.MachineHTTPHeader", HttpHeader);
    no_extra!(s, "fly.File", File);
    no_extra!(s, "fly.EnvFrom", EnvFrom);
    no_extra!(s, "fly.MachineSecret", MachineSecret);
    no_extra!(s, "fly.MachineGuest", GuestConfig);
    no_extra!(s, "fly.MachineInit", MachineInit);
    no_extra!(s, "fly.MachineMount", Mount);
    no_extra!(s, "fly.MachineProcess", MachineProcess);
    no_extra!(s, "fly.DNSConfig", DnsConfig);
    no_extra!(s, "fly.dnsOption", DnsOption);
    no_extra!(s, "fly.dnsForwardRule", DnsForwardRule);
    no_extra!(s, "fly.MachineMetrics", MachineMetrics);
    no_extra!(s, "fly.Static", Static);
    no_extra!(s, "fly.MachineRootfs", Rootfs);
    no_extra!(s, "fly.MachineCacheDrive", CacheDrive);
    no_extra!(s, "fly.MachineSpot", Spot);
    no_extra!(s, "fly.MachineRestart", RestartPolicy);
    no_extra!(s, "fly.StopConfig", StopConfig);
    no_extra!(s, "fly.MachineService", MachineService);
    no_extra!(s, "fly.MachinePort", MachinePort);
    no_extra!(s, "fly.HTTPOptions", HttpOptions);
    no_extra!(s, "fly.HTTPResponseOptions", HttpResponseOptions);
    no_extra!(s, "fly.ReplayCache", ReplayCache);
    no_extra!(s, "fly.TLSOptions", TlsOptions);
    no_extra!(s, "fly.ProxyProtoOptions", ProxyProtoOptions);
    no_extra!(s, "fly.MachineServiceConcurrency", Concurrency);
    no_extra!(s, "fly.MachineCheck", Check);
    no_extra!(s, "fly.MachineServiceCheck", Check);
    no_extra!(s, "CreateMachineRequest", CreateMachineRequest);
    no_extra!(s, "UpdateMachineRequest", UpdateMachineRequest);
    no_extra!(s, "StopRequest", StopRequest);
    no_extra!(s, "SignalRequest", SignalRequest);
    no_extra!(s, "MachineExecRequest", ExecRequest);
    no_extra!(s, "updateMetadataRequest", UpdateMetadataRequest);
    no_extra!(s, "CreateAppRequest", CreateAppRequest);
    no_extra!(s, "CreateVolumeRequest", CreateVolumeRequest);
    no_extra!(s, "UpdateVolumeRequest", UpdateVolumeRequest);
    no_extra!(s, "ExtendVolumeRequest", ExtendVolumeRequest);
    no_extra!(s, "CreateLeaseRequest", CreateLeaseRequest);
    no_extra!(s, "AppSecretsUpdateRequest", AppSecretsUpdateRequest);
    no_extra!(s, "SetAppSecretRequest", SetAppSecretRequest);
}

#[test]
fn every_response_property_is_modeled() {
    let s = spec();
    // Responses have no `extra`: a property Hangar does not model would be
    // dropped, and the round trip would fail.
    let machine_id = json!({"id": "d8d9510a295118", "state": "started"});
    round_trip::<Machine>("Machine", &full_object(&s, "Machine", machine_id));
    round_trip::<MachineEvent>("MachineEvent", &full_object(&s, "MachineEvent", json!({})));
    round_trip::<MachineVersion>(
        "MachineVersion",
        &full_object(&s, "MachineVersion", json!({})),
    );
    round_trip::<ImageRef>("ImageRef", &full_object(&s, "ImageRef", json!({})));
    round_trip::<CheckStatus>("CheckStatus", &full_object(&s, "CheckStatus", json!({})));
    round_trip::<StrippedLease>(
        "StrippedLease",
        &full_object(&s, "StrippedLease", json!({})),
    );
    round_trip::<WaitMachineResponse>(
        "WaitMachineResponse",
        &full_object(&s, "WaitMachineResponse", json!({})),
    );
    round_trip::<ExecResponse>(
        "flydv1.ExecResponse",
        &full_object(&s, "flydv1.ExecResponse", json!({})),
    );
    round_trip::<ProcessStat>("ProcessStat", &full_object(&s, "ProcessStat", json!({})));
    round_trip::<ListenSocket>("ListenSocket", &full_object(&s, "ListenSocket", json!({})));
    round_trip::<App>("App", &full_object(&s, "App", json!({"name": "my-app"})));
    round_trip::<AppOrganizationInfo>(
        "AppOrganizationInfo",
        &full_object(&s, "AppOrganizationInfo", json!({})),
    );
    round_trip::<CreateAppResponse>(
        "CreateAppResponse",
        &full_object(&s, "CreateAppResponse", json!({})),
    );
    round_trip::<ListAppsResponse>(
        "ListAppsResponse",
        &full_object(&s, "ListAppsResponse", json!({})),
    );
    let vol = json!({"id": "vol_4y5mpg9ldnwzqe3v"});
    round_trip::<Volume>("Volume", &full_object(&s, "Volume", vol.clone()));
    let volume = full_object(&s, "Volume", vol);
    round_trip::<ExtendVolumeResponse>(
        "ExtendVolumeResponse",
        &full_object(&s, "ExtendVolumeResponse", json!({"volume": volume})),
    );
    round_trip::<VolumeSnapshot>(
        "VolumeSnapshot",
        &full_object(&s, "VolumeSnapshot", json!({})),
    );
    round_trip::<AppSecret>("AppSecret", &full_object(&s, "AppSecret", json!({})));
    round_trip::<AppSecrets>("AppSecrets", &full_object(&s, "AppSecrets", json!({})));
    round_trip::<AppSecretsUpdateResponse>(
        "AppSecretsUpdateResp",
        &full_object(&s, "AppSecretsUpdateResp", json!({})),
    );
    round_trip::<SetAppSecretResponse>(
        "SetAppSecretResponse",
        &full_object(&s, "SetAppSecretResponse", json!({})),
    );
    round_trip::<DeleteAppSecretResponse>(
        "DeleteAppSecretResponse",
        &full_object(&s, "DeleteAppSecretResponse", json!({})),
    );
    round_trip::<Lease>("Lease", &full_object(&s, "Lease", json!({})));
    round_trip::<ErrorResponse>(
        "ErrorResponse",
        &full_object(&s, "ErrorResponse", json!({})),
    );
    round_trip::<TokenInfo>(
        "main.tokenInfo",
        &full_object(&s, "main.tokenInfo", json!({})),
    );
    round_trip::<CurrentTokenResponse>(
        "CurrentTokenResponse",
        &full_object(&s, "CurrentTokenResponse", json!({})),
    );
    round_trip::<CreateAppDeployTokenRequest>(
        "CreateAppDeployTokenRequest",
        &full_object(&s, "CreateAppDeployTokenRequest", json!({})),
    );
    round_trip::<CreateAppDeployTokenResponse>(
        "CreateAppDeployTokenResponse",
        &full_object(&s, "CreateAppDeployTokenResponse", json!({})),
    );
}
