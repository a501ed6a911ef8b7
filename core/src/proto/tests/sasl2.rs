//! SASL2 + Bind2 + FAST + inline resumption against a scripted server.

use super::*;
use crate::ns::NS_CLIENT;
use crate::proto::fast::{FastMechanism, FastToken};
use base64::Engine as _;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Features of a SASL2 server like Prosody 13 with mod_sasl2, _bind2,
/// _sm and _fast (PLAIN keeps the scripted exchange short).
const SASL2_FEATURES: &str = "<stream:features><authentication xmlns='urn:xmpp:sasl:2'>\
    <mechanism>PLAIN</mechanism><inline>\
    <bind xmlns='urn:xmpp:bind:0'><inline><feature var='urn:xmpp:carbons:2'/>\
    <feature var='urn:xmpp:csi:0'/><feature var='urn:xmpp:sm:3'/></inline></bind>\
    <sm xmlns='urn:xmpp:sm:3'/>\
    <fast xmlns='urn:xmpp:fast:0'><mechanism>HT-SHA-256-NONE</mechanism>\
    <mechanism>HT-SHA-256-EXPR</mechanism></fast></inline></authentication></stream:features>";
const POST_AUTH_FEATURES: &str = "<stream:features><ver xmlns='urn:xmpp:features:rosterver'/>\
    <csi xmlns='urn:xmpp:csi:0'/></stream:features>";

fn connect_direct_tls(h: &mut Harness) {
    h.input(Input::Connected {
        tls: Some(TlsInfo::default()),
        nonce: "n".into(),
    });
    h.recv(&format!("{HEADER}{SASL2_FEATURES}"));
}

fn token() -> FastToken {
    FastToken {
        mechanism: FastMechanism::HtSha256None,
        secret: "secret-token:fast-1".into(),
        expiry: None,
        count: 4,
    }
}

