//! Engine tests against a scripted server, with simulated time.

use super::*;
use jid::BareJid;
use std::time::Duration;

mod sasl2;

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='example.org' version='1.0'>";
const TLS_FEATURES: &str =
    "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>";

struct Harness {
    session: Session,
    now: Instant,
    sent: String,
    events: Vec<SessionEvent>,
    start_tls: bool,
    socket_closed: bool,
    wait: Option<Instant>,
}

impl Harness {
    fn new() -> Self {
        let jid = BareJid::new("alice@example.org").unwrap();
        let mut config = SessionConfig::new(jid, "secret".into(), "phone".into());
        config.ping_interval = Duration::from_secs(60);
        config.ping_timeout = Duration::from_secs(10);
        Self {
            session: Session::new(config),
            now: Instant::now(),
            sent: String::new(),
            events: Vec::new(),
            start_tls: false,
            socket_closed: false,
            wait: None,
        }
    }

    /// Drains the output as the driver does, ending the turn (the client
    /// has handled every stanza) when the engine first waits.
    fn drain(&mut self) {
        self.drain_turn(true);
    }

    /// Drains the output; `handled` says whether the client then marks the
    /// turn's stanzas handled (it does not when its store failed).
    fn drain_turn(&mut self, handled: bool) {
        let mut turn_ended = !handled;
        loop {
            match self.session.poll_output() {
                Output::Transmit(bytes) => self.sent.push_str(std::str::from_utf8(&bytes).unwrap()),
                Output::StartTls => self.start_tls = true,
                Output::Event(e) => self.events.push(e),
                Output::CloseSocket => self.socket_closed = true,
                Output::Wait(at) => {
                    if !std::mem::replace(&mut turn_ended, true) {
                        self.session.mark_handled();
                        continue;
                    }
                    self.wait = at;
                    return;
                }
            }
        }
    }

    fn input(&mut self, input: Input<'_>) {
        self.session.handle_input(self.now, input);
        self.drain();
    }

    fn recv(&mut self, text: &str) {
        self.input(Input::Received(text.as_bytes()));
    }

    fn take_sent(&mut self) -> String {
        std::mem::take(&mut self.sent)
    }

    /// Sends a chat message with id `o1`; returns what went out.
    fn send_message_o1(&mut self) -> String {
        let msg: Element =
            "<message xmlns='jabber:client' to='bob@example.org' id='o1'><body>x</body></message>"
                .parse()
                .unwrap();
        self.session.send_stanza(self.now, &msg).unwrap();
        self.drain();
        self.take_sent()
    }

    fn advance_to_wait(&mut self) {
        self.now = self.wait.expect("a timer is set");
        self.input(Input::Timeout);
    }

    fn disconnected_error(&self) -> Option<Option<SessionError>> {
        self.events.iter().find_map(|e| match e {
            SessionEvent::Disconnected { error } => Some(error.clone()),
            _ => None,
        })
    }

    /// STARTTLS + PLAIN + bind (+ SM when `sm`), as a scripted server.
    fn log_in(&mut self, sm: bool) {
        self.log_in_answering(sm.then_some("<enabled xmlns='urn:xmpp:sm:3'/>"));
    }

