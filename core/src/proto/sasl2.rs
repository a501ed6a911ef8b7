//! SASL2 (XEP-0388) in the engine: one `<authenticate/>` carries the user
//! agent, a FAST token or a request for one (XEP-0484), an inline
//! resumption (XEP-0198 through mod_sasl2_sm) and a Bind2 request
//! (XEP-0386) that enables stream management, carbons and the CSI state —
//! so a session is ready when authentication ends, without a stream
//! restart or a bind round trip.

use crate::ns::{NS_BIND2, NS_CARBONS, NS_CLIENT, NS_CSI, NS_FAST, NS_SASL2, NS_SM, NS_STREAM};
use std::str::FromStr;
use std::time::Instant;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use jid::FullJid;
use minidom::Element;

use super::fast::{FastMechanism, FastToken, HtClient};
use super::sasl::{Mechanism, SaslClient, SaslError};
use super::sm::{Enable, Enabled, Resume, ResumeAnswer};
use super::stream_features::*;
use super::{Output, Session, SessionError, SessionEvent, SmState, Stage, State};
use crate::xml;

/// How this attempt authenticates.
enum Credential {
    Password {
        client: SaslClient,
        mechanism: Mechanism,
    },
    Token {
        client: HtClient,
        mechanism: FastMechanism,
    },
}

/// Stanzas held while waiting for the post-authentication features.
pub(super) const MAX_EARLY_STANZAS: usize = 500;

/// One `<authenticate/>` in flight.
pub(super) struct Attempt {
    credential: Credential,
    /// The stream we asked to resume inline, if any.
    resuming: Option<SmState>,
    /// The FAST mechanism we asked a new token for.
    token_requested: Option<FastMechanism>,
    /// Whether `<inactive/>` went inline with Bind2.
    csi_inline: bool,
    /// Sent behind the stream header: the server's features come first.
    features_pending: bool,
}

impl Attempt {
    /// The stream this attempt asked to resume, if any.
    pub(super) fn into_resuming(self) -> Option<SmState> {
        self.resuming
    }
}

/// What becomes `Online` once the post-authentication features arrive.
pub(super) struct PendingOnline {
    jid: FullJid,
    resumed: bool,
    resent_ids: Vec<String>,
    carbons_enabled: bool,
    csi_inline: bool,
}

