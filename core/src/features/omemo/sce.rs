//! XEP-0420 Stanza Content Encryption envelopes, the plaintext of OMEMO 2
//! messages (XEP-0384 §4.4): the body inside `<content>`, random padding
//! (`<rpad>`) so lengths do not leak, and the `<from>`/`<to>`/`<time>`
//! affixes. The receiver checks `<from>` against the stanza's sender
//! (XEP-0420 §9), so a message cannot be replayed as someone else's.

use crate::ns::{NS_CLIENT, NS_SCE};
use minidom::Element;
use rand::Rng;

use crate::features::{set_attr, text_element, with_attrs};

/// Why an envelope was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SceError {
    /// Not an envelope we can read.
    Malformed,
    /// `<from>` is missing or names someone other than the sender.
    WrongSender,
}

/// The serialised envelope carrying `body` from `from` to `to` (bare JIDs).
pub fn envelope(body: &str, from: &str, to: &str, timestamp: &str) -> Vec<u8> {
    let mut content = Element::bare("content", NS_SCE);
    content.append_child(text_element("body", NS_CLIENT, body));
    let mut rng = rand::thread_rng();
    let pad: String = (0..rng.gen_range(0..=200))
        .map(|_| rng.sample(rand::distributions::Alphanumeric) as char)
        .collect();
    let mut envelope = Element::bare("envelope", NS_SCE);
    envelope.append_child(content);
    envelope.append_child(text_element("rpad", NS_SCE, &pad));
    let mut time = Element::bare("time", NS_SCE);
    set_attr(&mut time, "stamp", timestamp);
    envelope.append_child(time);
    envelope.append_child(with_attrs(Element::bare("to", NS_SCE), &[("jid", to)]));
    envelope.append_child(with_attrs(Element::bare("from", NS_SCE), &[("jid", from)]));
    crate::xml::to_bytes(&envelope)
}

/// The body of an envelope sent by `sender` (bare JID).
pub fn open_envelope(bytes: &[u8], sender: &str) -> Result<String, SceError> {
    // Bounded like the stream: any contact can send this.
    let envelope = crate::xml::parse_document(bytes, crate::xml::DEFAULT_MAX_ELEMENT_BYTES)
        .map_err(|_| SceError::Malformed)?;
    if !envelope.is("envelope", NS_SCE) {
        return Err(SceError::Malformed);
    }
    let from = envelope
        .get_child("from", NS_SCE)
        .and_then(|f| f.attr("jid"));
    let same = from
        .and_then(|f| f.parse::<jid::BareJid>().ok())
        .zip(sender.parse::<jid::BareJid>().ok())
        .is_some_and(|(a, b)| a == b);
    if !same {
        return Err(SceError::WrongSender);
    }
    let content = envelope
        .get_child("content", NS_SCE)
        .ok_or(SceError::Malformed)?;
    Ok(content
        .get_child("body", NS_CLIENT)
        .map(|b| b.text())
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_check_the_sender() {
        let bytes = envelope("hi <there> & 👋", "a@x", "b@x", "2026-11-25T00:00:00Z");
        assert_eq!(open_envelope(&bytes, "a@x").unwrap(), "hi <there> & 👋");
        assert_eq!(
            open_envelope(&bytes, "mallory@x").unwrap_err(),
            SceError::WrongSender
        );
        assert_eq!(
            open_envelope(b"<not-xml", "a@x").unwrap_err(),
            SceError::Malformed
        );
        assert_eq!(
            open_envelope(b"<body xmlns='jabber:client'>x</body>", "a@x").unwrap_err(),
            SceError::Malformed
        );
    }

    /// Any contact can send an envelope: deep nesting is refused, not
    /// parsed into a tree whose drop would overflow the stack.
    #[test]
    fn a_deeply_nested_envelope_is_malformed() {
        let mut doc = String::from("<envelope xmlns='urn:xmpp:sce:1'><content>");
        doc.push_str(&"<x>".repeat(200_000));
        doc.push_str(&"</x>".repeat(200_000));
        doc.push_str("</content><from jid='a@x'/></envelope>");
        assert_eq!(
            open_envelope(doc.as_bytes(), "a@x").unwrap_err(),
            SceError::Malformed
        );
    }
}
