//! Reading `<stream:features/>` (RFC 6120 §4.3.2) into what negotiation needs.

use crate::ns::{
    NS_BIND, NS_BIND2, NS_CSI, NS_FAST, NS_ROSTERVER, NS_SASL, NS_SASL2, NS_SASL_CB, NS_SM, NS_TLS,
};
use minidom::Element;

/// What the server offers at one stage of negotiation. Kept between
/// connections (the post-TLS set) so a FAST login can be sent without
/// waiting for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Features {
    pub starttls: bool,
    pub mechanisms: Vec<String>,
    pub bind: bool,
    pub stream_management: bool,
    pub roster_versioning: bool,
    /// XEP-0352 client state indication.
    pub client_state_indication: bool,
    /// XEP-0388 SASL2, with what can be done inline.
    pub sasl2: Option<Sasl2Offer>,
    /// XEP-0440: the channel-binding types the server supports, when it
    /// says.
    pub channel_bindings: Option<Vec<String>>,
}

/// What `<authentication xmlns='urn:xmpp:sasl:2'/>` offers.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sasl2Offer {
    pub mechanisms: Vec<String>,
    /// XEP-0386 Bind2, with the `var`s of the features it can enable inline.
    pub bind2: Option<Vec<String>>,
    /// XEP-0198 resumption inside `<authenticate/>` (Prosody's mod_sasl2_sm).
    pub inline_resume: bool,
    /// XEP-0484 FAST mechanisms a token can be requested for and used with.
    pub fast_mechanisms: Vec<String>,
}

impl Sasl2Offer {
    fn parse(element: &Element) -> Sasl2Offer {
        let mut offer = Sasl2Offer {
            mechanisms: element
                .children()
                .filter(|m| m.is("mechanism", NS_SASL2))
                .map(|m| m.text().trim().to_owned())
                .collect(),
            ..Sasl2Offer::default()
        };
        let Some(inline) = element.get_child("inline", NS_SASL2) else {
            return offer;
        };
        for child in inline.children() {
            if child.is("bind", NS_BIND2) {
                let vars = child
                    .children()
                    .filter(|c| c.name() == "inline")
                    .flat_map(|i| i.children())
                    .filter(|f| f.name() == "feature")
                    .filter_map(|f| f.attr("var").map(str::to_owned))
                    .collect();
                offer.bind2 = Some(vars);
            } else if child.is("sm", NS_SM) {
                offer.inline_resume = true;
            } else if child.is("fast", NS_FAST) {
                offer.fast_mechanisms = child
                    .children()
                    .filter(|m| m.name() == "mechanism")
                    .map(|m| m.text().trim().to_owned())
                    .collect();
            }
        }
        offer
    }

    /// Whether Bind2 can enable `var` (a feature namespace) inline.
    pub fn bind2_inline(&self, var: &str) -> bool {
        self.bind2
            .as_ref()
            .is_some_and(|v| v.iter().any(|f| f == var))
    }
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
            } else if child.is("authentication", NS_SASL2) {
                features.sasl2 = Some(Sasl2Offer::parse(child));
            } else if child.is("sasl-channel-binding", NS_SASL_CB) {
                features.channel_bindings = Some(
                    child
                        .children()
                        .filter(|c| c.name() == "channel-binding")
                        .filter_map(|c| c.attr("type").map(str::to_owned))
                        .collect(),
                );
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