    /// Logs in; `enabled` is the server's answer to `<enable/>` (`None`:
    /// no stream management offered).
    fn log_in_answering(&mut self, enabled: Option<&str>) {
        let sm = enabled.is_some();
        self.input(Input::Connected {
            tls: None,
            nonce: "n0nce".into(),
        });
        self.recv(&format!("{HEADER}{TLS_FEATURES}"));
        assert!(self.take_sent().contains("<starttls"));
        self.recv("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
        assert!(self.start_tls);
        self.input(Input::TlsEstablished(TlsInfo::default()));
        self.recv(&format!(
            "{HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
             <mechanism>PLAIN</mechanism></mechanisms></stream:features>"
        ));
        let auth = self.take_sent();
        assert!(auth.contains("from='alice@example.org'"), "{auth}");
        assert!(auth.contains("mechanism='PLAIN'"), "{auth}");
        self.recv("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
        let sm_feature = if sm {
            "<sm xmlns='urn:xmpp:sm:3'/>"
        } else {
            ""
        };
        self.recv(&format!(
            "{HEADER}<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>{sm_feature}\
             <ver xmlns='urn:xmpp:features:rosterver'/></stream:features>"
        ));
        let bind = self.take_sent();
        assert!(bind.contains("<resource>phone</resource>"), "{bind}");
        assert_eq!(
            bind.contains("<enable xmlns='urn:xmpp:sm:3' resume='true'/>"),
            sm
        );
        self.recv(
            "<iq type='result' id='wx1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <jid>alice@example.org/phone</jid></bind></iq>",
        );
        if let Some(enabled) = enabled {
            assert!(!self.session.is_online(), "online only once SM is settled");
            self.recv(enabled);
        }
        assert!(self.session.is_online());
    }
}

#[test]
fn starttls_login_binds_enables_sm_and_counts_round_trips() {
    let mut h = Harness::new();
    h.log_in(true);
    let online = h.events.iter().find_map(|e| match e {
        SessionEvent::Online {
            jid,
            stream_management,
            roster_versioning,
            round_trips,
            mechanism,
            ..
        } => Some((
            jid.to_string(),
            *stream_management,
            *roster_versioning,
            *round_trips,
            *mechanism,
        )),
        _ => None,
    });
    // header, starttls, header, auth, header, bind+enable.
    assert_eq!(
        online,
        Some(("alice@example.org/phone".to_owned(), true, true, 6, "PLAIN"))
    );
}

#[test]
fn a_server_without_starttls_is_refused_never_plaintext() {
    let mut h = Harness::new();
    h.input(Input::Connected {
        tls: None,
        nonce: "n".into(),
    });
    h.recv(&format!(
        "{HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
         <mechanism>PLAIN</mechanism></mechanisms></stream:features>"
    ));
    assert!(!h.sent.contains("<auth"), "no credentials over plaintext");
    assert_eq!(
        h.disconnected_error(),
        Some(Some(SessionError::TlsUnavailable))
    );
    assert!(h.socket_closed);
}

#[test]
fn wrong_password_is_a_permanent_auth_error() {
    let mut h = Harness::new();
    h.input(Input::Connected {
        tls: Some(TlsInfo::default()),
        nonce: "abc".into(),
    });
    h.recv(&format!(
        "{HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
         <mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms></stream:features>"
    ));
    assert!(h.take_sent().contains("mechanism='SCRAM-SHA-1'"));
    h.recv("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>");
    let err = h.disconnected_error().unwrap().unwrap();
    assert_eq!(
        err,
        SessionError::AuthFailed {
            condition: "not-authorized".into()
        }
    );
    assert!(err.is_permanent());
}

#[test]
fn rejected_channel_binding_falls_back_to_the_same_hash_without_it() {
    let mut h = Harness::new();
    let tls = TlsInfo {
        channel_binding: Some(b"exported".to_vec()),
    };
    h.input(Input::Connected {
        tls: Some(tls),
        nonce: "abc".into(),
    });
    h.recv(&format!(
        "{HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
         <mechanism>SCRAM-SHA-1-PLUS</mechanism><mechanism>SCRAM-SHA-1</mechanism></mechanisms></stream:features>"
    ));
    assert!(h.take_sent().contains("mechanism='SCRAM-SHA-1-PLUS'"));
    h.recv("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/><text>Invalid channel binding</text></failure>");
    let retry = h.take_sent();
    assert!(retry.contains("mechanism='SCRAM-SHA-1'"), "{retry}");
    assert!(h.disconnected_error().is_none());
    // A second failure is final.
    h.recv("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>");
    assert_eq!(
        h.disconnected_error(),
        Some(Some(SessionError::AuthFailed {
            condition: "not-authorized".into()
        }))
    );
}

#[test]
fn malformed_xml_ends_the_stream_with_a_typed_error() {
    let mut h = Harness::new();
    h.log_in(false);
    h.recv("<message><body>unclosed</message>");
    assert!(matches!(
        h.disconnected_error(),
        Some(Some(SessionError::Xml(_)))
    ));
    assert!(h.sent.contains("not-well-formed"));
    assert!(h.socket_closed);
    // Further input is ignored, not a panic.
    h.recv("<presence/>");
}

#[test]
fn unknown_nonzas_are_dropped_and_stanzas_delivered() {
    let mut h = Harness::new();
    h.log_in(false);
    h.recv("<surprise xmlns='urn:example:unknown'/><message from='bob@example.org/x' id='m1'><body>hi</body></message>");
    let stanzas: Vec<_> = h
        .events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Stanza(s) => Some(s.name().to_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(stanzas, vec!["message"]);
    assert!(h.session.is_online());
}

#[test]
fn stream_management_counts_acks_and_rejects_impossible_acks() {
    let mut h = Harness::new();
    h.log_in(true);
    h.take_sent();
    h.recv("<message from='bob@example.org/x'><body>1</body></message><presence from='bob@example.org/x'/>");
    h.recv("<r xmlns='urn:xmpp:sm:3'/>");
    assert!(h.take_sent().contains("h='2'"));
    assert!(h.send_message_o1().ends_with("<r xmlns='urn:xmpp:sm:3'/>"));
    h.recv("<a xmlns='urn:xmpp:sm:3' h='1'/>");
    let acked = h.events.iter().find_map(|e| match e {
        SessionEvent::Acked(v) => Some(
            v.iter()
                .map(|e| e.attr("id").unwrap().to_owned())
                .collect::<Vec<_>>(),
        ),
        _ => None,
    });
    assert_eq!(acked, Some(vec!["o1".to_owned()]));
    h.recv("<a xmlns='urn:xmpp:sm:3' h='7'/>");
    assert!(matches!(
        h.disconnected_error(),
        Some(Some(SessionError::StreamManagement(_)))
    ));
    assert!(h.sent.contains("handled-count-too-high"));
}

/// XEP-0198's `h` covers a stanza only once the client has handled it
/// (stored it): an `<r/>` in the same turn is answered after that, and a
/// stream dropped because the store failed resumes with `h` excluding what
/// was not stored, so the server sends it again.
#[test]
fn h_counts_only_what_the_client_marked_handled() {
    let (mut h, state) = session_with_unacked_message();
    assert_eq!(state.inbound_handled, 1);
    reconnect_to_auth(&mut h);
    h.recv("<resumed xmlns='urn:xmpp:sm:3' h='2' previd='sm-1'/>");
    h.take_sent();
    let unstored =
        b"<message from='bob@example.org/x'><body>2</body></message><r xmlns='urn:xmpp:sm:3'/>";
    h.session.handle_input(h.now, Input::Received(unstored));
    // The client's store failed: nothing is marked handled, no ack.
    h.drain_turn(false);
    assert!(
        !h.take_sent().contains("<a "),
        "no ack for an unstored stanza"
    );
    h.input(Input::Disconnected);
    reconnect_to_auth(&mut h);
    assert_eq!(
        h.take_sent(),
        "<resume xmlns='urn:xmpp:sm:3' h='1' previd='sm-1'/>",
        "the unstored message is asked for again"
    );
    h.recv("<resumed xmlns='urn:xmpp:sm:3' h='2' previd='sm-1'/>");
    h.take_sent();
    // Stored this time: the owed ack follows the client's mark.
    h.session.handle_input(h.now, Input::Received(unstored));
    h.drain_turn(false);
    assert!(!h.take_sent().contains("<a "));
    h.session.mark_handled();
    h.drain();
    assert!(h.take_sent().contains("<a xmlns='urn:xmpp:sm:3' h='2'/>"));
}

#[test]
fn a_silent_connection_is_probed_then_declared_dead() {
    let mut h = Harness::new();
    h.log_in(false);
    h.take_sent();
    h.advance_to_wait();
    assert!(h.take_sent().contains("<ping xmlns='urn:xmpp:ping'/>"));
    assert_eq!(h.session.last_timeout_reason(), Some(Timer::KeepAlive));
    h.advance_to_wait();
    assert_eq!(
        h.disconnected_error(),
        Some(Some(SessionError::Timeout(TimeoutKind::Ping)))
    );
}

/// Prosody 13.0 can stop handling a resumed stream's input while it keeps
/// sending: traffic from the server must not keep a connection whose ack
/// requests go unanswered.
#[test]
fn an_unanswered_ack_request_ends_the_connection_though_the_server_keeps_sending() {
    let mut h = Harness::new();
    h.log_in(true);
    h.take_sent();
    let sent = h.send_message_o1();
    assert!(sent.contains("<r xmlns='urn:xmpp:sm:3'/>"), "{sent}");
    let deadline = h.wait.expect("the ack request has a deadline");
    assert_eq!(deadline, h.now + Duration::from_secs(10));
    // Halfway there the server sends something, but no <a/>.
    h.now += Duration::from_secs(5);
    h.recv("<message xmlns='jabber:client' from='bob@example.org/x' type='chat'><body>hi</body></message>");
    assert!(h.session.is_online());
    assert_eq!(h.wait, Some(deadline), "other traffic does not move it");
    h.advance_to_wait();
    assert_eq!(
        h.disconnected_error(),
        Some(Some(SessionError::Timeout(TimeoutKind::Ping)))
    );
}

#[test]
fn an_answered_ack_request_keeps_the_session() {
    let mut h = Harness::new();
    h.log_in(true);
    h.send_message_o1();
    h.now += Duration::from_secs(5);
    h.recv("<a xmlns='urn:xmpp:sm:3' h='1'/>");
    h.now += Duration::from_secs(20);
    h.input(Input::Timeout);
    assert!(h.session.is_online());
    assert_eq!(h.disconnected_error(), None);
}

#[test]
fn an_answered_ping_keeps_the_session() {
    let mut h = Harness::new();
    h.log_in(false);
    h.advance_to_wait();
    let id = h.session.ping_id.clone().unwrap();
    h.recv(&format!("<iq type='result' id='{id}'/>"));
    assert!(h.session.is_online());
    assert!(
        h.events
            .iter()
            .all(|e| !matches!(e, SessionEvent::Stanza(_))),
        "ping reply is not surfaced"
    );
}

#[test]
fn server_pings_are_answered() {
    let mut h = Harness::new();
    h.log_in(false);
    h.take_sent();
    h.recv("<iq type='get' id='p1' from='example.org'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert_eq!(
        h.take_sent(),
        "<iq type='result' id='p1' to='example.org'/>"
    );
}

#[test]
fn clean_close_waits_for_the_server_then_reports_no_error() {
    let mut h = Harness::new();
    h.log_in(true);
    h.take_sent();
    h.session.close(h.now);
    h.drain();
    let sent = h.take_sent();
    assert!(sent.ends_with("</stream:stream>"), "{sent}");
    assert!(h.disconnected_error().is_none());
    h.recv("</stream:stream>");
    assert_eq!(h.disconnected_error(), Some(None));
    assert!(h
        .session
        .send_stanza(h.now, &"<presence xmlns='jabber:client'/>".parse().unwrap())
        .is_err());
}

#[test]
fn negotiation_that_stalls_times_out() {
    let mut h = Harness::new();
    h.input(Input::Connected {
        tls: Some(TlsInfo::default()),
        nonce: "n".into(),
    });
    h.advance_to_wait();
    assert_eq!(
        h.disconnected_error(),
        Some(Some(SessionError::Timeout(TimeoutKind::Negotiation)))
    );
}

#[test]
fn stream_errors_are_reported_by_condition() {
    let mut h = Harness::new();
    h.log_in(false);
    h.recv("<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>");
    assert_eq!(
        h.disconnected_error(),
        Some(Some(SessionError::StreamError {
            condition: "conflict".into()
        }))
    );
}

/// Logs in with SM enabled and resumable, sends one message that stays
/// unacked, and drops the connection.
fn session_with_unacked_message() -> (Harness, SmState) {
    let mut h = Harness::new();
    h.input(Input::Connected {
        tls: Some(TlsInfo::default()),
        nonce: "n".into(),
    });
    h.recv(&format!(
        "{HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
         <mechanism>PLAIN</mechanism></mechanisms></stream:features>"
    ));
    h.recv("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    h.recv(&format!(
        "{HEADER}<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><sm xmlns='urn:xmpp:sm:3'/></stream:features>"
    ));
    h.recv(
        "<iq type='result' id='wx1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <jid>alice@example.org/phone</jid></bind></iq><enabled xmlns='urn:xmpp:sm:3' id='sm-1' resume='true' max='300'/>",
    );
    assert!(h.session.is_online());
    h.recv("<message from='bob@example.org/x'><body>in</body></message>");
    for id in ["o1", "o2"] {
        let msg: Element = format!("<message xmlns='jabber:client' to='bob@example.org' id='{id}'><body>x</body></message>")
            .parse()
            .unwrap();
        h.session.send_stanza(h.now, &msg).unwrap();
    }
    h.drain();
    assert!(h.session.take_sm_changed());
    h.input(Input::Disconnected);
    let state = h
        .session
        .resumable_state()
        .cloned()
        .expect("resumable after a drop");
    assert_eq!(state.unacked.len(), 2);
    assert_eq!(state.inbound_handled, 1);
    assert_eq!(state.bound_jid.as_deref(), Some("alice@example.org/phone"));
    h.take_sent();
    h.events.clear();
    (h, state)
}

fn reconnect_to_auth(h: &mut Harness) {
    h.input(Input::Connected {
        tls: Some(TlsInfo::default()),
        nonce: "n2".into(),
    });
    h.recv(&format!(
        "{HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
         <mechanism>PLAIN</mechanism></mechanisms></stream:features>"
    ));
    h.recv("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    h.take_sent();
    h.recv(&format!(
        "{HEADER}<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><sm xmlns='urn:xmpp:sm:3'/></stream:features>"
    ));
}

#[test]
fn a_dropped_stream_is_resumed_and_unacked_stanzas_are_resent_in_order() {
    let (mut h, _) = session_with_unacked_message();
    reconnect_to_auth(&mut h);
    let resume = h.take_sent();
    assert_eq!(
        resume,
        "<resume xmlns='urn:xmpp:sm:3' h='1' previd='sm-1'/>"
    );
    // The server got o1 before the drop, not o2.
    h.recv("<resumed xmlns='urn:xmpp:sm:3' h='1' previd='sm-1'/>");
    let sent = h.take_sent();
    assert!(
        sent.contains("id='o2'") && !sent.contains("id='o1'"),
        "{sent}"
    );
    assert!(sent.ends_with("<r xmlns='urn:xmpp:sm:3'/>"));
    let acked: Vec<_> = h
        .events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Acked(v) => Some(v[0].attr("id").unwrap().to_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(acked, vec!["o1"]);
    let online = h.events.iter().find_map(|e| match e {
        SessionEvent::Online {
            resumed,
            resent_ids,
            jid,
            ..
        } => Some((*resumed, resent_ids.clone(), jid.to_string())),
        _ => None,
    });
    assert_eq!(
        online,
        Some((
            true,
            vec!["o2".to_owned()],
            "alice@example.org/phone".to_owned()
        ))
    );
    // Counters continue from the old stream.
    h.recv("<r xmlns='urn:xmpp:sm:3'/>");
    assert!(h.take_sent().contains("h='1'"));
}

#[test]
fn a_resumption_state_from_another_process_is_used() {
    let (_, state) = session_with_unacked_message();
    let json = serde_json::to_string(&state).unwrap();
    let mut fresh = Harness::new();
    fresh
        .session
        .restore_stream_management(serde_json::from_str(&json).unwrap());
    reconnect_to_auth(&mut fresh);
    assert!(fresh.take_sent().starts_with("<resume"));
}

#[test]
fn a_refused_resumption_binds_a_fresh_session() {
    let (mut h, _) = session_with_unacked_message();
    reconnect_to_auth(&mut h);
    h.take_sent();
    h.recv("<failed xmlns='urn:xmpp:sm:3' h='1'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>");
    let sent = h.take_sent();
    assert!(sent.contains("<bind") && sent.contains("<enable"), "{sent}");
    assert!(
        !sent.contains("id='o2'"),
        "the client's outbox, not the engine, resends after a failed resume"
    );
    h.recv("<iq type='result' id='wx2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@example.org/phone2</jid></bind></iq>\
            <enabled xmlns='urn:xmpp:sm:3' id='sm-2' resume='true'/>");
    let online = h.events.iter().find_map(|e| match e {
        SessionEvent::Online { resumed, .. } => Some(*resumed),
        _ => None,
    });
    assert_eq!(online, Some(false));
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, SessionEvent::Acked(v) if v.len() == 1)),
        "h on <failed/> acks o1"
    );
    assert_eq!(
        h.session.resumable_state().unwrap().resume_id.as_deref(),
        Some("sm-2")
    );
}

#[test]
fn a_resumption_that_is_never_answered_times_out_and_the_next_attempt_is_fresh() {
    let (mut h, _) = session_with_unacked_message();
    reconnect_to_auth(&mut h);
    h.take_sent();
    h.advance_to_wait();
    assert!(matches!(
        h.disconnected_error(),
        Some(Some(SessionError::Timeout(TimeoutKind::Negotiation)))
    ));
    assert!(h.session.resumable_state().is_none());
    reconnect_to_auth(&mut h);
    assert!(h.take_sent().contains("<bind"));
}

#[test]
fn a_clean_close_leaves_nothing_to_resume() {
    let (mut h, _) = session_with_unacked_message();
    reconnect_to_auth(&mut h);
    h.recv("<resumed xmlns='urn:xmpp:sm:3' h='2' previd='sm-1'/>");
    h.session.close(h.now);
    h.drain();
    h.recv("</stream:stream>");
    assert!(h.session.resumable_state().is_none());
    assert!(h.session.take_sm_changed());
}

#[test]
fn client_state_indication_is_sent_only_when_the_server_offers_it() {
    let mut h = Harness::new();
    h.log_in(false);
    h.take_sent();
    h.session.set_client_state(h.now, false);
    h.drain();
    assert_eq!(h.take_sent(), "", "the scripted server did not offer CSI");
}

#[test]
fn the_background_state_set_while_offline_is_applied_at_login() {
    let mut h = Harness::new();
    h.session.set_client_state(h.now, false);
    h.input(Input::Connected {
        tls: Some(TlsInfo::default()),
        nonce: "n".into(),
    });
    h.recv(&format!(
        "{HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
         <mechanism>PLAIN</mechanism></mechanisms></stream:features>"
    ));
    h.recv("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    h.recv(&format!(
        "{HEADER}<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><csi xmlns='urn:xmpp:csi:0'/></stream:features>"
    ));
    h.take_sent();
    h.recv("<iq type='result' id='wx1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@example.org/phone</jid></bind></iq>");
    assert!(h.session.is_online());
    assert_eq!(h.take_sent(), "<inactive xmlns='urn:xmpp:csi:0'/>");
    h.session.set_client_state(h.now, true);
    h.drain();
    assert_eq!(h.take_sent(), "<active xmlns='urn:xmpp:csi:0'/>");
    h.session.set_client_state(h.now, true);
    h.drain();
    assert_eq!(h.take_sent(), "", "no change, nothing sent");
}

