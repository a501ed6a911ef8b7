//! XEP-0198 stream management: the state of one stream (counters and the
//! queue of stanzas the server has not acknowledged yet) and the typed
//! nonzas that move it (`<enable/>`, `<enabled/>`, `<r/>`, `<a/>`,
//! `<resume/>`, `<resumed/>`, `<failed/>`).
//!
//! Serializable so that a later process can resume the stream (the state is
//! written to the store as it changes). Counters wrap at 2^32 (XEP-0198 §4).

use std::collections::VecDeque;
use std::fmt;

use minidom::Element;
use serde::{Deserialize, Serialize};

use crate::ns::NS_SM;
use crate::xml;

/// Stream management state of one stream.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SmState {
    /// Resumption id from `<enabled/>`, when the server allows resumption.
    pub resume_id: Option<String>,
    /// Preferred reconnection address from `<enabled location=.../>`.
    pub location: Option<String>,
    /// Seconds the server keeps a detached session.
    pub max_seconds: Option<u32>,
    /// The full JID the stream was bound to; a resumed stream keeps it.
    #[serde(default)]
    pub bound_jid: Option<String>,
    /// Stanzas received from the server and handled by us: the `h` we
    /// report. Moves only when the client says so (after its store commit).
    pub inbound_handled: u32,
    /// Stanzas received but not handled yet. Not persisted: a resumed
    /// stream gets them again, since `h` does not cover them.
    #[serde(skip)]
    pub inbound_unhandled: u32,
    /// Value of `h` the server last acknowledged.
    pub outbound_acked: u32,
    /// Stanzas sent but not yet acknowledged, oldest first.
    pub unacked: VecDeque<Unacked>,
}

/// A stanza sent and not acknowledged yet: its bytes, to send again on
/// resumption, and the `id` and `to` the client tracks it by, read once
/// when it was sent.
///
/// Stored as `{"id", "to", "bytes"}`; an older store holds the serialized
/// stanza alone, which still loads (read once, on load).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "StoredUnacked")]
pub struct Unacked {
    pub id: Option<String>,
    pub to: Option<String>,
    /// The stanza as it went on the wire.
    pub bytes: String,
    /// The stanza itself while this process holds it, so an ack hands it
    /// up without parsing; `None` after a load from the store.
    #[serde(skip)]
    element: Option<Element>,
}

impl Unacked {
    pub fn new(stanza: &Element, bytes: String) -> Self {
        Self {
            id: stanza.attr("id").map(str::to_owned),
            to: stanza.attr("to").map(str::to_owned),
            bytes,
            element: Some(stanza.clone()),
        }
    }

    /// The stanza, parsed from its bytes only if it came from the store.
    pub fn into_element(self) -> Option<Element> {
        self.element.or_else(|| self.bytes.parse().ok())
    }
}

impl PartialEq for Unacked {
    // The element is the bytes, parsed: comparing the bytes suffices.
    fn eq(&self, other: &Self) -> bool {
        (&self.id, &self.to, &self.bytes) == (&other.id, &other.to, &other.bytes)
    }
}

impl Eq for Unacked {}

/// What the store holds for one unacked stanza, in either format.
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredUnacked {
    Typed {
        id: Option<String>,
        to: Option<String>,
        bytes: String,
    },
    /// Before the record was typed: the serialized stanza only.
    Stanza(String),
}

impl From<StoredUnacked> for Unacked {
    fn from(stored: StoredUnacked) -> Self {
        match stored {
            StoredUnacked::Typed { id, to, bytes } => Unacked {
                id,
                to,
                bytes,
                element: None,
            },
            StoredUnacked::Stanza(bytes) => match bytes.parse::<Element>() {
                Ok(element) => Unacked::new(&element, bytes),
                Err(_) => Unacked {
                    id: None,
                    to: None,
                    bytes,
                    element: None,
                },
            },
        }
    }
}

