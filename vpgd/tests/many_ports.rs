//! A node with many pod interfaces: one transaction opens dozens of AF_PACKET ports (vpgd opens
//! them in parallel), a bad one refuses the whole transaction and leaves nothing open, deleting
//! them closes their rings off the workers while traffic on another interface goes on, and the
//! daemon still shuts down cleanly.

mod common;

use common::Vpgd;
use std::process::Command;
use vpg_io::netns::{self, NetNs};

const PORTS: usize = 48;

fn host_if(k: usize) -> String {
    format!("mp{:04x}{k:03}", std::process::id() & 0xffff)
}

/// Linux's view of how many packet sockets are open in the whole system (each port holds two
/// per worker).
fn packet_sockets() -> usize {
    std::fs::read_to_string("/proc/net/packet")
        .map(|s| s.lines().count().saturating_sub(1))
        .unwrap_or(0)
}

#[test]
fn many_ports_in_one_transaction_all_or_nothing() {
    if let Some(why) = netns::unavailable() {
        eprintln!("skipping many-ports test: {why}");
        return;
    }
    let node = NetNs::new("mpn").unwrap();
    let far = NetNs::new("mpf").unwrap();
    // The pods' ends stay in one namespace: only vpgd's ends matter here.
    for k in 0..PORTS {
        netns::veth(&format!("p{k}"), &far, &host_if(k), &node).unwrap();
    }
    // One interface that carries traffic through all of it.
    netns::veth("eth0", &far, "uplink0", &node).unwrap();
    far.exec(&["ip", "addr", "add", "10.77.0.2/24", "dev", "eth0"])
        .unwrap();
    let vpgd = Vpgd::start(
        node,
        1,
        "[afpacket]\nblock_size = 65536\nblock_count = 2\ntx_frames = 64\n\
         [[interface]]\nhost_if = \"uplink0\"\nname = \"up0\"\naddresses = [\"10.77.0.1/24\"]\n",
    );

    // A transaction of many ports with one missing host interface in the middle: refused,
    // naming that item, and nothing of it stays (no interface, no open ring).
    let sockets_before = packet_sockets();
    let mut items: Vec<String> = (0..PORTS)
        .map(|k| format!("- {{op: create_af_packet, host_if: {}}}", host_if(k)))
        .collect();
    items.insert(
        PORTS / 2,
        "- {op: create_af_packet, host_if: nosuchif9}".into(),
    );
    let file = vpgd.dir.join("txn.yaml");
    std::fs::write(&file, items.join("\n") + "\n").unwrap();
    let o = vpgd.ctl(&["apply", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains(&format!("item {}", PORTS / 2)) && err.contains("nosuchif9"),
        "{err}"
    );
    let ifs = vpgd.json(&["show", "interfaces"]);
    assert_eq!(
        ifs.as_array().map(Vec::len),
        Some(1),
        "only up0 is there: {ifs}"
    );
    // The rings opened for the refused transaction are closed (by the reaper, shortly).
    let t0 = std::time::Instant::now();
    while packet_sockets() > sockets_before && t0.elapsed().as_secs() < 30 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        packet_sockets() <= sockets_before,
        "sockets of the refused transaction closed"
    );

    // The same without the bad item applies whole, with consecutive indices.
    items.remove(PORTS / 2);
    std::fs::write(&file, items.join("\n") + "\n").unwrap();
    vpgd.ctl_ok(&["apply", file.to_str().unwrap()]);
    let ifs = vpgd.json(&["show", "interfaces"]);
    let names: Vec<String> = ifs
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["host_if"].as_str().unwrap_or_default().to_string())
        .collect();
    for k in 0..PORTS {
        assert!(names.contains(&host_if(k)), "{} in {names:?}", host_if(k));
    }

    // Traffic through up0 while every pod port is deleted: vpgd keeps answering. (First one
    // ping, so both sides know each other's MAC: vpgd drops the packet that makes it ARP.)
    far.exec(&["ping", "-c", "3", "-i", "0.2", "-w", "5", "10.77.0.1"])
        .unwrap();
    let pinger = Command::new("ip")
        .args([
            "netns",
            "exec",
            &far.name,
            "ping",
            "-q",
            "-c",
            "30",
            "-i",
            "0.05",
            "10.77.0.1",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let del: Vec<String> = ifs
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["name"] != "up0")
        .map(|i| format!("- {{op: delete_interface, sw_if: {}}}", i["sw_if"]))
        .collect();
    std::fs::write(&file, del.join("\n") + "\n").unwrap();
    vpgd.ctl_ok(&["apply", file.to_str().unwrap()]);
    let out = pinger.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(" 0% packet loss"), "{text}");
    // No reply waited for the closing rings. Closing them on the worker would hold it for the
    // kernel's grace periods of every socket in turn (seconds for this many); a busy machine
    // delays a reply by milliseconds.
    let max_rtt_ms: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("rtt min/avg/max/mdev = "))
        .and_then(|v| v.split('/').nth(2))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::MAX);
    eprintln!("ping while deleting {PORTS} ports: max rtt {max_rtt_ms} ms");
    assert!(max_rtt_ms < 1000.0, "{text}");
    assert_eq!(
        vpgd.json(&["show", "interfaces"]).as_array().map(Vec::len),
        Some(1)
    );
}
