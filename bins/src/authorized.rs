//! cpud's login policy: the keys of an authorized_keys file (all of
//! them, not only the first as in the reference) with their options
//! ([`crate::keyopts`]), or no login check at all with `-pk ""`, as the
//! reference has it. Each connection gets a [`Login`], which decides with
//! the client's address, logs every login and refusal as sshd does, and
//! keeps the options of the key that logged in for the session.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use proto_ssh::auth::{AuthPolicy, Authenticated};
use ssh_key::public::KeyData;
use ssh_key::{HashAlg, PublicKey};

use crate::keyopts::{self, KeyOptions};
use crate::oplog;

/// One key line of the file.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The key.
    pub key: KeyData,
    /// Its line number, for the log.
    pub line: usize,
    /// Its options, or why the line is not accepted (an option cpud does
    /// not implement, a malformed one).
    pub options: Result<KeyOptions, String>,
}

/// Who may log in.
#[derive(Debug, Clone)]
pub enum Policy {
    /// The key lines of the file.
    Keys(Arc<[Entry]>),
    /// `-pk ""`: anyone, with `none`.
    Anyone,
}

impl Policy {
    /// The keys of `path` in authorized_keys format. A line whose options
    /// cpud cannot honour is kept, refused at each login with its reason,
    /// and reported here once.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let p =
            Self::parse(&text).map_err(|(line, e)| format!("{}:{line}: {e}", path.display()))?;
        if let Self::Keys(entries) = &p {
            for e in entries.iter() {
                if let Err(why) = &e.options {
                    oplog::auth(format_args!(
                        "{}:{}: {why}: this key may not log in",
                        path.display(),
                        e.line
                    ));
                }
            }
        }
        Ok(p)
    }

    /// Parses authorized_keys text; an error names the line. A key that
    /// does not parse is an error; options that do not are the line's.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (opts, key) = keyopts::split_line(line).map_err(|e| (i + 1, e))?;
            let key = PublicKey::from_openssh(key).map_err(|e| (i + 1, e.to_string()))?;
            entries.push(Entry {
                key: key.key_data().clone(),
                line: i + 1,
                options: keyopts::parse(opts),
            });
        }
        if entries.is_empty() {
            return Err((0, "no keys".into()));
        }
        Ok(Self::Keys(entries.into()))
    }
}

/// The options of the key a connection logged in with, once it did.
#[derive(Debug, Clone, Default)]
pub struct Grant(Arc<Mutex<Option<KeyOptions>>>);

impl Grant {
    /// The logged-in key's options (none before the login).
    pub fn options(&self) -> KeyOptions {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_default()
    }
}

/// One connection's login policy.
#[derive(Debug)]
pub struct Login {
    policy: Policy,
    /// The client's address, when it has one (TCP).
    addr: Option<SocketAddr>,
    peer: String,
    /// `-permitUserEnvironment`.
    permit_env: bool,
    /// The last key allowed and its options: the one a signed request
    /// then logs in with.
    allowed: Option<(KeyData, KeyOptions)>,
    grant: Grant,
}

impl Login {
    /// The policy for a connection from `peer` (the listener's name of
    /// it), and the handle on what it grants.
    pub fn new(policy: Policy, peer: &str, permit_env: bool) -> (Self, Grant) {
        let grant = Grant::default();
        let login = Self {
            policy,
            addr: socket_addr(peer),
            peer: peer.into(),
            permit_env,
            allowed: None,
            grant: grant.clone(),
        };
        (login, grant)
    }

    /// `from 127.0.0.1 port 4242`, as sshd names a client.
    fn from(&self) -> String {
        match self.addr {
            Some(a) => format!("from {} port {}", a.ip().to_canonical(), a.port()),
            None => format!("from {}", self.peer),
        }
    }

    /// Whether one key line admits this client now; why not if it does not.
    fn check<'a>(&self, e: &'a Entry, now: u64) -> Result<KeyOptions, &'a str> {
        let o = e.options.as_ref().map_err(String::as_str)?;
        if o.expiry.is_some_and(|t| now >= t) {
            return Err("key expired (expiry-time)");
        }
        if let Some(list) = &o.from {
            if !keyopts::from_matches(list, self.addr.map(|a| a.ip())) {
                return Err("address not allowed by from=");
            }
        }
        if !o.environment.is_empty() && !self.permit_env {
            return Err("environment= needs cpud -permitUserEnvironment");
        }
        Ok(o.clone())
    }
}

/// The listener's name of a TCP peer (`127.0.0.1:22`, `[::1]:22`) as an
/// address; None for the others (a Unix socket, vsock).
fn socket_addr(peer: &str) -> Option<SocketAddr> {
    let (ip, port) = peer.rsplit_once(':')?;
    let ip = ip
        .strip_prefix('[')
        .and_then(|i| i.strip_suffix(']'))
        .unwrap_or(ip);
    Some(SocketAddr::new(ip.parse().ok()?, port.parse().ok()?))
}

