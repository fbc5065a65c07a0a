//! vpg-agent's status socket: what `vpg-agent status` and `vpgctl show policy|node` ask the
//! running agent, and the documents it answers with. It is not vpgd's API (no framing, no
//! handshake): the client connects, writes one request line, and reads one JSON document until
//! the agent closes the connection.
//!
//! | request line | answer |
//! |---|---|
//! | `status` (or nothing: a client that writes no line gets it after a short wait) | the agent's state and counters (`vpg-agent status --json`) |
//! | `policy` | [`PolicyView`]: every table, its ACL in vpgd, pods, interfaces, rules with provenance |
//! | `pod NAMESPACE/NAME` | [`PodPolicyView`]: the tables that apply to one local pod, in each direction |
//! | `node` | [`NodeView`]: everything the agent configured, grouped, each with its reason |
//!
//! A request the agent cannot answer (an unknown word, a pod it does not have, no applied
//! state yet) gets `{"error": "..."}`. New fields may be added to the documents; clients ignore
//! fields they do not know (nothing here denies unknown fields).

use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::acl::AclRule;

/// Where the agent serves its status unless configured otherwise.
pub const DEFAULT_SOCKET: &str = "/run/vpg/agent.sock";

/// How long a query waits for the agent's answer.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// One request on the status socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentRequest {
    /// State and counters.
    Status,
    /// Every policy table.
    Policy,
    /// The tables of one pod, `namespace/name`.
    Pod(String),
    /// Everything configured on the node.
    Node,
}

impl AgentRequest {
    /// The request line, newline included.
    pub fn line(&self) -> String {
        match self {
            AgentRequest::Status => "status\n".into(),
            AgentRequest::Policy => "policy\n".into(),
            AgentRequest::Pod(p) => format!("pod {p}\n"),
            AgentRequest::Node => "node\n".into(),
        }
    }

    /// Parses a request line (surrounding white space ignored; an empty line is `status`).
    pub fn parse(line: &str) -> Result<AgentRequest, String> {
        let mut w = line.split_whitespace();
        let req = match (w.next(), w.next()) {
            (None | Some("status"), None) => AgentRequest::Status,
            (Some("policy"), None) => AgentRequest::Policy,
            (Some("node"), None) => AgentRequest::Node,
            (Some("pod"), Some(p)) if p.contains('/') => AgentRequest::Pod(p.to_string()),
            (Some("pod"), _) => return Err("pod needs NAMESPACE/NAME".into()),
            _ => {
                return Err(format!(
                    "unknown request {:?} (status, policy, pod NAMESPACE/NAME, node)",
                    line.trim()
                ))
            }
        };
        if w.next().is_some() {
            return Err(format!("unexpected words in {:?}", line.trim()));
        }
        Ok(req)
    }
}

/// The answer to a request the agent cannot serve.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentError {
    /// What is wrong.
    pub error: String,
}

/// Which rule list of a NetworkPolicy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyDirection {
    /// `spec.ingress`.
    Ingress,
    /// `spec.egress`.
    Egress,
}

/// A NetworkPolicy (and one of its rules) a table rule comes from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Origin {
    /// `namespace/name`.
    pub policy: String,
    /// Which rule list.
    pub direction: PolicyDirection,
    /// The rule's index in that list; absent for a deny that exists because the policy
    /// isolates the pod in this direction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<u32>,
}

impl std::fmt::Display for Origin {
    /// `default/web ingress[0]`, or `default/web ingress` for an isolation.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dir = match self.direction {
            PolicyDirection::Ingress => "ingress",
            PolicyDirection::Egress => "egress",
        };
        match self.rule {
            Some(i) => write!(f, "{} {dir}[{i}]", self.policy),
            None => write!(f, "{} {dir}", self.policy),
        }
    }
}

/// Why a rule is in its table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleRole {
    /// A permit of the destination pod's ingress rules.
    Ingress,
    /// A permit of a local pod's egress rules (in a local table: met with the destination's
    /// ingress rules).
    Egress,
    /// A deny ending what an isolated pod may do.
    Isolation,
    /// A permit-all no policy asked for (pods not isolated for ingress; the global table's end).
    Default,
}

impl RuleRole {
    /// The word the JSON uses.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleRole::Ingress => "ingress",
            RuleRole::Egress => "egress",
            RuleRole::Isolation => "isolation",
            RuleRole::Default => "default",
        }
    }
}

