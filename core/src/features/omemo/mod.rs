//! OMEMO in XMPP (XEP-0384, both versions): the elements that carry it —
//! device lists and bundles published over PEP, and the `<encrypted>`
//! element of a message. The cryptography is in [`crate::omemo`].

pub mod elements;
#[doc(hidden)]
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod pep;
pub mod sce;

use minidom::Element;

use crate::omemo::OmemoVersion;

pub use elements::{EncryptedElement, KeyEntry, OwnBundle};

/// The `<encrypted>` element of a message, of either version.
pub fn encrypted_child(message: &Element) -> Option<&Element> {
    OmemoVersion::ALL
        .into_iter()
        .find_map(|v| message.get_child("encrypted", v.namespace()))
}
