//! 1:1 chat messages: building outgoing ones with an XEP-0359 origin-id and
//! an XEP-0184 receipt request; reading incoming ones, receipts and bounces.

use crate::ns::{NS_CLIENT, NS_DELAY, NS_HINTS, NS_RECEIPTS, NS_SID};
use jid::BareJid;
use minidom::Element;

use super::{stanza, text_element, with_attrs};

/// An outgoing chat message. `origin_id` doubles as the stanza id so that
/// receipts (which echo the stanza id) and dedupe (origin-id) agree.
pub fn chat(to: &str, body: &str, origin_id: &str) -> Element {
    stanza(
        "message",
        &[
            ("to", Some(to)),
            ("type", Some("chat")),
            ("id", Some(origin_id)),
        ],
        vec![
            text_element("body", NS_CLIENT, body),
            with_attrs(Element::bare("origin-id", NS_SID), &[("id", origin_id)]),
            Element::bare("request", NS_RECEIPTS),
            // XEP-0334: the server should archive it even if it would not.
            Element::bare("store", NS_HINTS),
        ],
    )
}

/// XEP-0184 §5: the receipt for a message we received.
pub fn receipt(to: &str, message_id: &str) -> Element {
    stanza(
        "message",
        &[
            ("to", Some(to)),
            ("id", Some(&format!("rcpt-{message_id}"))),
        ],
        vec![with_attrs(
            Element::bare("received", NS_RECEIPTS),
            &[("id", message_id)],
        )],
    )
}

/// What an incoming `<message/>` means to us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncomingMessageStanza {
    Chat(ChatMessage),
    /// The peer confirms delivery of our message with this id.
    Receipt {
        from: BareJid,
        id: String,
    },
    /// The server or peer bounced our message with this id.
    Bounce {
        from: BareJid,
        id: String,
        condition: String,
    },
    /// Nothing for the chat list (chat states, unsupported kinds).
    Ignored,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub from: BareJid,
    pub from_full: String,
    pub body: String,
    pub id: Option<String>,
    pub origin_id: Option<String>,
    /// Archive id, only if stamped by our own server (XEP-0359 §6 trust).
    pub stanza_id: Option<String>,
    pub wants_receipt: bool,
    /// XEP-0203 delay stamp, milliseconds since the epoch.
    pub delayed_ms: Option<i64>,
}

/// Reads a message stanza addressed to `own` (our bare JID).
pub fn parse(element: &Element, own: &BareJid) -> IncomingMessageStanza {
    let Some(from_full) = element.attr("from") else {
        return IncomingMessageStanza::Ignored;
    };
    let Ok(from_jid) = from_full.parse::<jid::Jid>() else {
        return IncomingMessageStanza::Ignored;
    };
    let from = from_jid.to_bare();
    let id = element.attr("id").map(str::to_owned);
    if element.attr("type") == Some("error") {
        let condition = element
            .get_child("error", NS_CLIENT)
            .map(crate::proto::stream_features::error_condition)
            .unwrap_or_else(|| "undefined-condition".to_owned());
        return match id {
            Some(id) => IncomingMessageStanza::Bounce {
                from,
                id,
                condition,
            },
            None => IncomingMessageStanza::Ignored,
        };
    }
    if let Some(received) = element.get_child("received", NS_RECEIPTS) {
        if let Some(rid) = received.attr("id") {
            return IncomingMessageStanza::Receipt {
                from,
                id: rid.to_owned(),
            };
        }
    }
    if !matches!(element.attr("type"), None | Some("chat") | Some("normal")) {
        return IncomingMessageStanza::Ignored;
    }
    // An OMEMO message may come without a fallback body (key transport, or
    // clients that send none): the encrypted element is the content.
    let body = match element.get_child("body", NS_CLIENT) {
        Some(b) => b.text(),
        None if crate::features::omemo::encrypted_child(element).is_some() => String::new(),
        None => return IncomingMessageStanza::Ignored,
    };
    let stanza_id = element
        .children()
        .filter(|c| c.is("stanza-id", NS_SID))
        .find(|c| {
            c.attr("by")
                .and_then(|b| b.parse::<BareJid>().ok())
                .as_ref()
                == Some(own)
        })
        .and_then(|c| c.attr("id"))
        .map(str::to_owned);
    let origin_id = element
        .get_child("origin-id", NS_SID)
        .and_then(|o| o.attr("id"))
        .map(str::to_owned);
    // XEP-0203: only a delay added by our own server (offline storage,
    // a resumed stream's backlog) says when the message arrived; a
    // sender's own stamp is whatever its clock or its author chose.
    let delayed_ms = element
        .children()
        .filter(|c| c.is("delay", NS_DELAY))
        .find(|d| {
            d.attr("from")
                .is_some_and(|f| f == own.domain().as_str() || f == own.as_str())
        })
        .and_then(|d| d.attr("stamp"))
        .and_then(parse_xep0082_ms);
    IncomingMessageStanza::Chat(ChatMessage {
        from,
        from_full: from_full.to_owned(),
        body,
        id,
        origin_id,
        stanza_id,
        wants_receipt: element.has_child("request", NS_RECEIPTS),
        delayed_ms,
    })
}

