//! rustls configurations: a client that accepts any certificate, and the sink's server.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ServerConfig};

use crate::cli::TlsVersion;

static ONLY_TLS12: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
static ONLY_TLS13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];

fn versions(v: Option<TlsVersion>) -> &'static [&'static rustls::SupportedProtocolVersion] {
    match v {
        None => rustls::ALL_VERSIONS,
        Some(TlsVersion::V12) => &ONLY_TLS12,
        Some(TlsVersion::V13) => &ONLY_TLS13,
    }
}

/// A client that accepts any certificate (benchmarks target servers with throwaway
/// certificates) but still checks handshake signatures: mxring's own opportunistic
/// client configuration, so the harness measures what delivery does.
/// With `resumption` off, every handshake is a full one (no tickets, no session IDs).
pub fn client_config(
    version: Option<TlsVersion>,
    resumption: bool,
) -> Result<Arc<ClientConfig>, String> {
    let base = mxring::tls::client_config_versions(
        &mxring::tls::ClientVerification::None,
        versions(version),
    )
    .map_err(|e| format!("TLS client config: {e}"))?;
    let mut cfg = (*base).clone();
    cfg.resumption = if resumption {
        // One cached session per server name is all a load run needs, but the cache is
        // shared by every connection: make it large enough not to thrash.
        rustls::client::Resumption::in_memory_sessions(SESSION_CACHE)
    } else {
        rustls::client::Resumption::disabled()
    };
    Ok(Arc::new(cfg))
}

/// Sessions kept for resumption, on either side.
const SESSION_CACHE: usize = 65_536;

/// Builds (and drops) one client connection, which makes a ClientHello with fresh key
/// shares. The crypto library's one-time setup (random generator seeding, tables) costs
/// tens of milliseconds; paying it here keeps it out of the first handshake's latency.
pub fn warm_up(config: &Arc<ClientConfig>, name: ServerName<'static>) {
    let _ = rustls::ClientConnection::new(config.clone(), name);
}

/// Server config from PEM files, or from a fresh self-signed ECDSA P-256 certificate.
pub fn server_config(cert: Option<&Path>, key: Option<&Path>) -> Result<Arc<ServerConfig>, String> {
    let (chain, key) = match (cert, key) {
        (Some(c), Some(k)) => load_pem(c, k)?,
        _ => self_signed()?,
    };
    let mut config = ServerConfig::builder_with_provider(mxring::tls::provider())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| format!("TLS server config: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("TLS certificate: {e}"))?;
    // Resumption for clients that ask: a session cache (TLS 1.2 session IDs, TLS 1.3
    // tickets that name a cached session) large enough for ten thousand clients.
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE);
    Ok(Arc::new(config))
}

fn load_pem(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate found", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    Ok((chain, key))
}

fn self_signed() -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    // ECDSA P-256: cheap handshakes, so the sink is rarely the bottleneck.
    mxring::tls::self_signed("localhost")
        .map_err(|e| format!("generating self-signed certificate: {e}"))
}

/// The name sent in SNI: DNS names as given, IP addresses as IP (which rustls omits).
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|e| format!("invalid TLS server name '{host}': {e}"))
}