impl Session {
    /// Sends `<authenticate/>`: with the FAST token if we hold one the
    /// server accepts, else with the best password mechanism not in
    /// `exclude`.
    pub(super) fn start_sasl2(&mut self, exclude: &[Mechanism]) -> Result<State, SessionError> {
        let offer = self
            .features
            .sasl2
            .clone()
            .ok_or(SessionError::NoCommonMechanism)?;
        let cb = self.channel_binding();
        let username = self.username();
        let usable_token = self.fast_token.as_mut().filter(|t| {
            offer
                .fast_mechanisms
                .iter()
                .any(|m| m == t.mechanism.name())
                && (!t.mechanism.uses_channel_binding() || cb.is_some())
        });
        let (credential, initial, fast_element, token_requested) = match usable_token {
            Some(token) => {
                token.count += 1;
                let (client, initial) = HtClient::start(token, &username, cb.as_deref());
                let element = format!("<fast xmlns='{NS_FAST}' count='{}'/>", token.count);
                let mechanism = token.mechanism;
                (
                    Credential::Token { client, mechanism },
                    initial,
                    element,
                    None,
                )
            }
            None => {
                let exclude = self.excluded_mechanisms(exclude);
                let mechanism = Mechanism::choose(&offer.mechanisms, cb.is_some(), &exclude)
                    .ok_or(SessionError::NoCommonMechanism)?;
                let (client, initial) = self.start_password_sasl(mechanism, &offer.mechanisms);
                let requested = FastMechanism::choose(&offer.fast_mechanisms, cb.is_some());
                let element = requested
                    .map(|m| {
                        format!(
                            "<request-token xmlns='{NS_FAST}' mechanism='{}'/>",
                            m.name()
                        )
                    })
                    .unwrap_or_default();
                (
                    Credential::Password { client, mechanism },
                    initial,
                    element,
                    requested,
                )
            }
        };
        let mechanism_name = match &credential {
            Credential::Password { mechanism, .. } => mechanism.name(),
            Credential::Token { mechanism, .. } => mechanism.name(),
        };

        let use_sm = self.config.stream_management;
        let resuming = match self.resume_from.take() {
            Some(previous) if use_sm && offer.inline_resume => Some(previous),
            Some(previous) => {
                // No inline resumption: authenticate without Bind2 and let
                // the classic path resume after the features.
                self.resume_from = Some(previous);
                None
            }
            None => None,
        };
        let resume_element = resuming
            .as_ref()
            .map_or(String::new(), |previous| Resume::of(previous).to_string());
        let mut csi_inline = false;
        let bind_element = if offer.bind2.is_some() && self.resume_from.is_none() {
            let mut inline = String::new();
            if use_sm && offer.bind2_inline(NS_SM) {
                inline.push_str(&Enable { resume: true }.to_string());
            }
            if self.config.carbons && offer.bind2_inline(NS_CARBONS) {
                inline.push_str(&format!("<enable xmlns='{NS_CARBONS}'/>"));
            }
            if offer.bind2_inline(NS_CSI) {
                self.features.client_state_indication = true;
                if !self.client_active {
                    inline.push_str(&format!("<inactive xmlns='{NS_CSI}'/>"));
                    csi_inline = true;
                }
            }
            format!(
                "<bind xmlns='{NS_BIND2}'><tag>{}</tag>{inline}</bind>",
                xml::escape(&self.config.software)
            )
        } else {
            String::new()
        };

        self.transmit(format!(
            "<authenticate xmlns='{NS_SASL2}' mechanism='{mechanism_name}'>\
             <initial-response>{}</initial-response>\
             <user-agent id='{}'><software>{}</software></user-agent>\
             {fast_element}{resume_element}{bind_element}</authenticate>",
            B64.encode(initial),
            xml::escape(&self.config.client_id),
            xml::escape(&self.config.software),
        ));
        self.round_trips += 1;
        Ok(State::Sasl2(Box::new(Attempt {
            credential,
            resuming,
            token_requested,
            csi_inline,
            features_pending: false,
        })))
    }

    /// With a FAST token and the features the server offered on the last
    /// connection, `<authenticate/>` goes out right behind the stream
    /// header: the server answers the header with its features before it
    /// reads on, so both cross on the wire and a round trip is saved
    /// (XEP-0484 is designed for a one-round-trip login, up to TLS early
    /// data). Only a token login is pipelined: a password login needs the
    /// features for the mechanism choice and XEP-0474's check. A server
    /// that does not take it ends the attempt, and this session waits for
    /// features from then on (`pipelining_failed`).
    pub(super) fn pipeline_login(&mut self) -> Option<State> {
        if !self.config.sasl2 || self.pipelining_failed {
            return None;
        }
        let known = self.known_features.as_ref()?;
        let token = self.fast_token.as_ref()?;
        let offered = known
            .sasl2
            .as_ref()?
            .fast_mechanisms
            .iter()
            .any(|m| m == token.mechanism.name());
        let bindable =
            !token.mechanism.uses_channel_binding() || self.channel_binding_with(known).is_some();
        if !offered || !bindable {
            return None;
        }
        self.features = known.clone();
        match self.start_sasl2(&[]) {
            Ok(State::Sasl2(mut attempt)) => {
                attempt.features_pending = true;
                self.pipelined_in_flight = true;
                // The header and the authenticate share one round trip.
                self.round_trips -= 1;
                Some(State::Sasl2(attempt))
            }
            Ok(other) => Some(other),
            Err(_) => {
                self.features = Features::default();
                None
            }
        }
    }