/// Unix milliseconds as an XEP-0082 date-time (UTC, whole seconds).
pub fn format_xep0082_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses an XEP-0082 date-time (`2026-11-24T18:00:00.123Z`, offsets
/// allowed) into Unix milliseconds. The stamp is untrusted input: anything
/// but ASCII digits where digits belong, a year outside 1..=9999 or an
/// out-of-range field is `None`, never a panic or an overflow.
pub fn parse_xep0082_ms(stamp: &str) -> Option<i64> {
    let s = stamp.trim();
    if !s.is_ascii() || s.len() > 64 {
        return None;
    }
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-');
    let (y, mo, da) = (digits(d.next()?)?, digits(d.next()?)?, digits(d.next()?)?);
    if d.next().is_some() {
        return None;
    }
    let (clock, offset_min) = if let Some(c) = time.strip_suffix('Z') {
        (c, 0)
    } else {
        let pos = time.rfind(['+', '-'])?;
        let (c, off) = time.split_at(pos);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':')?;
        let (oh, om) = (digits(oh)?, digits(om)?);
        if oh > 23 || om > 59 {
            return None;
        }
        (c, sign * (oh * 60 + om))
    };
    let mut t = clock.split(':');
    let (h, mi) = (digits(t.next()?)?, digits(t.next()?)?);
    let sec_part = t.next()?;
    if t.next().is_some() {
        return None;
    }
    let (sec, frac) = sec_part.split_once('.').unwrap_or((sec_part, "0"));
    let sec = digits(sec)?;
    // Milliseconds from the first three fraction digits (all ASCII here).
    digits(frac)?;
    let ms = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0, |ms, b| ms * 10 + i64::from(b - b'0'));
    if !(1..=9999).contains(&y)
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&da)
        || h > 23
        || mi > 59
        || sec > 60
    {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm); the bounds above keep
    // every product far inside i64.
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(((days * 86400 + h * 3600 + mi * 60 + sec) - offset_min * 60) * 1000 + ms)
}

