//! Replays the fuzz corpus (`fuzz/corpus/<target>/`, grown by cargo-fuzz and
//! minimised; see docs/decisions.md) and fresh seeds through the same
//! harnesses, on every test run: every input must be handled without a
//! panic, and sessions stay usable.

use waxwing_core::fuzzing::{self, omemo, TARGETS};

fn harness(target: &str) -> fn(&[u8]) {
    fuzzing::harness(target).unwrap_or_else(|| panic!("unknown fuzz target {target}"))
}

#[test]
fn the_fuzz_corpus_and_seeds_are_handled_without_panics() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for (target, run) in TARGETS {
        let dir = root.join(target);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut replayed = 0;
        for entry in entries.flatten() {
            // (A running fuzzer may remove files meanwhile.)
            if let Ok(bytes) = std::fs::read(entry.path()) {
                run(&bytes);
                replayed += 1;
            }
        }
        assert!(replayed >= 2, "the {target} corpus is in the repository");
    }
    for (target, bytes) in omemo::seeds() {
        harness(&format!("omemo_{target}"))(&bytes);
    }
    for (target, bytes) in fuzzing::seeds() {
        harness(target)(&bytes);
    }
}

/// Every cargo-fuzz target has a harness and a corpus, and every harness
/// a target.
#[test]
fn every_fuzz_target_is_replayed() {
    let manifest = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/Cargo.toml"),
    )
    .expect("fuzz/Cargo.toml");
    let targets: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|name| *name != "waxwing-fuzz")
        .collect();
    let mut known: Vec<&str> = TARGETS.iter().map(|(t, _)| *t).collect();
    let mut listed = targets.clone();
    known.sort_unstable();
    listed.sort_unstable();
    assert_eq!(known, listed);
}
