//! vpg's packet I/O: AF_PACKET interfaces (a TPACKET_V3 memory-mapped RX ring and a mapped TX
//! ring per socket), the `af-packet-input` node, and network-namespace helpers for tests.
//!
//! This crate confines the socket and ring code (and its `unsafe`) away from the graph runtime,
//! as quinn keeps platform I/O in quinn-udp.

pub mod afpacket;
pub mod input;
pub mod netns;

pub use afpacket::{open, AfPacketRx, AfPacketTx, RingOptions};
pub use input::{AfPacketInput, AF_PACKET_INPUT};
