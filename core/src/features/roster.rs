//! Roster: fetching (with XEP-0237 versioning), pushes, and edits
//! (RFC 6121 §2).

use crate::ns::NS_ROSTER;
use jid::BareJid;
use minidom::Element;

use super::{stanza, text_element, with_attrs};
use crate::store::{RosterEntry, Subscription};

/// `<iq type='get'><query ver=…/></iq>`; `ver` only when the server
/// supports versioning (an empty string asks for a versioned full roster).
pub fn get(id: &str, version: Option<&str>) -> Element {
    let mut query = Element::bare("query", NS_ROSTER);
    if let Some(ver) = version {
        super::set_attr(&mut query, "ver", ver);
    }
    stanza(
        "iq",
        &[("type", Some("get")), ("id", Some(id))],
        vec![query],
    )
}

/// Adds or renames a contact.
pub fn set_item(id: &str, jid: &BareJid, name: Option<&str>, groups: &[String]) -> Element {
    let mut item = with_attrs(Element::bare("item", NS_ROSTER), &[("jid", jid.as_str())]);
    if let Some(name) = name {
        super::set_attr(&mut item, "name", name);
    }
    for g in groups {
        item.append_child(text_element("group", NS_ROSTER, g));
    }
    let mut query = Element::bare("query", NS_ROSTER);
    query.append_child(item);
    stanza(
        "iq",
        &[("type", Some("set")), ("id", Some(id))],
        vec![query],
    )
}

/// Removes a contact (and cancels subscriptions both ways).
pub fn remove_item(id: &str, jid: &BareJid) -> Element {
    let item = with_attrs(
        Element::bare("item", NS_ROSTER),
        &[("jid", jid.as_str()), ("subscription", "remove")],
    );
    let mut query = Element::bare("query", NS_ROSTER);
    query.append_child(item);
    stanza(
        "iq",
        &[("type", Some("set")), ("id", Some(id))],
        vec![query],
    )
}

/// One item of a roster result or push; `None` entry means removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RosterChange {
    Upsert(RosterEntry),
    Remove(String),
}

fn parse_item(item: &Element) -> Option<RosterChange> {
    let jid: BareJid = item.attr("jid")?.parse().ok()?;
    let subscription = item.attr("subscription").unwrap_or("none");
    if subscription == "remove" {
        return Some(RosterChange::Remove(jid.to_string()));
    }
    Some(RosterChange::Upsert(RosterEntry {
        jid: jid.to_string(),
        name: item
            .attr("name")
            .filter(|n| !n.is_empty())
            .map(str::to_owned),
        subscription: Subscription::parse(subscription),
        pending_out: item.attr("ask") == Some("subscribe"),
        groups: item
            .children()
            .filter(|g| g.is("group", NS_ROSTER))
            .map(|g| g.text())
            .collect(),
    }))
}

/// A roster result: `None` when the server answered with an empty result,
/// meaning our versioned copy is current (XEP-0237 §2.3).
pub fn parse_result(iq: &Element) -> Option<(Vec<RosterEntry>, Option<String>)> {
    let query = iq.get_child("query", NS_ROSTER)?;
    let entries = query
        .children()
        .filter_map(parse_item)
        .filter_map(|c| match c {
            RosterChange::Upsert(e) => Some(e),
            RosterChange::Remove(_) => None,
        })
        .collect();
    Some((entries, query.attr("ver").map(str::to_owned)))
}

/// Why a roster push was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushRejected {
    /// RFC 6121 §2.1.6: only our server (no `from`, or our bare JID) may push.
    NotFromOurServer,
    Malformed,
}

/// Validates and reads a roster push.
pub fn parse_push(
    iq: &Element,
    own: &BareJid,
) -> Result<(RosterChange, Option<String>), PushRejected> {
    if let Some(from) = iq.attr("from") {
        // RFC 6121 §2.1.6: no `from`, or exactly our bare JID — not one of
        // our resources (another client of ours cannot push roster items).
        let from: jid::Jid = from.parse().map_err(|_| PushRejected::NotFromOurServer)?;
        if from.resource().is_some() || from.to_bare() != *own {
            return Err(PushRejected::NotFromOurServer);
        }
    }
    let query = iq
        .get_child("query", NS_ROSTER)
        .ok_or(PushRejected::Malformed)?;
    let mut items = query.children().filter(|c| c.is("item", NS_ROSTER));
    let item = items.next().ok_or(PushRejected::Malformed)?;
    if items.next().is_some() {
        // §2.1.6: a push carries exactly one item.
        return Err(PushRejected::Malformed);
    }
    let change = parse_item(item).ok_or(PushRejected::Malformed)?;
    Ok((change, query.attr("ver").map(str::to_owned)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own() -> BareJid {
        "alice@example.org".parse().unwrap()
    }

    #[test]
    fn roster_result_and_versioned_empty_result() {
        let iq: Element = "<iq xmlns='jabber:client' type='result' id='r1'><query xmlns='jabber:iq:roster' ver='v2'>\
            <item jid='bob@example.org' name='Bob' subscription='both'><group>Friends</group></item>\
            <item jid='carol@example.org' subscription='none' ask='subscribe'/></query></iq>"
            .parse()
            .unwrap();
        let (entries, ver) = parse_result(&iq).unwrap();
        assert_eq!(ver.as_deref(), Some("v2"));
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].groups, vec!["Friends"]);
        assert!(entries[1].pending_out);
        let empty: Element = "<iq xmlns='jabber:client' type='result' id='r1'/>"
            .parse()
            .unwrap();
        assert_eq!(parse_result(&empty), None);
    }

    #[test]
    fn pushes_from_anyone_but_our_server_are_refused() {
        let push = |from: &str| -> Element {
            format!(
                "<iq xmlns='jabber:client' type='set' id='p' {from}><query xmlns='jabber:iq:roster' ver='v3'>\
                 <item jid='mallory@evil.example' subscription='both'/></query></iq>"
            )
            .parse()
            .unwrap()
        };
        assert!(parse_push(&push(""), &own()).is_ok());
        assert!(parse_push(&push("from='alice@example.org'"), &own()).is_ok());
        assert_eq!(
            parse_push(&push("from='mallory@evil.example'"), &own()).unwrap_err(),
            PushRejected::NotFromOurServer
        );
        assert_eq!(
            parse_push(&push("from='example.org'"), &own()).unwrap_err(),
            PushRejected::NotFromOurServer
        );
        // Issue 12, defect 18: one of our own resources is not the server.
        assert_eq!(
            parse_push(&push("from='alice@example.org/laptop'"), &own()).unwrap_err(),
            PushRejected::NotFromOurServer
        );
    }

    #[test]
    fn removal_push() {
        let iq: Element =
            "<iq xmlns='jabber:client' type='set' id='p'><query xmlns='jabber:iq:roster'>\
            <item jid='bob@example.org' subscription='remove'/></query></iq>"
                .parse()
                .unwrap();
        assert_eq!(
            parse_push(&iq, &own()).unwrap().0,
            RosterChange::Remove("bob@example.org".into())
        );
    }
}
