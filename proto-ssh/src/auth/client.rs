//! The client side of user authentication: `none`, then each key in turn.
//!
//! The order is the one of Go's x/crypto client, which u-root's `cpu` uses:
//! SERVICE_REQUEST `ssh-userauth`; after SERVICE_ACCEPT a `none` request
//! (which `cpud -pk ""` accepts); then for each key a publickey query
//! without signature, and after USERAUTH_PK_OK the signed request. A
//! FAILURE moves on to the next key; when none are left the caller gets
//! [`ClientAuthEvent::Exhausted`] and disconnects with
//! NO_MORE_AUTH_METHODS_AVAILABLE.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use ssh_key::PrivateKey;

use super::{
    publickey_request_head, publickey_signed_data, AuthError, METHOD_NONE, METHOD_PUBLICKEY,
    SERVICE_CONNECTION, SERVICE_USERAUTH,
};
use crate::msg;
use crate::sig::{self, SigAlg, Signer};
use crate::wire::{NameList, Put, Reader, WireError};

/// What the client side reports to its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuthEvent {
    /// USERAUTH_BANNER text (RFC 4252 §5.4), invalid UTF-8 replaced. It is
    /// the server's text: strip control characters before showing it on a
    /// terminal.
    Banner(String),
    /// The server accepted a request; the connection protocol may start.
    Success,
    /// The server refused a request (the `none` probe or a key); more
    /// attempts follow unless [`ClientAuthEvent::Exhausted`] comes next.
    Failure {
        /// The methods that can continue (RFC 4252 §5.1).
        remaining: Vec<String>,
        /// Whether the request succeeded but more methods are required.
        partial: bool,
    },
    /// Nothing is left to try: every key was refused, or the server does
    /// not offer `publickey`. The caller disconnects with
    /// NO_MORE_AUTH_METHODS_AVAILABLE.
    Exhausted,
}

#[derive(Debug)]
enum State {
    /// Before [`ClientAuth::start`].
    Idle,
    /// SERVICE_REQUEST sent.
    AwaitServiceAccept,
    /// The `none` request sent.
    AwaitNone,
    /// The publickey query for `keys[key]` sent.
    AwaitPkOk {
        key: usize,
        alg: SigAlg,
        blob: Vec<u8>,
    },
    /// The signed request sent.
    AwaitSigned,
    /// USERAUTH_SUCCESS received.
    Authenticated,
    /// No key left.
    Exhausted,
}

