//! vpgd, the data-plane daemon: owns interfaces, buffer pools, workers and every data-plane
//! table, and serves the control API.

pub mod acl;
pub mod config;
pub mod daemon;
pub mod dataplane;
pub mod esp;
pub mod espseq;
pub mod nat44;
pub mod ports;
pub mod service;
pub mod vxlan;
