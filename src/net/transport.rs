//! A TCP stream on either back end, optionally carrying TLS. rustls is driven sans-IO
//! (`read_tls` / `process_new_packets` / `write_tls`) over buffers this struct owns
//! and reuses, so no AsyncRead shim sits between the socket and the TLS state.

// This reads bytes from the network: it must not be able to panic.
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::string_slice,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable
    )
)]

use std::io::{self, Read, Write};
use std::time::Duration;

use super::Stream;

/// Bytes asked of the kernel per read. Small on purpose: idle connections keep
/// their buffers, and memory per idle connection is a target.
const READ_CHUNK: usize = 4096;
/// Plaintext handed to rustls per record flush when sending large bodies.
const WRITE_CHUNK: usize = 16 * 1024;

pub struct Transport {
    socket: Socket,
    /// TLS once it is up; every TLS step takes the connection from here, so none
    /// runs without one.
    tls: Option<rustls::Connection>,
}

/// The socket and the buffers reused for its records.
struct Socket {
    stream: Stream,
    raw: Vec<u8>,
    wire: Vec<u8>,
    /// Bytes already read from the socket but not yet consumed (after a PROXY header).
    carry: Vec<u8>,
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl Transport {
    pub fn new(stream: Stream) -> Self {
        Transport {
            socket: Socket {
                stream,
                raw: Vec::new(),
                wire: Vec::new(),
                carry: Vec::new(),
            },
            tls: None,
        }
    }

    pub fn tls(&self) -> Option<&rustls::Connection> {
        self.tls.as_ref()
    }

    /// Append received plaintext to `plain`. Returns the bytes appended; 0 means
    /// the peer closed the connection.
    pub async fn read(&mut self, plain: &mut Vec<u8>) -> io::Result<usize> {
        let Some(conn) = self.tls.as_mut() else {
            return self.socket.read_into(plain).await;
        };
        loop {
            let before = plain.len();
            match conn.reader().read_to_end(plain) {
                Ok(_) => {
                    if plain.len() > before {
                        return Ok(plain.len() - before);
                    }
                    // A clean close_notify.
                    return Ok(0);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if plain.len() > before {
                        return Ok(plain.len() - before);
                    }
                }
                Err(e) => return Err(e),
            }
            if !self.socket.read_records(conn).await? {
                return Ok(0);
            }
        }
    }

    /// Give back bytes read ahead (they are read again before the socket).
    pub fn unread(&mut self, bytes: &[u8]) {
        self.socket.carry.extend_from_slice(bytes);
    }

    /// Send `data` (plaintext; encrypted first when TLS is up).
    pub async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let Some(conn) = self.tls.as_mut() else {
            let mut wire = std::mem::take(&mut self.socket.wire);
            wire.clear();
            wire.extend_from_slice(data);
            let (res, wire) = self.socket.stream.write_all(wire).await;
            self.socket.wire = wire;
            return res;
        };
        for chunk in data.chunks(WRITE_CHUNK) {
            conn.writer().write_all(chunk)?;
            self.socket.flush_tls(conn).await?;
        }
        Ok(())
    }

    /// Send a buffer we own without copying it (plaintext connections only; with
    /// TLS it is encrypted from the slice).
    pub async fn write_owned(&mut self, data: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        if self.tls.is_some() {
            let res = self.write(&data).await;
            return (res, data);
        }
        self.socket.stream.write_all(data).await
    }

