//! Loopback ports for tests.

use std::net::{SocketAddr, TcpListener};

/// A loopback port nobody listens on right now, for a server the test starts
/// itself with the port in its config (mxring binds with SO_REUSEADDR, so it can
/// keep the port across restarts and clients can come back).
pub fn free_port() -> u16 {
    closed_port().port()
}

/// A loopback address with nothing listening (connections are refused).
pub fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}