/// Issue 12, defect 12: "not now" from the server is retried, "wrong" is not.
#[test]
fn a_temporary_auth_failure_and_a_stripped_starttls_are_not_permanent() {
    let mut h = Harness::new();
    h.input(Input::Connected {
        tls: Some(TlsInfo::default()),
        nonce: "n".into(),
    });
    h.recv(&format!(
        "{HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
         <mechanism>PLAIN</mechanism></mechanisms></stream:features>"
    ));
    h.recv("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><temporary-auth-failure/></failure>");
    let err = h.disconnected_error().unwrap().unwrap();
    assert!(!err.is_permanent(), "{err:?}");
    assert!(!SessionError::TlsUnavailable.is_permanent());
    assert!(SessionError::AuthFailed {
        condition: "not-authorized".into()
    }
    .is_permanent());
}

/// Issue 12, defect 6 (part): with `refuse_plain` a PLAIN-only offer is no
/// common mechanism (and nothing is sent), while SCRAM still works.
#[test]
fn plain_is_refused_once_scram_has_worked_for_the_account() {
    let mut h = Harness::new();
    h.session.config.refuse_plain = true;
    h.input(Input::Connected {
        tls: Some(TlsInfo::default()),
        nonce: "n".into(),
    });
    h.take_sent();
    h.recv(&format!(
        "{HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
         <mechanism>PLAIN</mechanism></mechanisms></stream:features>"
    ));
    assert!(!h.take_sent().contains("<auth"));
    assert_eq!(
        h.disconnected_error(),
        Some(Some(SessionError::NoCommonMechanism))
    );
}

