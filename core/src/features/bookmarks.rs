//! Room bookmarks (XEP-0402, PEP native bookmarks): one PEP item per room
//! on `urn:xmpp:bookmarks:1`, fetched at login, published with the
//! publish-options of §3.3 (private, persistent, every item kept, nothing
//! sent on subscription), and followed through `+notify` events. The
//! `<conference/>` payload is read and written by xmpp-parsers'
//! `bookmarks2`, which keeps `<extensions/>` other clients put there.

use jid::BareJid;
use minidom::Element;
use xmpp_parsers::bookmarks2::Conference;

use super::{stanza, submit_form, with_attrs, PUBLISH_OPTIONS};
use crate::ns::{NS_PUBSUB, NS_PUBSUB_EVENT};

pub const NS_BOOKMARKS: &str = "urn:xmpp:bookmarks:1";
/// The account's server keeps XEP-0402 and XEP-0048 bookmarks in sync
/// (§5.3): only then do we use this node.
pub const FEATURE_COMPAT: &str = "urn:xmpp:bookmarks:1#compat";
/// Bounded: a hostile or broken server must not make us hold (or join)
/// an unbounded list.
pub const MAX_BOOKMARKS: usize = 500;

/// One bookmarked room.
#[derive(Debug, Clone)]
pub struct Bookmark {
    pub room: BareJid,
    pub conference: Conference,
}

impl Bookmark {
    pub fn nick(&self) -> Option<String> {
        self.conference.nick.as_ref().map(|n| n.to_string())
    }
}

fn iq(kind: &str, id: &str, pubsub: Element) -> Element {
    stanza(
        "iq",
        &[("type", Some(kind)), ("id", Some(id))],
        vec![pubsub],
    )
}

/// Asks for every bookmark (§3.1).
pub fn fetch(id: &str) -> Element {
    let mut pubsub = Element::bare("pubsub", NS_PUBSUB);
    pubsub.append_child(with_attrs(
        Element::bare("items", NS_PUBSUB),
        &[("node", NS_BOOKMARKS)],
    ));
    iq("get", id, pubsub)
}

/// Adds or replaces one bookmark (§3.2), with the §3.3 publish-options.
pub fn publish(id: &str, bookmark: &Bookmark) -> Element {
    let mut item = with_attrs(
        Element::bare("item", NS_PUBSUB),
        &[("id", bookmark.room.as_str())],
    );
    item.append_child(bookmark.conference.clone().into());
    let mut publish = with_attrs(
        Element::bare("publish", NS_PUBSUB),
        &[("node", NS_BOOKMARKS)],
    );
    publish.append_child(item);
    let mut options = Element::bare("publish-options", NS_PUBSUB);
    options.append_child(submit_form(&[
        ("FORM_TYPE", PUBLISH_OPTIONS),
        ("pubsub#persist_items", "true"),
        ("pubsub#max_items", "max"),
        ("pubsub#send_last_published_item", "never"),
        ("pubsub#access_model", "whitelist"),
    ]));
    let mut pubsub = Element::bare("pubsub", NS_PUBSUB);
    pubsub.append_child(publish);
    pubsub.append_child(options);
    iq("set", id, pubsub)
}

/// Removes one bookmark (§3.4), telling our other devices.
pub fn retract(id: &str, room: &BareJid) -> Element {
    let mut retract = with_attrs(
        Element::bare("retract", NS_PUBSUB),
        &[("node", NS_BOOKMARKS), ("notify", "true")],
    );
    retract.append_child(with_attrs(
        Element::bare("item", NS_PUBSUB),
        &[("id", room.as_str())],
    ));
    let mut pubsub = Element::bare("pubsub", NS_PUBSUB);
    pubsub.append_child(retract);
    iq("set", id, pubsub)
}

/// One `<item id='room'><conference/></item>`: an item whose id is not a
/// room JID, or whose payload does not read, is skipped.
fn read_item(item: &Element) -> Option<Bookmark> {
    let room: BareJid = item.attr("id")?.parse().ok()?;
    room.node()?;
    let payload = item.children().find(|c| c.is("conference", NS_BOOKMARKS))?;
    let conference = Conference::try_from(payload.clone()).ok()?;
    Some(Bookmark { room, conference })
}

/// The bookmarks in the answer to [`fetch`]: `None` if it is not a result;
/// an empty list for a node that does not exist yet (`item-not-found`).
pub fn parse_items(iq: &Element) -> Option<Vec<Bookmark>> {
    match iq.attr("type") {
        Some("result") => {}
        Some("error") => {
            let missing = iq
                .get_child("error", crate::ns::NS_CLIENT)
                .is_some_and(|e| e.children().any(|c| c.name() == "item-not-found"));
            return missing.then(Vec::new);
        }
        _ => return None,
    }
    let items = iq
        .get_child("pubsub", NS_PUBSUB)
        .and_then(|p| p.get_child("items", NS_PUBSUB));
    let Some(items) = items else {
        return Some(Vec::new());
    };
    Some(
        items
            .children()
            .filter(|c| c.is("item", NS_PUBSUB))
            .filter_map(read_item)
            .take(MAX_BOOKMARKS)
            .collect(),
    )
}

