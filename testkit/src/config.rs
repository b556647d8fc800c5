//! One TOML template for every test config: a `[server]` table (hostname mx.test, a
//! spool, a number of shards) and, in the order they are added, listeners on
//! loopback, the admin API, routes to loopback next hops, `[queue]` keys and any
//! other tables. `mxring::config::load_str` decides whether the result is valid.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A config being written. `Toml::default()` has no `[server]` table: for a
/// fragment to append to another config.
#[derive(Clone, Debug, Default)]
pub struct Toml {
    server: String,
    rest: String,
}

impl Toml {
    /// `[server]` with hostname "mx.test", `shards` shards and the spool at `spool`.
    pub fn new(spool: &Path, shards: u32) -> Toml {
        Toml {
            server: format!(
                "[server]\nhostname = \"mx.test\"\nshards = {shards}\nspool = \"{}\"\n",
                spool.display()
            ),
            rest: String::new(),
        }
    }

    /// More `[server]` keys, one `key = value` a line.
    pub fn server(mut self, keys: &str) -> Toml {
        push_lines(&mut self.server, keys);
        self
    }

    /// A `[[listener]]` named `name` on 127.0.0.1:`port` (0: any free port) with
    /// `tls` = "none", "starttls" or "implicit".
    pub fn listener(mut self, name: &str, port: u16, tls: &str) -> Toml {
        let _ = write!(
            self.rest,
            "[[listener]]\nname = \"{name}\"\naddress = \"127.0.0.1:{port}\"\ntls = \"{tls}\"\n"
        );
        self
    }

    /// `[admin]` on `address` ("127.0.0.1:0", a fixed address, or "" for none).
    pub fn admin(mut self, address: &str) -> Toml {
        let _ = write!(self.rest, "[admin]\naddress = \"{address}\"\n");
        self
    }

    /// A `[[route]]` sending `domains` (TOML array items, e.g. `"\"*\""`) to `hop`.
    pub fn route(mut self, domains: &str, hop: SocketAddr) -> Toml {
        let _ = write!(
            self.rest,
            "[[route]]\ndomains = [{domains}]\nnext_hop = \"[{}]:{}\"\n",
            hop.ip(),
            hop.port()
        );
        self
    }

    /// A route sending every domain to `hop` (so no test ever looks up real DNS).
    pub fn route_all(self, hop: SocketAddr) -> Toml {
        self.route("\"*\"", hop)
    }

    /// A `[queue]` table with `keys`.
    pub fn queue(mut self, keys: &str) -> Toml {
        self.rest.push_str("[queue]\n");
        push_lines(&mut self.rest, keys);
        self
    }

    /// Any other TOML, appended as is.
    pub fn extra(mut self, toml: &str) -> Toml {
        push_lines(&mut self.rest, toml);
        self
    }

    pub fn text(&self) -> String {
        format!("{}{}", self.server, self.rest)
    }

    /// Write the config to `path` and return the path.
    pub fn write(&self, path: PathBuf) -> PathBuf {
        std::fs::write(&path, self.text()).unwrap();
        path
    }
}

fn push_lines(out: &mut String, text: &str) {
    out.push_str(text);
    if !text.is_empty() && !text.ends_with('\n') {
        out.push('\n');
    }
}

/// The loopback address of a port (for next hops given by port).
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_template_loads() {
        let dir = tempfile::tempdir().unwrap();
        let text = Toml::new(dir.path(), 2)
            .server("command_timeout = \"30s\"")
            .listener("mx", 0, "none")
            .admin("127.0.0.1:0")
            .route_all(loopback(2525))
            .queue("retry = [\"1s\"]")
            .text();
        if let Err(e) = mxring::config::load_str(&text, "test") {
            panic!("{e}\n{text}");
        }
    }
}
