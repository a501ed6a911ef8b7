//! Stream negotiation up to `Online` on the classic path: the stream
//! header, `<stream:features/>`, STARTTLS, SASL (RFC 6120 §6) and resource
//! binding with XEP-0198 enabled alongside. Each `on_*` handler takes the
//! state it was waiting in and returns the next one. SASL2 lives in
//! [`super::sasl2`]; resumption in `stream_management`.

use std::str::FromStr;
use std::time::Instant;

use jid::FullJid;
use minidom::Element;

use super::sasl::{self, Mechanism, SaslClient};
use super::sm::{Enable, Enabled, Resume};
use super::stream_features::*;
use super::{
    unexpected, Output, Session, SessionError, SessionEvent, SmState, Stage, State, Timer,
};
use crate::ns::{NS_BIND, NS_CLIENT, NS_CSI, NS_SASL, NS_SM, NS_STREAM, NS_TLS};
use crate::xml::{self, StreamReader};

impl Session {
    /// Sends a stream header; the server answers with its features.
    pub(super) fn open_stream(&mut self, stage: Stage) -> State {
        self.reader = StreamReader::new(self.config.max_element_bytes);
        let domain = xml::escape(self.config.jid.domain().as_str());
        // RFC 6120 §4.7.1: announce who we are only once the stream is
        // encrypted.
        let from = match stage {
            Stage::Initial => String::new(),
            _ => format!(" from='{}'", xml::escape(self.config.jid.as_str())),
        };
        self.transmit(format!(
            "<?xml version='1.0'?><stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}' \
             to='{domain}'{from} version='1.0' xml:lang='en'>"
        ));
        self.round_trips += 1;
        if stage == Stage::Secured {
            if let Some(state) = self.pipeline_login() {
                return state;
            }
        }
        State::AwaitFeatures(stage)
    }

    /// Takes the post-TLS features as current, and reports them when they
    /// differ from the ones remembered from the last connection.
    pub(super) fn learn_features(&mut self, features: Features) {
        if self.known_features.as_ref() != Some(&features) {
            self.known_features = Some(features.clone());
            self.outputs
                .push_back(Output::Event(SessionEvent::ServerFeatures(
                    features.clone(),
                )));
        }
        self.features = features;
    }

    pub(super) fn on_features(
        &mut self,
        stage: Stage,
        element: Element,
    ) -> Result<State, SessionError> {
        if !element.is("features", NS_STREAM) {
            return Err(unexpected("<stream:features/>", &element));
        }
        let features = Features::parse(&element);
        match stage {
            Stage::Initial => {
                if !features.starttls {
                    return Err(SessionError::TlsUnavailable);
                }
                self.transmit(format!("<starttls xmlns='{NS_TLS}'/>"));
                self.round_trips += 1;
                Ok(State::AwaitProceed)
            }
            Stage::Secured => {
                self.learn_features(features);
                if self.config.sasl2 && self.features.sasl2.is_some() {
                    self.start_sasl2(&[])
                } else {
                    self.start_auth(&[])
                }
            }
            Stage::Authenticated => {
                self.features.bind = features.bind;
                self.features.stream_management = features.stream_management;
                self.features.roster_versioning |= features.roster_versioning;
                self.features.client_state_indication = features.client_state_indication;
                if !features.bind {
                    return Err(SessionError::BindFailed {
                        condition: "not-offered".to_owned(),
                    });
                }
                let use_sm = self.config.stream_management && features.stream_management;
                if let Some(previous) = self.resume_from.take() {
                    if use_sm {
                        // XEP-0198 §5: resume instead of binding anew.
                        self.transmit(Resume::of(&previous).to_string());
                        self.round_trips += 1;
                        return Ok(State::Resuming { previous });
                    }
                    self.sm_changed = true;
                }
                Ok(self.start_bind())
            }
        }
    }

    pub(super) fn on_proceed(&mut self, element: Element) -> Result<State, SessionError> {
        if !element.is("proceed", NS_TLS) {
            return Err(SessionError::TlsRefused);
        }
        self.outputs.push_back(Output::StartTls);
        Ok(State::AwaitTls)
    }

    pub(super) fn start_bind(&mut self) -> State {
        let bind_id = self.next_id();
        self.transmit(format!(
            "<iq type='set' id='{bind_id}'><bind xmlns='{NS_BIND}'><resource>{}</resource></bind></iq>",
            xml::escape(&self.config.resource)
        ));
        // Pipelined with the bind request: servers handle them in order,
        // which saves a round trip (XEP-0198 §3 only needs enable to come
        // after bind).
        let sm_pending = self.config.stream_management && self.features.stream_management;
        if sm_pending {
            self.transmit(Enable { resume: true }.to_string());
        }
        self.round_trips += 1;
        State::Binding {
            bind_id,
            bound: None,
            sm_pending,
        }
    }

    /// Reports the session online and starts the keepalive; returns
    /// [`State::Online`].
    pub(super) fn go_online(
        &mut self,
        now: Instant,
        jid: FullJid,
        resumed: bool,
        resent_ids: Vec<String>,
        carbons_enabled: bool,
    ) -> State {
        if let Some(sm) = &mut self.sm {
            sm.bound_jid = Some(jid.to_string());
            self.sm_changed = true;
        }
        self.timers.stop(Timer::Negotiation);
        self.timers
            .set(Timer::KeepAlive, now + self.config.ping_interval);
        for stanza in std::mem::take(&mut self.resend_after_bind) {
            if !resumed {
                self.transmit_stanza(&stanza);
            }
        }
        self.outputs.push_back(Output::Event(SessionEvent::Online {
            jid,
            stream_management: self.sm.is_some(),
            roster_versioning: self.features.roster_versioning,
            round_trips: self.round_trips,
            mechanism: self.authenticated_with,
            carbons_enabled,
            resumed,
            resent_ids,
            binding_rejected: self.rejected_channel_binding,
        }));
        State::Online
    }

