//! The fuzz target's entry point on stable Rust: the checked-in seed corpus plus a bounded
//! number of deterministic mutations of it.

use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Mutations per run: enough to reach the error paths, a couple of seconds at most.
const ITERATIONS: usize = 20_000;

fn corpus() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/answer");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .expect("seed corpus dir")
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read(e.path()).ok())
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 5, "seed corpus in {} is missing", dir.display());
    seeds
}

fn mutate(rng: &mut StdRng, seed: &[u8]) -> Vec<u8> {
    let mut p = seed.to_vec();
    for _ in 0..rng.random_range(1..6) {
        match rng.random_range(0..6) {
            0 if !p.is_empty() => {
                let i = rng.random_range(0..p.len());
                p[i] = rng.random();
            }
            1 if !p.is_empty() => {
                let i = rng.random_range(0..p.len());
                p[i] ^= 1 << rng.random_range(0..8);
            }
            2 if !p.is_empty() => {
                let i = rng.random_range(0..p.len());
                p.truncate(i);
            }
            3 => {
                let i = rng.random_range(0..=p.len());
                p.insert(i, rng.random());
            }
            4 if p.len() > 2 => {
                // A compression pointer somewhere.
                let i = rng.random_range(0..p.len() - 1);
                p[i] = 0xC0;
                p[i + 1] = rng.random_range(0..p.len()) as u8;
            }
            _ => p.extend((0..rng.random_range(0..40)).map(|_| rng.random::<u8>())),
        }
    }
    p
}

/// Every seed gets an answer; no mutation panics, and every answer keeps its invariants.
#[test]
fn query_handler_survives_seed_corpus_and_mutations() {
    let seeds = corpus();
    for s in &seeds {
        assert!(meridian_dns::fuzzing::answer_bytes(s, false).is_some(), "seed not answered");
        assert!(meridian_dns::fuzzing::answer_bytes(s, true).is_some(), "seed not answered over TCP");
    }
    let mut rng = StdRng::seed_from_u64(0x6d65_7269_6469_616e);
    for i in 0..ITERATIONS {
        let seed = &seeds[i % seeds.len()];
        let p = mutate(&mut rng, seed);
        let _ = meridian_dns::fuzzing::answer_bytes(&p, i % 2 == 0);
    }
}
