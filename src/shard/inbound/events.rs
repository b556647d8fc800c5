//! What the session asks of the driver: close, start TLS, check a password,
//! store a message.

use super::store::{self, Spilled};
use super::{Connection, Flow};
use crate::metrics;
use crate::net::WriteOutcome;
use crate::proto::auth::AuthOutcome;
use crate::proto::{Event, Message};

impl Connection {
    pub(super) async fn on_event(&mut self, event: Event) -> Flow {
        match event {
            Event::Close => {
                metrics::global().count_inbound_replies(&self.out);
                Flow::SayAndClose
            }
            Event::StartTls => self.start_tls().await,
            Event::Authenticate => {
                self.authenticate().await;
                Flow::Go
            }
            Event::Message(message) => {
                self.store_message(*message).await;
                Flow::Go
            }
        }
    }

    /// The 220 goes out first, then the handshake; what the client pipelined
    /// after STARTTLS is dropped (RFC 3207 6).
    async fn start_tls(&mut self) -> Flow {
        let limit = self.config.server.command_timeout.0;
        match self
            .transport
            .write_within(std::mem::take(&mut self.out), limit)
            .await
        {
            WriteOutcome::Written(buf) => self.out = buf,
            _ => return Flow::Stop,
        }
        self.out.clear();
        self.pending.clear();
        let Ok(conn) = rustls::ServerConnection::new(self.ctx.tls_server()) else {
            return Flow::Stop;
        };
        let limit = self.config.server.tls_handshake_timeout.0;
        if let Err(e) = self.transport.handshake(conn.into(), limit).await {
            tracing::debug!(peer = %self.peer, error = %e, "STARTTLS handshake failed");
            self.counted.handshake_failed();
            return Flow::Shut;
        }
        let Some((version, facts)) = self.transport.tls().and_then(|c| crate::tls::facts(c)) else {
            return Flow::Stop;
        };
        tracing::debug!(peer = %self.peer, tls = %facts.version, cipher = %facts.cipher, "STARTTLS done");
        self.counted.tls = facts.version.clone();
        self.session.tls_established(version, facts);
        Flow::Go
    }

    /// The check runs on the auth workers; this shard serves others meanwhile.
    async fn authenticate(&mut self) {
        let Some(c) = self.session.take_credentials() else {
            return;
        };
        let answer = self
            .ctx
            .settings()
            .auth
            .check(self.peer.ip(), c.login, c.password);
        let outcome = tokio::time::timeout(crate::auth::ANSWER_TIMEOUT, answer).await;
        let outcome = outcome.ok().and_then(Result::ok);
        self.session
            .auth_checked(outcome.unwrap_or(AuthOutcome::Unavailable), &mut self.out);
    }

    async fn store_message(&mut self, message: Message) {
        let Message { id, envelope, body } = message;
        self.message_seen = Some(std::time::Instant::now());
        let login = self.session.login().map(str::to_owned);
        let ctx = &self.ctx;
        let result = match std::mem::replace(&mut self.spill, Spilled::None) {
            Spilled::None => store::store(ctx, id, envelope, login, None, &body).await,
            Spilled::File(f) => store::store(ctx, id, envelope, login, Some(&f), &body).await,
            Spilled::Failed(e) => Err(e),
        };
        self.session.message_stored(
            result.map(|_| id).map_err(|e| e.to_failure()),
            &mut self.out,
        );
    }
}