    pub(super) fn start_auth(&mut self, exclude: &[Mechanism]) -> Result<State, SessionError> {
        let have_cb = self.channel_binding().is_some();
        let offered = self.features.mechanisms.clone();
        let exclude = self.excluded_mechanisms(exclude);
        let mechanism = Mechanism::choose(&offered, have_cb, &exclude)
            .ok_or(SessionError::NoCommonMechanism)?;
        let (client, initial) = self.start_password_sasl(mechanism, &offered);
        use base64::Engine as _;
        let initial = base64::engine::general_purpose::STANDARD.encode(initial);
        self.transmit(format!(
            "<auth xmlns='{NS_SASL}' mechanism='{}'>{initial}</auth>",
            mechanism.name()
        ));
        self.round_trips += 1;
        Ok(State::Authenticating {
            client,
            mechanism,
            offered,
        })
    }

    pub(super) fn on_sasl(
        &mut self,
        mut client: SaslClient,
        mechanism: Mechanism,
        offered: Vec<String>,
        element: Element,
    ) -> Result<State, SessionError> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let decode = |element: &Element| {
            b64.decode(element.text().trim())
                .map_err(|_| sasl::SaslError::MalformedChallenge)
        };
        if element.is("challenge", NS_SASL) {
            let challenge = decode(&element)?;
            match client.respond(&challenge) {
                Ok(reply) => {
                    self.transmit(format!(
                        "<response xmlns='{NS_SASL}'>{}</response>",
                        b64.encode(reply)
                    ));
                    self.round_trips += 1;
                    Ok(State::Authenticating {
                        client,
                        mechanism,
                        offered,
                    })
                }
                Err(err) => {
                    self.transmit(format!("<abort xmlns='{NS_SASL}'/>"));
                    Err(err.into())
                }
            }
        } else if element.is("success", NS_SASL) {
            client.verify_success(&decode(&element)?)?;
            self.authenticated_with = mechanism.name();
            Ok(self.open_stream(Stage::Authenticated))
        } else if element.is("failure", NS_SASL) {
            let condition = error_condition(&element);
            if self.retry_without_binding(mechanism, &condition)? {
                // Same hash, without binding.
                self.features.mechanisms = offered;
                return self.start_auth(&[Mechanism::ScramSha256Plus, Mechanism::ScramSha1Plus]);
            }
            Err(SessionError::AuthFailed { condition })
        } else {
            Err(unexpected("a SASL reply", &element))
        }
    }

    pub(super) fn on_binding(
        &mut self,
        now: Instant,
        bind_id: String,
        mut bound: Option<FullJid>,
        mut sm_pending: bool,
        element: Element,
    ) -> Result<State, SessionError> {
        if element.is("iq", NS_CLIENT) && element.attr("id") == Some(bind_id.as_str()) {
            if element.attr("type") != Some("result") {
                let condition = element
                    .get_child("error", NS_CLIENT)
                    .map(error_condition)
                    .unwrap_or_else(|| "undefined-condition".to_owned());
                return Err(SessionError::BindFailed { condition });
            }
            let jid = element
                .get_child("bind", NS_BIND)
                .and_then(|b| b.get_child("jid", NS_BIND))
                .and_then(|j| FullJid::from_str(j.text().trim()).ok())
                .ok_or_else(|| SessionError::BindFailed {
                    condition: "bad-jid".to_owned(),
                })?;
            bound = Some(jid);
        } else if let Some(enabled) = Enabled::parse(&element).filter(|_| sm_pending) {
            sm_pending = false;
            self.sm = Some(SmState::enabled_by(&enabled));
        } else if element.is("failed", NS_SM) && sm_pending {
            tracing::info!("server refused stream management; continuing without");
            sm_pending = false;
        } else if element.is("r", NS_SM) || element.is("a", NS_SM) {
            // Nothing to ack before enabled; ignore.
        } else if element.has_ns(NS_CLIENT) && bound.is_some() {
            // A stanza can overtake <enabled/>; deliver it rather than drop.
            self.outputs
                .push_back(Output::Event(SessionEvent::Stanza(element)));
        } else {
            return Err(unexpected("the bind result", &element));
        }
        Ok(match bound {
            Some(jid) if !sm_pending => {
                self.apply_client_state(false);
                self.go_online(now, jid, false, Vec::new(), false)
            }
            bound => State::Binding {
                bind_id,
                bound,
                sm_pending,
            },
        })
    }

    /// A new stream starts active (XEP-0352 §4): tell the server if the
    /// app is in the background. A resumed one keeps the old stream's
    /// state, which may be stale: say it either way.
    pub(super) fn apply_client_state(&mut self, resumed: bool) {
        if !self.features.client_state_indication {
            return;
        }
        if !self.client_active {
            self.transmit(format!("<inactive xmlns='{NS_CSI}'/>"));
        } else if resumed {
            self.transmit(format!("<active xmlns='{NS_CSI}'/>"));
        }
    }
}
