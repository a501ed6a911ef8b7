//! The bindings' Android module, compiled on its own (see Cargo.toml).
#![deny(warnings)]

#[path = "../../src/android.rs"]
mod android;

/// Stands in for the bindings' hook into the core.
fn platform_verifier_ready() {}
