//! `vpg-cni`: vpg's CNI plugin (docs/cni.md).
//!
//! A runtime (containerd, CRI-O) runs the binary with the command and the attachment in `CNI_*`
//! environment variables and the network configuration on stdin. ADD creates a veth pair whose
//! pod end (`CNI_IFNAME` in `CNI_NETNS`) gets a /32 address from the node's pod CIDR and a
//! default route via the gateway vpg answers for, and whose host end is left, up and
//! unaddressed, in the namespace where vpgd runs; it then writes a pod record that vpg-agent
//! reads to attach the host end to vpgd. DEL undoes it and is idempotent; CHECK compares the
//! attachment with the ADD result; VERSION, STATUS and GC complete the CNI 1.1 protocol.
//!
//! | module | what |
//! |---|---|
//! | [`config`] | the network configuration and its validation |
//! | [`env`](mod@env) | the `CNI_*` variables |
//! | [`error`] | CNI error codes and the error JSON |
//! | [`ipam`] | host-local IPAM: one file per address |
//! | [`state`] | the data directory's lock, pod records, host interface names |
//! | [`netns`] | running work inside a namespace given by path |
//! | [`link`] | interface configuration through iproute2 and ethtool |
//! | [`plugin`] | the commands |

pub mod config;
pub mod env;
pub mod error;
pub mod ipam;
pub mod link;
pub mod netns;
pub mod plugin;
pub mod state;

pub use plugin::{run, Reply};
