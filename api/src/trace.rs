//! Packet trace control: `trace_add` traces the next packets entering a node on every worker,
//! `clear` with `what: trace` drops records and budgets, and `dump_trace` returns each worker's
//! trace as the text `show trace` prints.

use crate::feature::check_node_name;
use crate::ApiError;

/// Most packets one `trace_add` may ask for per worker: the graph runtime's own limit
/// (`vpg_graph::trace::MAX_TRACE`, repeated here because this crate depends on no other vpg
/// crate). Records are kept until cleared, so the budget must be bounded.
pub const MAX_TRACE_COUNT: u32 = 10_000;

/// Checks a `trace_add`: a node name and a count of 1 to [`MAX_TRACE_COUNT`].
pub fn check_trace_add(node: &str, count: u32) -> Result<(), ApiError> {
    check_node_name("node", node)?;
    if count == 0 || count > MAX_TRACE_COUNT {
        return Err(ApiError::bad_request(
            "count",
            format!("count {count} is out of range 1..={MAX_TRACE_COUNT}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_budget_is_bounded() {
        check_trace_add("af-packet-input", 10).unwrap();
        check_trace_add("af-packet-input", MAX_TRACE_COUNT).unwrap();
        assert!(check_trace_add("af-packet-input", 0).is_err());
        let e = check_trace_add("af-packet-input", u32::MAX).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("count"));
        assert!(check_trace_add("", 1).is_err());
    }
}
