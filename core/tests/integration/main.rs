//! Waxwing's integration tests, in one binary so the test build links
//! SQLCipher and OpenSSL once: each module starts what it needs (a real
//! Prosody on loopback, peer bots, scripted servers for faults).

mod common;

mod archive;
mod chaos;
mod cli_peer;
mod cli_session;
mod faults;
// The corpus harnesses ship only with the `fuzzing` feature (scripts/test.sh enables it).
#[cfg(feature = "fuzzing")]
mod fuzz_corpus;
mod lifecycle;
mod omemo_interop;
mod omemo_oracle;
mod omemo_profanity;
mod prosody;
mod push;
mod resumption;
mod rooms;
