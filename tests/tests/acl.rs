//! The ACL nodes in the graph with the packet generator: stateless permit/deny, reflective
//! sessions, timeouts on the injected clock, a full session table, and ACL replace while traffic
//! flows.

use std::time::Duration;
use vpg_acl::tables::SessionConfig;
use vpg_acl::{Acl, Action, PortRange, Rule};
use vpg_tests::{tcp_frame, udp_frame, Harness};

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0xb];
const HOST_A: [u8; 6] = [0x02, 0, 0, 0, 1, 0xa];
const HOST_B: [u8; 6] = [0x02, 0, 0, 0, 1, 0xb];
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

/// Interface 0: the "pod" 10.0.1.2 behind 10.0.1.1/24; interface 1: the outside host 10.0.2.2.
fn two_hosts() -> Harness {
    let mut h = Harness::new();
    h.add_interface(0, MAC_A, "10.0.1.1/24");
    h.add_interface(1, MAC_B, "10.0.2.1/24");
    h.add_neighbor(0, "10.0.1.2", HOST_A);
    h.add_neighbor(1, "10.0.2.2", HOST_B);
    h
}

fn tcp_dport(port: u16, action: Action) -> Rule {
    Rule {
        proto: 6,
        dport: PortRange::one(port),
        ..Rule::any(action)
    }
}

fn acl(id: u32, rules: Vec<Rule>) -> Acl {
    Acl {
        id,
        tag: format!("acl-{id}"),
        rules,
    }
}

/// A → B TCP from port `sport` to `dport` with `flags`, entering on interface 0.
fn a_to_b(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    tcp_frame(
        MAC_A,
        HOST_A,
        ("10.0.1.2", sport),
        ("10.0.2.2", dport),
        flags,
    )
}

/// B → A, entering on interface 1.
fn b_to_a(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    tcp_frame(
        MAC_B,
        HOST_B,
        ("10.0.2.2", sport),
        ("10.0.1.2", dport),
        flags,
    )
}

#[test]
fn stateless_permit_deny_and_hit_counters() {
    let mut h = two_hosts();
    h.acl
        .add_replace(acl(
            1,
            vec![tcp_dport(22, Action::Deny), tcp_dport(80, Action::Permit)],
        ))
        .unwrap();
    h.set_acls(1, false, vec![1]);
    h.send(0, vec![a_to_b(1000, 22, SYN); 3]);
    assert!(h.captured(1).is_empty(), "port 22 denied");
    h.send(0, vec![a_to_b(1000, 80, SYN); 5]);
    assert_eq!(h.captured(1).len(), 5, "port 80 permitted");
    h.send(
        0,
        vec![udp_frame(MAC_A, HOST_A, "10.0.1.2", "10.0.2.2", 64, b"x"); 2],
    );
    assert!(h.captured(1).is_empty(), "no rule matched: implicit deny");
    assert_eq!(h.error("acl-out-ip4", "deny"), 3);
    assert_eq!(h.error("acl-out-ip4", "permit"), 5);
    assert_eq!(h.error("acl-out-ip4", "no-match"), 2);
    assert_eq!(h.acl.get(1).unwrap().hits, vec![3, 5]);
    // The other direction and the other interface are untouched.
    h.send(1, vec![b_to_a(22, 1000, SYN)]);
    assert_eq!(h.captured(0).len(), 1);
    // Input ACLs see packets before the lookup.
    h.set_acls(0, true, vec![1]);
    h.send(0, vec![a_to_b(1000, 22, SYN)]);
    assert!(h.captured(1).is_empty());
    assert_eq!(h.error("acl-in-ip4", "deny"), 1);
}

/// The reflect scenario of ../shared/DESIGN.md §3: a pod's own connection creates a session on
/// its input; the reply passes the pod's output ACL, which would deny it; an unsolicited packet
/// from outside is denied.
fn reflective_pod(h: &mut Harness) {
    h.acl
        .add_replace(acl(10, vec![Rule::any(Action::PermitReflect)]))
        .unwrap();
    h.acl
        .add_replace(acl(20, vec![tcp_dport(8080, Action::Permit)]))
        .unwrap();
    h.set_acls(0, true, vec![10]);
    h.set_acls(0, false, vec![20]);
}

