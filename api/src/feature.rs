//! Feature-arc messages: the `enable_feature` / `disable_feature` checks and the
//! `dump_features` row.
//!
//! A feature arc is an ordered list of feature nodes that an interface's packets visit
//! (`ip4-unicast` on input, `ip4-output` on output; design §2). Which features exist depends
//! on the nodes vpgd was built with, so the daemon checks the feature; this crate checks the arc
//! and the shape of the name.

use crate::ApiError;
use serde::{Deserialize, Serialize};

/// The feature arcs.
pub const ARCS: [&str; 2] = ["ip4-unicast", "ip4-output"];

/// Longest node name accepted.
pub const MAX_NODE_NAME: usize = 64;

/// Checks a graph node name (a feature, where a trace starts): 1 to [`MAX_NODE_NAME`] bytes of
/// letters, digits, `-` and `_`.
pub fn check_node_name(field: &str, name: &str) -> Result<(), ApiError> {
    if name.is_empty()
        || name.len() > MAX_NODE_NAME
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ApiError::bad_request(
            field,
            format!(
                "{field} '{}' is not a node name (1 to {MAX_NODE_NAME} letters, digits, '-' or '_')",
                name.escape_debug()
            ),
        ));
    }
    Ok(())
}

/// Checks an arc and a feature name.
pub fn check_feature(arc: &str, feature: &str) -> Result<(), ApiError> {
    if !ARCS.contains(&arc) {
        return Err(ApiError::bad_request(
            "arc",
            format!(
                "arc '{}' does not exist (the arcs are {})",
                arc.escape_debug(),
                ARCS.join(" and ")
            ),
        ));
    }
    check_node_name("feature", feature)
}

/// One enabled feature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureDetails {
    /// Arc.
    pub arc: String,
    /// Feature node.
    pub feature: String,
    /// Interface.
    pub sw_if: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arcs_and_names() {
        check_feature("ip4-output", "acl-out-ip4").unwrap();
        check_feature("ip4-unicast", "nat44_out2in").unwrap();
        let e = check_feature("ip6-unicast", "x").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("arc"));
        assert!(e.message.contains("ip4-unicast and ip4-output"), "{e}");
        for bad in ["", "a b", "a/b", &"x".repeat(65)] {
            let e = check_feature("ip4-output", bad).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("feature"), "{bad}");
        }
    }
}
