//! The agent's status: what `vpg-agent status` prints. The running agent serves it on a unix
//! socket (one request line, one JSON document, then close; `vpg_api::agent` has the protocol
//! and the policy and node views served beside it), so the command works whatever the agent is
//! doing, and a dead agent shows as "not running" rather than as stale numbers.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Where the agent stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncState {
    /// Not synced yet.
    #[default]
    Starting,
    /// The store has not delivered a first full view; nothing is applied before it.
    WaitingForStore,
    /// vpgd holds the desired state.
    InSync,
    /// vpgd cannot be reached; retrying (the data plane keeps what it has).
    VpgdDown,
    /// vpgd refused the last transaction; retrying with backoff.
    Refused,
}

impl SyncState {
    /// The word status prints.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Starting => "starting",
            SyncState::WaitingForStore => "waiting-for-store",
            SyncState::InSync => "in-sync",
            SyncState::VpgdDown => "vpgd-down",
            SyncState::Refused => "refused",
        }
    }
}

/// The store as the agent sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStatus {
    /// Which store.
    pub describe: String,
    /// Whether the last read or watch works.
    pub up: bool,
    /// Whether a first full list arrived (before that nothing is applied).
    pub ready: bool,
    /// The revision of the last change seen.
    pub revision: u64,
    /// Records held.
    pub records: usize,
    /// Full lists (start, and after every watch loss or outage).
    pub lists: u64,
    /// The last error.
    pub last_error: Option<String>,
}

/// Everything `vpg-agent status` shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// This node.
    pub node: String,
    /// Sync state.
    pub state: SyncState,
    /// vpgd's socket.
    pub vpgd_socket: String,
    /// Whether the agent holds a working connection to vpgd.
    pub vpgd_connected: bool,
    /// Connections made to vpgd (the first, then one per vpgd restart or outage).
    pub vpgd_connects: u64,
    /// The store.
    pub store: StoreStatus,
    /// Local pods with an interface.
    pub pods: usize,
    /// Tunnels to other nodes.
    pub tunnels: usize,
    /// Service mappings.
    pub services: usize,
    /// Local ACL tables.
    pub local_tables: usize,
    /// Resyncs done (vpgd dumped, diffed, and brought in line when needed).
    pub resyncs: u64,
    /// Transactions applied.
    pub transactions: u64,
    /// Configuration items applied, summed over transactions.
    pub changes_applied: u64,
    /// Failed resyncs (vpgd unreachable or refusing).
    pub failures: u64,
    /// When the last resync completed (RFC 3339 UTC).
    pub last_resync: Option<String>,
    /// When the last transaction was applied.
    pub last_change: Option<String>,
    /// Items of the last transaction, by kind (`add_route: 3`).
    pub last_transaction: BTreeMap<String, usize>,
    /// The last error.
    pub last_error: Option<String>,
    /// Pod interfaces left out after vpgd refused them.
    pub excluded: Vec<String>,
    /// What was left out of the desired state, and why.
    pub notes: Vec<String>,
    /// Every configured object and why it is there.
    pub objects: BTreeMap<String, String>,
    /// Encryption between nodes, when on.
    #[serde(default)]
    pub encryption: Option<EncryptionStatus>,
}

/// The encryption's keys and SAs (ids and fingerprints only, never a key).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptionStatus {
    /// The current key's id (none: no key in the store).
    pub key_id: Option<u8>,
    /// Its fingerprint.
    pub fingerprint: Option<String>,
    /// During a rotation: the previous key's id.
    pub previous_key_id: Option<u8>,
    /// The key outbound traffic uses now.
    pub outbound_key_id: Option<u8>,
    /// Milliseconds until outbound switches to the current key (during a rotation).
    pub switch_in_ms: Option<u64>,
    /// SAs in the desired state.
    pub sas: usize,
    /// Outbound SAs withheld because their key was used before by a vpgd that lost it (a
    /// restart) and vpgd has no record of its sequence numbers: reusing it would repeat
    /// AES-GCM nonces. A new key id ends this.
    pub withheld: usize,
    /// Outbound SAs installed again after a vpgd restart, continuing after the sequence
    /// numbers vpgd's sequence file reserved for their key.
    #[serde(default)]
    pub continued: usize,
    /// vpgd's sequence file (none: a vpgd restart withholds the keys it used until a rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpgd_sequence_file: Option<String>,
}

/// `t` as RFC 3339 UTC (`2024-02-29T23:59:59Z`).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (the proleptic Gregorian calendar in 400-year
    // eras of 146,097 days, March-based years so the leap day is last).
    let z = days + 719_468;
    let (era, doe) = (z / 146_097, z % 146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = era * 400 + yoe + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem / 60 % 60,
        rem % 60
    )
}

