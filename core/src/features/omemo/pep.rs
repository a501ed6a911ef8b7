//! OMEMO over PEP (XEP-0163 on XEP-0060): fetching and publishing device
//! lists and bundles, for both versions. Nodes are published with
//! `pubsub#access_model=open` (XEP-0384 §5.3) so that contacts who are not
//! subscribed to our presence can still start sessions.

use crate::ns::{NS_PUBSUB, NS_PUBSUB_EVENT, NS_PUBSUB_OWNER};
use minidom::Element;

use super::elements::{bundle_node, device_list_node};
use crate::features::{stanza, submit_form, with_attrs, PUBLISH_OPTIONS};
use crate::omemo::OmemoVersion;

fn iq(kind: &str, id: &str, to: Option<&str>, pubsub: Element) -> Element {
    stanza(
        "iq",
        &[("type", Some(kind)), ("id", Some(id)), ("to", to)],
        vec![pubsub],
    )
}

fn items(node: &str, item: Option<&str>) -> Element {
    let mut items = with_attrs(Element::bare("items", NS_PUBSUB), &[("node", node)]);
    if let Some(item) = item {
        items.append_child(with_attrs(
            Element::bare("item", NS_PUBSUB),
            &[("id", item)],
        ));
    }
    let mut pubsub = Element::bare("pubsub", NS_PUBSUB);
    pubsub.append_child(items);
    pubsub
}

/// Requests `jid`'s device list.
pub fn fetch_device_list(id: &str, jid: &str, version: OmemoVersion) -> Element {
    iq("get", id, Some(jid), items(device_list_node(version), None))
}

/// Requests one device's bundle.
pub fn fetch_bundle(id: &str, jid: &str, version: OmemoVersion, device_id: u32) -> Element {
    let (node, item) = bundle_node(version, device_id);
    let item = (version == OmemoVersion::V2).then_some(item);
    iq("get", id, Some(jid), items(&node, item.as_deref()))
}

fn publish(id: &str, node: &str, item_id: &str, payload: Element, max_items: bool) -> Element {
    let mut item = with_attrs(Element::bare("item", NS_PUBSUB), &[("id", item_id)]);
    item.append_child(payload);
    let mut publish = with_attrs(Element::bare("publish", NS_PUBSUB), &[("node", node)]);
    publish.append_child(item);
    let mut fields = vec![
        ("FORM_TYPE", PUBLISH_OPTIONS),
        ("pubsub#access_model", "open"),
    ];
    if max_items {
        // OMEMO 2 keeps every device's bundle as an item of one node.
        fields.push(("pubsub#max_items", "max"));
    }
    let mut options = Element::bare("publish-options", NS_PUBSUB);
    options.append_child(submit_form(&fields));
    let mut pubsub = Element::bare("pubsub", NS_PUBSUB);
    pubsub.append_child(publish);
    pubsub.append_child(options);
    iq("set", id, None, pubsub)
}

/// Publishes our device list (`list` built by `elements::device_list_element`).
pub fn publish_device_list(id: &str, version: OmemoVersion, list: Element) -> Element {
    publish(id, device_list_node(version), "current", list, false)
}

/// Publishes our bundle (built by `elements::bundle_element`).
pub fn publish_bundle(id: &str, version: OmemoVersion, device_id: u32, bundle: Element) -> Element {
    let (node, item) = bundle_node(version, device_id);
    publish(id, &node, &item, bundle, version == OmemoVersion::V2)
}

/// Removes one of our bundles: OMEMO 2 keeps all of them as items of one
/// node (XEP-0060 §7.2 retract, with a notification), OMEMO 0.3 has a node
/// per device (§8.4 delete).
pub fn remove_bundle(id: &str, version: OmemoVersion, device_id: u32) -> Element {
    let (node, item) = bundle_node(version, device_id);
    let pubsub = match version {
        OmemoVersion::V2 => {
            let mut retract = with_attrs(
                Element::bare("retract", NS_PUBSUB),
                &[("node", &node), ("notify", "true")],
            );
            retract.append_child(with_attrs(
                Element::bare("item", NS_PUBSUB),
                &[("id", &item)],
            ));
            let mut pubsub = Element::bare("pubsub", NS_PUBSUB);
            pubsub.append_child(retract);
            pubsub
        }
        OmemoVersion::V0_3 => {
            let mut pubsub = Element::bare("pubsub", NS_PUBSUB_OWNER);
            pubsub.append_child(with_attrs(
                Element::bare("delete", NS_PUBSUB_OWNER),
                &[("node", &node)],
            ));
            pubsub
        }
    };
    iq("set", id, None, pubsub)
}