/// Issue 12 (restructure): a `<challenge/>` or `<success/>` whose content
/// is not base64 must end the stream the user can see ended — a typed SASL
/// error in `Disconnected` and the socket closed — not leave `login()`
/// waiting on a session that silently went offline.
#[test]
fn a_sasl_reply_that_is_not_base64_ends_the_stream_with_a_typed_error() {
    for (mechanism, reply) in [
        (
            "SCRAM-SHA-1",
            "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>!!not base64!!</challenge>",
        ),
        (
            "PLAIN",
            "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>!!not base64!!</success>",
        ),
    ] {
        let mut h = Harness::new();
        h.input(Input::Connected {
            tls: Some(TlsInfo::default()),
            nonce: "n".into(),
        });
        h.recv(&format!(
            "{HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
             <mechanism>{mechanism}</mechanism></mechanisms></stream:features>"
        ));
        assert!(h.take_sent().contains("<auth"));
        h.recv(reply);
        assert_eq!(
            h.disconnected_error(),
            Some(Some(SessionError::Sasl(
                sasl::SaslError::MalformedChallenge
            ))),
            "{mechanism}"
        );
        assert!(h.socket_closed, "{mechanism}: the socket is closed");
        assert!(
            h.sent.ends_with("</stream:stream>"),
            "{mechanism}: {}",
            h.sent
        );
        assert!(!h.session.is_online());
        // The session is reusable: a new connection starts a new stream.
        h.input(Input::Connected {
            tls: Some(TlsInfo::default()),
            nonce: "n2".into(),
        });
        assert!(h.take_sent().contains("<stream:stream"));
    }
}

