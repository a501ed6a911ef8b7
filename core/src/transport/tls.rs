//! TLS client configuration: the platform's trust store (Android/iOS/Linux
//! through rustls-platform-verifier) plus an optional extra CA, used by
//! tests and by private servers. Verification is never switched off.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::ClientConfig;

use super::TransportError;

/// Whether the platform verifier can be used. On Android it needs the
/// app's `Context` first (the bindings' `WaxwingAndroid.init` hands it
/// over and calls [`platform_verifier_ready`]); used before that, it would
/// panic on the first certificate. Elsewhere it reads the system's trust
/// store by itself.
#[cfg_attr(not(target_os = "android"), allow(dead_code))] // read on Android only
static PLATFORM_VERIFIER_READY: AtomicBool = AtomicBool::new(!cfg!(target_os = "android"));

/// Called once the platform verifier has what it needs (Android: the
/// app's `Context`).
pub fn platform_verifier_ready() {
    PLATFORM_VERIFIER_READY.store(true, Ordering::Release);
}

/// ALPN protocol id for direct TLS (XEP-0368 §3).
const ALPN_XMPP_CLIENT: &[u8] = b"xmpp-client";

pub fn client_config(
    extra_ca_pem: Option<&[u8]>,
    direct_tls: bool,
) -> Result<Arc<ClientConfig>, TransportError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let extra: Vec<CertificateDer<'static>> = match extra_ca_pem {
        Some(pem) => {
            let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut &pem[..]).collect();
            let certs = certs.map_err(|_| TransportError::BadCaFile)?;
            if certs.is_empty() {
                return Err(TransportError::BadCaFile);
            }
            certs
        }
        None => Vec::new(),
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|_| TransportError::TlsSetup)?;
    let mut config = build_with_verifier(builder, extra, provider)?;
    if direct_tls {
        config.alpn_protocols = vec![ALPN_XMPP_CLIENT.to_vec()];
    }
    Ok(Arc::new(config))
}

#[cfg(not(target_os = "android"))]
fn build_with_verifier(
    builder: rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>,
    extra: Vec<CertificateDer<'static>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<ClientConfig, TransportError> {
    let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider)
        .map_err(|_| TransportError::TlsSetup)?;
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

#[cfg(target_os = "android")]
fn build_with_verifier(
    builder: rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>,
    extra: Vec<CertificateDer<'static>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<ClientConfig, TransportError> {
    // Android's verifier cannot take extra roots; an extra CA replaces the
    // system store (private deployments).
    if extra.is_empty() {
        if !PLATFORM_VERIFIER_READY.load(Ordering::Acquire) {
            return Err(TransportError::VerifierNotInitialised);
        }
        let verifier = rustls_platform_verifier::Verifier::new(provider)
            .map_err(|_| TransportError::TlsSetup)?;
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth());
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in extra {
        roots.add(cert).map_err(|_| TransportError::BadCaFile)?;
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

pub fn server_name(domain: &str) -> Result<ServerName<'static>, TransportError> {
    ServerName::try_from(domain.to_owned()).map_err(|_| TransportError::InvalidDomain)
}

/// Maps a handshake failure to a typed error: certificate problems are
/// distinct so the UI can say "untrusted server" rather than "offline".
pub fn classify_handshake_error(err: &std::io::Error) -> TransportError {
    let tls = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::InvalidCertificate(_)) => TransportError::UntrustedCertificate,
        Some(_) => TransportError::TlsHandshake,
        None => TransportError::Network(err.kind()),
    }
}