/// One rule of a table, as vpgd holds it, with its provenance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRule {
    /// Its index in the table (the ACL's rule index: `vpgctl show acl` hit counters).
    pub index: u32,
    /// The rule.
    pub rule: AclRule,
    /// Why it is there.
    pub role: RuleRole,
    /// For a section's rules: the local egress-isolated pod whose connections it decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The policies (and rules) it comes from; empty for `default`.
    #[serde(default)]
    pub origins: Vec<Origin>,
}

/// Local (one per set of pods with identical rules) or the node's one global table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TableKind {
    /// On the output of the pods carrying it.
    Local,
    /// On the output of the uplink and the tunnels.
    Global,
}

/// A policy table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyTable {
    /// Table id (`lt-…`, `gt-…`; the ACL's tag in vpgd).
    pub id: String,
    /// Local or global.
    pub kind: TableKind,
    /// The ACL holding it in vpgd; absent when it is not installed (a permit-all global table,
    /// a local table whose pods have no interface yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl_id: Option<u32>,
    /// Pods carrying it (`namespace/name`; empty for the global table).
    #[serde(default)]
    pub pods: Vec<String>,
    /// vpgd interfaces whose output carries it.
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// Rules in evaluation order (in a pod's view, only those that concern the pod; `index`
    /// keeps their place in the whole table).
    pub rules: Vec<TableRule>,
}

/// Every policy table of the node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyView {
    /// The node.
    pub node: String,
    /// The reflective permit-all ACL on the input of isolated pods, uplink and tunnels, when
    /// installed (replies of permitted connections pass through its sessions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reflect_acl_id: Option<u32>,
    /// Local tables by id, then the global table.
    pub tables: Vec<PolicyTable>,
    /// Policies left out because they are invalid, with why.
    #[serde(default)]
    pub errors: Vec<String>,
}

/// The tables that apply to one local pod.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodPolicyView {
    /// The node.
    pub node: String,
    /// `namespace/name`.
    pub pod: String,
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its vpgd interface, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Policies isolating it for ingress.
    #[serde(default)]
    pub ingress_policies: Vec<String>,
    /// Policies isolating it for egress.
    #[serde(default)]
    pub egress_policies: Vec<String>,
    /// Connections to the pod: its local table with this pod's own provenance (absent: it
    /// accepts every connection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_pod: Option<PolicyTable>,
    /// Connections from the pod: the global table's rules that can match them (leaving the
    /// node), then its sections in other local pods' tables.
    #[serde(default)]
    pub from_pod: Vec<PolicyTable>,
}

/// One configured object and why it is there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeObject {
    /// What it is (`interface up0`, `route 10.1.2.0/24`, `nat44 mapping 10.96.0.10:80/tcp`).
    pub name: String,
    /// Its configuration in one line.
    #[serde(default)]
    pub detail: String,
    /// Why the agent configured it.
    pub reason: String,
}

/// Everything the agent configured on the node, grouped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    /// The node.
    pub node: String,
    /// The agent's sync state (`in-sync`, `vpgd-down`, …).
    pub state: String,
    /// When this configuration was last applied or confirmed (RFC 3339 UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<String>,
    /// The uplink, its address and default route.
    #[serde(default)]
    pub uplink: Vec<NodeObject>,
    /// Pod interfaces.
    #[serde(default)]
    pub pods: Vec<NodeObject>,
    /// VXLAN tunnels to other nodes.
    #[serde(default)]
    pub tunnels: Vec<NodeObject>,
    /// Routes.
    #[serde(default)]
    pub routes: Vec<NodeObject>,
    /// NAT44 pool, identities and never-NAT prefixes.
    #[serde(default)]
    pub nat44: Vec<NodeObject>,
    /// Service mappings (NAT44 static mappings).
    #[serde(default)]
    pub services: Vec<NodeObject>,
    /// ACLs.
    #[serde(default)]
    pub acls: Vec<NodeObject>,
    /// ESP SAs and protection.
    #[serde(default)]
    pub esp: Vec<NodeObject>,
    /// Anything else the agent configured.
    #[serde(default)]
    pub other: Vec<NodeObject>,
    /// What was left out of the desired state, and why.
    #[serde(default)]
    pub notes: Vec<String>,
    /// Pod interfaces left out after vpgd refused them.
    #[serde(default)]
    pub excluded: Vec<String>,
}

