//! A small HTTPS server for tests (the MTA-STS policy host, a TLS-RPT endpoint):
//! rustls over a blocking loopback socket, one thread per connection, answering
//! every request with the response of the moment and counting requests. It
//! speaks just enough HTTP/1.1 for one request per connection.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// What the server answers.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// 200 text/plain with `body`: a policy as RFC 8461 wants it served.
    pub fn policy(body: &str) -> Response {
        Response {
            status: 200,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: body.as_bytes().to_vec(),
        }
    }
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Request {
    pub head: String,
    pub body: Vec<u8>,
}

pub struct HttpsServer {
    pub addr: SocketAddr,
    pub response: Arc<Mutex<Response>>,
    pub requests: Arc<Mutex<Vec<Request>>>,
    count: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl HttpsServer {
    pub fn start(
        identity: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
        response: Response,
    ) -> HttpsServer {
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(identity.0, identity.1)
            .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let response = Arc::new(Mutex::new(response));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r2, q2, c2, s2) = (
            response.clone(),
            requests.clone(),
            count.clone(),
            stop.clone(),
        );
        std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (config, r3, q3, c3) =
                            (config.clone(), r2.clone(), q2.clone(), c2.clone());
                        std::thread::spawn(move || {
                            let _ = serve(stream, config, r3, q3, c3);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        HttpsServer {
            addr,
            response,
            requests,
            count,
            stop,
        }
    }

    /// Requests answered so far.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    pub fn set(&self, r: Response) {
        *self.response.lock().unwrap() = r;
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(
    stream: TcpStream,
    config: Arc<rustls::ServerConfig>,
    response: Arc<Mutex<Response>>,
    requests: Arc<Mutex<Vec<Request>>>,
    count: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, stream);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tls.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = tls.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    requests.lock().unwrap().push(Request {
        head,
        body: buf[head_end..].to_vec(),
    });
    let r = response.lock().unwrap().clone();
    let mut out = format!("HTTP/1.1 {} X\r\n", r.status);
    for (k, v) in &r.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        r.body.len()
    ));
    tls.write_all(out.as_bytes())?;
    tls.write_all(&r.body)?;
    tls.flush()?;
    count.fetch_add(1, Ordering::SeqCst);
    tls.conn.send_close_notify();
    let _ = tls.flush();
    Ok(())
}
