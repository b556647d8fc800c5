//! AUTH (RFC 4954): when it may start, and the exchange of 334 challenges up to
//! the credentials the driver checks.

use super::super::auth::{self, AuthError, Next, Pending};
use super::replies;
use super::state::Phase;
use super::{Event, ServerSession};

impl ServerSession {
    pub(super) fn auth(&mut self, args: &str, out: &mut Vec<u8>) -> Option<Event> {
        if !self.cfg.auth.mode.enabled() {
            return self.error(out, replies::AUTH_NOT_ENABLED);
        }
        if self.peer.tls.is_none() {
            return self.error(out, replies::AUTH_NEEDS_TLS);
        }
        if !self.peer.esmtp {
            return self.error(out, replies::EHLO_FIRST);
        }
        if self.peer.identity.is_some() {
            return self.error(out, replies::ALREADY_AUTHENTICATED);
        }
        if !self.phase.idle() {
            return self.error(out, replies::AUTH_IN_TRANSACTION);
        }
        self.auth_step(auth::begin(args), out)
    }

    /// The client's answer to a 334 challenge.
    pub(super) fn auth_response(
        &mut self,
        pending: Pending,
        line: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<Event> {
        let Ok(line) = std::str::from_utf8(line) else {
            return self.auth_step(Err(AuthError::BadBase64), out);
        };
        self.auth_step(auth::respond(pending, line), out)
    }

    fn auth_step(&mut self, step: Result<Next, AuthError>, out: &mut Vec<u8>) -> Option<Event> {
        match step {
            Ok(Next::Ask(pending, challenge)) => {
                self.auth_pending = Some(pending);
                replies::auth_challenge(challenge).write(out);
                None
            }
            Ok(Next::Check(credentials)) => {
                self.credentials = Some(credentials);
                self.phase = Phase::AwaitingAuth;
                Some(Event::Authenticate)
            }
            Err(e) => self.error(out, replies::auth_refused(e)),
        }
    }
}
