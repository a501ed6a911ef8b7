//! The live stream: stanzas go up to the client (counted for XEP-0198),
//! SM nonzas to `stream_management`, and XEP-0199 pings are answered (from
//! our server) and sent when the connection has been idle.

use std::time::Instant;

use minidom::Element;

use super::{Output, Session, SessionError, SessionEvent, Timer};
use crate::ns::{NS_CLIENT, NS_PING, NS_SM};
use crate::xml;

impl Session {
    /// An element on the live stream (the state stays `Online`).
    pub(super) fn on_online_element(&mut self, element: Element) -> Result<(), SessionError> {
        if element.is("r", NS_SM) {
            self.on_ack_request();
            return Ok(());
        }
        if element.is("a", NS_SM) {
            return self.on_ack(&element);
        }
        if !element.has_ns(NS_CLIENT) || !matches!(element.name(), "message" | "presence" | "iq") {
            // XEP-0198 counts only stanzas; unknown nonzas are dropped.
            tracing::debug!(name = element.name(), "dropping unknown top-level element");
            return Ok(());
        }
        if let Some(sm) = &mut self.sm {
            sm.record_received();
            self.sm_changed = true;
        }
        if element.name() == "iq" {
            let id = element.attr("id");
            if self.ping_id.is_some() && id == self.ping_id.as_deref() {
                self.ping_id = None;
                return Ok(());
            }
            // Pings from our server are answered here; anyone else's go up
            // to the client, which answers only those allowed to see our
            // presence (XEP-0199 §4.2).
            if element.attr("type") == Some("get")
                && element.has_child("ping", NS_PING)
                && self.sent_by_our_server(&element)
            {
                let reply = ping_reply(&element);
                self.transmit(reply);
                return Ok(());
            }
        }
        self.outputs
            .push_back(Output::Event(SessionEvent::Stanza(element)));
        Ok(())
    }

    pub(super) fn send_ping(&mut self, now: Instant) {
        if !self.is_online() {
            return;
        }
        if self.sm.is_some() {
            // An ack request is the cheapest liveness probe when SM is on.
            self.ack_request_due = true;
        } else {
            let id = self.next_id();
            self.transmit(format!(
                "<iq type='get' id='{id}'><ping xmlns='{NS_PING}'/></iq>"
            ));
            self.ping_id = Some(id);
        }
        self.timers
            .set(Timer::PingAnswer, now + self.config.ping_timeout);
    }

    /// No `from`, our domain, or our own bare JID.
    fn sent_by_our_server(&self, element: &Element) -> bool {
        match element.attr("from") {
            None => true,
            Some(from) => {
                from == self.config.jid.domain().as_str() || from == self.config.jid.as_str()
            }
        }
    }
}

fn ping_reply(ping: &Element) -> String {
    let id = xml::escape(ping.attr("id").unwrap_or(""));
    match ping.attr("from") {
        Some(from) => format!("<iq type='result' id='{id}' to='{}'/>", xml::escape(from)),
        None => format!("<iq type='result' id='{id}'/>"),
    }
}
