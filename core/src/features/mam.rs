//! XEP-0313 message archive (MAM v2) catch-up: queries paged with RSM
//! (XEP-0059), and validation of results (§6.1.1: results come only from
//! the archive we queried — our own, addressed with no `to`).

use crate::ns::{NS_CLIENT, NS_DATA, NS_DELAY, NS_FORWARD, NS_MAM, NS_RSM};
use jid::BareJid;
use minidom::Element;

use super::messages::parse_xep0082_ms;
use super::{stanza, text_element, with_attrs};

/// Where a page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// The newest `max` messages (first catch-up of a new installation).
    Latest,
    /// Messages after the archive id we already have.
    After(String),
    /// The `max` messages before an archive id (paging back from `Latest`).
    Before(String),
}

/// A query of our own archive.
pub fn query(iq_id: &str, query_id: &str, page: &Page, max: u32) -> Element {
    query_archive(iq_id, query_id, None, page, max)
}

/// A query of `archive` (a room's, XEP-0313 §4.1.1), or ours with `None`.
pub fn query_archive(
    iq_id: &str,
    query_id: &str,
    archive: Option<&BareJid>,
    page: &Page,
    max: u32,
) -> Element {
    let mut form = with_attrs(Element::bare("x", NS_DATA), &[("type", "submit")]);
    let mut form_type = with_attrs(
        Element::bare("field", NS_DATA),
        &[("var", "FORM_TYPE"), ("type", "hidden")],
    );
    form_type.append_child(text_element("value", NS_DATA, NS_MAM));
    form.append_child(form_type);
    let mut set = Element::bare("set", NS_RSM);
    set.append_child(text_element("max", NS_RSM, &max.to_string()));
    match page {
        Page::Latest => {
            set.append_child(Element::bare("before", NS_RSM));
        }
        Page::After(id) => {
            set.append_child(text_element("after", NS_RSM, id));
        }
        Page::Before(id) => {
            set.append_child(text_element("before", NS_RSM, id));
        }
    }
    let mut query = with_attrs(Element::bare("query", NS_MAM), &[("queryid", query_id)]);
    query.append_child(form);
    query.append_child(set);
    stanza(
        "iq",
        &[
            ("type", Some("set")),
            ("id", Some(iq_id)),
            ("to", archive.map(|a| a.as_str())),
        ],
        vec![query],
    )
}

/// What a `<message/>` is with respect to MAM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MamMessage {
    None,
    Result {
        query_id: String,
        /// The archive's id for the message (its stanza-id).
        archive_id: String,
        message: Element,
        stamp_ms: Option<i64>,
    },
    /// A result not from our archive: drop it.
    Forged,
}

pub fn unwrap(message: &Element, own: &BareJid) -> MamMessage {
    let Some(result) = message.get_child("result", NS_MAM) else {
        return MamMessage::None;
    };
    // Results for our own archive come from our bare JID or without `from`.
    if message.attr("from").is_some_and(|f| f != own.as_str()) {
        return MamMessage::Forged;
    }
    let (Some(query_id), Some(archive_id)) = (result.attr("queryid"), result.attr("id")) else {
        return MamMessage::Forged;
    };
    let Some(forwarded) = result.get_child("forwarded", NS_FORWARD) else {
        return MamMessage::Forged;
    };
    let Some(inner) = forwarded.get_child("message", NS_CLIENT) else {
        return MamMessage::Forged;
    };
    let stamp_ms = forwarded
        .get_child("delay", NS_DELAY)
        .and_then(|d| d.attr("stamp"))
        .and_then(parse_xep0082_ms);
    MamMessage::Result {
        query_id: query_id.to_owned(),
        archive_id: archive_id.to_owned(),
        message: inner.clone(),
        stamp_ms,
    }
}

/// The `<fin/>` that ends a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fin {
    pub complete: bool,
    /// Archive id of the first result of the page.
    pub first: Option<String>,
    /// Archive id of the last result of the page.
    pub last: Option<String>,
}

pub fn parse_fin(iq: &Element) -> Option<Fin> {
    let fin = iq.get_child("fin", NS_MAM)?;
    let set = fin.get_child("set", NS_RSM);
    let text_of = |name: &str| {
        set.and_then(|s| s.get_child(name, NS_RSM))
            .map(|e| e.text())
    };
    Some(Fin {
        complete: matches!(fin.attr("complete"), Some("true") | Some("1")),
        first: text_of("first"),
        last: text_of("last"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own() -> BareJid {
        "alice@example.org".parse().unwrap()
    }

    fn result(from: Option<&str>) -> Element {
        let from = from.map(|f| format!("from='{f}'")).unwrap_or_default();
        format!(
            "<message xmlns='jabber:client' {from} to='alice@example.org/phone'>\
             <result xmlns='urn:xmpp:mam:2' queryid='q1' id='A1'><forwarded xmlns='urn:xmpp:forward:0'>\
             <delay xmlns='urn:xmpp:delay' stamp='2026-01-01T00:00:00Z'/>\
             <message xmlns='jabber:client' from='bob@example.org/x' to='alice@example.org' type='chat'><body>old</body></message>\
             </forwarded></result></message>"
        )
        .parse()
        .unwrap()
    }

    #[test]
    fn results_from_our_archive_are_unwrapped() {
        for from in [None, Some("alice@example.org")] {
            let MamMessage::Result {
                archive_id,
                query_id,
                stamp_ms,
                ..
            } = unwrap(&result(from), &own())
            else {
                panic!("not a result")
            };
            assert_eq!((archive_id.as_str(), query_id.as_str()), ("A1", "q1"));
            assert_eq!(stamp_ms, Some(1_767_225_600_000));
        }
    }

    #[test]
    fn results_from_another_archive_are_forged() {
        assert_eq!(
            unwrap(&result(Some("mallory@evil.example")), &own()),
            MamMessage::Forged
        );
        assert_eq!(
            unwrap(&result(Some("alice@example.org/res")), &own()),
            MamMessage::Forged
        );
    }

    #[test]
    fn queries_and_fin() {
        let q = String::from(&query("i1", "q1", &Page::After("A9".into()), 100));
        let parsed: Element = q.parse().unwrap();
        let query = parsed.get_child("query", NS_MAM).unwrap();
        assert_eq!(query.attr("queryid"), Some("q1"));
        let set = query.get_child("set", NS_RSM).unwrap();
        assert_eq!(set.get_child("after", NS_RSM).unwrap().text(), "A9");
        assert_eq!(set.get_child("max", NS_RSM).unwrap().text(), "100");
        let fin: Element = "<iq xmlns='jabber:client' type='result' id='i1'><fin xmlns='urn:xmpp:mam:2' complete='true'>\
            <set xmlns='http://jabber.org/protocol/rsm'><first>A1</first><last>A5</last></set></fin></iq>"
            .parse()
            .unwrap();
        assert_eq!(
            parse_fin(&fin),
            Some(Fin {
                complete: true,
                first: Some("A1".into()),
                last: Some("A5".into())
            })
        );
    }
}
