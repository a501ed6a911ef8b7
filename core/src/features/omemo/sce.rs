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
    /// `<from>` names someone other than the sender.
    WrongSender,
    /// `<to>` names another conversation than the one the stanza belongs
    /// to (a group message replayed as a private one, a carbon moved to
    /// another contact).
    WrongRecipient,
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

/// The body of an envelope sent by `sender` to `recipient` (bare JIDs:
/// the conversation the stanza belongs to — our own JID for a contact's
/// message, the contact's for one of ours). XEP-0420 §9: `<from>` and `<to>`,
/// when present, must name them (senders SHOULD include them, so a missing
/// one is accepted); `<time>` is only a hint and is not used.
pub fn open_envelope(bytes: &[u8], sender: &str, recipient: &str) -> Result<String, SceError> {
    // Bounded like the stream: any contact can send this.
    let envelope = crate::xml::parse_document(bytes, crate::xml::DEFAULT_MAX_ELEMENT_BYTES)
        .map_err(|_| SceError::Malformed)?;
    if !envelope.is("envelope", NS_SCE) {
        return Err(SceError::Malformed);
    }
    let names = |affix: &str, expected: &str| match envelope.get_child(affix, NS_SCE) {
        None => true,
        Some(element) => element
            .attr("jid")
            .and_then(|j| j.parse::<jid::BareJid>().ok())
            .zip(expected.parse::<jid::BareJid>().ok())
            .is_some_and(|(a, b)| a == b),
    };
    if !names("from", sender) {
        return Err(SceError::WrongSender);
    }
    if !names("to", recipient) {
        return Err(SceError::WrongRecipient);
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
        assert_eq!(
            open_envelope(&bytes, "a@x", "b@x").unwrap(),
            "hi <there> & 👋"
        );
        assert_eq!(
            open_envelope(&bytes, "mallory@x", "b@x").unwrap_err(),
            SceError::WrongSender
        );
        assert_eq!(
            open_envelope(b"<not-xml", "a@x", "b@x").unwrap_err(),
            SceError::Malformed
        );
        assert_eq!(
            open_envelope(b"<body xmlns='jabber:client'>x</body>", "a@x", "b@x").unwrap_err(),
            SceError::Malformed
        );
    }

    /// Issue 13, item 8: `<to>` must name the conversation (a message for a
    /// group, or for another contact, is not accepted as a private one to
    /// us), and a missing `<from>` is accepted (senders SHOULD add it).
    #[test]
    fn the_recipient_is_checked_and_a_missing_sender_affix_accepted() {
        let to_room = envelope("hi", "a@x", "room@muc.x", "2026-11-25T00:00:00Z");
        assert_eq!(
            open_envelope(&to_room, "a@x", "b@x").unwrap_err(),
            SceError::WrongRecipient
        );
        let bare = b"<envelope xmlns='urn:xmpp:sce:1'><content><body xmlns='jabber:client'>hi</body></content></envelope>";
        assert_eq!(open_envelope(bare, "a@x", "b@x").unwrap(), "hi");
        let bad_time = b"<envelope xmlns='urn:xmpp:sce:1'><content><body xmlns='jabber:client'>hi</body></content><time stamp='yesterday'/><from jid='a@x'/></envelope>";
        assert_eq!(open_envelope(bad_time, "a@x", "b@x").unwrap(), "hi");
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
            open_envelope(doc.as_bytes(), "a@x", "b@x").unwrap_err(),
            SceError::Malformed
        );
    }
}
