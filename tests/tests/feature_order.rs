//! The order of the features on vpgd's arcs: ESP decrypts first on input, then input ACLs, then
//! NAT (handoff before the NAT node); on output the ACLs see pod addresses before SNAT, and ESP
//! encrypts last.

use vpg_graph::{ArcId, GraphSpec};

#[test]
fn features_run_in_the_documented_order() {
    let mut g = GraphSpec::new();
    vpg_ip4::register(&mut g);
    vpg_acl::register(&mut g);
    vpg_vxlan::register(&mut g);
    vpg_nat44::register(&mut g);
    vpg_esp::register(&mut g);
    g.node(|| vpg_graph::pg::PgInput::new("ethernet-input"));
    let layout = g.build().unwrap();
    assert_eq!(
        layout.features(ArcId::Ip4Unicast),
        [
            "esp4-decrypt",
            "acl-in-ip4",
            "nat44-out2in-handoff",
            "nat44-out2in"
        ]
    );
    assert_eq!(
        layout.features(ArcId::Ip4Output),
        [
            "acl-out-ip4",
            "nat44-in2out-handoff",
            "nat44-in2out",
            "esp4-encrypt"
        ]
    );
}
