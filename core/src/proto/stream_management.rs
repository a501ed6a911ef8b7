//! XEP-0198 on the stream: answering the server's `<r/>`, applying its
//! `<a/>`, and resuming a previous stream (classic, after the features, or
//! inline in SASL2). The counters, the unacked queue and the wire elements
//! are in [`super::sm`].

use std::str::FromStr;
use std::time::Instant;

use jid::FullJid;
use minidom::Element;

use super::sm::{ResumeAnswer, Unacked, A};
use super::timer::Timer;
use super::{unexpected, Output, Session, SessionError, SessionEvent, SmState, State};
use crate::ns::NS_CLIENT;

impl Session {
    /// The server asks what we handled. `h` must not cover a stanza the
    /// client has not stored yet: with stanzas unhandled, the answer waits
    /// for [`Session::mark_handled`].
    pub(super) fn on_ack_request(&mut self) {
        let Some(sm) = &self.sm else { return };
        if sm.inbound_unhandled == 0 {
            let ack = sm.ack();
            self.transmit(ack.to_string());
        } else {
            self.ack_owed = true;
        }
    }

    /// The server says how many of our stanzas it handled.
    pub(super) fn on_ack(&mut self, element: &Element) -> Result<(), SessionError> {
        let A { h } = A::parse(element).ok_or_else(|| unexpected("<a h='…'/>", element))?;
        // The server handles our stream (XEP-0198 §4): the request is answered.
        self.timers.stop(Timer::AckAnswer);
        if let Some(sm) = &mut self.sm {
            let acked = sm.remote_acked(h)?;
            self.emit_acked(acked);
        }
        Ok(())
    }

    pub(super) fn on_resuming(
        &mut self,
        now: Instant,
        previous: SmState,
        element: Element,
    ) -> Result<State, SessionError> {
        match ResumeAnswer::parse(&element) {
            Some(ResumeAnswer::Resumed { h }) => {
                let (jid, resent_ids) = self.accept_resumption(previous, h)?;
                self.apply_client_state(true);
                Ok(self.go_online(now, jid, true, resent_ids, false))
            }
            Some(ResumeAnswer::Failed { h }) => {
                self.refuse_resumption(previous, h);
                Ok(self.start_bind())
            }
            None => Err(unexpected("<resumed/> or <failed/>", &element)),
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
        self.emit_acked(acked);
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
                .push_back(Output::Transmit(stanza.bytes.clone().into_bytes()));
            resent_ids.extend(stanza.id.clone());
        }
        self.ack_request_due = !previous.unacked.is_empty();
        self.sm = Some(previous);
        self.sm_changed = true;
        Ok((jid, resent_ids))
    }

    /// The server could not resume `previous`; `h` (XEP-0198 §5, on
    /// `<failed/>`) still tells which of its stanzas the old stream got.
    /// What it did not get goes out again on the new session when that is
    /// safe to repeat: presence (subscription answers, our status) and
    /// messages without a body (receipts). Chat messages are the client's
    /// outbox's to resend; IQs are not repeated, their callers were told
    /// the connection ended.
    pub(super) fn refuse_resumption(&mut self, mut previous: SmState, h: Option<u32>) {
        if let Some(h) = h {
            if let Ok(acked) = previous.remote_acked(h) {
                self.emit_acked(acked);
            }
        }
        tracing::info!("resumption refused; binding a new session");
        self.resend_after_bind = previous
            .unacked
            .drain(..)
            .filter_map(Unacked::into_element)
            .filter(|stanza| match stanza.name() {
                "presence" => true,
                "message" => !stanza.has_child("body", NS_CLIENT),
                _ => false,
            })
            .collect();
        self.sm_changed = true;
    }

    /// Tells the client the server holds these stanzas.
    pub(super) fn emit_acked(&mut self, acked: Vec<Unacked>) {
        if acked.is_empty() {
            return;
        }
        self.sm_changed = true;
        let elements = acked
            .into_iter()
            .filter_map(Unacked::into_element)
            .collect();
        self.outputs
            .push_back(Output::Event(SessionEvent::Acked(elements)));
    }
}