impl Status {
    /// The text `vpg-agent status` prints.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "never".into());
        let _ = writeln!(s, "node:          {}", self.node);
        let _ = writeln!(s, "state:         {}", self.state.as_str());
        let _ = writeln!(
            s,
            "vpgd:          {} ({}, {} connects)",
            self.vpgd_socket,
            if self.vpgd_connected {
                "connected"
            } else {
                "DOWN"
            },
            self.vpgd_connects
        );
        let st = &self.store;
        let _ = writeln!(
            s,
            "store:         {} ({}{}) revision {} records {} lists {}",
            st.describe,
            if st.up { "up" } else { "DOWN" },
            if st.ready { "" } else { ", not ready" },
            st.revision,
            st.records,
            st.lists
        );
        let _ = writeln!(
            s,
            "node objects:  {} pods, {} tunnels, {} service mappings, {} local tables, {} objects",
            self.pods,
            self.tunnels,
            self.services,
            self.local_tables,
            self.objects.len()
        );
        let _ = writeln!(s, "last resync:   {}", opt(&self.last_resync));
        let _ = writeln!(s, "last change:   {}", opt(&self.last_change));
        let _ = writeln!(
            s,
            "counters:      resyncs {} transactions {} changes {} failures {}",
            self.resyncs, self.transactions, self.changes_applied, self.failures
        );
        if !self.last_transaction.is_empty() {
            let items: Vec<String> = self
                .last_transaction
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let _ = writeln!(s, "last txn:      {}", items.join(", "));
        }
        if let Some(e) = &self.last_error {
            let _ = writeln!(s, "last error:    {e}");
        }
        if let Some(e) = &self.encryption {
            let id = |k: Option<u8>| k.map_or_else(|| "none".to_string(), |k| k.to_string());
            let _ = write!(
                s,
                "encryption:    key id {} ({}), outbound key id {}, {} SAs",
                id(e.key_id),
                e.fingerprint.as_deref().unwrap_or("no key"),
                id(e.outbound_key_id),
                e.sas
            );
            if let Some(p) = e.previous_key_id {
                let _ = write!(s, "; rotating from key id {p}");
                if let Some(ms) = e.switch_in_ms {
                    let _ = write!(s, ", outbound switches in {ms} ms");
                }
            }
            if e.withheld > 0 {
                let _ = write!(
                    s,
                    "; {} outbound SAs withheld (key used before)",
                    e.withheld
                );
            }
            if e.continued > 0 {
                let _ = write!(
                    s,
                    "; {} outbound SAs continued after their reserved sequence numbers",
                    e.continued
                );
            }
            let _ = writeln!(s);
            let _ = writeln!(
                s,
                "sequences:     {}",
                e.vpgd_sequence_file.as_deref().unwrap_or(
                    "vpgd keeps no sequence file: after a vpgd restart its keys wait for a rotation"
                )
            );
        }
        for e in &self.excluded {
            let _ = writeln!(s, "excluded:      {e}");
        }
        for n in &self.notes {
            let _ = writeln!(s, "note:          {n}");
        }
        s
    }
}

/// Asks the agent listening on `socket` for its status (the `status` request line).
pub fn query(socket: &Path) -> Result<Status, String> {
    vpg_api::agent::query(socket, &vpg_api::agent::AgentRequest::Status).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let at = |s: u64| rfc3339(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(at(4_102_444_800), "2100-01-01T00:00:00Z");
    }

    #[test]
    fn json_round_trip_and_text() {
        let mut s = Status {
            node: "n1".into(),
            state: SyncState::InSync,
            ..Status::default()
        };
        s.objects
            .insert("route 0.0.0.0/0".into(), "default gateway".into());
        s.last_transaction.insert("add_route".into(), 2);
        let j = serde_json::to_string(&s).unwrap();
        assert!(j.contains("\"state\":\"in-sync\""), "{j}");
        assert_eq!(serde_json::from_str::<Status>(&j).unwrap(), s);
        let t = s.render();
        assert!(t.contains("state:         in-sync"));
        assert!(t.contains("last txn:      add_route 2"));
        assert!(t.contains("last resync:   never"));
        assert!(!t.contains("encryption:"));
        s.encryption = Some(EncryptionStatus {
            key_id: Some(4),
            fingerprint: Some("0011223344556677".into()),
            previous_key_id: Some(3),
            outbound_key_id: Some(3),
            switch_in_ms: Some(1500),
            sas: 8,
            withheld: 0,
            continued: 2,
            vpgd_sequence_file: Some("/var/lib/vpg/esp-sequences.json".into()),
        });
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Status>(&j).unwrap(), s);
        let t = s.render();
        assert!(
            t.contains("encryption:    key id 4 (0011223344556677), outbound key id 3, 8 SAs; rotating from key id 3, outbound switches in 1500 ms; 2 outbound SAs continued after their reserved sequence numbers\nsequences:     /var/lib/vpg/esp-sequences.json\n"),
            "{t}"
        );
    }
}
