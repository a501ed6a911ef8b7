//! cargo-fuzz target: see `waxwing_core::fuzzing::message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    waxwing_core::fuzzing::message(data);
});
