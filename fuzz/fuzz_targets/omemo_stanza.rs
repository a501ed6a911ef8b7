//! cargo-fuzz target: see `waxwing_core::features::omemo::fuzzing::stanza`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    waxwing_core::features::omemo::fuzzing::stanza(data);
});
