//! The reference: a linear first-match scan. Tests compare the classifier with it, and the
//! benchmark reports it as the naive baseline.

use crate::classify::NO_MATCH;
use crate::rule::{PacketKey, RuleKey};

/// The first rule of `rules` matching `k`, or [`NO_MATCH`].
pub fn first_match(rules: &[RuleKey], k: &PacketKey) -> u32 {
    rules
        .iter()
        .position(|r| r.matches(k))
        .map_or(NO_MATCH, |i| i as u32)
}
