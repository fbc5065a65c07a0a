//! vpg's packet I/O: AF_PACKET interfaces (a TPACKET_V3 memory-mapped RX ring and a TPACKET_V2
//! mapped TX ring per interface and worker), the `af-packet-input` node, and network-namespace
//! helpers for tests.
//!
//! This crate keeps the socket and ring code, and its `unsafe`, away from the graph runtime, as
//! quinn keeps platform I/O in quinn-udp. Only [`afpacket`] contains `unsafe`.
//!
//! Wiring, per worker and interface:
//!
//! ```no_run
//! # fn wire(rt: &mut vpg_graph::Runtime, sw_if: u32) -> std::io::Result<()> {
//! use vpg_graph::{InterfaceOutput, INTERFACE_OUTPUT};
//! use vpg_io::{AfPacket, AfPacketInput, RingOptions, AF_PACKET_INPUT};
//!
//! let (rx, tx) = AfPacket::open("veth0", &RingOptions::default())?.split();
//! if let Some(n) = rt.node_mut::<AfPacketInput>(AF_PACKET_INPUT) {
//!     n.add_interface(sw_if, rx);
//! }
//! if let Some(o) = rt.node_mut::<InterfaceOutput>(INTERFACE_OUTPUT) {
//!     o.set_device(sw_if, Some(Box::new(tx)));
//! }
//! # Ok(()) }
//! ```

pub mod afpacket;
pub mod input;
pub mod netns;

pub use afpacket::{
    open, AfPacket, AfPacketRx, AfPacketTx, PacketSocket, RingOptions, RxCounts, RxMeta, TxCounts,
    TxRefused,
};
pub use input::{AfPacketInput, AfPacketInputError, AfPacketTrace, AF_PACKET_INPUT};
