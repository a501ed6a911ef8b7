//! Reading `<stream:features/>` (RFC 6120 §4.3.2) into what negotiation needs.

use minidom::Element;

pub const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
pub const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
pub const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
pub const NS_SM: &str = "urn:xmpp:sm:3";
pub const NS_CSI: &str = "urn:xmpp:csi:0";
pub const NS_ROSTERVER: &str = "urn:xmpp:features:rosterver";
pub const NS_PING: &str = "urn:xmpp:ping";
pub const NS_CLIENT: &str = "jabber:client";
pub const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

/// What the server offers at one stage of negotiation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features {
    pub starttls: bool,
    pub mechanisms: Vec<String>,
    pub bind: bool,
    pub stream_management: bool,
    pub roster_versioning: bool,
    /// XEP-0352 client state indication.
    pub client_state_indication: bool,
}

impl Features {
    pub fn parse(element: &Element) -> Features {
        let mut features = Features::default();
        for child in element.children() {
            if child.is("starttls", NS_TLS) {
                features.starttls = true;
            } else if child.is("mechanisms", NS_SASL) {
                features.mechanisms = child
                    .children()
                    .filter(|m| m.is("mechanism", NS_SASL))
                    .map(|m| m.text().trim().to_owned())
                    .collect();
            } else if child.is("bind", NS_BIND) {
                features.bind = true;
            } else if child.is("sm", NS_SM) {
                features.stream_management = true;
            } else if child.is("ver", NS_ROSTERVER) {
                features.roster_versioning = true;
            } else if child.is("csi", NS_CSI) {
                features.client_state_indication = true;
            }
        }
        features
    }
}

/// The first child's name of an error element, e.g. `not-authorized`.
pub fn error_condition(element: &Element) -> String {
    element
        .children()
        .find(|c| c.name() != "text")
        .map(|c| c.name().to_owned())
        .unwrap_or_else(|| "undefined-condition".to_owned())
}
