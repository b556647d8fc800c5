//! A scriptable receiving SMTP server: the next hop in delivery tests. Each message
//! it accepts is sent on a channel, so tests wait on arrivals, never on sleeps.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Clone, Debug)]
pub struct Arrival {
    pub from: String,
    pub rcpts: Vec<String>,
    pub data: Vec<u8>,
    pub tls: Option<String>,
    /// The client certificate the sender presented, DER.
    pub client_cert: Option<Vec<u8>>,
    /// The MAIL command as received (its parameters: REQUIRETLS, ...).
    pub mail_line: String,
}

#[derive(Default)]
pub struct Script {
    /// Replies to the end of data, used in order; when empty, `250 2.0.0 Ok`.
    pub data_replies: VecDeque<String>,
    /// A reply to every RCPT instead of 250 (e.g. "550 5.1.1 no such user").
    pub rcpt_reply: Option<String>,
    /// Offer STARTTLS with this certificate.
    pub tls: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    /// Only TLS 1.2 on offer.
    pub tls12_only: bool,
    /// Require a client certificate issued by this CA (partners that demand one).
    pub client_ca: Option<CertificateDer<'static>>,
    /// Hold the reply to the first end of data until the test releases it (a next
    /// hop that is slow to say 250), from `hold()`.
    pub hold: Option<HoldGate>,
    /// Offer REQUIRETLS (RFC 8689) once TLS is up.
    pub requiretls: bool,
}

/// The sink's side of a held reply.
pub struct HoldGate {
    reached: Sender<()>,
    release: Receiver<()>,
}

/// The test's side: learn that the sink has the message and holds its reply,
/// then let the reply go.
pub struct Hold {
    reached: Receiver<()>,
    release: Sender<()>,
}

/// A gate for `Script::hold`. The sink waits at most a minute for the release.
pub fn hold() -> (HoldGate, Hold) {
    let (reached_tx, reached_rx) = channel();
    let (release_tx, release_rx) = channel();
    (
        HoldGate {
            reached: reached_tx,
            release: release_rx,
        },
        Hold {
            reached: reached_rx,
            release: release_tx,
        },
    )
}

impl Hold {
    /// Wait until the sink has read the whole message and holds its reply (fails
    /// the test after `secs`): a delivery attempt is then in flight.
    pub fn wait_reached(&self, secs: u64) {
        self.reached
            .recv_timeout(Duration::from_secs(secs))
            .expect("the sink never got the message to hold");
    }

    /// Send the held reply now.
    pub fn release(&self) {
        let _ = self.release.send(());
    }
}

pub struct Sink {
    pub addr: SocketAddr,
    pub arrivals: Receiver<Arrival>,
    pub script: Arc<Mutex<Script>>,
    stop: Arc<AtomicBool>,
}

impl Sink {
    pub fn start(script: Script) -> Sink {
        Self::start_at("127.0.0.1:0", script)
    }

