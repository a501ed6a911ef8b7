//! XEP-0484 FAST tokens and the HT-SHA-256 SASL mechanisms that spend them
//! (draft-schmaus-kitten-sasl-ht): one round trip, mutual proof, optionally
//! bound to the TLS channel (`-EXPR`: RFC 9266 tls-exporter).
//!
//! Pure computation and the token's persisted form; the engine decides when
//! to ask for, use and forget a token.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The HT variants we speak. `-UNIQ` (tls-unique) and `-ENDP` need data we
/// do not have under TLS 1.3, so they are never chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FastMechanism {
    #[serde(rename = "HT-SHA-256-EXPR")]
    HtSha256Expr,
    #[serde(rename = "HT-SHA-256-NONE")]
    HtSha256None,
}

impl FastMechanism {
    pub fn name(self) -> &'static str {
        match self {
            FastMechanism::HtSha256Expr => "HT-SHA-256-EXPR",
            FastMechanism::HtSha256None => "HT-SHA-256-NONE",
        }
    }

    pub fn uses_channel_binding(self) -> bool {
        self == FastMechanism::HtSha256Expr
    }

    /// The mechanism to request a token for: channel-bound when the server
    /// offers it and this connection can bind.
    pub fn choose(offered: &[String], have_channel_binding: bool) -> Option<FastMechanism> {
        [FastMechanism::HtSha256Expr, FastMechanism::HtSha256None]
            .into_iter()
            .find(|m| {
                offered.iter().any(|o| o == m.name())
                    && (!m.uses_channel_binding() || have_channel_binding)
            })
    }
}

/// A token the server issued; kept in the encrypted store. It stands in for
/// the password, so it is never logged.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FastToken {
    pub mechanism: FastMechanism,
    pub secret: String,
    /// XEP-0082 timestamp as the server sent it.
    pub expiry: Option<String>,
    /// XEP-0484 §3.3: strictly increasing per token, so a replayed
    /// authentication (TLS 0-RTT) can be told apart.
    pub count: u32,
}

impl Drop for FastToken {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret);
    }
}

impl std::fmt::Debug for FastToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastToken")
            .field("mechanism", &self.mechanism)
            .field("expiry", &self.expiry)
            .finish_non_exhaustive()
    }
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// The client side of one HT exchange.
pub struct HtClient {
    expected_responder: Vec<u8>,
}

impl HtClient {
    /// Returns the client and its initial response:
    /// `username NUL HMAC(token, "Initiator" || cb-data)`.
    pub fn start(
        token: &FastToken,
        username: &str,
        channel_binding: Option<&[u8]>,
    ) -> (HtClient, Vec<u8>) {
        let cb = match token.mechanism {
            FastMechanism::HtSha256Expr => channel_binding.unwrap_or_default(),
            FastMechanism::HtSha256None => &[],
        };
        let key = token.secret.as_bytes();
        let mut initial = username.as_bytes().to_vec();
        initial.push(0);
        initial.extend(hmac_sha256(key, &[b"Initiator", cb]));
        let expected_responder = hmac_sha256(key, &[b"Responder", cb]);
        (HtClient { expected_responder }, initial)
    }

    /// The server proves it holds the token too.
    pub fn verify_success(&self, additional: &[u8]) -> bool {
        super::sasl::constant_time_eq(&self.expected_responder, additional)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(mechanism: FastMechanism) -> FastToken {
        FastToken {
            mechanism,
            secret: "secret-token:fast-abc".into(),
            expiry: None,
            count: 0,
        }
    }

    #[test]
    fn initial_response_is_username_nul_initiator_hmac() {
        let (client, initial) =
            HtClient::start(&token(FastMechanism::HtSha256None), "juliet", None);
        let (user, proof) = initial.split_at(6);
        assert_eq!(user, b"juliet");
        assert_eq!(proof[0], 0);
        assert_eq!(
            &proof[1..],
            hmac_sha256(b"secret-token:fast-abc", &[b"Initiator"])
        );
        assert!(client.verify_success(&hmac_sha256(b"secret-token:fast-abc", &[b"Responder"])));
        assert!(!client.verify_success(b"anything else"));
    }

    #[test]
    fn expr_binds_both_proofs_to_the_channel() {
        let t = token(FastMechanism::HtSha256Expr);
        let (a, first_a) = HtClient::start(&t, "u", Some(b"channel-A"));
        let (_, first_b) = HtClient::start(&t, "u", Some(b"channel-B"));
        assert_ne!(first_a, first_b);
        assert!(a.verify_success(&hmac_sha256(
            t.secret.as_bytes(),
            &[b"Responder", b"channel-A"]
        )));
        assert!(!a.verify_success(&hmac_sha256(
            t.secret.as_bytes(),
            &[b"Responder", b"channel-B"]
        )));
    }

    #[test]
    fn channel_bound_mechanism_only_with_channel_binding() {
        let offered = vec!["HT-SHA-256-NONE".to_owned(), "HT-SHA-256-EXPR".to_owned()];
        assert_eq!(
            FastMechanism::choose(&offered, true),
            Some(FastMechanism::HtSha256Expr)
        );
        assert_eq!(
            FastMechanism::choose(&offered, false),
            Some(FastMechanism::HtSha256None)
        );
        assert_eq!(
            FastMechanism::choose(&["HT-SHA-256-UNIQ".to_owned()], true),
            None
        );
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let shown = format!("{:?}", token(FastMechanism::HtSha256None));
        assert!(!shown.contains("secret-token"));
    }
}
