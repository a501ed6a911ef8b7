//! Writes seed inputs for the fuzz targets into `fuzz/corpus/<target>/`:
//! `cargo run -p waxwing-core --features fuzzing --example fuzz_seeds`.

fn main() {
    use waxwing_core::fuzzing;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let omemo = fuzzing::omemo::seeds()
        .into_iter()
        .map(|(target, bytes)| (format!("omemo_{target}"), bytes));
    let others = fuzzing::seeds()
        .into_iter()
        .map(|(target, bytes)| (target.to_owned(), bytes));
    for (n, (target, bytes)) in omemo.chain(others).enumerate() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).expect("create the corpus directory");
        std::fs::write(dir.join(format!("seed-{n}")), bytes).expect("write a seed");
    }
}