/// A PEP notification in a message: its node and the first item's payload
/// (none when the item was retracted or the node purged).
pub fn event_item(message: &Element) -> Option<(&str, Option<&Element>)> {
    let items = message
        .get_child("event", NS_PUBSUB_EVENT)?
        .get_child("items", NS_PUBSUB_EVENT)?;
    let node = items.attr("node")?;
    let payload = items
        .children()
        .find(|c| c.is("item", NS_PUBSUB_EVENT))
        .and_then(|item| item.children().next());
    Some((node, payload))
}

/// The payload of the first item of a pubsub `items` result (or of a PEP
/// event notification).
pub fn first_item_payload(container: &Element) -> Option<&Element> {
    let items = container
        .get_child("pubsub", NS_PUBSUB)
        .and_then(|p| p.get_child("items", NS_PUBSUB))
        .or_else(|| {
            container
                .get_child("event", "http://jabber.org/protocol/pubsub#event")
                .and_then(|e| e.get_child("items", "http://jabber.org/protocol/pubsub#event"))
        })?;
    items
        .children()
        .find(|c| c.name() == "item")?
        .children()
        .next()
}

/// The payload of an answer to [`fetch_bundle`]`(jid, version, device_id)`,
/// only if the answer is that: from `jid` (a bare JID; our own account's
/// answers may carry no `from`), for the bundle node of `device_id`, and
/// for OMEMO 2 the item named after it. Anything else could make us pin
/// another device's key under this id.
pub fn bundle_answer<'a>(
    iq: &'a Element,
    own: &str,
    jid: &str,
    version: OmemoVersion,
    device_id: u32,
) -> Option<&'a Element> {
    let from_ok = match iq.attr("from") {
        None => jid == own,
        Some(from) => from
            .parse::<jid::Jid>()
            .is_ok_and(|from| from.to_bare().as_str() == jid && from.resource().is_none()),
    };
    if !from_ok {
        return None;
    }
    let (node, item_id) = bundle_node(version, device_id);
    let items = iq
        .get_child("pubsub", NS_PUBSUB)?
        .get_child("items", NS_PUBSUB)?;
    if items.attr("node") != Some(node.as_str()) {
        return None;
    }
    let item = items.children().find(|c| c.name() == "item")?;
    if version == OmemoVersion::V2 && item.attr("id") != Some(item_id.as_str()) {
        return None;
    }
    item.children().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(from: Option<&str>, node: &str, item: &str) -> Element {
        let xml = format!(
            "<iq xmlns='jabber:client' type='result' id='b1'{}>\
             <pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='{node}'>\
             <item id='{item}'><bundle xmlns='urn:xmpp:omemo:2'/></item></items></pubsub></iq>",
            from.map(|f| format!(" from='{f}'")).unwrap_or_default()
        );
        xml.parse().unwrap()
    }

    /// Issue 13, item 11: a bundle answer is taken only for the device and
    /// the contact it was asked of (the old code took the first item of
    /// whatever came back under the request's id).
    #[test]
    fn a_bundle_answer_must_match_the_request() {
        let v2 = OmemoVersion::V2;
        let own = "alice@x";
        let ok = answer(Some("bob@x"), "urn:xmpp:omemo:2:bundles", "7");
        assert!(bundle_answer(&ok, own, "bob@x", v2, 7).is_some());
        let other_device = answer(Some("bob@x"), "urn:xmpp:omemo:2:bundles", "8");
        assert!(bundle_answer(&other_device, own, "bob@x", v2, 7).is_none());
        let other_contact = answer(Some("mallory@x"), "urn:xmpp:omemo:2:bundles", "7");
        assert!(bundle_answer(&other_contact, own, "bob@x", v2, 7).is_none());
        let full_jid = answer(Some("bob@x/phone"), "urn:xmpp:omemo:2:bundles", "7");
        assert!(bundle_answer(&full_jid, own, "bob@x", v2, 7).is_none());
        let no_from = answer(None, "urn:xmpp:omemo:2:bundles", "7");
        assert!(bundle_answer(&no_from, own, "bob@x", v2, 7).is_none());
        assert!(
            bundle_answer(&no_from, own, "alice@x", v2, 7).is_some(),
            "our own"
        );
        let v03 = OmemoVersion::V0_3;
        let node = "eu.siacs.conversations.axolotl.bundles:7";
        assert!(bundle_answer(
            &answer(Some("bob@x"), node, "current"),
            own,
            "bob@x",
            v03,
            7
        )
        .is_some());
        let wrong_node = "eu.siacs.conversations.axolotl.bundles:8";
        assert!(bundle_answer(
            &answer(Some("bob@x"), wrong_node, "current"),
            own,
            "bob@x",
            v03,
            7
        )
        .is_none());
    }
}