/// The server's acknowledgement makes no sense (XEP-0198 §4 says this is a
/// `handled-count-too-high` stream error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmError {
    #[error("the server acknowledged {acked} stanzas but only {sent} are outstanding")]
    HandledCountTooHigh { acked: u32, sent: u32 },
}

impl SmState {
    /// The state a server's `<enabled/>` starts (XEP-0198 §3): resumable
    /// only if it said so and gave an id.
    pub fn enabled_by(enabled: &Enabled) -> SmState {
        SmState {
            resume_id: enabled.id.clone().filter(|_| enabled.resume),
            location: enabled.location.clone(),
            max_seconds: enabled.max,
            ..SmState::default()
        }
    }

    /// Number of stanzas sent in total (acked + outstanding), mod 2^32.
    pub fn outbound_sent(&self) -> u32 {
        self.outbound_acked.wrapping_add(self.unacked.len() as u32)
    }

    pub fn record_sent(&mut self, stanza: Unacked) {
        self.unacked.push_back(stanza);
    }

    pub fn record_received(&mut self) {
        self.inbound_unhandled = self.inbound_unhandled.wrapping_add(1);
    }

    /// Everything received so far is handled. Returns whether `h` moved.
    pub fn mark_handled(&mut self) -> bool {
        if self.inbound_unhandled == 0 {
            return false;
        }
        self.inbound_handled = self.inbound_handled.wrapping_add(self.inbound_unhandled);
        self.inbound_unhandled = 0;
        true
    }

    /// Applies the server's `h` and returns the stanzas it newly covers.
    /// An `h` behind the last one (a late duplicate) acknowledges nothing.
    pub fn remote_acked(&mut self, h: u32) -> Result<Vec<Unacked>, SmError> {
        let newly = h.wrapping_sub(self.outbound_acked);
        // RFC 1982 serial arithmetic: a difference in the upper half means
        // `h` lies behind us.
        if newly > u32::MAX / 2 {
            return Ok(Vec::new());
        }
        if newly as usize > self.unacked.len() {
            return Err(SmError::HandledCountTooHigh {
                acked: h,
                sent: self.outbound_sent(),
            });
        }
        self.outbound_acked = h;
        Ok(self.unacked.drain(..newly as usize).collect())
    }

    pub fn can_resume(&self) -> bool {
        self.resume_id.is_some()
    }

    /// The server has acknowledged every stanza we sent.
    pub fn all_acked(&self) -> bool {
        self.unacked.is_empty()
    }

    /// The `<a/>` reporting what we handled.
    pub fn ack(&self) -> A {
        A {
            h: self.inbound_handled,
        }
    }
}

/// The `h` attribute of an SM nonza, if it is a number.
fn h_of(element: &Element) -> Option<u32> {
    element.attr("h").and_then(|h| h.parse().ok())
}

/// `<a h='…'/>`: the sender handled `h` stanzas (XEP-0198 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct A {
    pub h: u32,
}

impl A {
    /// `None` unless `element` is an `<a/>` with a numeric `h`.
    pub fn parse(element: &Element) -> Option<A> {
        if !element.is("a", NS_SM) {
            return None;
        }
        h_of(element).map(|h| A { h })
    }
}

impl fmt::Display for A {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<a xmlns='{NS_SM}' h='{}'/>", self.h)
    }
}

/// `<r/>`: asks the peer for an `<a/>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct R;

impl fmt::Display for R {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<r xmlns='{NS_SM}'/>")
    }
}

/// `<enable/>`, asking for resumption when `resume` (XEP-0198 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enable {
    pub resume: bool,
}

impl fmt::Display for Enable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.resume {
            write!(f, "<enable xmlns='{NS_SM}' resume='true'/>")
        } else {
            write!(f, "<enable xmlns='{NS_SM}'/>")
        }
    }
}

/// `<enabled/>`: the server counts from now on (XEP-0198 §3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enabled {
    pub id: Option<String>,
    pub resume: bool,
    pub location: Option<String>,
    pub max: Option<u32>,
}

