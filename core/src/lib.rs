//! Waxwing core: the part of a mobile XMPP client that is hard to get right.
//!
//! Layers, bottom up (each imports only from below):
//! - [`store`]: the encrypted SQLCipher store; [`omemo`]: the OMEMO
//!   cryptographic engine (its own crate, `waxwing-omemo`, no I/O);
//! - [`xml`] and [`proto`]: XML stream framing and the sans-IO session engine
//!   (negotiation, SASL, bind, stream management, keepalive);
//! - [`transport`]: the small tokio driver that moves bytes between a socket
//!   and the engine (DNS SRV, TCP, TLS);
//! - [`features`]: roster, presence and messages as stanza ↔ domain mappings;
//! - [`client`]: the `Client` facade apps call, and its events.

pub mod client;
pub mod features;
/// Fuzzing harnesses (cargo-fuzz targets in `fuzz/`, and the corpus replay
/// test): test-only code behind the `fuzzing` feature.
#[doc(hidden)]
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub(crate) mod ns;
/// The OMEMO engine, re-exported so `waxwing_core::omemo` names it.
pub use waxwing_omemo as omemo;

pub use client::{Client, ClientConfig, ClientError, ClientEvent, ConnectionState, EventListener};
/// How to reach the server (host, port, direct TLS, test CA): part of [`ClientConfig`].
pub use transport::tls::platform_verifier_ready;
pub use transport::ConnectOptions;
pub(crate) mod proto;
pub mod store;
pub(crate) mod transport;
pub(crate) mod xml;