fn hmac(key: &str, data: &str) -> Vec<u8> {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn online(h: &Harness) -> Option<(&FullJid, bool, u32, &'static str, bool, bool)> {
    h.events.iter().find_map(|e| match e {
        SessionEvent::Online {
            jid,
            stream_management,
            round_trips,
            mechanism,
            carbons_enabled,
            resumed,
            ..
        } => Some((
            jid,
            *stream_management,
            *round_trips,
            *mechanism,
            *carbons_enabled,
            *resumed,
        )),
        _ => None,
    })
}

#[test]
fn one_authenticate_binds_enables_sm_and_carbons_and_asks_for_a_token() {
    let mut h = Harness::new();
    h.session.config.client_id = "device-1".into();
    connect_direct_tls(&mut h);
    let auth = h.take_sent();
    for part in [
        "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'>",
        "<user-agent id='device-1'><software>Waxwing</software></user-agent>",
        // Without channel binding data the token cannot be bound to it.
        "<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/>",
        "<bind xmlns='urn:xmpp:bind:0'><tag>Waxwing</tag>",
        "<enable xmlns='urn:xmpp:sm:3' resume='true'/>",
        "<enable xmlns='urn:xmpp:carbons:2'/>",
    ] {
        assert!(auth.contains(part), "{part} missing in {auth}");
    }
    assert!(!auth.contains("<inactive"), "the app is in the foreground");
    assert!(!auth.contains("<resume"), "nothing to resume");
    h.recv(
        "<success xmlns='urn:xmpp:sasl:2'>\
         <authorization-identifier>alice@example.org/Waxwing~xyz</authorization-identifier>\
         <token xmlns='urn:xmpp:fast:0' expiry='2026-12-15T00:00:00Z' token='secret-token:fast-new'/>\
         <bound xmlns='urn:xmpp:bind:0'><enabled xmlns='urn:xmpp:sm:3' id='sm-9' resume='1' max='600'/>\
         <enabled xmlns='urn:xmpp:carbons:2'/></bound></success>",
    );
    assert!(!h.session.is_online(), "waits for the features that follow");
    h.recv(POST_AUTH_FEATURES);
    let (jid, sm, round_trips, mechanism, carbons, resumed) = online(&h).expect("online");
    assert_eq!(jid.to_string(), "alice@example.org/Waxwing~xyz");
    assert!(sm && carbons && !resumed);
    assert_eq!(mechanism, "PLAIN");
    assert_eq!(round_trips, 2, "stream header + authenticate");
    let issued = h.events.iter().find_map(|e| match e {
        SessionEvent::FastToken(Some(t)) => Some(t.clone()),
        _ => None,
    });
    let issued = issued.expect("token event");
    assert_eq!(issued.secret, "secret-token:fast-new");
    assert_eq!(issued.mechanism, FastMechanism::HtSha256None);
    assert_eq!(
        h.session.resumable_state().unwrap().resume_id.as_deref(),
        Some("sm-9")
    );
}

#[test]
fn a_fast_token_authenticates_in_one_round_trip_with_mutual_proof() {
    let mut h = Harness::new();
    h.session.set_fast_token(Some(token()));
    connect_direct_tls(&mut h);
    let auth = h.take_sent();
    assert!(auth.contains("mechanism='HT-SHA-256-NONE'"), "{auth}");
    assert!(
        auth.contains("<fast xmlns='urn:xmpp:fast:0' count='5'/>"),
        "{auth}"
    );
    assert!(!auth.contains("request-token"), "{auth}");
    let initial = auth
        .split("<initial-response>")
        .nth(1)
        .and_then(|r| r.split("</initial-response>").next())
        .unwrap();
    let mut expected = b"alice\0".to_vec();
    expected.extend(hmac("secret-token:fast-1", "Initiator"));
    assert_eq!(B64.decode(initial).unwrap(), expected);
    h.recv(&format!(
        "<success xmlns='urn:xmpp:sasl:2'><additional-data>{}</additional-data>\
         <authorization-identifier>alice@example.org/Waxwing~xyz</authorization-identifier>\
         <bound xmlns='urn:xmpp:bind:0'/></success>{POST_AUTH_FEATURES}",
        B64.encode(hmac("secret-token:fast-1", "Responder"))
    ));
    let (_, _, _, mechanism, _, _) = online(&h).expect("online");
    assert_eq!(mechanism, "HT-SHA-256-NONE");
    assert_eq!(h.session.fast_token().unwrap().count, 5, "persisted count");
}

#[test]
fn a_server_that_cannot_prove_the_token_is_refused() {
    let mut h = Harness::new();
    h.session.set_fast_token(Some(token()));
    connect_direct_tls(&mut h);
    h.recv(&format!(
        "<success xmlns='urn:xmpp:sasl:2'><additional-data>{}</additional-data>\
         <authorization-identifier>alice@example.org/x</authorization-identifier>\
         <bound xmlns='urn:xmpp:bind:0'/></success>",
        B64.encode(hmac("some-other-token", "Responder"))
    ));
    assert_eq!(
        h.disconnected_error(),
        Some(Some(SessionError::Sasl(
            sasl::SaslError::ServerSignatureMismatch
        )))
    );
    assert!(!h.session.is_online());
}

#[test]
fn a_refused_token_is_forgotten_and_the_password_used_on_the_same_stream() {
    let mut h = Harness::new();
    h.session.set_fast_token(Some(token()));
    connect_direct_tls(&mut h);
    assert!(h.take_sent().contains("HT-SHA-256-NONE"));
    h.recv(
        "<failure xmlns='urn:xmpp:sasl:2'><credentials-expired xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></failure>",
    );
    assert!(h
        .events
        .iter()
        .any(|e| matches!(e, SessionEvent::FastToken(None))));
    assert!(h.session.fast_token().is_none());
    let retry = h.take_sent();
    assert!(retry.contains("mechanism='PLAIN'"), "{retry}");
    assert!(
        retry.contains("request-token"),
        "asks for a new token: {retry}"
    );
    assert!(h.disconnected_error().is_none());
    h.recv(
        "<success xmlns='urn:xmpp:sasl:2'>\
         <authorization-identifier>alice@example.org/W~1</authorization-identifier>\
         <bound xmlns='urn:xmpp:bind:0'/></success>",
    );
    h.recv(POST_AUTH_FEATURES);
    assert_eq!(online(&h).map(|o| o.3), Some("PLAIN"));
}

#[test]
fn a_wrong_password_over_sasl2_is_a_permanent_auth_error() {
    let mut h = Harness::new();
    connect_direct_tls(&mut h);
    h.recv(
        "<failure xmlns='urn:xmpp:sasl:2'><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>\
         <text>nope</text></failure>",
    );
    let error = h.disconnected_error().flatten().expect("an error");
    assert_eq!(
        error,
        SessionError::AuthFailed {
            condition: "not-authorized".into()
        }
    );
    assert!(error.is_permanent());
}

#[test]
fn inline_resumption_resends_unacked_and_delivers_what_came_before_the_features() {
    let (mut h, _) = session_with_unacked_message();
    h.input(Input::Connected {
        tls: Some(TlsInfo::default()),
        nonce: "n2".into(),
    });
    h.recv(&format!("{HEADER}{SASL2_FEATURES}"));
    let auth = h.take_sent();
    assert!(
        auth.contains("<resume xmlns='urn:xmpp:sm:3' h='1' previd='sm-1'/>"),
        "{auth}"
    );
    assert!(
        auth.contains("<bind xmlns='urn:xmpp:bind:0'>"),
        "bind as the fallback: {auth}"
    );
    // The server got o1 before the drop; o2 must go out again.
    h.recv(
        "<success xmlns='urn:xmpp:sasl:2'>\
         <authorization-identifier>alice@example.org/phone</authorization-identifier>\
         <resumed xmlns='urn:xmpp:sm:3' h='1' previd='sm-1'/></success>\
         <message xmlns='jabber:client' from='bob@example.org/x'><body>missed</body></message>",
    );
    let resent = h.take_sent();
    assert!(
        resent.contains("id='o2'") && !resent.contains("id='o1'"),
        "{resent}"
    );
    assert!(!h.session.is_online());
    h.recv(POST_AUTH_FEATURES);
    let (jid, _, _, _, _, resumed) = online(&h).expect("online");
    assert!(resumed);
    assert_eq!(jid.to_string(), "alice@example.org/phone");
    let delivered = h
        .events
        .iter()
        .position(|e| matches!(e, SessionEvent::Stanza(m) if m.get_child("body", NS_CLIENT).is_some_and(|b| b.text() == "missed")))
        .expect("the early stanza is delivered");
    let online_at = h
        .events
        .iter()
        .position(|e| matches!(e, SessionEvent::Online { .. }))
        .unwrap();
    assert!(
        online_at < delivered,
        "after Online, so the client is ready"
    );
    assert_eq!(h.session.stream_management().unwrap().inbound_handled, 2);
}

#[test]
fn a_failed_inline_resumption_continues_with_the_bind2_fallback() {
    let (mut h, _) = session_with_unacked_message();
    h.input(Input::Connected {
        tls: Some(TlsInfo::default()),
        nonce: "n2".into(),
    });
    h.recv(&format!("{HEADER}{SASL2_FEATURES}"));
    h.take_sent();
    h.recv(
        "<success xmlns='urn:xmpp:sasl:2'>\
         <authorization-identifier>alice@example.org/W~2</authorization-identifier>\
         <failed xmlns='urn:xmpp:sm:3' h='2'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>\
         <bound xmlns='urn:xmpp:bind:0'><enabled xmlns='urn:xmpp:sm:3' id='sm-2' resume='1'/></bound></success>",
    );
    h.recv(POST_AUTH_FEATURES);
    let (jid, sm, _, _, _, resumed) = online(&h).expect("online");
    assert!(!resumed && sm);
    assert_eq!(jid.to_string(), "alice@example.org/W~2");
    // h='2' on <failed/>: both earlier stanzas reached the server.
    let acked: usize = h
        .events
        .iter()
        .map(|e| match e {
            SessionEvent::Acked(v) => v.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(acked, 2);
}

#[test]
fn in_the_background_bind2_sets_the_csi_state_inline() {
    let mut h = Harness::new();
    h.session.set_client_state(h.now, false);
    connect_direct_tls(&mut h);
    assert!(h.take_sent().contains("<inactive xmlns='urn:xmpp:csi:0'/>"));
    h.recv(
        "<success xmlns='urn:xmpp:sasl:2'>\
         <authorization-identifier>alice@example.org/W~1</authorization-identifier>\
         <bound xmlns='urn:xmpp:bind:0'/></success>",
    );
    h.recv(POST_AUTH_FEATURES);
    assert!(h.session.is_online());
    assert_eq!(h.take_sent(), "", "not sent a second time");
}

#[test]
fn the_classic_path_is_used_when_sasl2_is_switched_off() {
    let mut h = Harness::new();
    h.session.config.sasl2 = false;
    h.input(Input::Connected {
        tls: Some(TlsInfo::default()),
        nonce: "n".into(),
    });
    h.recv(&format!(
        "{HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
         <mechanism>PLAIN</mechanism></mechanisms>{}",
        &SASL2_FEATURES["<stream:features>".len()..]
    ));
    assert!(h
        .take_sent()
        .contains("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'"));
}

/// Issue 12, defect 5: a server whose Bind2 cannot enable XEP-0198 inline
/// but offers it as a stream feature gets an `<enable/>` after the
/// features (it used to get none: no acks, no resumption).
#[test]
fn bind2_without_inline_sm_enables_it_after_the_features() {
    let mut h = Harness::new();
    h.input(Input::Connected {
        tls: Some(TlsInfo::default()),
        nonce: "n".into(),
    });
    h.recv(&format!(
        "{HEADER}<stream:features><authentication xmlns='urn:xmpp:sasl:2'>\
         <mechanism>PLAIN</mechanism><inline>\
         <bind xmlns='urn:xmpp:bind:0'><inline><feature var='urn:xmpp:carbons:2'/></inline></bind>\
         </inline></authentication></stream:features>"
    ));
    let auth = h.take_sent();
    assert!(!auth.contains("urn:xmpp:sm:3"), "{auth}");
    h.recv(
        "<success xmlns='urn:xmpp:sasl:2'>\
         <authorization-identifier>alice@example.org/Waxwing~xyz</authorization-identifier>\
         <bound xmlns='urn:xmpp:bind:0'><enabled xmlns='urn:xmpp:carbons:2'/></bound></success>",
    );
    h.recv("<stream:features><sm xmlns='urn:xmpp:sm:3'/></stream:features>");
    assert!(
        h.take_sent()
            .contains("<enable xmlns='urn:xmpp:sm:3' resume='true'/>"),
        "SM enabled after the features"
    );
    assert!(!h.session.is_online(), "online once SM is settled");
    h.recv("<enabled xmlns='urn:xmpp:sm:3' id='sm-late' resume='true'/>");
    let (_, sm, ..) = online(&h).expect("online");
    assert!(sm);
    assert_eq!(
        h.session.resumable_state().unwrap().resume_id.as_deref(),
        Some("sm-late")
    );
}

/// Same as the classic path's test: bad base64 in a SASL2 `<challenge/>` or
/// in `<success/>`'s additional data ends the stream visibly.
#[test]
fn a_sasl2_reply_that_is_not_base64_ends_the_stream_with_a_typed_error() {
    for reply in [
        "<challenge xmlns='urn:xmpp:sasl:2'>!!not base64!!</challenge>",
        "<success xmlns='urn:xmpp:sasl:2'><additional-data>!!not base64!!</additional-data>\
         <authorization-identifier>alice@example.org/phone</authorization-identifier></success>",
    ] {
        let mut h = Harness::new();
        connect_direct_tls(&mut h);
        assert!(h.take_sent().contains("<authenticate"));
        h.recv(reply);
        assert_eq!(
            h.disconnected_error(),
            Some(Some(SessionError::Sasl(
                crate::proto::sasl::SaslError::MalformedChallenge
            ))),
            "{reply}"
        );
        assert!(h.socket_closed, "{reply}");
        assert!(h.sent.ends_with("</stream:stream>"), "{}", h.sent);
    }
}

/// Issue 12, defect 15: what comes before the post-authentication features
/// is held, but not without bound.
#[test]
fn a_flood_before_the_features_ends_the_stream_instead_of_growing_memory() {
    let (mut h, _) = session_with_unacked_message();
    h.input(Input::Connected {
        tls: Some(TlsInfo::default()),
        nonce: "n2".into(),
    });
    h.recv(&format!("{HEADER}{SASL2_FEATURES}"));
    h.recv(
        "<success xmlns='urn:xmpp:sasl:2'>\
         <authorization-identifier>alice@example.org/phone</authorization-identifier>\
         <resumed xmlns='urn:xmpp:sm:3' h='1' previd='sm-1'/></success>",
    );
    let flood = "<message xmlns='jabber:client' from='bob@example.org/x'><body>x</body></message>"
        .repeat(crate::proto::sasl2::MAX_EARLY_STANZAS + 1);
    h.recv(&flood);
    assert!(matches!(
        h.disconnected_error(),
        Some(Some(SessionError::UnexpectedElement { .. }))
    ));
}

/// The features `SASL2_FEATURES` parse to, as remembered from a connection.
fn remembered_features() -> Features {
    let element: Element = format!(
        "<stream:features xmlns:stream='{NS_STREAM}' xmlns='{NS_CLIENT}'>{}",
        SASL2_FEATURES.trim_start_matches("<stream:features>")
    )
    .parse()
    .unwrap();
    Features::parse(&element)
}

fn connect_direct_tls_without_features(h: &mut Harness) {
    h.input(Input::Connected {
        tls: Some(TlsInfo::default()),
        nonce: "n".into(),
    });
}

/// Issue 12 (performance): with a FAST token and the features of the last
/// connection, `<authenticate/>` (token, inline resumption) goes out behind
/// the stream header, before the server's features arrive: the login takes
/// one XMPP round trip instead of two.
#[test]
fn a_token_login_is_pipelined_behind_the_stream_header() {
    let mut h = Harness::new();
    h.session.set_fast_token(Some(token()));
    h.session.remember_features(Some(remembered_features()));
    connect_direct_tls_without_features(&mut h);
    let sent = h.take_sent();
    assert!(sent.contains("<stream:stream"), "{sent}");
    assert!(
        sent.contains("<authenticate xmlns='urn:xmpp:sasl:2' mechanism='HT-SHA-256-NONE'>"),
        "sent before any features: {sent}"
    );
    // The features come first, unchanged: nothing more is sent, nothing
    // to persist.
    h.recv(&format!("{HEADER}{SASL2_FEATURES}"));
    assert_eq!(h.take_sent(), "");
    assert!(!h
        .events
        .iter()
        .any(|e| matches!(e, SessionEvent::ServerFeatures(_))));
    h.recv(&format!(
        "<success xmlns='urn:xmpp:sasl:2'><additional-data>{}</additional-data>\
         <authorization-identifier>alice@example.org/Waxwing~xyz</authorization-identifier>\
         <bound xmlns='urn:xmpp:bind:0'/></success>{POST_AUTH_FEATURES}",
        B64.encode(hmac("secret-token:fast-1", "Responder"))
    ));
    let (_, _, round_trips, mechanism, _, _) = online(&h).expect("online");
    assert_eq!(mechanism, "HT-SHA-256-NONE");
    assert_eq!(round_trips, 1, "header and authenticate in one flight");
}

/// Without remembered features (a first connection) the login waits for
/// them, and reports them for the next connection.
#[test]
fn the_first_connection_waits_for_features_and_reports_them() {
    let mut h = Harness::new();
    h.session.set_fast_token(Some(token()));
    connect_direct_tls_without_features(&mut h);
    assert!(!h.take_sent().contains("<authenticate"));
    h.recv(&format!("{HEADER}{SASL2_FEATURES}"));
    assert!(h.take_sent().contains("<authenticate"));
    let reported = h.events.iter().find_map(|e| match e {
        SessionEvent::ServerFeatures(f) => Some(f.clone()),
        _ => None,
    });
    assert_eq!(reported, Some(remembered_features()));
}

/// The server changed (no FAST any more): the pipelined token is refused,
/// the new features are reported, and the password login that follows on
/// the same stream is chosen from the new features.
#[test]
fn changed_features_are_reported_and_the_fallback_uses_them() {
    let mut h = Harness::new();
    h.session.set_fast_token(Some(token()));
    h.session.remember_features(Some(remembered_features()));
    connect_direct_tls_without_features(&mut h);
    assert!(h.take_sent().contains("HT-SHA-256-NONE"));
    let without_fast = "<stream:features><authentication xmlns='urn:xmpp:sasl:2'>\
        <mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></authentication></stream:features>";
    h.recv(&format!("{HEADER}{without_fast}"));
    assert!(h
        .events
        .iter()
        .any(|e| matches!(e, SessionEvent::ServerFeatures(f) if f.sasl2.as_ref().is_some_and(|o| o.fast_mechanisms.is_empty()))));
    h.recv(
        "<failure xmlns='urn:xmpp:sasl:2'><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></failure>",
    );
    let retry = h.take_sent();
    assert!(retry.contains("mechanism='SCRAM-SHA-1'"), "{retry}");
    assert!(h.disconnected_error().is_none());
}

/// A server that answers a pipelined authenticate with a stream error is
/// not sent another one on this session; a lost connection does not count.
#[test]
fn a_server_that_refuses_pipelining_gets_the_features_wait() {
    let mut h = Harness::new();
    h.session.set_fast_token(Some(token()));
    h.session.remember_features(Some(remembered_features()));
    connect_direct_tls_without_features(&mut h);
    assert!(h.take_sent().contains("<authenticate"));
    h.input(Input::Disconnected);
    connect_direct_tls_without_features(&mut h);
    assert!(
        h.take_sent().contains("<authenticate"),
        "a dropped connection still pipelines"
    );
    h.recv(&format!(
        "{HEADER}<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
    ));
    connect_direct_tls_without_features(&mut h);
    assert!(!h.take_sent().contains("<authenticate"));
}