#[test]
fn reflect_lets_replies_through_and_denies_unsolicited() {
    let mut h = two_hosts();
    reflective_pod(&mut h);
    h.trace_add("pg-input", 10);
    h.send(0, vec![a_to_b(40000, 80, SYN)]);
    assert_eq!(h.captured(1).len(), 1, "SYN out passes");
    h.send(1, vec![b_to_a(80, 40000, SYN | ACK)]);
    assert_eq!(
        h.captured(0).len(),
        1,
        "SYN-ACK back passes on the session: {:?}",
        h.errors()
    );
    h.send(1, vec![b_to_a(80, 40001, SYN)]);
    assert!(h.captured(0).is_empty(), "unsolicited: denied");
    h.send(1, vec![b_to_a(5555, 8080, SYN)]);
    assert_eq!(h.captured(0).len(), 1, "the output ACL still permits 8080");
    assert_eq!(h.error("acl-in-ip4", "session-created"), 1);
    assert_eq!(h.error("acl-out-ip4", "session-hit"), 1);
    assert_eq!(h.error("acl-out-ip4", "no-match"), 1);
    let trace = h.trace();
    assert!(trace.contains("acl 10 rule 0: permit+reflect"), "{trace}");
    assert!(trace.contains("session 0 hit, permit"), "{trace}");
    assert!(trace.contains("no rule matched: deny"), "{trace}");
}

#[test]
fn sessions_expire_on_the_injected_clock() {
    let mut h = two_hosts();
    reflective_pod(&mut h);
    let udp_out = udp_frame(MAC_A, HOST_A, "10.0.1.2", "10.0.2.2", 64, b"q");
    // udp_frame uses ports 1234 -> 5678; the reply swaps them.
    let reply = {
        let s = etherparse::PacketBuilder::ethernet2(HOST_B, MAC_B)
            .ipv4([10, 0, 2, 2], [10, 0, 1, 2], 64)
            .udp(5678, 1234);
        let mut v = Vec::new();
        s.write(&mut v, b"r").unwrap();
        v
    };
    h.send(0, vec![udp_out]);
    assert_eq!(h.captured(1).len(), 1);
    h.now = h.now + Duration::from_secs(599);
    h.send(1, vec![reply.clone()]);
    assert_eq!(
        h.captured(0).len(),
        1,
        "within 600 s: passes (and refreshes)"
    );
    h.now = h.now + Duration::from_secs(599);
    h.send(1, vec![reply.clone()]);
    assert_eq!(h.captured(0).len(), 1, "refreshed by the reply");
    h.now = h.now + Duration::from_secs(601);
    h.send(1, vec![reply]);
    assert!(h.captured(0).is_empty(), "expired after 600 s idle");
    assert_eq!(h.error("acl-out-ip4", "session-expired"), 1);

    // TCP: transient 120 s until both SYNs, then established (24 h).
    h.send(0, vec![a_to_b(40000, 80, SYN)]);
    h.send(1, vec![b_to_a(80, 40000, SYN | ACK)]);
    assert_eq!(h.captured(0).len(), 1);
    h.now = h.now + Duration::from_secs(3600);
    h.send(1, vec![b_to_a(80, 40000, ACK)]);
    assert_eq!(h.captured(0).len(), 1, "established: alive after an hour");
    h.send(0, vec![a_to_b(40001, 80, SYN)]);
    h.now = h.now + Duration::from_secs(121);
    h.send(1, vec![b_to_a(80, 40001, SYN | ACK)]);
    assert!(h.captured(0).is_empty(), "half-open: expired after 120 s");
}

