//! Writes seed inputs for the OMEMO fuzz targets into `fuzz/corpus/`:
//! `cargo run -p waxwing-core --example fuzz_seeds`.

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for (n, (target, bytes)) in waxwing_core::features::omemo::fuzzing::seeds()
        .into_iter()
        .enumerate()
    {
        let dir = root.join(format!("omemo_{target}"));
        std::fs::create_dir_all(&dir).expect("create the corpus directory");
        std::fs::write(dir.join(format!("seed-{n}")), bytes).expect("write a seed");
    }
}
