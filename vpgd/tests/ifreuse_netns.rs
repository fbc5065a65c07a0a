//! Pod churn on a real node: a pod's AF_PACKET interface is deleted, a new pod's veth is
//! attached and takes the freed index (below an interface that stays), traffic flows through
//! it, and its counters start from zero rather than from the old pod's.

mod common;

use common::Vpgd;
use vpg_io::netns::{self, NetNs};

/// The interface named `name` in `show interfaces --json`.
fn interface(v: &serde_json::Value, name: &str) -> serde_json::Value {
    v.as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no interface {name} in {v}"))
}

#[test]
fn a_new_pod_takes_a_deleted_pods_index_and_counts_from_zero() {
    if let Some(why) = netns::unavailable() {
        eprintln!("skipping interface reuse namespace test: {why}");
        return;
    }
    let node = NetNs::new("irn").unwrap();
    // Pods 0, 1 and 2 at start; pod 3 comes after pod 1 is gone.
    let pods: Vec<NetNs> = (0..4).map(|_| NetNs::new("irp").unwrap()).collect();
    let host: Vec<String> = (0..4).map(|k| netns::unique(&format!("ir{k}"))).collect();
    for (k, p) in pods.iter().enumerate() {
        netns::veth("eth0", p, &host[k], &node).unwrap();
        p.exec(&[
            "ip",
            "addr",
            "add",
            &format!("10.61.{k}.2/24"),
            "dev",
            "eth0",
        ])
        .unwrap();
        p.exec(&[
            "ip",
            "route",
            "add",
            "default",
            "via",
            &format!("10.61.{k}.1"),
        ])
        .unwrap();
    }
    let mut body = String::new();
    for (k, h) in host.iter().enumerate().take(3) {
        body.push_str(&format!(
            "[[interface]]\nhost_if = \"{h}\"\nname = \"pod{k}\"\naddresses = [\"10.61.{k}.1/24\"]\n"
        ));
    }
    let vpgd = Vpgd::start(node, 1, &body);
    assert!(pods[0].ping("10.61.1.2", 3) >= 2, "pod0 -> pod1");
    let ifs = vpgd.json(&["show", "interfaces"]);
    let old = interface(&ifs, "pod1");
    assert_eq!(old["sw_if"], 1);
    let old_rx = old["counters"]["rx_packets"].as_u64().unwrap();
    assert!(old_rx >= 2, "{old}");

    // Pod 1 goes, pod 3 comes: the lowest free index is pod 1's, below pod 2's.
    vpgd.ctl_ok(&["delete", "pod1"]);
    vpgd.ctl_ok(&["create", "af-packet", &host[3], "--name", "pod3"]);
    let ifs = vpgd.json(&["show", "interfaces"]);
    let new = interface(&ifs, "pod3");
    assert_eq!(new["sw_if"], 1, "{ifs}");
    for f in ["rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "drops"] {
        assert_eq!(new["counters"][f], 0, "{f} of a new interface: {new}");
    }
    assert_eq!(new["addresses"].as_array().map(Vec::len), Some(0), "{new}");
    vpgd.ctl_ok(&["address", "add", "pod3", "10.61.3.1/24"]);
    vpgd.ctl_ok(&["set", "pod3", "state", "up"]);

    // Traffic through the reused index, and only its own in its counters.
    let replies = pods[0].ping("10.61.3.2", 5);
    assert!(replies >= 4, "pod0 -> pod3: {replies} of 5");
    assert_eq!(pods[0].ping("10.61.1.2", 1), 0, "pod1 is gone");
    let ifs = vpgd.json(&["show", "interfaces"]);
    let new = interface(&ifs, "pod3");
    let (rx, tx) = (
        new["counters"]["rx_packets"].as_u64().unwrap(),
        new["counters"]["tx_packets"].as_u64().unwrap(),
    );
    // The echo replies and pod 3's ARP, and as many out: a few more at most, never pod 1's.
    assert!(
        (u64::from(replies)..=u64::from(replies) + 6).contains(&rx),
        "rx {rx}: {new}"
    );
    assert!(tx >= u64::from(replies), "tx {tx}: {new}");
    // Pod 2 kept its index and still works.
    assert_eq!(interface(&ifs, "pod2")["sw_if"], 2);
    assert!(pods[0].ping("10.61.2.2", 2) >= 1, "pod0 -> pod2");
}