/// The client side of user authentication.
pub struct ClientAuth {
    user: String,
    keys: Vec<Box<dyn Signer + Send>>,
    session_id: Vec<u8>,
    server_sig_algs: Option<Vec<SigAlg>>,
    next_key: usize,
    state: State,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<ClientAuthEvent>,
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Private keys stay out of logs.
        f.debug_struct("ClientAuth")
            .field("user", &self.user)
            .field("keys", &self.keys.len())
            .field("server_sig_algs", &self.server_sig_algs)
            .field("next_key", &self.next_key)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl ClientAuth {
    /// A client that logs in as `user` with `keys`, tried in order, on the
    /// connection whose session identifier (the first exchange hash) is
    /// `session_id`. Passphrase-protected keys cannot sign and are left
    /// out.
    pub fn new(user: &str, keys: Vec<PrivateKey>, session_id: Vec<u8>) -> Self {
        Self::with_signers(user, boxed_keys(keys), session_id)
    }

    /// As [`ClientAuth::new`], with keys that may sign elsewhere.
    pub fn with_signers(
        user: &str,
        keys: Vec<Box<dyn Signer + Send>>,
        session_id: Vec<u8>,
    ) -> Self {
        Self {
            user: user.to_string(),
            keys,
            session_id,
            server_sig_algs: None,
            next_key: 0,
            state: State::Idle,
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Queues SERVICE_REQUEST `ssh-userauth`. Only the first call does
    /// anything.
    pub fn start(&mut self) {
        if matches!(self.state, State::Idle) {
            let mut p = Vec::new();
            p.put_u8(msg::SERVICE_REQUEST);
            p.put_string(SERVICE_USERAUTH.as_bytes());
            self.out.push_back(p);
            self.state = State::AwaitServiceAccept;
        }
    }

    /// The signature algorithms the server listed in EXT_INFO
    /// `server-sig-algs` (RFC 8308 §3.1); names this crate does not know
    /// are dropped. They choose between rsa-sha2-512 and rsa-sha2-256 for
    /// RSA keys. Without the list, or if it names neither, rsa-sha2-256 is
    /// used: every server that speaks SHA-2 RSA at all has it, and SHA-1
    /// `ssh-rsa` is never offered.
    pub fn set_server_sig_algs(&mut self, names: &NameList<'_>) {
        self.server_sig_algs = Some(names.iter().filter_map(SigAlg::from_name).collect());
    }

    /// The next payload to send, if any.
    pub fn poll_payload(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ClientAuthEvent> {
        self.events.pop_front()
    }

    /// Whether the server sent USERAUTH_SUCCESS.
    pub fn is_authenticated(&self) -> bool {
        matches!(self.state, State::Authenticated)
    }

    /// Whether every key was tried and refused.
    pub fn is_exhausted(&self) -> bool {
        matches!(self.state, State::Exhausted)
    }

    /// The user name requests are made for.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Handles one authentication-layer payload from the server.
    ///
    /// An error is final: the caller disconnects with
    /// [`AuthError::reason`].
    pub fn handle_message(&mut self, payload: &[u8]) -> Result<(), AuthError> {
        let Some((&n, body)) = payload.split_first() else {
            return Err(AuthError::Malformed {
                msg: 0,
                error: WireError::Truncated,
            });
        };
        let bad = |error| AuthError::Malformed { msg: n, error };
        let mut r = Reader::new(body);
        let awaiting_answer = matches!(
            self.state,
            State::AwaitNone | State::AwaitPkOk { .. } | State::AwaitSigned
        );
        // A query is answered with PK_OK or FAILURE only (RFC 4252 §7).
        let awaiting_verdict = matches!(self.state, State::AwaitNone | State::AwaitSigned);
        match n {
            msg::SERVICE_ACCEPT if matches!(self.state, State::AwaitServiceAccept) => {
                let service = r.string().map_err(bad)?;
                r.finish().map_err(bad)?;
                if service != SERVICE_USERAUTH.as_bytes() {
                    return Err(AuthError::WrongServiceAccepted);
                }
                let mut p = Vec::new();
                p.put_u8(msg::USERAUTH_REQUEST);
                p.put_string(self.user.as_bytes());
                p.put_string(SERVICE_CONNECTION.as_bytes());
                p.put_string(METHOD_NONE.as_bytes());
                self.out.push_back(p);
                self.state = State::AwaitNone;
                Ok(())
            }
            msg::USERAUTH_BANNER
                if awaiting_answer || matches!(self.state, State::AwaitServiceAccept) =>
            {
                let text = r.string().map_err(bad)?;
                let _language = r.string().map_err(bad)?;
                r.finish().map_err(bad)?;
                self.events.push_back(ClientAuthEvent::Banner(
                    String::from_utf8_lossy(text).into_owned(),
                ));
                Ok(())
            }
            msg::USERAUTH_SUCCESS if awaiting_verdict => {
                r.finish().map_err(bad)?;
                self.state = State::Authenticated;
                self.events.push_back(ClientAuthEvent::Success);
                Ok(())
            }
            msg::USERAUTH_FAILURE if awaiting_answer => {
                let methods = r.name_list().map_err(bad)?;
                let partial = r.bool().map_err(bad)?;
                r.finish().map_err(bad)?;
                self.events.push_back(ClientAuthEvent::Failure {
                    remaining: methods.iter().map(String::from).collect(),
                    partial,
                });
                if methods.contains(METHOD_PUBLICKEY) {
                    self.query_next_key();
                } else {
                    self.exhaust();
                }
                Ok(())
            }
            msg::USERAUTH_PK_OK => {
                let State::AwaitPkOk { key, alg, blob } = &self.state else {
                    return Err(AuthError::Unexpected { msg: n });
                };
                let (key, alg, blob) = (*key, *alg, blob.clone());
                let ok_alg = r.string().map_err(bad)?;
                let ok_blob = r.string().map_err(bad)?;
                r.finish().map_err(bad)?;
                if ok_alg != alg.name().as_bytes() || ok_blob != blob.as_slice() {
                    return Err(AuthError::PkOkMismatch);
                }
                self.send_signed(key, alg, &blob);
                Ok(())
            }
            _ => Err(AuthError::Unexpected { msg: n }),
        }
    }

    /// Sends the signed request for `keys[key]`, or moves on to the next
    /// key if it cannot sign.
    fn send_signed(&mut self, key: usize, alg: SigAlg, blob: &[u8]) {
        let data = publickey_signed_data(
            &self.session_id,
            &self.user,
            SERVICE_CONNECTION,
            alg.name(),
            blob,
        );
        let Some(Ok(signature)) = self.keys.get(key).map(|k| k.sign_as(alg, &data)) else {
            return self.query_next_key();
        };
        // A signer elsewhere (an old agent ignoring the RSA flags) may
        // answer with another algorithm than the one the query named; the
        // server would refuse it, so the next key is tried instead.
        if !names_alg(&signature, alg) {
            return self.query_next_key();
        }
        let mut p = publickey_request_head(&self.user, SERVICE_CONNECTION, true, alg.name(), blob);
        p.put_string(&signature);
        self.out.push_back(p);
        self.state = State::AwaitSigned;
    }

    /// Sends the query for the next usable key, or reports exhaustion.
    fn query_next_key(&mut self) {
        while let Some(key) = self.keys.get(self.next_key) {
            let index = self.next_key;
            self.next_key += 1;
            let data = key.public();
            let Some(alg) = self.choose_alg(sig::algs_for_key(data)) else {
                continue;
            };
            let blob = sig::public_key_blob(data);
            self.out.push_back(publickey_request_head(
                &self.user,
                SERVICE_CONNECTION,
                false,
                alg.name(),
                &blob,
            ));
            self.state = State::AwaitPkOk {
                key: index,
                alg,
                blob,
            };
            return;
        }
        self.exhaust();
    }

    /// The best of a key's algorithms the server listed. Otherwise the one
    /// most servers accept: rsa-sha2-256 for RSA (RFC 8332 §3.3), the only
    /// one for other keys.
    fn choose_alg(&self, algs: &[SigAlg]) -> Option<SigAlg> {
        let listed = self
            .server_sig_algs
            .as_ref()
            .and_then(|server| algs.iter().find(|a| server.contains(a)));
        let fallback = if algs.contains(&SigAlg::RsaSha256) {
            Some(&SigAlg::RsaSha256)
        } else {
            algs.first()
        };
        listed.or(fallback).copied()
    }

    fn exhaust(&mut self) {
        self.state = State::Exhausted;
        self.events.push_back(ClientAuthEvent::Exhausted);
    }
}

/// `keys` as signers, without the passphrase-protected ones (they have
/// no private half to sign with).
pub(crate) fn boxed_keys(keys: Vec<PrivateKey>) -> Vec<Box<dyn Signer + Send>> {
    keys.into_iter()
        .filter(|k| !k.is_encrypted())
        .map(|k| Box::new(k) as Box<dyn Signer + Send>)
        .collect()
}

/// Whether the SSH signature encoding `signature` is one of `alg`.
fn names_alg(signature: &[u8], alg: SigAlg) -> bool {
    let mut r = Reader::new(signature);
    r.string().is_ok_and(|name| name == alg.name().as_bytes())
}
