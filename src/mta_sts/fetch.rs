//! Fetching a policy file (RFC 8461 §3.3): `GET /.well-known/mta-sts.txt` from
//! `mta-sts.<domain>` over HTTPS whose certificate is valid for that name. hyper
//! speaks HTTP/1.1 over tokio-rustls; redirects are never followed, only a 200
//! with `text/plain` counts, the body is capped at 64 KiB and the whole fetch
//! has a deadline.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use rustls::pki_types::ServerName;

/// Largest policy accepted (the RFC suggests 64 KiB).
pub const MAX_POLICY_SIZE: usize = 64 * 1024;
/// Whole fetch, connect to last byte (KumoMTA and Stalwart use tens of seconds).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a fetch failed, in words; `webpki` marks a certificate that did not verify
/// (TLS-RPT `sts-webpki-invalid`), everything else is `sts-policy-fetch-error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchError {
    pub text: String,
    pub webpki: bool,
}

impl FetchError {
    fn new(text: String) -> FetchError {
        FetchError {
            text,
            webpki: false,
        }
    }
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// The URL a domain's policy is at (port 443 unless the operator overrode it).
pub fn policy_url(domain: &str, port: u16) -> String {
    if port == 443 {
        format!("https://mta-sts.{domain}/.well-known/mta-sts.txt")
    } else {
        format!("https://mta-sts.{domain}:{port}/.well-known/mta-sts.txt")
    }
}

/// Fetch the policy text of `domain` from the first of `addrs` that answers.
pub async fn fetch(
    domain: &str,
    addrs: &[IpAddr],
    port: u16,
    tls: Arc<rustls::ClientConfig>,
) -> Result<String, FetchError> {
    let host = format!("mta-sts.{domain}");
    let url = policy_url(domain, port);
    let mut last = FetchError::new(format!("{host} has no address"));
    for &ip in addrs.iter().take(2) {
        let addr = SocketAddr::new(ip, port);
        match tokio::time::timeout(FETCH_TIMEOUT, fetch_from(&host, addr, port, tls.clone())).await
        {
            Ok(Ok(text)) => return Ok(text),
            Ok(Err(e)) => {
                last = FetchError {
                    text: format!("fetching {url} from {ip}: {}", e.text),
                    webpki: e.webpki,
                };
                // A certificate that does not verify won't verify elsewhere either.
                if e.webpki {
                    break;
                }
            }
            Err(_) => {
                last = FetchError::new(format!(
                    "fetching {url} from {ip}: no complete answer within {}s",
                    FETCH_TIMEOUT.as_secs()
                ))
            }
        }
    }
    Err(last)
}

async fn fetch_from(
    host: &str,
    addr: SocketAddr,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
) -> Result<String, FetchError> {
    let authority = if port == 443 {
        host.to_string()
    } else {
        format!("{host}:{port}")
    };
    let req = hyper::Request::get("/.well-known/mta-sts.txt")
        .header(hyper::header::HOST, authority)
        .header(hyper::header::USER_AGENT, "mxring")
        .body(Full::new(Bytes::new()))
        .map_err(|e| FetchError::new(format!("cannot build the request: {e}")))?;
    let (status, headers, body) = request(host, addr, tls, req, MAX_POLICY_SIZE).await?;
    if status.is_redirection() {
        let to = headers
            .get(hyper::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("?");
        return Err(FetchError::new(format!(
            "the server redirected to {to} (HTTP {}); RFC 8461 forbids following redirects",
            status.as_u16()
        )));
    }
    if status != hyper::StatusCode::OK {
        return Err(FetchError::new(format!(
            "the server answered HTTP {}, not 200",
            status.as_u16()
        )));
    }
    let ctype = headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mime = ctype.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("text/plain") {
        return Err(FetchError::new(format!(
            "the policy's Content-Type is `{ctype}`, not text/plain"
        )));
    }
    String::from_utf8(body).map_err(|_| FetchError::new("the policy is not UTF-8 text".into()))
}

/// One HTTPS request to `host` at `addr`: the status, headers and body (at most
/// `limit` bytes). hyper does the HTTP; the TLS certificate must be valid for `host`.
pub async fn request(
    host: &str,
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    req: hyper::Request<Full<Bytes>>,
    limit: usize,
) -> Result<(hyper::StatusCode, hyper::HeaderMap, Vec<u8>), FetchError> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| FetchError::new(format!("cannot connect: {e}")))?;
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| FetchError::new(format!("`{host}` is not a valid host name")))?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| {
            let webpki = e
                .get_ref()
                .and_then(|i| i.downcast_ref::<rustls::Error>())
                .is_some_and(|t| {
                    matches!(
                        t,
                        rustls::Error::InvalidCertificate(_)
                            | rustls::Error::NoCertificatesPresented
                    )
                });
            FetchError {
                text: format!("TLS failed: {}", crate::tls::words::io_error(&e)),
                webpki,
            }
        })?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| FetchError::new(format!("HTTP failed: {e}")))?;
    let exchange = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| FetchError::new(format!("HTTP failed: {e}")))?;
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, limit)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    FetchError::new(format!("the answer is larger than {} KiB", limit / 1024))
                } else {
                    FetchError::new(format!("reading the answer failed: {e}"))
                }
            })?
            .to_bytes();
        Ok((parts.status, parts.headers, body.to_vec()))
    };
    // The connection future does the I/O; it runs beside the exchange (it may end
    // first when the server closes after the body).
    let mut conn = std::pin::pin!(conn);
    let mut exchange = std::pin::pin!(exchange);
    let mut conn_done = false;
    loop {
        tokio::select! {
            r = &mut exchange => return r,
            c = &mut conn, if !conn_done => {
                conn_done = true;
                if let Err(e) = c {
                    return Err(FetchError::new(format!("HTTP failed: {e}")));
                }
            }
        }
    }
}
