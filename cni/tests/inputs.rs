//! Arbitrary input never panics the parsers: bytes and JSON-shaped text as the configuration,
//! arbitrary strings as `CNI_*` variables. Each is either accepted or a CNI error whose code is
//! one the spec or docs/cni.md defines.

use proptest::prelude::*;
use std::collections::HashMap;
use vpg_cni::config::NetConf;
use vpg_cni::env::{Command, Env, PodArgs};

const CODES: [u32; 13] = [1, 2, 3, 4, 5, 6, 7, 11, 50, 100, 101, 102, 103];

/// JSON-ish configurations: the real keys with values of any type, so parsing goes past the
/// first field.
fn conf_text() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just("null".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        "[0-9./a-z]{0,20}".prop_map(|s| format!("\"{s}\"")),
        Just("\"10.1.1.0/24\"".to_string()),
        Just("\"1.0.0\"".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("[{\"containerID\":1}]".to_string()),
    ];
    let key = prop_oneof![
        Just("cniVersion"),
        Just("name"),
        Just("type"),
        Just("podCIDR"),
        Just("gateway"),
        Just("mtu"),
        Just("dataDir"),
        Just("hostNetns"),
        Just("prevResult"),
        Just("cni.dev/valid-attachments"),
    ];
    proptest::collection::vec((key, value), 0..10).prop_map(|kv| {
        let body: Vec<String> = kv.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", body.join(","))
    })
}

proptest! {
    #[test]
    fn configuration_bytes(b in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Err(e) = NetConf::parse(&b) {
            prop_assert!(CODES.contains(&e.code.number()));
        }
    }

    #[test]
    fn configuration_fields(s in conf_text()) {
        match NetConf::parse(s.as_bytes()) {
            Ok(c) => prop_assert!(c.pod_cidr.contains(c.gateway)),
            Err(e) => prop_assert!(CODES.contains(&e.code.number()) && !e.msg.is_empty()),
        }
    }

    #[test]
    fn environment(cmd in ".{0,8}", id in ".{0,20}", ifname in ".{0,20}", netns in ".{0,20}", args in ".{0,40}") {
        let m: HashMap<&str, String> = [
            ("CNI_COMMAND", cmd), ("CNI_CONTAINERID", id), ("CNI_IFNAME", ifname),
            ("CNI_NETNS", netns), ("CNI_ARGS", args.clone()),
        ].into_iter().collect();
        let get = |k: &str| m.get(k).cloned();
        let _ = Command::from_env(&get);
        if let Ok(e) = Env::from_env(&get, true) {
            prop_assert!(!e.ifname.is_empty() && e.ifname.len() <= 15);
            prop_assert!(!e.container_id.contains('/'));
        }
        let _ = PodArgs::parse(&args);
    }

    #[test]
    fn version_probe_answers_any_stdin(b in proptest::collection::vec(any::<u8>(), 0..64)) {
        let r = vpg_cni::run(&|k| (k == "CNI_COMMAND").then(|| "VERSION".to_string()), &b);
        prop_assert!(r.error.is_none());
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        prop_assert!(v["supportedVersions"].is_array());
    }
}
