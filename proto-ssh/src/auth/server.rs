//! The server side of user authentication: `none` and `publickey`.
//!
//! Decisions this side makes, beyond RFC 4252:
//! - Failed attempts are counted per connection, whatever the user name,
//!   and [`AuthError::TooManyAttempts`] comes instead of the FAILURE that
//!   reaches [`ServerAuthConfig::max_attempts`] (as OpenSSH's MaxAuthTries).
//!   The first `none` request is free, since every client sends it to learn
//!   the methods; later ones count. A query answered with PK_OK counts too,
//!   and so does its signed request if it fails: else a client could query
//!   one authorized key without end, each answer queued for it (the flood
//!   of pre-login replies CVE-2025-26466 was). sshd's auth2.c returns
//!   before counting a postponed (PK_OK) query; we are stricter, at the
//!   cost of one attempt per query a client makes before signing (the query
//!   that reaches the limit is still answered).
//!   Every other FAILURE counts.
//! - A request for a service other than `ssh-connection` gets FAILURE and
//!   counts, without its signature being looked at: the answer does not
//!   depend on the user, and the client may retry (RFC 4252 §5 allows
//!   either this or a disconnect).
//! - The user and service may change between requests (RFC 4252 §5): no
//!   state is kept from one request to the next, so there is none to flush.
//! - After SUCCESS, further USERAUTH_REQUESTs are ignored (RFC 4252 §5.1);
//!   any other authentication message is an error.

use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use ssh_key::public::KeyData;

use super::{
    publickey_signed_data, AuthError, METHOD_NONE, METHOD_PUBLICKEY, SERVICE_CONNECTION,
    SERVICE_USERAUTH,
};
use crate::msg::{self, Role};
use crate::sig::{self, SigAlg};
use crate::wire::{Put, Reader, WireError};

/// The longest user name accepted; longer is a protocol error. Linux
/// allows 256 bytes (LOGIN_NAME_MAX); this leaves room for domains.
pub const MAX_USER_LEN: usize = 1024;

/// The application's decisions about who may log in. `none` is refused
/// unless [`AuthPolicy::allow_none`] is overridden.
pub trait AuthPolicy {
    /// Whether `user` may log in with `key`. Asked for a publickey query
    /// (the answer is then PK_OK, which authenticates nothing), and for a
    /// signed request only after the signature verified, with the key that
    /// made it.
    fn allow_key(&mut self, user: &str, key: &KeyData) -> bool;

    /// Whether `user` may log in with no credentials at all (`cpud -pk ""`).
    fn allow_none(&mut self, _user: &str) -> bool {
        false
    }

    /// Told once, when a request succeeded and USERAUTH_SUCCESS is about
    /// to be sent, with its proof (a query's [`AuthPolicy::allow_key`]
    /// authenticates nothing, so this is where a login is logged).
    fn logged_in(&mut self, _token: &Authenticated) {}
}

/// How the server side behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAuthConfig {
    /// Text sent as USERAUTH_BANNER before the first answer to a request.
    pub banner: Option<String>,
    /// Failed attempts after which the client is disconnected; 0 acts as 1.
    pub max_attempts: u32,
}

impl Default for ServerAuthConfig {
    fn default() -> Self {
        Self {
            banner: None,
            max_attempts: 6,
        }
    }
}

/// Proof that a client authenticated: made only by [`ServerAuth`], after a
/// signature that verified over this session with a key the policy then
/// accepted, or after the policy allowed `none`. The connection layer
/// requires one before it creates channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    user: String,
    key: Option<KeyData>,
    method: &'static str,
}

impl Authenticated {
    /// The user name the client authenticated as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The key that signed; `None` for `none`.
    pub fn key(&self) -> Option<&KeyData> {
        self.key.as_ref()
    }

    /// The method that succeeded: `publickey` or `none`.
    pub fn method(&self) -> &str {
        self.method
    }
}

/// What the server side reports to its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerAuthEvent {
    /// The client is authenticated; the connection protocol may start.
    Authenticated(Authenticated),
    /// A request was refused, for logging. `user` and `method` are the
    /// client's, invalid UTF-8 replaced: escape them before logging.
    Failed {
        /// The user name in the request.
        user: String,
        /// The method name in the request.
        method: String,
    },
}

#[derive(Debug)]
enum State {
    /// Before SERVICE_REQUEST `ssh-userauth`.
    AwaitService,
    /// SERVICE_ACCEPT sent; requests are answered.
    Requests,
    /// USERAUTH_SUCCESS sent.
    Done,
}