impl NodeView {
    /// The groups in display order, with their titles.
    pub fn groups(&self) -> [(&'static str, &[NodeObject]); 9] {
        [
            ("uplink", &self.uplink),
            ("pods", &self.pods),
            ("tunnels", &self.tunnels),
            ("routes", &self.routes),
            ("nat44", &self.nat44),
            ("services", &self.services),
            ("acls", &self.acls),
            ("esp", &self.esp),
            ("other", &self.other),
        ]
    }
}

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Nothing answers on the socket. (The error is in the message, not a source: callers
    /// print chains and would repeat it.)
    #[error("{socket}: {error} (is vpg-agent running with this status socket?)")]
    Connect {
        /// The socket.
        socket: String,
        /// The error.
        error: std::io::Error,
    },
    /// The connection failed midway.
    #[error("{socket}: {error}")]
    Io {
        /// The socket.
        socket: String,
        /// The error.
        error: std::io::Error,
    },
    /// The agent answered with an error.
    #[error("vpg-agent: {0}")]
    Agent(String),
    /// The answer is not the expected document (an agent of another version?).
    #[error("{socket}: unexpected answer: {reason}")]
    Decode {
        /// The socket.
        socket: String,
        /// The decoding error.
        reason: String,
    },
}

/// Sends `req` to the agent listening on `socket` and decodes its answer.
pub fn query<T: DeserializeOwned>(socket: &Path, req: &AgentRequest) -> Result<T, QueryError> {
    let name = socket.display().to_string();
    let io = |error| QueryError::Io {
        socket: name.clone(),
        error,
    };
    let mut c =
        std::os::unix::net::UnixStream::connect(socket).map_err(|error| QueryError::Connect {
            socket: name.clone(),
            error,
        })?;
    c.set_read_timeout(Some(QUERY_TIMEOUT)).map_err(io)?;
    c.write_all(req.line().as_bytes()).map_err(io)?;
    let mut body = Vec::new();
    c.read_to_end(&mut body).map_err(io)?;
    decode(&name, &body)
}

/// Decodes an answer: the document, or the agent's `{"error": ...}`.
pub fn decode<T: DeserializeOwned>(socket: &str, body: &[u8]) -> Result<T, QueryError> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| QueryError::Decode {
        socket: socket.to_string(),
        reason: e.to_string(),
    })?;
    if let Some(e) = v
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.get("error"))
    {
        return Err(QueryError::Agent(
            e.as_str().map_or_else(|| e.to_string(), str::to_string),
        ));
    }
    serde_json::from_value(v).map_err(|e| QueryError::Decode {
        socket: socket.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_round_trip() {
        for r in [
            AgentRequest::Status,
            AgentRequest::Policy,
            AgentRequest::Node,
            AgentRequest::Pod("default/web".into()),
        ] {
            assert_eq!(AgentRequest::parse(&r.line()), Ok(r));
        }
        assert_eq!(AgentRequest::parse(""), Ok(AgentRequest::Status));
        assert_eq!(
            AgentRequest::parse("  policy \r\n"),
            Ok(AgentRequest::Policy)
        );
        assert!(AgentRequest::parse("pod web")
            .unwrap_err()
            .contains("NAMESPACE/NAME"));
        assert!(AgentRequest::parse("tables")
            .unwrap_err()
            .contains("unknown request"));
        assert!(AgentRequest::parse("node x").is_err());
    }

    #[test]
    fn answers_decode_or_name_the_agent_s_error() {
        let e = decode::<PolicyView>("s", br#"{"error": "no pod default/x on node n1"}"#);
        assert_eq!(
            e.unwrap_err().to_string(),
            "vpg-agent: no pod default/x on node n1"
        );
        let e = decode::<PolicyView>("s", b"not json").unwrap_err();
        assert!(e.to_string().starts_with("s: unexpected answer"), "{e}");
        let v: PolicyView =
            decode("s", br#"{"node": "n1", "tables": [], "future_field": 1}"#).unwrap();
        assert_eq!(v.node, "n1");
    }

    #[test]
    fn origin_text() {
        let o = Origin {
            policy: "default/web".into(),
            direction: PolicyDirection::Ingress,
            rule: Some(2),
        };
        assert_eq!(o.to_string(), "default/web ingress[2]");
        let o = Origin { rule: None, ..o };
        assert_eq!(o.to_string(), "default/web ingress");
    }
}
