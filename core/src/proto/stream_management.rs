//! XEP-0198 on the stream: answering the server's `<r/>`, applying its
//! `<a/>`, and resuming a previous stream (classic, after the features, or
//! inline in SASL2). The counters, the unacked queue and the wire elements
//! are in [`super::sm`].

use std::str::FromStr;
use std::time::Instant;

use jid::FullJid;
use minidom::Element;

use super::{unexpected, Output, Session, SessionError, SessionEvent, SmState, State};
use crate::ns::NS_SM;

impl Session {
    /// The server asks what we handled. `h` must not cover a stanza the
    /// client has not stored yet: with stanzas unhandled, the answer waits
    /// for [`Session::mark_handled`].
    pub(super) fn on_ack_request(&mut self) {
        let Some(sm) = &self.sm else { return };
        if sm.inbound_unhandled == 0 {
            let ack = format!("<a xmlns='{NS_SM}' h='{}'/>", sm.inbound_handled);
            self.transmit(ack);
        } else {
            self.ack_owed = true;
        }
    }

    /// The server says how many of our stanzas it handled.
    pub(super) fn on_ack(&mut self, element: &Element) -> Result<(), SessionError> {
        let Some(h) = element.attr("h").and_then(|h| h.parse::<u32>().ok()) else {
            return Err(unexpected("<a h='…'/>", element));
        };
        if let Some(sm) = &mut self.sm {
            let acked = sm.remote_acked(h)?;
            self.emit_acked(&acked);
        }
        Ok(())
    }

    pub(super) fn on_resuming(
        &mut self,
        now: Instant,
        previous: SmState,
        element: Element,
    ) -> Result<State, SessionError> {
        let h = element.attr("h").and_then(|h| h.parse::<u32>().ok());
        if element.is("resumed", NS_SM) {
            let (jid, resent_ids) = self.accept_resumption(previous, h)?;
            self.apply_client_state(true);
            Ok(self.go_online(now, jid, true, resent_ids, false))
        } else if element.is("failed", NS_SM) {
            self.refuse_resumption(previous, h);
            Ok(self.start_bind())
        } else {
            Err(unexpected("<resumed/> or <failed/>", &element))
        }
    }

    /// The server resumed `previous` and says it handled `h` of our
    /// stanzas: whatever it did not get goes out again, in order, and stays
    /// queued until acknowledged (XEP-0198 §5). Returns the stream's JID
    /// and the ids of the re-sent stanzas.
    pub(super) fn accept_resumption(
        &mut self,
        mut previous: SmState,
        h: Option<u32>,
    ) -> Result<(FullJid, Vec<String>), SessionError> {
        let Some(h) = h else {
            return Err(SessionError::UnexpectedElement {
                expected: "<resumed h='…'/>",
                got: "resumed".to_owned(),
            });
        };
        let acked = previous.remote_acked(h)?;
        self.emit_acked(&acked);
        let jid = previous
            .bound_jid
            .as_deref()
            .and_then(|j| FullJid::from_str(j).ok())
            .ok_or_else(|| SessionError::BindFailed {
                condition: "no-previous-jid".to_owned(),
            })?;
        let mut resent_ids = Vec::new();
        for stanza in &previous.unacked {
            self.outputs
                .push_back(Output::Transmit(stanza.clone().into_bytes()));
            if let Some(id) = Element::from_str(stanza)
                .ok()
                .and_then(|e| e.attr("id").map(str::to_owned))
            {
                resent_ids.push(id);
            }
        }
        self.ack_request_due = !previous.unacked.is_empty();
        self.sm = Some(previous);
        self.sm_changed = true;
        Ok((jid, resent_ids))
    }

    /// The server could not resume `previous`; `h` (XEP-0198 §5, on
    /// `<failed/>`) still tells which of its stanzas the old stream got.
    pub(super) fn refuse_resumption(&mut self, mut previous: SmState, h: Option<u32>) {
        if let Some(h) = h {
            if let Ok(acked) = previous.remote_acked(h) {
                self.emit_acked(&acked);
            }
        }
        tracing::info!("resumption refused; binding a new session");
        self.sm_changed = true;
    }

    pub(super) fn emit_acked(&mut self, acked: &[String]) {
        if acked.is_empty() {
            return;
        }
        self.sm_changed = true;
        let elements = acked
            .iter()
            .filter_map(|s| Element::from_str(s).ok())
            .collect();
        self.outputs
            .push_back(Output::Event(SessionEvent::Acked(elements)));
    }
}