/// How a request was answered.
enum Answer<'a> {
    Success(Authenticated),
    /// PK_OK echoing the query's own algorithm and blob bytes, which the
    /// client compares with what it sent.
    PkOk {
        alg: &'a [u8],
        blob: &'a [u8],
    },
    Failure,
}

/// The server side of user authentication.
#[derive(Debug)]
pub struct ServerAuth {
    config: ServerAuthConfig,
    session_id: Vec<u8>,
    state: State,
    failures: u32,
    none_tried: bool,
    banner_sent: bool,
    authenticated: Option<Authenticated>,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<ServerAuthEvent>,
}

impl ServerAuth {
    /// A server side for the connection whose session identifier (the
    /// first exchange hash) is `session_id`.
    pub fn new(config: ServerAuthConfig, session_id: Vec<u8>) -> Self {
        Self {
            config,
            session_id,
            state: State::AwaitService,
            failures: 0,
            none_tried: false,
            banner_sent: false,
            authenticated: None,
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The next payload to send, if any.
    pub fn poll_payload(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ServerAuthEvent> {
        self.events.pop_front()
    }

    /// Whether USERAUTH_SUCCESS was sent.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated.is_some()
    }

    /// The proof of the successful login, once there is one.
    pub fn authenticated(&self) -> Option<&Authenticated> {
        self.authenticated.as_ref()
    }

    /// The failed attempts counted so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Handles one authentication-layer payload from the client
    /// (SERVICE_REQUEST, or a message numbered 50 to 79).
    ///
    /// An error is final: the caller disconnects with
    /// [`AuthError::reason`].
    pub fn handle_message(
        &mut self,
        payload: &[u8],
        policy: &mut dyn AuthPolicy,
    ) -> Result<(), AuthError> {
        let Some((&n, body)) = payload.split_first() else {
            return Err(AuthError::Malformed {
                msg: 0,
                error: WireError::Truncated,
            });
        };
        // A message only a server sends is refused in every state, so that
        // no client can talk its way in with USERAUTH_SUCCESS
        // (CVE-2018-10933).
        if !msg::sendable_by(Role::Client, n) {
            return Err(AuthError::Unexpected { msg: n });
        }
        match (n, &self.state) {
            (msg::SERVICE_REQUEST, State::AwaitService) => self.service_request(body),
            (msg::USERAUTH_REQUEST, State::Requests) => self.request(body, policy),
            // RFC 4252 §5.1: requests after SUCCESS are silently ignored.
            (msg::USERAUTH_REQUEST, State::Done) => Ok(()),
            _ => Err(AuthError::Unexpected { msg: n }),
        }
    }

    fn service_request(&mut self, body: &[u8]) -> Result<(), AuthError> {
        let bad = |error| AuthError::Malformed {
            msg: msg::SERVICE_REQUEST,
            error,
        };
        let mut r = Reader::new(body);
        let service = r.string().map_err(bad)?;
        r.finish().map_err(bad)?;
        if service != SERVICE_USERAUTH.as_bytes() {
            return Err(AuthError::ServiceNotAvailable);
        }
        let mut p = Vec::new();
        p.put_u8(msg::SERVICE_ACCEPT);
        p.put_string(SERVICE_USERAUTH.as_bytes());
        self.out.push_back(p);
        self.state = State::Requests;
        Ok(())
    }

    fn request(&mut self, body: &[u8], policy: &mut dyn AuthPolicy) -> Result<(), AuthError> {
        let bad = |error| AuthError::Malformed {
            msg: msg::USERAUTH_REQUEST,
            error,
        };
        let mut r = Reader::new(body);
        let user = r.utf8().map_err(bad)?;
        if user.len() > MAX_USER_LEN {
            return Err(bad(WireError::BadValue));
        }
        let service = r.string().map_err(bad)?;
        let method = r.string().map_err(bad)?;

        let mut free = false;
        let answer = if method == METHOD_NONE.as_bytes() {
            r.finish().map_err(bad)?;
            // The first `none` is the probe every client sends.
            free = !self.none_tried;
            self.none_tried = true;
            if service == SERVICE_CONNECTION.as_bytes() && policy.allow_none(user) {
                Answer::Success(Authenticated {
                    user: user.to_string(),
                    key: None,
                    method: METHOD_NONE,
                })
            } else {
                Answer::Failure
            }
        } else if method == METHOD_PUBLICKEY.as_bytes() {
            let signed = r.bool().map_err(bad)?;
            let alg = r.string().map_err(bad)?;
            let blob = r.string().map_err(bad)?;
            let signature = if signed {
                Some(r.string().map_err(bad)?)
            } else {
                None
            };
            r.finish().map_err(bad)?;
            // SHA-1 `ssh-rsa` and unknown names are refused here.
            let known = core::str::from_utf8(alg).ok().and_then(SigAlg::from_name);
            match (known, signature) {
                _ if service != SERVICE_CONNECTION.as_bytes() => Answer::Failure,
                (None, _) => Answer::Failure,
                (Some(a), None) => {
                    if self.query(user, a, blob, policy) {
                        Answer::PkOk { alg, blob }
                    } else {
                        Answer::Failure
                    }
                }
                (Some(a), Some(s)) => self.signed(user, a, blob, s, policy),
            }
        } else {
            // Other methods (password, keyboard-interactive, ...) are not
            // offered; their fields are not parsed.
            Answer::Failure
        };

        self.send_banner();
        match answer {
            Answer::Success(token) => {
                policy.logged_in(&token);
                self.out.push_back(alloc::vec![msg::USERAUTH_SUCCESS]);
                self.events
                    .push_back(ServerAuthEvent::Authenticated(token.clone()));
                self.authenticated = Some(token);
                self.state = State::Done;
                Ok(())
            }
            Answer::PkOk { alg, blob } => {
                // Counted like a failure: the limit bounds the PK_OK
                // answers as it does the FAILURE ones (CVE-2025-26466).
                // The query that reaches the limit is still answered, so
                // that a client whose last allowed try is the right key
                // (five refused, the sixth authorized) logs in as with
                // sshd; its signature is then the last chance.
                self.failures = self.failures.saturating_add(1);
                if self.failures > self.config.max_attempts {
                    return Err(AuthError::TooManyAttempts);
                }
                let mut p = Vec::new();
                p.put_u8(msg::USERAUTH_PK_OK);
                p.put_string(alg);
                p.put_string(blob);
                self.out.push_back(p);
                Ok(())
            }
            Answer::Failure => {
                self.events.push_back(ServerAuthEvent::Failed {
                    user: user.to_string(),
                    method: String::from_utf8_lossy(method).into_owned(),
                });
                if !free {
                    self.failures = self.failures.saturating_add(1);
                    if self.failures >= self.config.max_attempts {
                        return Err(AuthError::TooManyAttempts);
                    }
                }
                // The same bytes for every refusal: unknown user, refused
                // key, bad signature (CVE-2018-15473).
                let mut p = Vec::new();
                p.put_u8(msg::USERAUTH_FAILURE);
                p.put_name_list(&[METHOD_PUBLICKEY]);
                p.put_bool(false);
                self.out.push_back(p);
                Ok(())
            }
        }
    }

    /// A publickey query: whether to answer PK_OK, which the key gets if
    /// it suits the algorithm and the policy would accept it. It never
    /// authenticates.
    fn query(&mut self, user: &str, alg: SigAlg, blob: &[u8], policy: &mut dyn AuthPolicy) -> bool {
        let Ok(key) = sig::parse_public_key(blob) else {
            return false;
        };
        sig::algs_for_key(&key).contains(&alg) && policy.allow_key(user, &key)
    }

    /// A signed publickey request: the signature is verified first, over
    /// this session, and only the key that verified is shown to the policy
    /// (CVE-2024-45337); the token carries that key.
    fn signed(
        &mut self,
        user: &str,
        alg: SigAlg,
        blob: &[u8],
        signature: &[u8],
        policy: &mut dyn AuthPolicy,
    ) -> Answer<'static> {
        let data =
            publickey_signed_data(&self.session_id, user, SERVICE_CONNECTION, alg.name(), blob);
        let Ok(key) = sig::verify(blob, alg, signature, &data) else {
            return Answer::Failure;
        };
        if !policy.allow_key(user, &key) {
            return Answer::Failure;
        }
        Answer::Success(Authenticated {
            user: user.to_string(),
            key: Some(key),
            method: METHOD_PUBLICKEY,
        })
    }

    /// USERAUTH_BANNER, once, before the first answer to a request.
    fn send_banner(&mut self) {
        if self.banner_sent {
            return;
        }
        self.banner_sent = true;
        if let Some(text) = &self.config.banner {
            let mut p = Vec::new();
            p.put_u8(msg::USERAUTH_BANNER);
            p.put_string(text.as_bytes());
            p.put_string(b"");
            self.out.push_back(p);
        }
    }
}
