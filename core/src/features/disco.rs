//! Service discovery (XEP-0030) both ways: what this client is and
//! supports, announced in presence as an entity-capabilities hash
//! (XEP-0115) — the `+notify` features make the server push contacts' OMEMO
//! device lists to us as they change (XEP-0163 §4) — and what our server
//! supports (read with xmpp-parsers' typed disco reader).

use crate::ns::{NS_CAPS, NS_DISCO_INFO};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use minidom::Element;
use sha1::{Digest, Sha1};
use std::collections::BTreeSet;

use super::{stanza, with_attrs};

const CAPS_NODE: &str = "https://waxwing.im";
const IDENTITY: (&str, &str, &str) = ("client", "phone", "Waxwing");

/// Our features, sorted as XEP-0115 §5.1 wants them.
fn features() -> Vec<&'static str> {
    let mut features = vec![
        NS_DISCO_INFO,
        NS_CAPS,
        "urn:xmpp:ping",
        "urn:xmpp:receipts",
        "urn:xmpp:carbons:2",
        "urn:xmpp:sid:0",
        "eu.siacs.conversations.axolotl.devicelist+notify",
        "urn:xmpp:omemo:2:devices+notify",
        // XEP-0402 §4: our other devices' bookmark changes.
        "urn:xmpp:bookmarks:1+notify",
    ];
    features.sort_unstable();
    features
}

/// The XEP-0115 verification string of our identity and features.
pub fn caps_ver() -> String {
    let (category, kind, name) = IDENTITY;
    let mut s = format!("{category}/{kind}//{name}<");
    for feature in features() {
        s.push_str(feature);
        s.push('<');
    }
    B64.encode(Sha1::digest(s.as_bytes()))
}

/// The `<c/>` element for our presence.
pub fn caps_element() -> Element {
    with_attrs(
        Element::bare("c", NS_CAPS),
        &[("hash", "sha-1"), ("node", CAPS_NODE), ("ver", &caps_ver())],
    )
}

/// A disco#info request to `to` (XEP-0030 §3.1).
pub fn info_query(id: &str, to: &str) -> Element {
    stanza(
        "iq",
        &[("type", Some("get")), ("id", Some(id)), ("to", Some(to))],
        vec![Element::bare("query", NS_DISCO_INFO)],
    )
}

/// The features a disco#info result lists; `None` when it is not one.
/// xmpp-parsers 0.23 (without its `pedantic` feature) skips attributes and
/// children it does not know, so a slightly-off answer still reads.
pub fn result_features(iq: &Element) -> Option<BTreeSet<String>> {
    if iq.attr("type") != Some("result") {
        return None;
    }
    let query = iq.get_child("query", NS_DISCO_INFO)?.clone();
    xmpp_parsers::disco::DiscoInfoResult::try_from(query)
        .ok()
        .map(|info| info.features)
}

/// The answer to a disco#info request (for us, or for our caps node).
pub fn info_result(request: &Element) -> Element {
    let mut query = Element::bare("query", NS_DISCO_INFO);
    if let Some(node) = request
        .get_child("query", NS_DISCO_INFO)
        .and_then(|q| q.attr("node"))
    {
        query = with_attrs(query, &[("node", node)]);
    }
    let (category, kind, name) = IDENTITY;
    query.append_child(with_attrs(
        Element::bare("identity", NS_DISCO_INFO),
        &[("category", category), ("type", kind), ("name", name)],
    ));
    for feature in features() {
        query.append_child(with_attrs(
            Element::bare("feature", NS_DISCO_INFO),
            &[("var", feature)],
        ));
    }
    stanza(
        "iq",
        &[
            ("type", Some("result")),
            ("id", request.attr("id")),
            ("to", request.attr("from")),
        ],
        vec![query],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The xmpp-parsers decision (docs/decisions.md): its typed reader
    /// takes a slightly-off answer (an unknown attribute, an unknown child,
    /// an extension form) instead of rejecting it.
    #[test]
    fn a_slightly_off_server_answer_still_lists_its_features() {
        let answer: Element =
            "<iq xmlns='jabber:client' type='result' id='d1' from='alice@localhost'>\
             <query xmlns='http://jabber.org/protocol/disco#info' odd='1'>\
             <identity category='account' type='registered'/>\
             <feature var='urn:xmpp:mam:2'/><feature var='urn:xmpp:sid:0'/>\
             <unknown xmlns='urn:example:extra'><deeper/></unknown>\
             <x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'>\
             <value>urn:example:info</value></field></x></query></iq>"
                .parse()
                .unwrap();
        let features = result_features(&answer).expect("read despite the unknown parts");
        assert!(features.contains("urn:xmpp:sid:0"));
        assert!(features.contains("urn:xmpp:mam:2"));
        let error: Element = "<iq xmlns='jabber:client' type='error' id='d1'/>"
            .parse()
            .unwrap();
        assert_eq!(result_features(&error), None);
    }

    #[test]
    fn the_caps_hash_covers_identity_and_features() {
        let ver = caps_ver();
        assert_eq!(B64.decode(&ver).unwrap().len(), 20);
        let request: Element =
            "<iq xmlns='jabber:client' type='get' id='d1' from='localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='https://waxwing.im#x'/></iq>"
                .parse()
                .unwrap();
        let result = info_result(&request);
        let query = result.get_child("query", NS_DISCO_INFO).unwrap();
        assert_eq!(query.attr("node"), Some("https://waxwing.im#x"));
        assert!(query
            .children()
            .any(|f| f.attr("var") == Some("urn:xmpp:omemo:2:devices+notify")));
        assert_eq!(result.attr("id"), Some("d1"));
    }
}
