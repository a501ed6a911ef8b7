//! TLS client configuration: the platform's trust store (Android/iOS/Linux
//! through rustls-platform-verifier) plus an optional extra CA, used by
//! tests and by private servers. Verification is never switched off.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::ClientConfig;

use super::TransportError;

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