/// A non-empty run of at most 18 ASCII digits (no sign, no spaces).
fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 18 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own() -> BareJid {
        "alice@example.org".parse().unwrap()
    }

    fn el(xml: &str) -> Element {
        xml.parse().unwrap()
    }

    #[test]
    fn outgoing_chat_carries_origin_id_and_receipt_request() {
        let m = chat("bob@example.org", "hi <3 & bye", "o-1");
        let xml = String::from(&m);
        let parsed: Element = xml.parse().unwrap();
        assert_eq!(
            parsed.get_child("body", NS_CLIENT).unwrap().text(),
            "hi <3 & bye"
        );
        assert_eq!(
            parsed.get_child("origin-id", NS_SID).unwrap().attr("id"),
            Some("o-1")
        );
        assert!(parsed.has_child("request", NS_RECEIPTS));
        assert_eq!(parsed.attr("id"), Some("o-1"));
    }

    #[test]
    fn stanza_ids_are_trusted_only_from_our_own_server() {
        let msg = el("<message xmlns='jabber:client' from='bob@example.org/x' type='chat' id='m1'>\
            <body>hi</body><stanza-id xmlns='urn:xmpp:sid:0' by='evil@example.org' id='forged'/>\
            <stanza-id xmlns='urn:xmpp:sid:0' by='alice@example.org' id='real'/>\
            <origin-id xmlns='urn:xmpp:sid:0' id='o1'/><request xmlns='urn:xmpp:receipts'/></message>");
        let IncomingMessageStanza::Chat(chat) = parse(&msg, &own()) else {
            panic!()
        };
        assert_eq!(chat.stanza_id.as_deref(), Some("real"));
        assert_eq!(chat.origin_id.as_deref(), Some("o1"));
        assert!(chat.wants_receipt);
        assert_eq!(chat.from.as_str(), "bob@example.org");
    }

    #[test]
    fn receipts_bounces_and_bodiless_messages_are_told_apart() {
        let receipt = el("<message xmlns='jabber:client' from='bob@example.org/x'><received xmlns='urn:xmpp:receipts' id='o1'/></message>");
        assert!(
            matches!(parse(&receipt, &own()), IncomingMessageStanza::Receipt { id, .. } if id == "o1")
        );
        let bounce = el("<message xmlns='jabber:client' from='bob@example.org' type='error' id='o2'>\
            <error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>");
        assert!(
            matches!(parse(&bounce, &own()), IncomingMessageStanza::Bounce { condition, .. } if condition == "service-unavailable")
        );
        let typing = el("<message xmlns='jabber:client' from='bob@example.org/x' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>");
        assert_eq!(parse(&typing, &own()), IncomingMessageStanza::Ignored);
        let headline = el("<message xmlns='jabber:client' from='news.example.org' type='headline'><body>x</body></message>");
        assert_eq!(parse(&headline, &own()), IncomingMessageStanza::Ignored);
        let no_from = el("<message xmlns='jabber:client'><body>x</body></message>");
        assert_eq!(parse(&no_from, &own()), IncomingMessageStanza::Ignored);
    }

    #[test]
    fn xep0082_formatting_round_trips() {
        let ms = 1_767_225_600_000 + 3_723_000; // 2026-01-01T01:02:03Z
        assert_eq!(format_xep0082_ms(ms), "2026-01-01T01:02:03Z");
        assert_eq!(parse_xep0082_ms(&format_xep0082_ms(ms)), Some(ms));
    }

    #[test]
    fn xep0082_timestamps() {
        assert_eq!(parse_xep0082_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_xep0082_ms("2002-09-10T23:08:25.5Z"),
            Some(1031699305500)
        );
        assert_eq!(
            parse_xep0082_ms("2002-09-10T23:08:25-02:00"),
            Some(1031699305000 + 7_200_000)
        );
        assert_eq!(parse_xep0082_ms("yesterday"), None);
        assert_eq!(parse_xep0082_ms("2002-13-10T23:08:25Z"), None);
    }

    /// Stamps are untrusted: a multibyte fraction used to panic (slicing
    /// at byte 3) and absurd years to overflow. All of these are refused.
    #[test]
    fn hostile_timestamps_are_refused_without_panicking() {
        for stamp in [
            "2026-11-24T18:00:00.12€Z",
            "2026-11-24T18:00:00.€Z",
            "2026-11-24T18:00:00.1234567Z",
            "99999999999999999-01-01T00:00:00Z",
            "-5-01-01T00:00:00Z",
            "2026-01-01T00:00:00+99999999999999999:00",
            "2026-01-01T00:00:00+24:00",
            "2026-01-01T+1:00:00Z",
            "2026-01-01T00:00:00.Z",
            "2026-01-01-01T00:00:00Z",
            "２０２６-01-01T00:00:00Z",
        ] {
            let parsed = std::panic::catch_unwind(|| parse_xep0082_ms(stamp));
            match parsed {
                Ok(ms) if stamp.contains("1234567") => {
                    // Extra fraction digits are allowed and cut.
                    assert_eq!(ms, parse_xep0082_ms("2026-11-24T18:00:00.123Z"))
                }
                Ok(ms) => assert_eq!(ms, None, "{stamp}"),
                Err(_) => panic!("{stamp} panicked"),
            }
        }
        assert_eq!(
            parse_xep0082_ms("9999-12-31T23:59:59.999Z"),
            Some(253_402_300_799_999)
        );
    }

    /// A delay stamp counts only when our own server added it: a sender
    /// cannot date its message into the past or the future.
    #[test]
    fn only_our_servers_delay_dates_a_message() {
        let with_delay = |from: &str| {
            el(&format!(
                "<message xmlns='jabber:client' from='bob@example.org/x' type='chat'><body>hi</body>\
                 <delay xmlns='urn:xmpp:delay' from='{from}' stamp='2001-01-01T00:00:00Z'/></message>"
            ))
        };
        let delayed = |m: &Element| match parse(m, &own()) {
            IncomingMessageStanza::Chat(chat) => chat.delayed_ms,
            other => panic!("{other:?}"),
        };
        assert_eq!(delayed(&with_delay("example.org")), Some(978_307_200_000));
        assert_eq!(
            delayed(&with_delay("alice@example.org")),
            Some(978_307_200_000)
        );
        assert_eq!(delayed(&with_delay("bob@example.org")), None);
        assert_eq!(delayed(&with_delay("evil.example")), None);
        let unsigned = el(
            "<message xmlns='jabber:client' from='bob@example.org/x' type='chat'><body>hi</body>\
            <delay xmlns='urn:xmpp:delay' stamp='2001-01-01T00:00:00Z'/></message>",
        );
        assert_eq!(delayed(&unsigned), None);
    }

    /// A message whose delay stamp is hostile is still delivered, with our
    /// arrival time instead of the stamp.
    #[test]
    fn a_message_with_a_hostile_stamp_is_delivered() {
        let m = el("<message xmlns='jabber:client' from='bob@example.org/x' type='chat'><body>hi</body>\
            <delay xmlns='urn:xmpp:delay' from='example.org' stamp='2026-11-24T18:00:00.12€Z'/></message>");
        match parse(&m, &own()) {
            IncomingMessageStanza::Chat(chat) => {
                assert_eq!(chat.body, "hi");
                assert_eq!(chat.delayed_ms, None);
            }
            other => panic!("{other:?}"),
        }
    }
}