/// Issue 12, defect 5: a drop while waiting for `<resumed/>` used to
/// forget the stream (the state holding it was dropped), so the next
/// connection bound a fresh session and the server's queue was lost.
#[test]
fn a_drop_while_resuming_keeps_the_stream_resumable() {
    let (mut h, _) = session_with_unacked_message();
    reconnect_to_auth(&mut h);
    assert!(h.take_sent().starts_with("<resume"));
    h.input(Input::Disconnected);
    let kept = h
        .session
        .resumable_state()
        .cloned()
        .expect("still resumable");
    assert_eq!(kept.resume_id.as_deref(), Some("sm-1"));
    assert_eq!(kept.unacked.len(), 2);
    reconnect_to_auth(&mut h);
    assert_eq!(
        h.take_sent(),
        "<resume xmlns='urn:xmpp:sm:3' h='1' previd='sm-1'/>"
    );
}

/// Issue 12, defect 5: after `<failed/>`, stanzas the old stream never
/// delivered are not silently lost: presence (a subscription approval) and
/// body-less messages (receipts) go out again on the new session; chat
/// messages are the outbox's, IQs were already reported failed.
#[test]
fn a_refused_resumption_resends_presence_and_receipts_but_not_iqs_or_chat() {
    let (mut h, _) = session_with_unacked_message();
    reconnect_to_auth(&mut h);
    h.recv("<resumed xmlns='urn:xmpp:sm:3' h='2' previd='sm-1'/>");
    for stanza in [
        "<presence xmlns='jabber:client' to='carol@example.org' type='subscribed'/>",
        "<message xmlns='jabber:client' to='bob@example.org/x' id='rcpt-1'><received xmlns='urn:xmpp:receipts' id='m1'/></message>",
        "<iq xmlns='jabber:client' type='set' id='roster-1'><query xmlns='jabber:iq:roster'/></iq>",
        "<message xmlns='jabber:client' to='bob@example.org' id='o3'><body>chat</body></message>",
    ] {
        let element: Element = stanza.parse().unwrap();
        h.session.send_stanza(h.now, &element).unwrap();
    }
    h.drain();
    h.input(Input::Disconnected);
    reconnect_to_auth(&mut h);
    h.take_sent();
    h.recv("<failed xmlns='urn:xmpp:sm:3' h='2'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>");
    h.take_sent();
    h.recv("<iq type='result' id='wx2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@example.org/phone2</jid></bind></iq>\
            <enabled xmlns='urn:xmpp:sm:3' id='sm-2' resume='true'/>");
    let sent = h.take_sent();
    assert!(sent.contains("type='subscribed'"), "{sent}");
    assert!(sent.contains("id='rcpt-1'"), "{sent}");
    assert!(
        !sent.contains("roster-1") && !sent.contains("id='o3'"),
        "{sent}"
    );
    assert!(h.session.is_online());
}

