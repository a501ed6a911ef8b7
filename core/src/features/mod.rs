//! Features: the mapping between XMPP stanzas and Waxwing's domain types for
//! roster (RFC 6121 §2, XEP-0237), presence (RFC 6121 §3–4) and 1:1
//! messages (XEP-0359 ids, XEP-0184 receipts), carbons, MAM, push and
//! multi-user chat presence (XEP-0045, XEP-0410).
//! Pure functions: the client decides when to send and what to store.

pub mod bookmarks;
pub mod carbons;
pub mod disco;
pub mod mam;
pub mod messages;
pub mod muc;
pub mod muc_admin;
pub mod muc_invites;
pub mod muc_messages;
pub mod omemo;
pub mod presence;
pub mod push;
pub mod roster;

use crate::ns::{NS_CLIENT, NS_DATA};
use minidom::Element;

/// Builds `<name xmlns='jabber:client' attrs…>children</name>`, skipping
/// attributes whose value is `None`.
pub(crate) fn stanza(
    name: &str,
    attrs: &[(&str, Option<&str>)],
    children: Vec<Element>,
) -> Element {
    let mut element = Element::bare(name, NS_CLIENT);
    for (key, value) in attrs {
        if let Some(value) = value {
            set_attr(&mut element, key, value);
        }
    }
    for child in children {
        element.append_child(child);
    }
    element
}

/// A leaf element with text content.
pub(crate) fn text_element(name: &str, ns: &str, text: &str) -> Element {
    let mut element = Element::bare(name, ns);
    element.append_text(text.to_owned());
    element
}

pub(crate) fn set_attr(element: &mut Element, key: &str, value: &str) {
    if let Ok(name) = rxml::NcName::try_from(key.to_owned()) {
        element.set_attr(rxml::Namespace::NONE, name, value.to_owned());
    }
}

pub(crate) fn with_attrs(mut element: Element, attrs: &[(&str, &str)]) -> Element {
    for (k, v) in attrs {
        set_attr(&mut element, k, v);
    }
    element
}

/// A submitted data form (`<x type='submit'>`) with one value per field;
/// the first field is usually `FORM_TYPE`.
pub(crate) fn submit_form(fields: &[(&str, &str)]) -> Element {
    let mut form = with_attrs(Element::bare("x", NS_DATA), &[("type", "submit")]);
    for (var, value) in fields {
        let mut field = with_attrs(Element::bare("field", NS_DATA), &[("var", var)]);
        field.append_child(text_element("value", NS_DATA, value));
        form.append_child(field);
    }
    form
}

/// XEP-0060 publish-options form type.
pub(crate) const PUBLISH_OPTIONS: &str = "http://jabber.org/protocol/pubsub#publish-options";