impl Enabled {
    /// `None` unless `element` is an `<enabled/>`.
    pub fn parse(element: &Element) -> Option<Enabled> {
        element.is("enabled", NS_SM).then(|| Enabled {
            id: element.attr("id").map(str::to_owned),
            resume: matches!(element.attr("resume"), Some("true") | Some("1")),
            location: element.attr("location").map(str::to_owned),
            max: element.attr("max").and_then(|m| m.parse().ok()),
        })
    }
}

/// `<resume/>`: asks to continue the stream `previd`, saying we handled
/// `h` of its stanzas (XEP-0198 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume<'a> {
    pub h: u32,
    pub previd: &'a str,
}

impl<'a> Resume<'a> {
    /// The request resuming `previous`.
    pub fn of(previous: &'a SmState) -> Self {
        Resume {
            h: previous.inbound_handled,
            previd: previous.resume_id.as_deref().unwrap_or_default(),
        }
    }
}

impl fmt::Display for Resume<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<resume xmlns='{NS_SM}' h='{}' previd='{}'/>",
            self.h,
            xml::escape(self.previd)
        )
    }
}

/// The server's answer to `<resume/>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeAnswer {
    /// `<resumed h='…'/>`; `h` is `None` when missing or not a number.
    Resumed { h: Option<u32> },
    /// `<failed/>`, with the `h` XEP-0198 §5 lets it carry.
    Failed { h: Option<u32> },
}