#[test]
fn full_session_table_denies_new_sessions_and_counts() {
    let mut h = two_hosts();
    reflective_pod(&mut h);
    h.acl
        .set_sessions(SessionConfig {
            max_per_worker: 2,
            ..SessionConfig::default()
        })
        .unwrap();
    h.commit();
    h.send(
        0,
        vec![a_to_b(1, 80, SYN), a_to_b(2, 80, SYN), a_to_b(3, 80, SYN)],
    );
    assert_eq!(h.captured(1).len(), 2);
    assert_eq!(h.error("acl-in-ip4", "session-limit"), 1);
    // Existing sessions keep working.
    h.send(1, vec![b_to_a(80, 1, SYN | ACK), b_to_a(80, 3, SYN | ACK)]);
    assert_eq!(h.captured(0).len(), 1);
    // After they expire, there is room again.
    h.now = h.now + Duration::from_secs(121);
    h.send(0, vec![a_to_b(3, 80, SYN)]);
    assert_eq!(h.captured(1).len(), 1);
    assert_eq!(h.error("acl-in-ip4", "session-limit"), 1);
}

#[test]
fn replace_while_traffic_flows_and_sessions_survive_unless_reclassified() {
    let mut h = two_hosts();
    h.acl
        .add_replace(acl(1, vec![Rule::any(Action::PermitReflect)]))
        .unwrap();
    h.set_acls(0, true, vec![1]);
    let mut passed = 0;
    for round in 0..20u16 {
        // Every 5 rounds the ACL flips between reflect-all and deny port 80 (new flows only).
        if round % 5 == 0 {
            let rules = if round % 10 == 0 {
                vec![
                    tcp_dport(80, Action::Deny),
                    Rule::any(Action::PermitReflect),
                ]
            } else {
                vec![Rule::any(Action::PermitReflect)]
            };
            h.acl.add_replace(acl(1, rules)).unwrap();
            h.commit();
        }
        h.send(
            0,
            vec![
                a_to_b(2000 + round, 80, SYN),
                a_to_b(2000 + round, 443, SYN),
            ],
        );
        passed += h.captured(1).len();
    }
    // Rounds 0-4 and 10-14 deny port 80: 10 denied, 30 passed.
    assert_eq!(passed, 30);
    assert_eq!(h.error("acl-in-ip4", "deny"), 10);

    // An established session survives a replace that would deny it...
    h.acl
        .add_replace(acl(1, vec![Rule::any(Action::PermitReflect)]))
        .unwrap();
    h.commit();
    h.send(0, vec![a_to_b(3000, 22, SYN)]);
    h.acl
        .add_replace(acl(1, vec![tcp_dport(22, Action::Deny)]))
        .unwrap();
    h.commit();
    h.send(0, vec![a_to_b(3000, 22, ACK)]);
    assert_eq!(h.captured(1).len(), 2, "session kept across the replace");
    // ...unless reclassification is on.
    h.acl
        .set_sessions(SessionConfig {
            reclassify: true,
            ..SessionConfig::default()
        })
        .unwrap();
    h.commit();
    h.send(0, vec![a_to_b(3000, 22, ACK)]);
    assert!(h.captured(1).is_empty(), "reclassified and denied");
    assert_eq!(h.error("acl-in-ip4", "reclassified"), 1);
}

#[test]
fn malformed_l4_is_counted_not_classified() {
    let mut h = two_hosts();
    h.acl
        .add_replace(acl(1, vec![Rule::any(Action::Permit)]))
        .unwrap();
    h.set_acls(0, true, vec![1]);
    // A TCP packet cut after the IP header: ip4-input accepts it (lengths consistent), the ACL
    // cannot read ports.
    let mut f = a_to_b(1, 2, SYN);
    f.truncate(14 + 20 + 2);
    f[14 + 2..14 + 4].copy_from_slice(&22u16.to_be_bytes());
    let ck = {
        f[14 + 10] = 0;
        f[14 + 11] = 0;
        let mut s = 0u32;
        for c in f[14..34].chunks(2) {
            s += u16::from_be_bytes([c[0], c[1]]) as u32;
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    };
    f[14 + 10..14 + 12].copy_from_slice(&ck.to_be_bytes());
    h.send(0, vec![f]);
    assert!(h.captured(1).is_empty());
    assert_eq!(h.error("acl-in-ip4", "too-short"), 1, "{:?}", h.errors());
}