    /// Listen on another loopback address (e.g. 127.0.0.2:0).
    pub fn start_at(bind: &str, script: Script) -> Sink {
        let listener = TcpListener::bind(bind).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = channel();
        let script = Arc::new(Mutex::new(script));
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, st2) = (script.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (s3, tx3) = (s2.clone(), tx.clone());
                        std::thread::spawn(move || {
                            let _ = serve(stream, s3, tx3);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Sink {
            addr,
            arrivals: rx,
            script,
            stop,
        }
    }

    pub fn with_tls() -> Sink {
        Sink::start(Script {
            tls: Some(mxring::tls::self_signed("sink.test").unwrap()),
            ..Default::default()
        })
    }

    /// Wait for the next message (fails the test after `secs`).
    pub fn next(&self, secs: u64) -> Arrival {
        self.arrivals
            .recv_timeout(Duration::from_secs(secs))
            .expect("no message arrived in time")
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

trait Io: Read + Write + Send {}
impl<T: Read + Write + Send> Io for T {}

fn serve(
    stream: TcpStream,
    script: Arc<Mutex<Script>>,
    tx: Sender<Arrival>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut tcp = Some(stream.try_clone()?);
    let mut r: BufReader<Box<dyn Io>> = BufReader::new(Box::new(stream));
    let mut tls_version: Option<String> = None;
    let mut client_cert: Option<Vec<u8>> = None;
    let send = |r: &mut BufReader<Box<dyn Io>>, s: &str| -> std::io::Result<()> {
        r.get_mut().write_all(s.as_bytes())?;
        r.get_mut().flush()
    };
    send(&mut r, "220 sink.test ESMTP\r\n")?;
    let (mut from, mut rcpts) = (String::new(), Vec::new());
    let mut mail_line = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            let starttls = script.lock().unwrap().tls.is_some() && tls_version.is_none();
            let mut s = String::from(
                "250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 100000000\r\n",
            );
            if starttls {
                s.push_str("250-STARTTLS\r\n");
            }
            if tls_version.is_some() && script.lock().unwrap().requiretls {
                s.push_str("250-REQUIRETLS\r\n");
            }
            s.push_str("250 ENHANCEDSTATUSCODES\r\n");
            send(&mut r, &s)?;
        } else if upper.starts_with("HELO")
            || upper.starts_with("RSET")
            || upper.starts_with("NOOP")
        {
            from.clear();
            rcpts.clear();
            send(&mut r, "250 2.0.0 Ok\r\n")?;
        } else if upper.starts_with("STARTTLS") {
            let (certs, key, only12, client_ca) = {
                let s = script.lock().unwrap();
                let Some((c, k)) = &s.tls else {
                    send(&mut r, "502 5.5.1 no TLS\r\n")?;
                    continue;
                };
                (c.clone(), k.clone_key(), s.tls12_only, s.client_ca.clone())
            };
            send(&mut r, "220 2.0.0 Go ahead\r\n")?;
            let versions: &[&rustls::SupportedProtocolVersion] = if only12 {
                &[&rustls::version::TLS12]
            } else {
                &[&rustls::version::TLS13, &rustls::version::TLS12]
            };
            let builder = rustls::ServerConfig::builder_with_provider(mxring::tls::provider())
                .with_protocol_versions(versions)
                .unwrap();
            let builder = match client_ca {
                Some(ca) => {
                    let mut roots = rustls::RootCertStore::empty();
                    roots.add(ca).unwrap();
                    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                        Arc::new(roots),
                        mxring::tls::provider(),
                    )
                    .build()
                    .unwrap();
                    builder.with_client_cert_verifier(verifier)
                }
                None => builder.with_no_client_auth(),
            };
            let config = builder.with_single_cert(certs, key).unwrap();
            let conn = rustls::ServerConnection::new(Arc::new(config)).unwrap();
            let mut s = rustls::StreamOwned::new(conn, tcp.take().unwrap());
            while s.conn.is_handshaking() {
                s.conn.complete_io(&mut s.sock)?;
            }
            tls_version = Some(format!("{:?}", s.conn.protocol_version().unwrap()));
            client_cert = s
                .conn
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.to_vec());
            r = BufReader::new(Box::new(s));
        } else if upper.starts_with("MAIL FROM:") {
            from = extract(&line);
            mail_line = line.trim_end().to_string();
            rcpts.clear();
            send(&mut r, "250 2.1.0 Ok\r\n")?;
        } else if upper.starts_with("RCPT TO:") {
            let reply = script.lock().unwrap().rcpt_reply.clone();
            match reply {
                Some(rep) => send(&mut r, &format!("{rep}\r\n"))?,
                None => {
                    rcpts.push(extract(&line));
                    send(&mut r, "250 2.1.5 Ok\r\n")?;
                }
            }
        } else if upper.starts_with("DATA") {
            if rcpts.is_empty() {
                send(&mut r, "554 5.5.1 no valid recipients\r\n")?;
                continue;
            }
            send(&mut r, "354 go\r\n")?;
            let mut data = Vec::new();
            loop {
                let mut l = Vec::new();
                if r.read_until(b'\n', &mut l)? == 0 {
                    return Ok(());
                }
                if l == b".\r\n" {
                    break;
                }
                let content = if l.starts_with(b"..") {
                    &l[1..]
                } else {
                    &l[..]
                };
                data.extend_from_slice(content);
            }
            let (reply, gate) = {
                let mut s = script.lock().unwrap();
                let reply = s
                    .data_replies
                    .pop_front()
                    .unwrap_or_else(|| "250 2.0.0 Ok: queued".into());
                (reply, s.hold.take())
            };
            if let Some(gate) = gate {
                let _ = gate.reached.send(());
                let _ = gate.release.recv_timeout(Duration::from_secs(60));
            }
            if reply.starts_with('2') {
                let _ = tx.send(Arrival {
                    from: from.clone(),
                    rcpts: rcpts.clone(),
                    data,
                    tls: tls_version.clone(),
                    client_cert: client_cert.clone(),
                    mail_line: mail_line.clone(),
                });
            }
            send(&mut r, &format!("{reply}\r\n"))?;
            rcpts.clear();
        } else if upper.starts_with("QUIT") {
            send(&mut r, "221 2.0.0 Bye\r\n")?;
            return Ok(());
        } else {
            send(&mut r, "500 5.5.2 unknown\r\n")?;
        }
    }
}

fn extract(line: &str) -> String {
    let start = line.find('<').map(|i| i + 1).unwrap_or(0);
    let end = line[start..]
        .find('>')
        .map(|i| start + i)
        .unwrap_or(line.len());
    line[start..end].to_string()
}