    /// Run a TLS handshake on this connection, with a deadline.
    pub async fn handshake(&mut self, conn: rustls::Connection, limit: Duration) -> io::Result<()> {
        let conn = self.tls.insert(conn);
        match tokio::time::timeout(limit, self.socket.drive_handshake(conn)).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )),
        }
    }

    /// Send `data` within `limit`. A peer that does not take it in time is cut off
    /// for real: the socket is reset (SO_LINGER 0, then shut down both ways), which
    /// ends the write still waiting on the ring, and we wait for the ring to give the
    /// buffer back. Only then may the caller drop the transport, so its fd is closed
    /// and the connection gone when the caller's slot (per-IP count) is released;
    /// merely dropping the write future would leave the operation, and with it the
    /// fd and its full send queue, alive in the kernel.
    pub async fn write_within(&mut self, data: Vec<u8>, limit: Duration) -> WriteOutcome {
        let fd = self.socket.raw_fd();
        let write = self.write_owned(data);
        tokio::pin!(write);
        tokio::select! {
            (res, buf) = &mut write => match res {
                Ok(()) => WriteOutcome::Written(buf),
                Err(_) => WriteOutcome::Failed,
            },
            _ = tokio::time::sleep(limit) => {
                reset(fd);
                // The reset fails the pending send at once; the bound is a guard.
                let _ = tokio::time::timeout(Duration::from_secs(5), write).await;
                WriteOutcome::Stalled
            }
        }
    }

    /// Say goodbye politely (close_notify) when TLS is up; errors are irrelevant now,
    /// but a peer that does not read gets no more than a few seconds of it.
    pub async fn close(mut self) {
        if let Some(conn) = self.tls.as_mut() {
            conn.send_close_notify();
            let fd = self.socket.raw_fd();
            let flush = self.socket.flush_tls(conn);
            tokio::pin!(flush);
            if tokio::time::timeout(CLOSE_LIMIT, &mut flush).await.is_err() {
                reset(fd);
                let _ = tokio::time::timeout(CLOSE_LIMIT, flush).await;
                return;
            }
        }
        // Both ways: a read still waiting on the ring (its future dropped at a
        // timeout) ends now, so the fd is closed without waiting for the client.
        let _ = self.socket.stream.shutdown(std::net::Shutdown::Both);
    }
}

impl Socket {
    /// Read from the socket into `buf`'s spare capacity, without a copy.
    async fn read_into(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        if !self.carry.is_empty() {
            buf.extend_from_slice(&self.carry);
            let n = self.carry.len();
            self.carry.clear();
            return Ok(n);
        }
        if buf.capacity() - buf.len() < READ_CHUNK / 2 {
            buf.reserve(READ_CHUNK);
        }
        let (res, back) = self.stream.read_into(std::mem::take(buf)).await;
        *buf = back;
        res
    }

    /// Read TLS records and process them. False on EOF.
    async fn read_records(&mut self, conn: &mut rustls::Connection) -> io::Result<bool> {
        let mut raw = std::mem::take(&mut self.raw);
        raw.clear();
        let n = self.read_into(&mut raw).await;
        let result = match n {
            Ok(0) => Ok(false),
            Ok(_) => process_records(conn, &raw).map(|_| true),
            Err(e) => Err(e),
        };
        self.raw = raw;
        if conn.wants_write() {
            // Alerts for a failed record, or post-handshake messages.
            let _ = self.flush_tls(conn).await;
        }
        result
    }

    async fn flush_tls(&mut self, conn: &mut rustls::Connection) -> io::Result<()> {
        let mut wire = std::mem::take(&mut self.wire);
        wire.clear();
        while conn.wants_write() {
            conn.write_tls(&mut wire)?;
        }
        let (res, wire) = self.stream.write_all(wire).await;
        self.wire = wire;
        if self.wire.capacity() > 64 * 1024 {
            self.wire = Vec::new();
        }
        res
    }

    async fn drive_handshake(&mut self, conn: &mut rustls::Connection) -> io::Result<()> {
        loop {
            if conn.wants_write() {
                self.flush_tls(conn).await?;
                continue;
            }
            if !conn.is_handshaking() {
                return Ok(());
            }
            if !self.read_records(conn).await? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed during TLS handshake",
                ));
            }
        }
    }

    fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.stream.as_raw_fd()
    }
}

fn process_records(conn: &mut rustls::Connection, mut records: &[u8]) -> io::Result<()> {
    while !records.is_empty() {
        conn.read_tls(&mut records)?;
        conn.process_new_packets().map_err(tls_error)?;
    }
    Ok(())
}

/// How long a goodbye may take.
const CLOSE_LIMIT: Duration = Duration::from_secs(5);

/// What became of a bounded write.
pub enum WriteOutcome {
    /// All sent; the buffer comes back for reuse.
    Written(Vec<u8>),
    /// The connection failed (the peer went away).
    Failed,
    /// The peer did not take the data in time; the connection has been reset.
    Stalled,
}

/// Reset a connection: RST instead of FIN, so the kernel drops the unsent queue,
/// and shut it down both ways, which wakes and fails any operation waiting on it.
fn reset(fd: std::os::fd::RawFd) {
    // SAFETY: `fd` belongs to a stream the caller still owns (it is closed only when
    // the transport is dropped, after this returns); the borrow ends here.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let sock = socket2::SockRef::from(&fd);
    let _ = sock.set_linger(Some(Duration::ZERO));
    let _ = sock.shutdown(std::net::Shutdown::Both);
}
