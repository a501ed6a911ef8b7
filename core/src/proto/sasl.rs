//! SASL mechanisms the engine speaks (RFC 6120 §6): SCRAM-SHA-256 and
//! SCRAM-SHA-1 (RFC 5802, RFC 7677), their -PLUS variants with the
//! `tls-exporter` channel binding (RFC 9266), and PLAIN (RFC 4616) only as a
//! last resort over TLS. SCRAM checks the server's XEP-0474 downgrade
//! protection hash when it sends one.
//!
//! Pure computation: the caller provides the nonce and moves the messages.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// A mechanism we can use, strongest first in [`Mechanism::PREFERENCE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    ScramSha256Plus,
    ScramSha1Plus,
    ScramSha256,
    ScramSha1,
    Plain,
}

impl Mechanism {
    pub const PREFERENCE: [Mechanism; 5] = [
        Mechanism::ScramSha256Plus,
        Mechanism::ScramSha1Plus,
        Mechanism::ScramSha256,
        Mechanism::ScramSha1,
        Mechanism::Plain,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
            Mechanism::ScramSha1Plus => "SCRAM-SHA-1-PLUS",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::Plain => "PLAIN",
        }
    }

    pub fn uses_channel_binding(self) -> bool {
        matches!(self, Mechanism::ScramSha256Plus | Mechanism::ScramSha1Plus)
    }

    fn hash(self) -> Option<ScramHash> {
        match self {
            Mechanism::ScramSha256Plus | Mechanism::ScramSha256 => Some(ScramHash::Sha256),
            Mechanism::ScramSha1Plus | Mechanism::ScramSha1 => Some(ScramHash::Sha1),
            Mechanism::Plain => None,
        }
    }

    /// Picks the best mechanism from the server's list. PLUS needs channel
    /// binding data; PLAIN is allowed only when nothing else is offered
    /// (the stream is always TLS-protected, we never run without TLS).
    pub fn choose(
        offered: &[String],
        have_channel_binding: bool,
        exclude: &[Mechanism],
    ) -> Option<Mechanism> {
        Mechanism::PREFERENCE.into_iter().find(|m| {
            offered.iter().any(|o| o == m.name())
                && (!m.uses_channel_binding() || have_channel_binding)
                && !exclude.contains(m)
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum ScramHash {
    Sha1,
    Sha256,
}

impl ScramHash {
    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => {
                let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(key)
                    .expect("HMAC takes any key length");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            ScramHash::Sha256 => {
                let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
                    .expect("HMAC takes any key length");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => Sha1::digest(data).to_vec(),
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => {
                let mut out = vec![0u8; 20];
                pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, &mut out);
                out
            }
            ScramHash::Sha256 => {
                let mut out = vec![0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out
            }
        }
    }
}

/// Why a SASL exchange failed on our side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("the server's SCRAM message is malformed")]
    MalformedChallenge,
    #[error("the server's nonce does not extend ours")]
    NonceMismatch,
    #[error("the server asks for an unreasonable iteration count")]
    BadIterationCount,
    #[error("the server could not prove it knows the password")]
    ServerSignatureMismatch,
    #[error("the server reported a SCRAM error")]
    ServerError,
    /// XEP-0474: the server's hash of what it advertised does not match
    /// the lists we received — someone altered them on the way.
    #[error("the advertised mechanisms or channel bindings were altered (possible interception)")]
    DowngradeDetected,
}

/// Hostile servers could ask for billions of PBKDF2 rounds to hang us.
const MAX_ITERATIONS: u32 = 1_000_000;

/// Client side of one SASL exchange.
pub enum SaslClient {
    Plain,
    Scram(ScramClient),
}

impl SaslClient {
    /// Starts `mechanism`; `nonce` must be fresh random printable ASCII
    /// without commas; `channel_binding` is the tls-exporter value, if any.
    pub fn start(
        mechanism: Mechanism,
        username: &str,
        password: &str,
        nonce: &str,
        channel_binding: Option<&[u8]>,
        server_offers_plus: bool,
    ) -> (SaslClient, Vec<u8>) {
        match mechanism.hash() {
            None => {
                let mut initial = Vec::with_capacity(username.len() + password.len() + 2);
                initial.push(0);
                initial.extend_from_slice(username.as_bytes());
                initial.push(0);
                initial.extend_from_slice(password.as_bytes());
                (SaslClient::Plain, initial)
            }
            Some(hash) => {
                // RFC 5802 §6: "p" binds; "y" says we could bind but the
                // server offers no -PLUS (a man in the middle who stripped
                // -PLUS from the list is caught by a server that has it);
                // "n" when we cannot bind, or deliberately do not (a server
                // that advertises -PLUS but rejected our binding: "y" would
                // make it abort).
                let gs2_header = match (mechanism.uses_channel_binding(), channel_binding) {
                    (true, Some(_)) => "p=tls-exporter,,",
                    (false, Some(_)) if !server_offers_plus => "y,,",
                    _ => "n,,",
                }
                .to_owned();
                let client_first_bare = format!("n={},r={}", sasl_name(username), nonce);
                let message = format!("{gs2_header}{client_first_bare}").into_bytes();
                let cbind_input = {
                    let mut c = gs2_header.into_bytes();
                    if mechanism.uses_channel_binding() {
                        if let Some(cb) = channel_binding {
                            c.extend_from_slice(cb);
                        }
                    }
                    c
                };
                let scram = ScramClient {
                    hash,
                    password: password.to_owned(),
                    client_nonce: nonce.to_owned(),
                    client_first_bare,
                    cbind_input,
                    expected_server_signature: None,
                    advertised: None,
                };
                (SaslClient::Scram(scram), message)
            }
        }
    }

    /// Remembers what the server advertised — its mechanisms (of the SASL
    /// profile in use) and its XEP-0440 channel-binding types, if it listed
    /// any — so that SCRAM can check the server's XEP-0474 hash of them.
    pub fn check_advertised(&mut self, mechanisms: &[String], channel_bindings: Option<&[String]>) {
        if let SaslClient::Scram(s) = self {
            s.advertised = Some(downgrade_protection_input(mechanisms, channel_bindings));
        }
    }

    /// Answers a challenge (for SCRAM: the server-first message).
    pub fn respond(&mut self, challenge: &[u8]) -> Result<Vec<u8>, SaslError> {
        match self {
            SaslClient::Plain => Err(SaslError::MalformedChallenge),
            SaslClient::Scram(s) => s.client_final(challenge),
        }
    }

    /// Checks the additional data sent with `<success/>` (SCRAM: the
    /// server-final message, which proves the server knew our password).
    pub fn verify_success(&self, additional: &[u8]) -> Result<(), SaslError> {
        match self {
            SaslClient::Plain => Ok(()),
            SaslClient::Scram(s) => s.verify_server_final(additional),
        }
    }
}

pub struct ScramClient {
    hash: ScramHash,
    password: String,
    client_nonce: String,
    client_first_bare: String,
    cbind_input: Vec<u8>,
    expected_server_signature: Option<Vec<u8>>,
    /// The XEP-0474 input string of what we were offered.
    advertised: Option<Vec<u8>>,
}

/// XEP-0474 §5.1: the sorted mechanisms joined by %x1E, then — only when
/// XEP-0440 was used — %x1F and the sorted channel-binding types joined by
/// %x1E. Sorting is by octets (RFC 4790 "i;octet"), which `Ord` on byte
/// strings is.
fn downgrade_protection_input(
    mechanisms: &[String],
    channel_bindings: Option<&[String]>,
) -> Vec<u8> {
    let joined = |items: &[String]| {
        let mut sorted: Vec<&[u8]> = items.iter().map(|i| i.as_bytes()).collect();
        sorted.sort_unstable();
        sorted.join(&0x1e)
    };
    let mut input = joined(mechanisms);
    if let Some(types) = channel_bindings {
        input.push(0x1f);
        input.extend(joined(types));
    }
    input
}

impl ScramClient {
    fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, SaslError> {
        let server_first =
            std::str::from_utf8(server_first).map_err(|_| SaslError::MalformedChallenge)?;
        let (mut nonce, mut salt, mut iterations, mut ssdp) = (None, None, None, None);
        for part in server_first.split(',') {
            match part.split_once('=') {
                Some(("r", v)) => nonce = Some(v),
                Some(("h", v)) => ssdp = Some(v),
                Some(("s", v)) => {
                    salt = Some(B64.decode(v).map_err(|_| SaslError::MalformedChallenge)?)
                }
                Some(("i", v)) => {
                    iterations = Some(
                        v.parse::<u32>()
                            .map_err(|_| SaslError::MalformedChallenge)?,
                    )
                }
                Some(("m", _)) => return Err(SaslError::MalformedChallenge),
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err(SaslError::MalformedChallenge);
        };
        if !nonce.starts_with(&self.client_nonce) || nonce.len() <= self.client_nonce.len() {
            return Err(SaslError::NonceMismatch);
        }
        if iterations == 0 || iterations > MAX_ITERATIONS {
            return Err(SaslError::BadIterationCount);
        }
        let h = self.hash;
        // XEP-0474 §5.2: a server that supports it hashes what it
        // advertised; a mismatch means the lists were altered in transit.
        // (A man in the middle who strips "h" changes the server-first
        // message, which the server's check of our proof then catches.)
        if let (Some(sent), Some(advertised)) = (ssdp, &self.advertised) {
            let sent = B64
                .decode(sent)
                .map_err(|_| SaslError::MalformedChallenge)?;
            if !constant_time_eq(&sent, &h.digest(advertised)) {
                return Err(SaslError::DowngradeDetected);
            }
        }
        let salted = h.salted_password(self.password.as_bytes(), &salt, iterations);
        let client_key = h.hmac(&salted, b"Client Key");
        let stored_key = h.digest(&client_key);
        let without_proof = format!("c={},r={}", B64.encode(&self.cbind_input), nonce);
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, server_first, without_proof
        );
        let client_signature = h.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = h.hmac(&salted, b"Server Key");
        self.expected_server_signature = Some(h.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{},p={}", without_proof, B64.encode(proof)).into_bytes())
    }

    fn verify_server_final(&self, server_final: &[u8]) -> Result<(), SaslError> {
        let text = std::str::from_utf8(server_final).map_err(|_| SaslError::MalformedChallenge)?;
        if text.starts_with("e=") {
            return Err(SaslError::ServerError);
        }
        let signature = text
            .split(',')
            .find_map(|p| p.strip_prefix("v="))
            .ok_or(SaslError::MalformedChallenge)?;
        let signature = B64
            .decode(signature)
            .map_err(|_| SaslError::MalformedChallenge)?;
        match &self.expected_server_signature {
            Some(expected) if constant_time_eq(expected, &signature) => Ok(()),
            _ => Err(SaslError::ServerSignatureMismatch),
        }
    }
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// RFC 5802 §5.1: '=' and ',' in the username are escaped.
fn sasl_name(username: &str) -> String {
    username.replace('=', "=3D").replace(',', "=2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example exchange of RFC 7677 §3 (SCRAM-SHA-256, user "user",
    /// password "pencil").
    #[test]
    fn rfc7677_example_exchange() {
        let (mut client, first) = SaslClient::start(
            Mechanism::ScramSha256,
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO",
            None,
            false,
        );
        assert_eq!(first, b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let final_msg = client.respond(server_first).unwrap();
        assert_eq!(
            String::from_utf8(final_msg).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert!(client
            .verify_success(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .is_ok());
        assert_eq!(
            client.verify_success(b"v=AAAA").unwrap_err(),
            SaslError::ServerSignatureMismatch
        );
    }

    /// RFC 5802 §5 example (SCRAM-SHA-1).
    #[test]
    fn rfc5802_example_exchange() {
        let (mut client, _) = SaslClient::start(
            Mechanism::ScramSha1,
            "user",
            "pencil",
            "fyko+d2lbbFgONRv9qkxdawL",
            None,
            false,
        );
        let final_msg = client
            .respond(b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
            .unwrap();
        assert_eq!(
            String::from_utf8(final_msg).unwrap(),
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
        );
        assert!(client
            .verify_success(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=")
            .is_ok());
    }

    #[test]
    fn hostile_challenges_are_refused() {
        let start = || SaslClient::start(Mechanism::ScramSha256, "u", "p", "abc", None, false).0;
        assert_eq!(
            start().respond(b"r=xyz123,s=AAAA,i=4096").unwrap_err(),
            SaslError::NonceMismatch
        );
        assert_eq!(
            start()
                .respond(b"r=abcdef,s=AAAA,i=4000000000")
                .unwrap_err(),
            SaslError::BadIterationCount
        );
        assert_eq!(
            start().respond(b"garbage").unwrap_err(),
            SaslError::MalformedChallenge
        );
        assert_eq!(
            start().respond(&[0xff, 0xfe]).unwrap_err(),
            SaslError::MalformedChallenge
        );
    }

    #[test]
    fn the_gs2_flag_says_whether_we_could_bind() {
        let flag = |mechanism, cb: Option<&[u8]>, plus_offered| {
            let (_, first) = SaslClient::start(mechanism, "u", "p", "abc", cb, plus_offered);
            String::from_utf8(first).unwrap()[..2].to_owned()
        };
        // We could bind, the server offers no -PLUS: "y" (RFC 5802 §6), so
        // a server whose -PLUS a man in the middle stripped notices.
        assert_eq!(flag(Mechanism::ScramSha256, Some(b"X"), false), "y,");
        // It offers -PLUS but we do not use it (it rejected our binding
        // before): "n", or it would abort.
        assert_eq!(flag(Mechanism::ScramSha256, Some(b"X"), true), "n,");
        // Nothing to bind with (TLS 1.2): "n".
        assert_eq!(flag(Mechanism::ScramSha256, None, false), "n,");
        assert_eq!(flag(Mechanism::ScramSha256Plus, Some(b"X"), true), "p=");
    }

    #[test]
    fn channel_binding_goes_into_the_gs2_header_and_the_proof() {
        let (mut client, first) = SaslClient::start(
            Mechanism::ScramSha256Plus,
            "u",
            "p",
            "abc",
            Some(b"EXPORTED"),
            true,
        );
        assert!(first.starts_with(b"p=tls-exporter,,n=u,r=abc"));
        let reply = String::from_utf8(client.respond(b"r=abcdef,s=AAAA,i=4096").unwrap()).unwrap();
        let c = reply.split(',').next().unwrap().strip_prefix("c=").unwrap();
        assert_eq!(B64.decode(c).unwrap(), b"p=tls-exporter,,EXPORTED");
    }

    /// XEP-0474 §5.3's example: SHA-1 over the sorted lists of what the
    /// server advertised, checked against the "h" it sends.
    #[test]
    fn the_downgrade_protection_hash_matches_the_spec_example() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mechanisms = names(&["SCRAM-SHA-1-PLUS", "SCRAM-SHA-1"]);
        let bindings = names(&["tls-server-end-point", "tls-exporter"]);
        let input = downgrade_protection_input(&mechanisms, Some(&bindings));
        assert_eq!(
            input,
            b"SCRAM-SHA-1\x1eSCRAM-SHA-1-PLUS\x1ftls-exporter\x1etls-server-end-point"
        );
        assert_eq!(
            B64.encode(ScramHash::Sha1.digest(&input)),
            "G6k/rBLDqgOhRRaCuuatSDFkJ08="
        );
        // Without XEP-0440 there is no separator and no binding list.
        assert_eq!(
            downgrade_protection_input(&mechanisms, None),
            b"SCRAM-SHA-1\x1eSCRAM-SHA-1-PLUS"
        );
    }

    #[test]
    fn an_altered_mechanism_list_is_caught_by_the_servers_hash() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let server_list = names(&["SCRAM-SHA-1", "SCRAM-SHA-256"]);
        let server_hash = B64.encode(Sha1::digest(downgrade_protection_input(&server_list, None)));
        let start = |seen: &[&str]| {
            let (mut client, _) =
                SaslClient::start(Mechanism::ScramSha1, "u", "p", "abc", None, false);
            client.check_advertised(&names(seen), None);
            client
        };
        let challenge = format!("r=abcdef,s=AAAA,i=4096,h={server_hash}");
        // What we saw is what the server sent: the exchange goes on.
        assert!(start(&["SCRAM-SHA-256", "SCRAM-SHA-1"])
            .respond(challenge.as_bytes())
            .is_ok());
        // SCRAM-SHA-256 was stripped on the way: refused.
        assert_eq!(
            start(&["SCRAM-SHA-1"]).respond(challenge.as_bytes()),
            Err(SaslError::DowngradeDetected)
        );
        // A server without XEP-0474 sends no "h": nothing to check.
        assert!(start(&["SCRAM-SHA-1"])
            .respond(b"r=abcdef,s=AAAA,i=4096")
            .is_ok());
    }

    #[test]
    fn plain_is_chosen_only_when_nothing_else_is_offered() {
        let offered = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            Mechanism::choose(
                &offered(&["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256-PLUS"]),
                true,
                &[]
            ),
            Some(Mechanism::ScramSha256Plus)
        );
        assert_eq!(
            Mechanism::choose(
                &offered(&["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256-PLUS"]),
                false,
                &[]
            ),
            Some(Mechanism::ScramSha1)
        );
        assert_eq!(
            Mechanism::choose(&offered(&["PLAIN"]), true, &[]),
            Some(Mechanism::Plain)
        );
        assert_eq!(Mechanism::choose(&offered(&["X-UNKNOWN"]), true, &[]), None);
    }
}