    pub(super) fn on_sasl2(
        &mut self,
        mut attempt: Attempt,
        element: Element,
    ) -> Result<State, SessionError> {
        if attempt.features_pending {
            // RFC 6120 §4.3.2: the features answer the header, before
            // anything the server says about our pipelined authenticate.
            if !element.is("features", NS_STREAM) {
                return Err(unexpected_sasl2(&element));
            }
            attempt.features_pending = false;
            self.learn_features(Features::parse(&element));
            return Ok(State::Sasl2(Box::new(attempt)));
        }
        if element.is("success", NS_SASL2) || element.is("failure", NS_SASL2) {
            self.pipelined_in_flight = false;
        }
        if element.is("challenge", NS_SASL2) {
            let Credential::Password { client, .. } = &mut attempt.credential else {
                return Err(unexpected_sasl2(&element));
            };
            let reply = B64
                .decode(element.text().trim())
                .map_err(|_| SaslError::MalformedChallenge)
                .and_then(|challenge| client.respond(&challenge));
            match reply {
                Ok(reply) => {
                    self.transmit(format!(
                        "<response xmlns='{NS_SASL2}'>{}</response>",
                        B64.encode(reply)
                    ));
                    self.round_trips += 1;
                    Ok(State::Sasl2(Box::new(attempt)))
                }
                Err(err) => {
                    self.transmit(format!("<abort xmlns='{NS_SASL2}'/>"));
                    Err(err.into())
                }
            }
        } else if element.is("success", NS_SASL2) {
            self.on_sasl2_success(attempt, element)
        } else if element.is("failure", NS_SASL2) {
            self.on_sasl2_failure(attempt, &element)
        } else if element.is("continue", NS_SASL2) {
            // Second factors and upgrade tasks need the user; a chat core
            // cannot answer them here.
            self.transmit(format!("<abort xmlns='{NS_SASL2}'/>"));
            Err(SessionError::AuthFailed {
                condition: "task-required".to_owned(),
            })
        } else {
            Err(unexpected_sasl2(&element))
        }
    }

    fn on_sasl2_failure(
        &mut self,
        attempt: Attempt,
        element: &Element,
    ) -> Result<State, SessionError> {
        let condition = error_condition(element);
        // XEP-0388 §2.6.2: a failure leaves the stream as it was, so the
        // next attempt can follow on the same stream.
        if let Some(previous) = attempt.resuming {
            self.resume_from = Some(previous);
        }
        match attempt.credential {
            Credential::Token { mechanism, .. } => {
                // Expired, revoked, or from a wiped server: forget it and
                // log in with the password (XEP-0484 §4).
                tracing::info!(
                    mechanism = mechanism.name(),
                    condition,
                    "FAST token refused; using the password"
                );
                self.fast_token = None;
                self.outputs
                    .push_back(Output::Event(SessionEvent::FastToken(None)));
                self.start_sasl2(&[])
            }
            Credential::Password { mechanism, .. } => {
                if self.retry_without_binding(mechanism, &condition)? {
                    // Same hash, without binding.
                    return self
                        .start_sasl2(&[Mechanism::ScramSha256Plus, Mechanism::ScramSha1Plus]);
                }
                Err(SessionError::AuthFailed { condition })
            }
        }
    }

