//! XEP-0198 stream management state: counters and the queue of stanzas the
//! server has not acknowledged yet.
//!
//! Serializable so that a later process can resume the stream (the state is
//! written to the store as it changes). Counters wrap at 2^32 (XEP-0198 §4).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

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
    /// Serialized stanzas sent but not yet acknowledged, oldest first.
    pub unacked: VecDeque<String>,
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
    pub fn enabled_by(enabled: &minidom::Element) -> SmState {
        SmState {
            resume_id: enabled
                .attr("id")
                .filter(|_| matches!(enabled.attr("resume"), Some("true") | Some("1")))
                .map(str::to_owned),
            location: enabled.attr("location").map(str::to_owned),
            max_seconds: enabled.attr("max").and_then(|m| m.parse().ok()),
            ..SmState::default()
        }
    }

    /// Number of stanzas sent in total (acked + outstanding), mod 2^32.
    pub fn outbound_sent(&self) -> u32 {
        self.outbound_acked.wrapping_add(self.unacked.len() as u32)
    }

    pub fn record_sent(&mut self, stanza: String) {
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
    pub fn remote_acked(&mut self, h: u32) -> Result<Vec<String>, SmError> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_release_stanzas_in_order_and_late_acks_do_nothing() {
        let mut sm = SmState::default();
        for i in 0..3 {
            sm.record_sent(format!("s{i}"));
        }
        assert_eq!(sm.remote_acked(2).unwrap(), vec!["s0", "s1"]);
        assert_eq!(sm.remote_acked(1).unwrap(), Vec::<String>::new());
        assert_eq!(sm.remote_acked(2).unwrap(), Vec::<String>::new());
        assert_eq!(sm.remote_acked(3).unwrap(), vec!["s2"]);
        assert_eq!(sm.outbound_sent(), 3);
    }

    #[test]
    fn acking_more_than_was_sent_is_an_error() {
        let mut sm = SmState::default();
        sm.record_sent("a".into());
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
        sm.record_sent("a".into());
        sm.record_sent("b".into());
        sm.record_sent("c".into());
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
        sm.record_sent("<message/>".into());
        let json = serde_json::to_string(&sm).unwrap();
        assert_eq!(serde_json::from_str::<SmState>(&json).unwrap(), sm);
    }
}