/// Connects over TLS 1.3 (binding data present) to a server offering
/// `mechanisms` (and `extra` features), after `configure`; the first
/// `<auth/>` is in `sent`.
fn offered(
    configure: impl FnOnce(&mut SessionConfig),
    mechanisms: &[&str],
    extra: &str,
) -> Harness {
    let mut h = Harness::new();
    configure(&mut h.session.config);
    h.input(Input::Connected {
        tls: Some(TlsInfo {
            channel_binding: Some(b"exported".to_vec()),
        }),
        nonce: "abc".into(),
    });
    let mechanisms: String = mechanisms
        .iter()
        .map(|m| format!("<mechanism>{m}</mechanism>"))
        .collect();
    h.recv(&format!(
        "{HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
         {mechanisms}</mechanisms>{extra}</stream:features>"
    ));
    h
}

/// A SCRAM-SHA-1-PLUS attempt refused with `condition`.
fn plus_rejected(
    configure: impl FnOnce(&mut SessionConfig),
    extra: &str,
    condition: &str,
) -> Harness {
    let mut h = offered(
        configure,
        &["SCRAM-SHA-1-PLUS", "SCRAM-SHA-1", "PLAIN"],
        extra,
    );
    assert!(h.take_sent().contains("mechanism='SCRAM-SHA-1-PLUS'"));
    h.recv(&format!(
        "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><{condition}/></failure>"
    ));
    h
}