/// What a bookmarks notification says (§4).
#[derive(Debug, Clone)]
pub enum BookmarkEvent {
    Published(Vec<Bookmark>),
    Retracted(Vec<BareJid>),
}

/// A `+notify` event about our bookmarks: only from our own account
/// (no `from`, or our bare JID), else anyone could make us join rooms.
pub fn parse_event(message: &Element, own: &BareJid) -> Option<BookmarkEvent> {
    let items = message
        .get_child("event", NS_PUBSUB_EVENT)?
        .get_child("items", NS_PUBSUB_EVENT)?;
    if items.attr("node") != Some(NS_BOOKMARKS) {
        return None;
    }
    if message.attr("from").is_some_and(|f| f != own.as_str()) {
        return None;
    }
    let retracted: Vec<BareJid> = items
        .children()
        .filter(|c| c.is("retract", NS_PUBSUB_EVENT))
        .filter_map(|r| r.attr("id")?.parse().ok())
        .take(MAX_BOOKMARKS)
        .collect();
    if !retracted.is_empty() {
        return Some(BookmarkEvent::Retracted(retracted));
    }
    let published = items
        .children()
        .filter(|c| c.is("item", NS_PUBSUB_EVENT))
        .filter_map(|item| {
            // The event's items are in the pubsub#event namespace; their
            // payload is the same as in a fetch result.
            let room: BareJid = item.attr("id")?.parse().ok()?;
            room.node()?;
            let payload = item.children().find(|c| c.is("conference", NS_BOOKMARKS))?;
            let conference = Conference::try_from(payload.clone()).ok()?;
            Some(Bookmark { room, conference })
        })
        .take(MAX_BOOKMARKS)
        .collect();
    Some(BookmarkEvent::Published(published))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own() -> BareJid {
        "alice@localhost".parse().unwrap()
    }

    #[test]
    fn unknown_extensions_survive_a_read_and_a_publish() {
        let result: Element = "<iq xmlns='jabber:client' type='result' id='b1'>\
            <pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:bookmarks:1'>\
            <item id='team@muc.localhost'><conference xmlns='urn:xmpp:bookmarks:1' name='Team' autojoin='true'>\
            <nick>alice</nick><extensions><pinned xmlns='urn:xmpp:bookmarks-pinning:0'/></extensions>\
            </conference></item>\
            <item id='not a jid'><conference xmlns='urn:xmpp:bookmarks:1'/></item>\
            </items></pubsub></iq>"
            .parse()
            .unwrap();
        let bookmarks = parse_items(&result).unwrap();
        assert_eq!(bookmarks.len(), 1, "the item without a room JID is skipped");
        let b = &bookmarks[0];
        assert_eq!(b.room.as_str(), "team@muc.localhost");
        assert!(b.conference.autojoin);
        assert_eq!(b.nick().as_deref(), Some("alice"));
        let published = publish("p1", b);
        let text = String::from_utf8(crate::xml::to_bytes(&published)).unwrap();
        assert!(text.contains("urn:xmpp:bookmarks-pinning:0"), "{text}");
        assert!(
            text.contains("whitelist") && text.contains("never"),
            "{text}"
        );
    }

    #[test]
    fn a_missing_node_is_no_bookmarks_and_other_errors_are_not_an_answer() {
        let missing: Element =
            "<iq xmlns='jabber:client' type='error' id='b1'><error type='cancel'>\
            <item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
                .parse()
                .unwrap();
        assert_eq!(parse_items(&missing).map(|b| b.len()), Some(0));
        let other: Element = "<iq xmlns='jabber:client' type='error' id='b1'><error type='cancel'>\
            <forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
            .parse()
            .unwrap();
        assert!(parse_items(&other).is_none());
    }

    #[test]
    fn only_our_own_account_may_tell_us_about_bookmarks() {
        let event = |from: &str| -> Element {
            format!(
                "<message xmlns='jabber:client' {from}><event xmlns='http://jabber.org/protocol/pubsub#event'>\
                 <items node='urn:xmpp:bookmarks:1'><item id='team@muc.localhost'>\
                 <conference xmlns='urn:xmpp:bookmarks:1' autojoin='true'/></item></items></event></message>"
            )
            .parse()
            .unwrap()
        };
        assert!(matches!(
            parse_event(&event("from='alice@localhost'"), &own()),
            Some(BookmarkEvent::Published(b)) if b.len() == 1
        ));
        assert!(parse_event(&event(""), &own()).is_some());
        assert!(parse_event(&event("from='mallory@localhost'"), &own()).is_none());
    }

    #[test]
    fn a_retraction_names_the_room() {
        let event: Element = "<message xmlns='jabber:client' from='alice@localhost'>\
            <event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:xmpp:bookmarks:1'>\
            <retract id='team@muc.localhost'/></items></event></message>"
            .parse()
            .unwrap();
        assert!(matches!(
            parse_event(&event, &own()),
            Some(BookmarkEvent::Retracted(r)) if r[0].as_str() == "team@muc.localhost"
        ));
    }
}
