//! A byte stream that is plain TCP or TLS on either side, so SMTP code is written once.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection, StreamOwned};
use std::sync::Arc;

use rustls::pki_types::ServerName;

pub enum Stream {
    Plain(TcpStream),
    // Boxed: a TLS connection is much larger than a socket, and most variants move around.
    Client(Box<StreamOwned<ClientConnection, TcpStream>>),
    Server(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Stream {
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Client(s) => &s.sock,
            Stream::Server(s) => &s.sock,
        }
    }

    /// The socket of a plain stream, duplicated so the TLS stream can own it while `self`
    /// is replaced in place (the descriptor stays open through the duplicate).
    fn plain_socket(&self) -> io::Result<TcpStream> {
        match self {
            Stream::Plain(s) => s.try_clone(),
            _ => Err(io::Error::other("TLS already active")),
        }
    }

    /// Upgrades a plain stream to TLS as a client and completes the handshake.
    /// Returns how long the handshake took.
    pub fn upgrade_client(
        &mut self,
        config: &Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> io::Result<Duration> {
        let mut sock = self.plain_socket()?;
        let start = Instant::now();
        let mut conn = ClientConnection::new(config.clone(), name).map_err(io::Error::other)?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)?;
        }
        let took = start.elapsed();
        *self = Stream::Client(Box::new(StreamOwned::new(conn, sock)));
        Ok(took)
    }

    /// Upgrades a plain stream to TLS as a server and completes the handshake.
    pub fn upgrade_server(&mut self, config: &Arc<ServerConfig>) -> io::Result<()> {
        let mut sock = self.plain_socket()?;
        let mut conn = ServerConnection::new(config.clone()).map_err(io::Error::other)?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)?;
        }
        *self = Stream::Server(Box::new(StreamOwned::new(conn, sock)));
        Ok(())
    }

    pub fn is_tls(&self) -> bool {
        !matches!(self, Stream::Plain(_))
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Client(s) => s.read(buf),
            Stream::Server(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Client(s) => s.write(buf),
            Stream::Server(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Client(s) => s.flush(),
            Stream::Server(s) => s.flush(),
        }
    }
}