/// Issue 12, defect 6: once a channel-bound login worked for the account,
/// a rejected binding is a hard, typed error — never an unbound retry that
/// a man in the middle could be waiting for.
#[test]
fn a_rejected_binding_after_a_bound_login_worked_is_an_error_not_a_downgrade() {
    let mut h = plus_rejected(|c| c.channel_binding_pinned = true, "", "malformed-request");
    assert_eq!(
        h.disconnected_error(),
        Some(Some(SessionError::ChannelBindingRejected))
    );
    assert!(!h.take_sent().contains("<auth"), "no second attempt");
    assert!(SessionError::ChannelBindingRejected.is_permanent());
    // A plain "not-authorized" is a wrong password: an ordinary failure,
    // still without an unbound retry.
    let mut h = plus_rejected(|c| c.channel_binding_pinned = true, "", "not-authorized");
    assert_eq!(
        h.disconnected_error(),
        Some(Some(SessionError::AuthFailed {
            condition: "not-authorized".into()
        }))
    );
    assert!(!h.take_sent().contains("<auth"), "no second attempt");
}

/// Issue 12, defect 6: a server that says it supports tls-exporter
/// (XEP-0440) and then rejects it is not a quirky server.
#[test]
fn a_server_advertising_tls_exporter_that_rejects_it_gets_no_unbound_retry() {
    let h = plus_rejected(
        |_| {},
        "<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'><channel-binding type='tls-exporter'/></sasl-channel-binding>",
        "malformed-request",
    );
    assert_eq!(
        h.disconnected_error(),
        Some(Some(SessionError::ChannelBindingRejected))
    );
}

/// Issue 12, defect 6: the first time (no pin, no XEP-0440) the unbound
/// retry is allowed — the server advertises -PLUS but rejects the binding,
/// as ejabberd 23.01 does — and the login says so, for the client to
/// remember; the retry uses gs2 "n" (the server offers -PLUS).
#[test]
fn the_first_rejected_binding_retries_unbound_and_the_login_reports_it() {
    let mut h = plus_rejected(|_| {}, "", "not-authorized");
    let retry = h.take_sent();
    assert!(retry.contains("mechanism='SCRAM-SHA-1'"), "{retry}");
    assert_gs2_flag(&retry, b"n,,");
    assert!(h.disconnected_error().is_none());
}

/// Issue 12, defect 6: remembered, later logins do not fail first.
#[test]
fn a_remembered_rejection_logs_in_unbound_at_once() {
    let plus_and_plain = ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-1"];
    let mut h = offered(|c| c.server_rejects_binding = true, &plus_and_plain, "");
    assert!(h.take_sent().contains("mechanism='SCRAM-SHA-1'"));
    // A pin wins over the remembered rejection.
    let pinned = |c: &mut SessionConfig| {
        c.server_rejects_binding = true;
        c.channel_binding_pinned = true;
    };
    let mut h = offered(pinned, &plus_and_plain, "");
    assert!(h.take_sent().contains("mechanism='SCRAM-SHA-1-PLUS'"));
}

/// The unbound retry that works is reported on `Online`.
#[test]
fn an_unbound_retry_that_works_is_reported_online() {
    let mut h = offered(|_| {}, &["SCRAM-SHA-1-PLUS", "PLAIN"], "");
    h.recv("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>");
    assert!(h.take_sent().contains("mechanism='PLAIN'"));
    h.recv("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    h.recv(&format!(
        "{HEADER}<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"
    ));
    h.recv(
        "<iq type='result' id='wx1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <jid>alice@example.org/phone</jid></bind></iq>",
    );
    let reported = h.events.iter().find_map(|e| match e {
        SessionEvent::Online {
            binding_rejected, ..
        } => Some(*binding_rejected),
        _ => None,
    });
    assert_eq!(reported, Some(true));
}

/// The SCRAM challenge of `h`'s `<auth/>` (nonce "abc"), with `extra`
/// attributes appended to the server-first message.
fn scram_challenge(extra: &str) -> String {
    use base64::Engine as _;
    let server_first = format!("r=abcdef,s=AAAA,i=4096{extra}");
    format!(
        "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</challenge>",
        base64::engine::general_purpose::STANDARD.encode(server_first)
    )
}

