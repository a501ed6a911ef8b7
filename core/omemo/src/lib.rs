//! OMEMO end-to-end encryption, the cryptographic engine: X3DH key agreement,
//! the Double Ratchet, payload encryption and both wire formats, one
//! implementation parameterised for OMEMO 0.3 (`eu.siacs.conversations.axolotl`)
//! and OMEMO 2 (`urn:xmpp:omemo:2`, XEP-0384 v0.8).
//!
//! No I/O and no clock: bytes and keys in, bytes and keys out. There is no
//! Signal library under this (see docs/decisions.md): it is built on the
//! RustCrypto and dalek primitives, and proven against python-omemo.
//!
//! - [`keys`]: the Ed25519 identity key (one for both versions), X25519 key
//!   pairs, XEdDSA-style signatures with the sign bit carried in the signature;
//! - [`x3dh`]: bundles and the key agreement, active and passive;
//! - [`ratchet`]: the Double Ratchet session, with bounded skipped keys and
//!   transactional decryption (a bad message never changes the session);
//! - [`wire`]: the protobuf formats of both versions;
//! - [`payload`]: message payload encryption (AES-128-GCM for 0.3;
//!   HKDF + AES-256-CBC + HMAC for 2).

pub mod error;
mod kdf;
pub mod keys;
pub mod payload;
pub mod ratchet;
pub mod version;
pub mod wire;
pub mod x3dh;

#[cfg(test)]
mod tests;

pub use error::OmemoError;
pub use keys::{IdentityKeyPair, KeyPair, PeerIdentity};
pub use ratchet::RatchetSession;
pub use version::OmemoVersion;
pub use x3dh::{Bundle, OwnPreKeys};