    fn on_sasl2_success(
        &mut self,
        attempt: Attempt,
        element: Element,
    ) -> Result<State, SessionError> {
        let additional = match element.get_child("additional-data", NS_SASL2) {
            Some(data) => Some(
                B64.decode(data.text().trim())
                    .map_err(|_| SaslError::MalformedChallenge)?,
            ),
            None => None,
        };
        let (verified, name, spent_token) = match &attempt.credential {
            Credential::Password { client, mechanism } => (
                client
                    .verify_success(additional.as_deref().unwrap_or_default())
                    .map_err(SessionError::from),
                mechanism.name(),
                None,
            ),
            Credential::Token { client, mechanism } => (
                if additional
                    .as_deref()
                    .is_some_and(|a| client.verify_success(a))
                {
                    Ok(())
                } else {
                    Err(SaslError::ServerSignatureMismatch.into())
                },
                mechanism.name(),
                Some(*mechanism),
            ),
        };
        verified?;
        self.authenticated_with = name;

        if let Some(token) = element.get_child("token", NS_FAST) {
            let mechanism = attempt.token_requested.or(spent_token);
            match (mechanism, token.attr("token")) {
                (Some(mechanism), Some(secret)) if !secret.is_empty() => {
                    let token = FastToken {
                        mechanism,
                        secret: secret.to_owned(),
                        expiry: token.attr("expiry").map(str::to_owned),
                        count: 0,
                    };
                    self.fast_token = Some(token.clone());
                    self.outputs
                        .push_back(Output::Event(SessionEvent::FastToken(Some(token))));
                }
                _ => tracing::warn!("ignoring a malformed FAST token"),
            }
        }

        let identity = element
            .get_child("authorization-identifier", NS_SASL2)
            .map(|i| i.text().trim().to_owned());
        let mut pending = None;
        if let Some(previous) = attempt.resuming {
            let answer = ["resumed", "failed"]
                .into_iter()
                .find_map(|name| element.get_child(name, NS_SM))
                .and_then(ResumeAnswer::parse);
            match answer {
                Some(ResumeAnswer::Resumed { h }) => {
                    let (jid, resent_ids) = self.accept_resumption(previous, h)?;
                    pending = Some(PendingOnline {
                        jid,
                        resumed: true,
                        resent_ids,
                        carbons_enabled: false,
                        csi_inline: false,
                    });
                }
                Some(ResumeAnswer::Failed { h }) => self.refuse_resumption(previous, h),
                None => self.refuse_resumption(previous, None),
            }
        }
        if pending.is_none() {
            if let Some(bound) = element.get_child("bound", NS_BIND2) {
                let jid = identity
                    .as_deref()
                    .and_then(|i| FullJid::from_str(i).ok())
                    .ok_or_else(|| SessionError::BindFailed {
                        condition: "bad-jid".to_owned(),
                    })?;
                if let Some(enabled) = bound.get_child("enabled", NS_SM).and_then(Enabled::parse) {
                    self.sm = Some(SmState::enabled_by(&enabled));
                    self.sm_changed = true;
                }
                pending = Some(PendingOnline {
                    jid,
                    resumed: false,
                    resent_ids: Vec::new(),
                    carbons_enabled: bound.has_child("enabled", NS_CARBONS),
                    csi_inline: attempt.csi_inline,
                });
            } else if let Some(failed) = element.get_child("failed", NS_BIND2) {
                let condition = failed
                    .get_child("error", NS_CLIENT)
                    .map(error_condition)
                    .unwrap_or_else(|| "undefined-condition".to_owned());
                return Err(SessionError::BindFailed { condition });
            }
        }
        Ok(match pending {
            Some(online) => State::AwaitPostAuthFeatures {
                online,
                early: Vec::new(),
            },
            // Authenticated only: the features lead to a classic bind or
            // resumption, as after a stream restart.
            None => State::AwaitFeatures(Stage::Authenticated),
        })
    }

    pub(super) fn on_post_auth_features(
        &mut self,
        now: Instant,
        online: PendingOnline,
        mut early: Vec<Element>,
        element: Element,
    ) -> Result<State, SessionError> {
        if !element.is("features", NS_STREAM) {
            // With a resumption the server re-sends what we missed right
            // after <success/>, possibly before the features — a few, not
            // a flood we would have to hold in memory.
            if early.len() >= MAX_EARLY_STANZAS {
                return Err(super::unexpected("<stream:features/>", &element));
            }
            early.push(element);
            return Ok(State::AwaitPostAuthFeatures { online, early });
        }
        let features = Features::parse(&element);
        self.features.roster_versioning |= features.roster_versioning;
        self.features.client_state_indication |= features.client_state_indication;
        if !online.csi_inline {
            self.apply_client_state(online.resumed);
        }
        // A server whose Bind2 cannot enable XEP-0198 inline may still offer
        // it as a feature: enable it now, and go online once it answered
        // (counting starts at <enable/>, XEP-0198 §4).
        if !online.resumed
            && self.sm.is_none()
            && self.config.stream_management
            && features.stream_management
        {
            self.transmit(Enable { resume: true }.to_string());
            self.round_trips += 1;
            let bind_id = self.next_id();
            for element in early {
                self.on_online_element(element)?;
            }
            return Ok(State::Binding {
                // Nothing to wait for but <enabled/>: an id never sent.
                bind_id,
                bound: Some(online.jid),
                sm_pending: true,
            });
        }
        let online = self.go_online(
            now,
            online.jid,
            online.resumed,
            online.resent_ids,
            online.carbons_enabled,
        );
        for element in early {
            self.on_online_element(element)?;
        }
        Ok(online)
    }
}

fn unexpected_sasl2(got: &Element) -> SessionError {
    SessionError::UnexpectedElement {
        expected: "a SASL2 reply",
        got: got.name().to_owned(),
    }
}
