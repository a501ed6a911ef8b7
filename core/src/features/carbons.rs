//! XEP-0280 message carbons: enabling them, and unwrapping carbon copies
//! with the forgery check of §11 (only our own bare JID may send them).

use crate::ns::{NS_CARBONS, NS_CLIENT, NS_FORWARD};
use jid::BareJid;
use minidom::Element;

use super::stanza;

pub fn enable(id: &str) -> Element {
    stanza(
        "iq",
        &[("type", Some("set")), ("id", Some(id))],
        vec![Element::bare("enable", NS_CARBONS)],
    )
}

/// What a `<message/>` is with respect to carbons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Carbon {
    /// Not a carbon copy: handle it as a normal message.
    None,
    /// A copy of a message another of our devices received.
    Received(Element),
    /// A copy of a message another of our devices sent.
    Sent(Element),
    /// Looks like a carbon but does not come from our own account: drop.
    Forged,
}

pub fn unwrap(message: &Element, own: &BareJid) -> Carbon {
    let (wrapper, sent) = match (
        message.get_child("received", NS_CARBONS),
        message.get_child("sent", NS_CARBONS),
    ) {
        (Some(w), _) => (w, false),
        (None, Some(w)) => (w, true),
        (None, None) => return Carbon::None,
    };
    // §11: the outer `from` must be exactly our bare JID.
    if message.attr("from") != Some(own.as_str()) {
        return Carbon::Forged;
    }
    let Some(inner) = wrapper
        .get_child("forwarded", NS_FORWARD)
        .and_then(|f| f.get_child("message", NS_CLIENT))
    else {
        return Carbon::Forged;
    };
    if sent {
        Carbon::Sent(inner.clone())
    } else {
        Carbon::Received(inner.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn carbon(from: &str, kind: &str) -> Element {
        format!(
            "<message xmlns='jabber:client' from='{from}' to='alice@example.org/phone'>\
             <{kind} xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>\
             <message xmlns='jabber:client' from='bob@example.org/x' to='alice@example.org/laptop' type='chat'>\
             <body>hi</body></message></forwarded></{kind}></message>"
        )
        .parse()
        .unwrap()
    }

    #[test]
    fn carbons_from_our_account_are_unwrapped() {
        let own: BareJid = "alice@example.org".parse().unwrap();
        assert!(
            matches!(unwrap(&carbon("alice@example.org", "received"), &own), Carbon::Received(m) if m.attr("from") == Some("bob@example.org/x"))
        );
        assert!(matches!(
            unwrap(&carbon("alice@example.org", "sent"), &own),
            Carbon::Sent(_)
        ));
    }

    #[test]
    fn carbons_from_anyone_else_are_forged() {
        let own: BareJid = "alice@example.org".parse().unwrap();
        assert_eq!(
            unwrap(&carbon("mallory@evil.example", "received"), &own),
            Carbon::Forged
        );
        assert_eq!(
            unwrap(&carbon("alice@example.org/other", "received"), &own),
            Carbon::Forged
        );
        assert_eq!(
            unwrap(&carbon("bob@example.org", "sent"), &own),
            Carbon::Forged
        );
        let plain: Element =
            "<message xmlns='jabber:client' from='bob@example.org/x'><body>x</body></message>"
                .parse()
                .unwrap();
        assert_eq!(unwrap(&plain, &own), Carbon::None);
    }
}
