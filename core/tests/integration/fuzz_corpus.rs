//! Replays the OMEMO fuzz corpus (`fuzz/corpus/`, grown by cargo-fuzz; see
//! docs/decisions.md) and fresh seeds through the same harnesses, on every
//! test run: every input must be handled without a panic, and sessions
//! stay usable.

use waxwing_core::features::omemo::fuzzing;

fn harness(target: &str) -> fn(&[u8]) {
    match target {
        "omemo_message" => fuzzing::message,
        "omemo_key_exchange" => fuzzing::key_exchange,
        "omemo_stanza" => fuzzing::stanza,
        other => panic!("unknown fuzz target {other}"),
    }
}

#[test]
fn the_fuzz_corpus_and_seeds_are_handled_without_panics() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut replayed = 0;
    for target in ["omemo_message", "omemo_key_exchange", "omemo_stanza"] {
        let run = harness(target);
        let dir = root.join(target);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries.flatten() {
            // (A running fuzzer may remove files meanwhile.)
            if let Ok(bytes) = std::fs::read(entry.path()) {
                run(&bytes);
                replayed += 1;
            }
        }
    }
    assert!(replayed >= 6, "the corpus is in the repository");
    for (target, bytes) in fuzzing::seeds() {
        harness(&format!("omemo_{target}"))(&bytes);
    }
}