/// XEP-0474: the server hashes what it advertised into its SCRAM
/// server-first message; a man in the middle who stripped -PLUS (or a
/// binding type) from the lists is caught before we send a proof, and the
/// login ends with a typed error instead of retrying weaker.
#[test]
fn a_downgrade_protection_hash_over_other_lists_ends_the_login() {
    use base64::Engine as _;
    use sha1::Digest as _;
    let cb_list = "<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>\
                   <channel-binding type='tls-server-end-point'/></sasl-channel-binding>";
    // What the real server advertised: -PLUS and tls-exporter as well.
    let genuine = b"SCRAM-SHA-1\x1eSCRAM-SHA-1-PLUS\x1ftls-exporter\x1etls-server-end-point";
    let genuine_hash =
        base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(genuine));
    let mut h = offered(|_| {}, &["SCRAM-SHA-1"], cb_list);
    let sent = h.take_sent();
    assert!(sent.contains("mechanism='SCRAM-SHA-1'"), "{sent}");
    h.recv(&scram_challenge(&format!(",h={genuine_hash}")));
    assert!(!h.take_sent().contains("<response"), "no proof is sent");
    assert_eq!(
        h.disconnected_error(),
        Some(Some(SessionError::Sasl(sasl::SaslError::DowngradeDetected)))
    );
    assert!(SessionError::Sasl(sasl::SaslError::DowngradeDetected).is_permanent());

    // The lists as advertised: the exchange goes on.
    let seen = b"SCRAM-SHA-1\x1ftls-server-end-point";
    let seen_hash = base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(seen));
    let mut h = offered(|_| {}, &["SCRAM-SHA-1"], cb_list);
    h.take_sent();
    h.recv(&scram_challenge(&format!(",h={seen_hash}")));
    assert!(h.take_sent().contains("<response"));
    assert!(h.disconnected_error().is_none());
}

/// XEP-0474 §6 (rule 6): a server that lists its binding types without
/// ours (tls-exporter) gets an unbound login with gs2 "n" — a -PLUS login
/// with tls-exporter would only fail — and its hash tells whether that list
/// was genuine.
#[test]
fn binding_types_without_ours_log_in_unbound() {
    let cb_list = "<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>\
                   <channel-binding type='tls-server-end-point'/></sasl-channel-binding>";
    let mut h = offered(|_| {}, &["SCRAM-SHA-1-PLUS", "SCRAM-SHA-1"], cb_list);
    let sent = h.take_sent();
    assert!(sent.contains("mechanism='SCRAM-SHA-1'"), "{sent}");
    assert_gs2_flag(&sent, b"n,,");
}

/// The initial response of the `<auth/>` in `sent` starts with `flag`.
fn assert_gs2_flag(sent: &str, flag: &[u8]) {
    let auth = &sent[sent.find("<auth").expect("an <auth/>")..];
    let first = auth.split('>').nth(1).unwrap().split('<').next().unwrap();
    let first = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, first).unwrap();
    assert!(
        first.starts_with(flag),
        "{:?}",
        String::from_utf8_lossy(&first)
    );
}

/// `suspend()` lets the server read what we sent before the socket drops:
/// Prosody feeds bytes still unread on a dropped connection into the
/// session that a new connection resumed, and the resumed stream ends as
/// not-well-formed (seen when a resume followed a suspend at once).
#[test]
fn suspending_waits_for_the_servers_ack_of_what_we_sent_then_drops_resumable() {
    let unacked_message = |h: &mut Harness| {
        h.send_message_o1();
    };
    let resumable = Some("<enabled xmlns='urn:xmpp:sm:3' id='sm-1' resume='true'/>");
    let mut h = Harness::new();
    h.log_in_answering(resumable);
    unacked_message(&mut h);
    h.session.suspend(h.now);
    h.drain();
    assert_eq!(h.take_sent(), "<r xmlns='urn:xmpp:sm:3'/>");
    assert!(!h.socket_closed, "waits for the ack");
    // Stanzas still arriving meanwhile are delivered.
    h.recv("<message from='bob@example.org/x'><body>late</body></message>");
    assert!(!h.socket_closed);
    h.recv("<a xmlns='urn:xmpp:sm:3' h='1'/>");
    assert!(
        h.socket_closed,
        "dropped once the server has read everything"
    );
    assert_eq!(
        h.disconnected_error(),
        Some(Some(SessionError::ConnectionLost))
    );
    assert!(!h.sent.contains("</stream:stream>"), "no clean close");
    assert!(h.session.resumable_state().is_some(), "still resumable");

    // A server that does not answer: dropped after the bound.
    let mut h = Harness::new();
    h.log_in_answering(resumable);
    unacked_message(&mut h);
    h.session.suspend(h.now);
    h.drain();
    h.now += crate::proto::SUSPEND_ACK_WAIT;
    h.input(Input::Timeout);
    assert!(h.socket_closed);
    assert!(h.session.resumable_state().is_some());

    // Nothing outstanding: dropped at once.
    let mut h = Harness::new();
    h.log_in_answering(resumable);
    h.take_sent();
    h.session.suspend(h.now);
    h.drain();
    assert!(h.socket_closed);
    assert!(!h.sent.contains("<r "), "{}", h.sent);
    assert!(h.session.resumable_state().is_some());
}
