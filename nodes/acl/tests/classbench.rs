//! The classifier reproduces every expected first match of the ClassBench sets (1M headers each).

use std::path::Path;
use vpg_acl::classbench::{data_dir, read_matches, read_rules, read_trace, SETS};
use vpg_acl::classify::Classifier;

#[test]
fn reproduces_every_expected_match() {
    let dir = data_dir(Path::new(env!("CARGO_MANIFEST_DIR"))).expect(
        "ClassBench data not found: set VPG_CLASSBENCH_DIR or keep shared/bench/classbench beside the checkout",
    );
    for set in SETS {
        let rules = read_rules(&dir.join(format!("{set}.rules"))).unwrap();
        let trace = read_trace(&dir.join(format!("{set}.trace.gz")), usize::MAX).unwrap();
        let expected = read_matches(&dir.join(format!("{set}.match.gz")), usize::MAX).unwrap();
        assert_eq!(trace.len(), 1_000_000, "{set}");
        assert_eq!(trace.len(), expected.len(), "{set}");
        let t = std::time::Instant::now();
        let c = Classifier::compile(&rules);
        let compile = t.elapsed();
        let mut got = vec![0u32; trace.len()];
        c.classify_batch(&trace, &mut got);
        let wrong: Vec<usize> = (0..got.len()).filter(|&i| got[i] != expected[i]).collect();
        assert!(
            wrong.is_empty(),
            "{set}: {} of {} headers differ, first at line {}: got {} expected {}",
            wrong.len(),
            got.len(),
            wrong[0] + 1,
            got[wrong[0]],
            expected[wrong[0]]
        );
        println!(
            "{set}: {} rules, all {} matches reproduced; compiled in {:?}; {:?}",
            rules.len(),
            got.len(),
            compile,
            c.shape()
        );
    }
}