/// `s` for a log line: control characters (a client's user name could
/// hold any) shown as `?`.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// `ssh-ed25519 SHA256:...`, as sshd logs a key.
pub fn describe_key(key: &KeyData) -> String {
    format!("{} {}", key.algorithm(), key.fingerprint(HashAlg::Sha256))
}

impl AuthPolicy for Login {
    fn allow_key(&mut self, user: &str, key: &KeyData) -> bool {
        let entries = match &self.policy {
            Policy::Anyone => {
                self.allowed = Some((key.clone(), KeyOptions::default()));
                return true;
            }
            Policy::Keys(e) => e.clone(),
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // As sshd, every line with the key is tried; the first that
        // admits the client wins.
        let mut why = None;
        for e in entries.iter().filter(|e| &e.key == key) {
            match self.check(e, now) {
                Ok(o) => {
                    self.allowed = Some((key.clone(), o));
                    return true;
                }
                Err(w) => why = why.or(Some(format!("line {}: {w}", e.line))),
            }
        }
        oplog::auth(format_args!(
            "refused publickey for {} {}: {}: {}",
            printable(user),
            self.from(),
            describe_key(key),
            why.as_deref().unwrap_or("key not in the authorized keys")
        ));
        false
    }

    fn allow_none(&mut self, _user: &str) -> bool {
        matches!(self.policy, Policy::Anyone)
    }

    fn logged_in(&mut self, token: &Authenticated) {
        let user = printable(token.user());
        let options = match (token.key(), self.allowed.take()) {
            (Some(k), Some((allowed, o))) if *k == allowed => {
                oplog::auth(format_args!(
                    "accepted publickey for {user} {}: {}",
                    self.from(),
                    describe_key(k)
                ));
                o
            }
            _ => {
                oplog::auth(format_args!(
                    "accepted {} for {user} {}",
                    token.method(),
                    self.from()
                ));
                KeyOptions::default()
            }
        };
        *self.grant.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(options);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const ED: &str = include_str!("../../proto-ssh/tests/keys/sig_ed25519.pub");
    const RSA: &str = include_str!("../../proto-ssh/tests/keys/sig_rsa.pub");

    fn key(text: &str) -> KeyData {
        PublicKey::from_openssh(text.trim())
            .unwrap()
            .key_data()
            .clone()
    }

    fn login(text: &str, peer: &str, env: bool) -> (Login, Grant) {
        Login::new(Policy::parse(text).unwrap(), peer, env)
    }

    #[test]
    fn every_key_of_the_file_counts() {
        let text = format!("# comment\n\n{}\n{}\n", ED.trim(), RSA.trim());
        let Policy::Keys(keys) = Policy::parse(&text).unwrap() else {
            panic!("keys expected");
        };
        assert_eq!(keys.len(), 2);
    }

    #[test]
    fn bad_line_is_named() {
        let err = Policy::parse(&format!("{}\nssh-ed25519 garbage\n", ED.trim())).unwrap_err();
        assert_eq!(err.0, 2);
    }

    #[test]
    fn empty_file_is_refused() {
        assert!(Policy::parse("# nothing\n").is_err());
    }

    #[test]
    fn options_parse_and_unknown_ones_refuse_the_line() {
        let text = format!(
            "restrict,command=\"echo hi\" {}\npermitopen=\"x:1\" {}\n",
            ED.trim(),
            RSA.trim()
        );
        let (mut l, _) = login(&text, "127.0.0.1:4000", false);
        assert!(l.allow_key("u", &key(ED)));
        assert!(!l.allow_key("u", &key(RSA)));
    }

    #[test]
    fn from_expiry_and_environment_are_checked() {
        let ed = ED.trim();
        let (mut l, _) = login(&format!("from=\"10.0.0.0/8\" {ed}"), "127.0.0.1:1", false);
        assert!(!l.allow_key("u", &key(ED)));
        let (mut l, _) = login(&format!("from=\"127.0.0.1\" {ed}"), "127.0.0.1:1", false);
        assert!(l.allow_key("u", &key(ED)));
        let (mut l, _) = login(&format!("from=\"127.0.0.1\" {ed}"), "unix peer", false);
        assert!(!l.allow_key("u", &key(ED)));
        let (mut l, _) = login(&format!("expiry-time=\"20000101\" {ed}"), "[::1]:2", false);
        assert!(!l.allow_key("u", &key(ED)));
        let (mut l, _) = login(&format!("expiry-time=\"99991231\" {ed}"), "[::1]:2", false);
        assert!(l.allow_key("u", &key(ED)));
        let env = format!("environment=\"A=1\" {ed}");
        assert!(!login(&env, "127.0.0.1:1", false).0.allow_key("u", &key(ED)));
        assert!(login(&env, "127.0.0.1:1", true).0.allow_key("u", &key(ED)));
    }

    #[test]
    fn a_later_line_with_the_same_key_may_admit() {
        let ed = ED.trim();
        let text = format!("from=\"10.*\" {ed}\nno-pty {ed}\n");
        let (mut l, _) = login(&text, "127.0.0.1:1", false);
        assert!(l.allow_key("u", &key(ED)));
        assert!(l.allowed.as_ref().unwrap().1.no_pty);
    }
}
