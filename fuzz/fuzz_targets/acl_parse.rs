//! The ACL's parsers: the 5-tuple of an IPv4 packet and a ClassBench rule line. Neither may
//! panic on any input.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vpg_acl::acl_node::packet_key(data);
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(r) = vpg_acl::classbench::parse_rule(s) {
            assert!(r.src.0 <= r.src.1 && r.sport.0 <= r.sport.1);
        }
    }
});
