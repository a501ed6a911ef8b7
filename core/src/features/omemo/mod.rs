//! OMEMO in XMPP (XEP-0384, both versions): the elements that carry it —
//! device lists and bundles published over PEP, and the `<encrypted>`
//! element of a message. The cryptography is in [`crate::omemo`].

pub mod elements;

pub use elements::{EncryptedElement, KeyEntry, OwnBundle};
