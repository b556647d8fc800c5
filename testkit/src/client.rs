//! A blocking SMTP client over std sockets and rustls, for driving mxring in tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use mxring::config::TlsVersion;
use mxring::tls::{client_config_versions, ClientVerification};

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

pub struct Client {
    reader: BufReader<Stream>,
    pub greeting: (u16, String),
}

/// A client offering exactly one TLS version.
pub fn tls_config(version: TlsVersion) -> Arc<rustls::ClientConfig> {
    let v: &'static rustls::SupportedProtocolVersion = match version {
        TlsVersion::Tls12 => &rustls::version::TLS12,
        TlsVersion::Tls13 => &rustls::version::TLS13,
    };
    client_config_versions(&ClientVerification::None, &[v]).unwrap()
}

fn tls_wrap(tcp: TcpStream, version: TlsVersion) -> Stream {
    let conn =
        rustls::ClientConnection::new(tls_config(version), "mx.test".try_into().unwrap()).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).unwrap();
    }
    Stream::Tls(Box::new(s))
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Self::greet(Stream::Plain(tcp))
    }

    /// Implicit TLS (port 465 style).
    pub fn connect_tls(addr: SocketAddr) -> Client {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Self::greet(tls_wrap(tcp, TlsVersion::Tls12))
    }

    fn greet(stream: Stream) -> Client {
        let mut c = Client {
            reader: BufReader::new(stream),
            greeting: (0, String::new()),
        };
        c.greeting = c.reply();
        c
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).unwrap();
        self.reader.get_mut().flush().unwrap();
    }

    /// Read one (possibly multiline) reply: code and the text of all lines.
    pub fn reply(&mut self) -> (u16, String) {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).unwrap();
            assert!(
                n > 0,
                "connection closed while waiting for a reply (so far: {text:?})"
            );
            assert!(line.ends_with("\r\n"), "reply line without CRLF: {line:?}");
            text.push_str(&line);
            if line.as_bytes().get(3) == Some(&b' ') || line.len() == 5 {
                return (line[..3].parse().unwrap(), text);
            }
        }
    }

    pub fn cmd(&mut self, line: &str) -> (u16, String) {
        self.send_raw(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    pub fn starttls(&mut self, version: TlsVersion) {
        let (code, text) = self.cmd("STARTTLS");
        assert_eq!(code, 220, "{text}");
        self.upgrade(version);
    }

    /// Run the TLS handshake now (the 220 to STARTTLS was already read).
    pub fn upgrade(&mut self, version: TlsVersion) {
        let reader = std::mem::replace(
            &mut self.reader,
            BufReader::new(Stream::Plain(
                TcpStream::connect(closed_listener()).unwrap(),
            )),
        );
        let Stream::Plain(tcp) = reader.into_inner() else {
            panic!("TLS already on")
        };
        self.reader = BufReader::new(tls_wrap(tcp, version));
    }

    /// The negotiated TLS version and suite, when TLS is on.
    pub fn tls(&self) -> Option<(String, String)> {
        match self.reader.get_ref() {
            Stream::Tls(s) => {
                let v = format!("{:?}", s.conn.protocol_version()?);
                let c = s
                    .conn
                    .negotiated_cipher_suite()?
                    .suite()
                    .as_str()?
                    .to_string();
                Some((v, c))
            }
            Stream::Plain(_) => None,
        }
    }

    /// MAIL, RCPT..., DATA, body, end: returns the final reply (asserts the steps before).
    pub fn send_mail(&mut self, from: &str, to: &[&str], body: &str) -> (u16, String) {
        let (c, t) = self.cmd(&format!("MAIL FROM:<{from}>"));
        assert_eq!(c, 250, "MAIL: {t}");
        for r in to {
            let (c, t) = self.cmd(&format!("RCPT TO:<{r}>"));
            assert_eq!(c, 250, "RCPT {r}: {t}");
        }
        let (c, t) = self.cmd("DATA");
        assert_eq!(c, 354, "DATA: {t}");
        let mut data = body.replace('\n', "\r\n").replace("\r\r\n", "\r\n");
        if !data.ends_with("\r\n") {
            data.push_str("\r\n");
        }
        let stuffed = data.replace("\r\n.", "\r\n..");
        let stuffed = if stuffed.starts_with('.') {
            format!(".{stuffed}")
        } else {
            stuffed
        };
        self.send_raw(format!("{stuffed}.\r\n").as_bytes());
        self.reply()
    }
}

/// A listener that is never accepted from; only used as a placeholder stream.
fn closed_listener() -> SocketAddr {
    use std::sync::OnceLock;
    static L: OnceLock<std::net::TcpListener> = OnceLock::new();
    L.get_or_init(|| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .local_addr()
        .unwrap()
}

/// The queue id in a "250 2.0.0 Ok: queued as ID" reply.
pub fn queued_id(reply: &str) -> String {
    reply.trim().rsplit(' ').next().unwrap().to_string()
}
