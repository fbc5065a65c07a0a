//! A randomized storm of applies, deletes, relists and injected store failures against one
//! reflector, checked after every step against a reference map: the store equals the
//! reference whenever the reflector is in sync, and while in sync every write is a real change
//! (nothing written twice).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use vpg_ksr::model::encode;
use vpg_ksr::reflector::{Backoff, KindReflector};
use vpg_ksr::store::{EmbeddedStore, Instrumented, Store};
use vpg_ksr::{Change, Kind, TranslateError};

#[tokio::test]
async fn apply_delete_storm_matches_reference() {
    let dir = tempfile::tempdir().unwrap();
    for seed in 0..8u64 {
        let store = Arc::new(Instrumented::new(
            EmbeddedStore::open(dir.path().join(format!("storm{seed}.redb"))).unwrap(),
        ));
        let counts = store.counts();
        let stats = Arc::default();
        let mut r = KindReflector::new(
            Kind::Pod,
            store.clone(),
            Arc::default(),
            Arc::clone(&stats),
            tokio::sync::watch::channel(false).0,
            Backoff {
                min: Duration::from_millis(1),
                max: Duration::from_millis(5),
            },
        );
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut reference: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let key = |i: u32| format!("/vpg/v1/pod/ns/p{i}");
        // First list.
        r.handle(Change::Init).await;
        r.handle(Change::InitDone).await;
        for step in 0..400 {
            let was_in_sync = r.in_sync();
            let before = counts.writes();
            let mut expected_writes = 0;
            let k = key(rng.gen_range(0..30));
            match rng.gen_range(0..100) {
                0..=49 => {
                    // Few distinct values, so many applies change nothing.
                    let v = encode(&rng.gen_range(0..3u8));
                    expected_writes = u64::from(reference.get(&k) != Some(&v));
                    reference.insert(k.clone(), v.clone());
                    r.handle(Change::Apply(Ok((k, v)))).await;
                }
                50..=74 => {
                    expected_writes = u64::from(reference.remove(&k).is_some());
                    r.handle(Change::Delete(Ok(k))).await;
                }
                75..=79 => {
                    // The object turned invalid: its record goes away.
                    expected_writes = u64::from(reference.remove(&k).is_some());
                    r.handle(Change::Apply(Err((
                        Some(k),
                        TranslateError::Missing("status.podIP"),
                    ))))
                    .await;
                }
                80..=89 => {
                    // A relist (410 Gone) with some objects changed meanwhile.
                    let mut next = reference.clone();
                    for _ in 0..rng.gen_range(0..4) {
                        let k = key(rng.gen_range(0..30));
                        if rng.gen_bool(0.5) {
                            next.insert(k, encode(&rng.gen_range(0..3u8)));
                        } else {
                            next.remove(&k);
                        }
                    }
                    expected_writes = next
                        .iter()
                        .filter(|(k, v)| reference.get(*k) != Some(v))
                        .count() as u64
                        + reference.keys().filter(|k| !next.contains_key(*k)).count() as u64;
                    reference = next;
                    r.handle(Change::Init).await;
                    for (k, v) in &reference {
                        r.handle(Change::InitApply(Ok((k.clone(), v.clone()))))
                            .await;
                    }
                    r.handle(Change::InitDone).await;
                }
                90..=95 => store.fail_writes(0, rng.gen_range(1..3)),
                _ => r.sync().await,
            }
            if was_in_sync && r.in_sync() && counts.failed.load(Ordering::SeqCst) == 0 {
                assert_eq!(
                    counts.writes() - before,
                    expected_writes,
                    "seed {seed} step {step}"
                );
            }
            if r.in_sync() {
                let have = store.list("/vpg/v1/pod/").await.unwrap().items;
                assert_eq!(have, reference, "seed {seed} step {step}");
            }
            if !r.in_sync() {
                counts.failed.store(0, Ordering::SeqCst);
            }
        }
        // Let injected failures run out, then converge.
        store.fail_writes(0, 0);
        r.sync().await;
        assert!(r.in_sync());
        assert_eq!(
            store.list("/vpg/v1/pod/").await.unwrap().items,
            reference,
            "seed {seed}"
        );
        assert_eq!(r.desired(), &reference);
    }
}