impl ResumeAnswer {
    /// `None` unless `element` is `<resumed/>` or `<failed/>`.
    pub fn parse(element: &Element) -> Option<ResumeAnswer> {
        if element.is("resumed", NS_SM) {
            Some(ResumeAnswer::Resumed { h: h_of(element) })
        } else if element.is("failed", NS_SM) {
            Some(ResumeAnswer::Failed { h: h_of(element) })
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stanza(id: &str) -> Unacked {
        let element: Element = format!("<message xmlns='jabber:client' id='{id}' to='b@x'/>")
            .parse()
            .unwrap();
        let bytes = String::from_utf8(xml::to_bytes(&element)).unwrap();
        Unacked::new(&element, bytes)
    }

    fn ids(acked: Vec<Unacked>) -> Vec<String> {
        acked.into_iter().filter_map(|u| u.id).collect()
    }

    #[test]
    fn acks_release_stanzas_in_order_and_late_acks_do_nothing() {
        let mut sm = SmState::default();
        for i in 0..3 {
            sm.record_sent(stanza(&format!("s{i}")));
        }
        assert_eq!(ids(sm.remote_acked(2).unwrap()), vec!["s0", "s1"]);
        assert!(sm.remote_acked(1).unwrap().is_empty());
        assert!(sm.remote_acked(2).unwrap().is_empty());
        assert_eq!(ids(sm.remote_acked(3).unwrap()), vec!["s2"]);
        assert_eq!(sm.outbound_sent(), 3);
    }

    #[test]
    fn acking_more_than_was_sent_is_an_error() {
        let mut sm = SmState::default();
        sm.record_sent(stanza("a"));
        assert_eq!(
            sm.remote_acked(5).unwrap_err(),
            SmError::HandledCountTooHigh { acked: 5, sent: 1 }
        );
        assert_eq!(sm.unacked.len(), 1);
    }

    #[test]
    fn counters_wrap_at_two_to_the_32() {
        let mut sm = SmState {
            outbound_acked: u32::MAX - 1,
            inbound_handled: u32::MAX,
            ..Default::default()
        };
        sm.record_sent(stanza("a"));
        sm.record_sent(stanza("b"));
        sm.record_sent(stanza("c"));
        assert_eq!(sm.remote_acked(1).unwrap().len(), 3);
        sm.record_received();
        assert_eq!(sm.inbound_handled, u32::MAX, "not handled yet");
        assert!(sm.mark_handled());
        assert_eq!(sm.inbound_handled, 0);
    }

    #[test]
    fn state_round_trips_through_json_for_persistence() {
        let mut sm = SmState {
            resume_id: Some("r1".into()),
            ..Default::default()
        };
        sm.record_sent(stanza("m1"));
        let json = serde_json::to_string(&sm).unwrap();
        let loaded = serde_json::from_str::<SmState>(&json).unwrap();
        assert_eq!(loaded, sm);
        // Loaded without its element, an acked stanza is parsed once.
        let element = loaded.unacked[0].clone().into_element().unwrap();
        assert_eq!(element.attr("id"), Some("m1"));
    }

    /// Stores written before the unacked record was typed hold each stanza
    /// as a string: they still load, with `id` and `to` read out.
    #[test]
    fn state_stored_with_unacked_strings_still_loads() {
        let old = r#"{"resume_id":"r1","location":null,"max_seconds":300,
            "bound_jid":"alice@example.org/phone","inbound_handled":4,"outbound_acked":7,
            "unacked":["<message xmlns=\"jabber:client\" to=\"bob@example.org\" id=\"o2\"><body>x</body></message>"]}"#;
        let sm: SmState = serde_json::from_str(old).unwrap();
        assert_eq!(sm.outbound_acked, 7);
        assert_eq!(sm.inbound_handled, 4);
        let unacked = &sm.unacked[0];
        assert_eq!(unacked.id.as_deref(), Some("o2"));
        assert_eq!(unacked.to.as_deref(), Some("bob@example.org"));
        assert!(unacked.bytes.starts_with("<message"));
        // Saved again, it takes the typed form.
        let json = serde_json::to_string(&sm).unwrap();
        assert!(json.contains(r#""id":"o2""#), "{json}");
        assert_eq!(serde_json::from_str::<SmState>(&json).unwrap(), sm);
    }

    #[test]
    fn nonzas_print_and_parse() {
        assert_eq!(A { h: 3 }.to_string(), "<a xmlns='urn:xmpp:sm:3' h='3'/>");
        assert_eq!(R.to_string(), "<r xmlns='urn:xmpp:sm:3'/>");
        assert_eq!(
            Enable { resume: true }.to_string(),
            "<enable xmlns='urn:xmpp:sm:3' resume='true'/>"
        );
        let previous = SmState {
            resume_id: Some("a'b".into()),
            inbound_handled: 2,
            ..Default::default()
        };
        assert_eq!(
            Resume::of(&previous).to_string(),
            "<resume xmlns='urn:xmpp:sm:3' h='2' previd='a&apos;b'/>"
        );
        let parse = |s: &str| s.parse::<Element>().unwrap();
        assert_eq!(
            A::parse(&parse("<a xmlns='urn:xmpp:sm:3' h='9'/>")),
            Some(A { h: 9 })
        );
        assert_eq!(A::parse(&parse("<a xmlns='urn:xmpp:sm:3' h='x'/>")), None);
        let enabled = Enabled::parse(&parse(
            "<enabled xmlns='urn:xmpp:sm:3' id='s1' resume='1' max='60'/>",
        ))
        .unwrap();
        let sm = SmState::enabled_by(&enabled);
        assert_eq!(
            (sm.resume_id.as_deref(), sm.max_seconds),
            (Some("s1"), Some(60))
        );
        let no_resume = Enabled::parse(&parse("<enabled xmlns='urn:xmpp:sm:3' id='s1'/>")).unwrap();
        assert!(!SmState::enabled_by(&no_resume).can_resume());
        assert_eq!(
            ResumeAnswer::parse(&parse("<failed xmlns='urn:xmpp:sm:3' h='1'/>")),
            Some(ResumeAnswer::Failed { h: Some(1) })
        );
        assert_eq!(
            ResumeAnswer::parse(&parse("<resumed xmlns='urn:xmpp:sm:3' previd='s'/>")),
            Some(ResumeAnswer::Resumed { h: None })
        );
    }
}
