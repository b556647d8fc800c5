//! Sending a report to an `https:` rua (RFC 8460 5.4): a POST of the gzipped
//! JSON as `application/tlsrpt+gzip`; any 2xx is success. The certificate must
//! chain to the system roots or `[outbound] mta_sts_ca_file` and be valid for
//! the URI's host, which mxring's own resolver looks up.

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;

use crate::dns::Dns;
use crate::mta_sts::fetch::{request, FETCH_TIMEOUT};

/// POST `gz` to `url`.
pub async fn post(
    url: &str,
    dns: &Dns,
    tls: Arc<rustls::ClientConfig>,
    gz: Vec<u8>,
) -> Result<(), String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("`{url}` is not a URI: {e}"))?;
    let host = uri
        .host()
        .ok_or_else(|| format!("`{url}` has no host"))?
        .to_string();
    let port = uri.port_u16().unwrap_or(443);
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let ips = dns
        .addresses(&host)
        .await
        .map_err(|e| format!("cannot resolve {host}: {}", e.text()))?;
    let ip = *ips
        .first()
        .ok_or_else(|| format!("{host} has no address"))?;
    let authority = match uri.port_u16() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    let req = hyper::Request::post(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::USER_AGENT, "mxring")
        .header(hyper::header::CONTENT_TYPE, "application/tlsrpt+gzip")
        .body(Full::new(Bytes::from(gz)))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let addr = SocketAddr::new(ip, port);
    let (status, _, _) =
        tokio::time::timeout(FETCH_TIMEOUT, request(&host, addr, tls, req, 64 * 1024))
            .await
            .map_err(|_| format!("{url}: no answer within {}s", FETCH_TIMEOUT.as_secs()))?
            .map_err(|e| format!("{url}: {e}"))?;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("{url} answered HTTP {}", status.as_u16()))
    }
}
