//! Feeds arbitrary bytes to the packet views as an Ethernet frame and walks every header.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vpg_graph::wire::walk(data);
});
