//! OpenSSH `known_hosts` checking for the `cpu` client: trust on first
//! use, a loud refusal when a known host shows a different key.
//!
//! Format (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"): one entry a line,
//! `[@marker] hostpatterns keytype base64 [comment]`. Host patterns are
//! comma-separated, `[host]:port` for ports other than 22, with `*`, `?`
//! and `!` negation; or a single hashed field `|1|salt|hash`, the hash
//! being HMAC-SHA1 keyed with the salt over `host` or `[host]:port`.
//!
//! Semantics follow OpenSSH's hostfile.c and sshconnect.c: host names are
//! compared lowercased; an `@revoked` line that matches the host and key
//! refuses it whatever else the file says; a key is "changed" only when
//! the host has an entry of the same algorithm with a different key
//! (another algorithm is simply not known yet).
//!
//! Left out: `@cert-authority` lines (skipped: the client does not accept
//! host certificates), CheckHostIP (the address is not looked up), and the
//! global `/etc/ssh/ssh_known_hosts`.

use std::fmt;
use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use hmac::{Hmac, Mac};
use proto_ssh::transport::HostKeyCheck;
use sha1::Sha1;
use ssh_encoding::base64::{Base64, Encoding};
use ssh_key::public::KeyData;
use ssh_key::{Algorithm, HashAlg, PublicKey};

use crate::ssh_config::host_matches;

/// What the file says about a host's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// An entry for the host holds this very key.
    Known,
    /// No entry for the host holds a key of this algorithm.
    Unknown,
    /// The host has an entry of the same algorithm with another key.
    Changed {
        /// 1-based line of the first such entry.
        line: usize,
        /// The file it is in.
        path: PathBuf,
    },
    /// An `@revoked` line for the host holds this key.
    Revoked,
}

/// How an entry names its hosts.
#[derive(Clone, PartialEq, Eq)]
enum Hosts {
    /// Comma-separated patterns, possibly negated.
    Patterns(Vec<String>),
    /// `|1|salt|hash`.
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
}

impl fmt::Debug for Hosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hosts::Patterns(p) => f.debug_tuple("Patterns").field(p).finish(),
            // The salt and hash say nothing readable.
            Hosts::Hashed { .. } => f.write_str("Hashed"),
        }
    }
}

impl Hosts {
    /// Whether the entry applies to `target` (`host` or `[host]:port`,
    /// already lowercased).
    fn matches(&self, target: &str) -> bool {
        match self {
            Hosts::Patterns(p) => host_matches(p, target),
            Hosts::Hashed { salt, hash } => {
                let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(salt) else {
                    return false;
                };
                mac.update(target.as_bytes());
                mac.verify_slice(hash).is_ok()
            }
        }
    }
}

/// One usable line.
#[derive(Debug, Clone)]
struct Entry {
    /// 1-based, for "Offending key in path:line".
    line: usize,
    revoked: bool,
    hosts: Hosts,
    key: KeyData,
}

/// A parsed `known_hosts` file.
#[derive(Debug, Clone)]
pub struct KnownHosts {
    path: PathBuf,
    entries: Vec<Entry>,
    warnings: Vec<String>,
    /// Lines in the file, so an entry added later gets its number.
    lines: usize,
}

impl KnownHosts {
    /// Parses `text`, read from `path` (kept for verdicts and warnings).
    /// Lines that do not parse are skipped with a warning, as OpenSSH
    /// does: one bad line must not lock the user out of every host.
    pub fn parse(text: &str, path: &Path) -> Self {
        let mut kh = KnownHosts {
            path: path.to_path_buf(),
            entries: Vec::new(),
            warnings: Vec::new(),
            lines: 0,
        };
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            kh.lines = line;
            match parse_line(raw) {
                Ok(None) => {}
                Ok(Some((revoked, hosts, key))) => kh.entries.push(Entry {
                    line,
                    revoked,
                    hosts,
                    key,
                }),
                Err(why) => kh
                    .warnings
                    .push(format!("{}:{line}: {why}", path.display())),
            }
        }
        kh
    }

    /// Reads and parses `path`; a missing file is an empty one, as for a
    /// user who never connected anywhere.
    pub fn load(path: &Path) -> io::Result<Self> {
        match std::fs::read(path) {
            // Invalid UTF-8 only spoils the lines it is on.
            Ok(bytes) => Ok(Self::parse(&String::from_utf8_lossy(&bytes), path)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Self::parse("", path)),
            Err(e) => Err(e),
        }
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The lines skipped as malformed, as `path:line: reason`.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// What the file says about `key` for `host` on `port`.
    pub fn check(&self, host: &str, port: u16, key: &KeyData) -> Verdict {
        let target = host_pattern(&host.to_ascii_lowercase(), port);
        let matching = || self.entries.iter().filter(|e| e.hosts.matches(&target));
        if matching().any(|e| e.revoked && e.key == *key) {
            return Verdict::Revoked;
        }
        let mut changed = None;
        for e in matching().filter(|e| !e.revoked) {
            if e.key == *key {
                return Verdict::Known;
            }
            if changed.is_none() && e.key.algorithm() == key.algorithm() {
                changed = Some(e.line);
            }
        }
        match changed {
            Some(line) => Verdict::Changed {
                line,
                path: self.path.clone(),
            },
            None => Verdict::Unknown,
        }
    }

    /// Records in memory what [`append`] wrote, so a later check agrees.
    fn remember(&mut self, host: &str, port: u16, key: &KeyData) {
        self.lines += 1;
        self.entries.push(Entry {
            line: self.lines,
            revoked: false,
            hosts: Hosts::Patterns(vec![host_pattern(&host.to_ascii_lowercase(), port)]),
            key: key.clone(),
        });
    }
}

/// Parses one line: `Ok(None)` for lines that carry nothing for us
/// (blank, comment, `@cert-authority`), `Err` for malformed ones.
fn parse_line(raw: &str) -> Result<Option<(bool, Hosts, KeyData)>, String> {
    let mut rest = raw.trim();
    if rest.is_empty() || rest.starts_with('#') {
        return Ok(None);
    }
    let mut revoked = false;
    if rest.starts_with('@') {
        let (marker, after) = split_field(rest);
        match marker {
            "@cert-authority" => return Ok(None),
            "@revoked" => revoked = true,
            other => return Err(format!("unknown marker {other:?}")),
        }
        rest = after;
    }
    let mut words = rest.split_whitespace();
    let field = words.next().unwrap_or_default();
    let (Some(keytype), Some(blob)) = (words.next(), words.next()) else {
        return Err("no key".into());
    };
    let hosts = parse_hosts(field)?;
    // Rebuilt with one space and no comment: from_openssh refuses tabs
    // and runs of spaces, which OpenSSH accepts. It also checks the key
    // type word against the blob.
    let key = PublicKey::from_openssh(&format!("{keytype} {blob}"))
        .map_err(|e| format!("bad key: {e}"))?;
    Ok(Some((revoked, hosts, key.key_data().clone())))
}

/// The first whitespace-separated field and the rest, trimmed.
fn split_field(s: &str) -> (&str, &str) {
    match s.split_once(char::is_whitespace) {
        Some((a, b)) => (a, b.trim_start()),
        None => (s, ""),
    }
}

fn parse_hosts(field: &str) -> Result<Hosts, String> {
    if let Some(hashed) = field.strip_prefix("|1|") {
        let (salt, hash) = hashed
            .split_once('|')
            .ok_or_else(|| "hashed host without a hash".to_string())?;
        let salt = Base64::decode_vec(salt).map_err(|_| "bad base64 in hashed salt")?;
        let hash = Base64::decode_vec(hash).map_err(|_| "bad base64 in hashed host")?;
        // OpenSSH writes 20-byte salts and SHA-1 is 20 bytes: anything
        // else is a corrupt line, not a host we could ever match.
        if salt.len() != 20 || hash.len() != 20 {
            return Err("hashed host of the wrong length".into());
        }
        return Ok(Hosts::Hashed { salt, hash });
    }
    if field.starts_with('|') {
        return Err("unknown hashed host format".into());
    }
    let patterns: Vec<String> = field
        .split(',')
        .filter(|p| !p.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    if patterns.is_empty() {
        return Err("no host patterns".into());
    }
    Ok(Hosts::Patterns(patterns))
}

/// `$HOME/.ssh/known_hosts`, or `None` without a usable `$HOME`.
pub fn default_path() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".ssh/known_hosts"))
}

/// The name a host goes by in known_hosts: `host` on port 22,
/// `[host]:port` otherwise.
pub fn host_pattern(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// The hashed form of `host_pattern(host, port)` with `salt`, as
/// `ssh-keygen -H` writes it: `|1|base64(salt)|base64(hmac)`.
pub fn hash_host(salt: &[u8], host: &str, port: u16) -> String {
    let target = host_pattern(&host.to_ascii_lowercase(), port);
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(salt) else {
        unreachable!("HMAC accepts any key length")
    };
    mac.update(target.as_bytes());
    let hash = mac.finalize().into_bytes();
    format!(
        "|1|{}|{}",
        Base64::encode_string(salt),
        Base64::encode_string(&hash)
    )
}

/// The OpenSSH public key text of `key`, without comment.
fn key_text(key: &KeyData) -> io::Result<String> {
    PublicKey::from(key.clone())
        .to_openssh()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

/// Appends a plain line for `host`/`port` and `key` to `path`, creating
/// its directory (0700) and the file (0600) as ssh does for `~/.ssh`.
/// Plain rather than hashed so the user can read and edit it.
pub fn append(path: &Path, host: &str, port: u16, key: &KeyData) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        }
    }
    let entry = format!(
        "{} {}\n",
        host_pattern(&host.to_ascii_lowercase(), port),
        key_text(key)?
    );
    let mut f = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    // A file whose last line lacks its newline would swallow ours.
    let mut line = String::new();
    if f.seek(SeekFrom::End(0))? > 0 {
        f.seek(SeekFrom::End(-1))?;
        let mut last = [0u8; 1];
        f.read_exact(&mut last)?;
        if last[0] != b'\n' {
            line.push('\n');
        }
    }
    line.push_str(&entry);
    // One write, so concurrent clients do not interleave within a line.
    f.write_all(line.as_bytes())
}

/// `SHA256:<base64 without padding>`, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &KeyData) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The key type as ssh-keygen names it in parentheses (`ED25519`, `RSA`).
pub fn key_type_label(key: &KeyData) -> String {
    match key.algorithm() {
        Algorithm::Dsa => "DSA".into(),
        Algorithm::Ecdsa { .. } => "ECDSA".into(),
        Algorithm::Ed25519 => "ED25519".into(),
        Algorithm::Rsa { .. } => "RSA".into(),
        Algorithm::SkEcdsaSha2NistP256 => "ECDSA-SK".into(),
        Algorithm::SkEd25519 => "ED25519-SK".into(),
        other => other.as_str().to_ascii_uppercase(),
    }
}

/// ssh_config's StrictHostKeyChecking: what to do with a key the file
/// does not know, or one that changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strict {
    /// Only known keys pass.
    Yes,
    /// An unknown key is learned; a changed one refused (cpu's default).
    #[default]
    AcceptNew,
    /// An unknown key is learned; a changed one passes with the warning.
    No,
}

/// The client's host key check: known keys pass, unknown ones are added
/// and reported (trust on first use), changed and revoked ones refused
/// with OpenSSH's warnings, as `strict` says. Messages go to `messages`
/// for the caller to print, since the check runs inside the transport.
#[derive(Debug)]
pub struct TofuCheck {
    /// The known_hosts file new keys are appended to.
    pub path: PathBuf,
    /// The host as the user named it (after ssh_config's HostName).
    pub host: String,
    /// The port connected to.
    pub port: u16,
    /// The file's contents when the connection started.
    pub known: KnownHosts,
    /// Lines for the user, each possibly several lines long.
    pub messages: Arc<Mutex<Vec<String>>>,
    /// What unknown and changed keys get.
    pub strict: Strict,
}

impl TofuCheck {
    /// Loads `path` and checks keys of `host` on `port` against it.
    pub fn new(path: PathBuf, host: &str, port: u16) -> io::Result<Self> {
        let known = KnownHosts::load(&path)?;
        Ok(TofuCheck {
            path,
            host: host.to_string(),
            port,
            known,
            messages: Arc::new(Mutex::new(Vec::new())),
            strict: Strict::default(),
        })
    }

    fn say(&self, msg: String) {
        say(&self.messages, msg);
    }
}

/// Keeps a host key check's message for after the login.
fn say(messages: &Mutex<Vec<String>>, msg: String) {
    // A poisoned lock only means another thread panicked mid-push; the
    // messages are still worth showing.
    messages
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(msg);
}

/// `cpu -hk FILE`: the server must show exactly the key of FILE (a public
/// key, or the public half of a private key). The reference accepts the
/// flag and ignores it; here it pins the key, and known_hosts is not
/// consulted.
#[derive(Debug)]
pub struct PinnedHostKey {
    key: KeyData,
    file: PathBuf,
    /// What the check has to say, shown once the login is over.
    pub messages: Arc<Mutex<Vec<String>>>,
}

impl PinnedHostKey {
    /// Reads the key of `file`.
    pub fn load(file: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let key = match PublicKey::from_openssh(text.trim()) {
            Ok(k) => k.key_data().clone(),
            Err(_) => ssh_key::PrivateKey::from_openssh(&text)
                .map_err(|e| {
                    format!(
                        "{}: neither a public nor a private key: {e}",
                        file.display()
                    )
                })?
                .public_key()
                .key_data()
                .clone(),
        };
        Ok(Self {
            key,
            file: file.to_path_buf(),
            messages: Arc::default(),
        })
    }
}

impl HostKeyCheck for PinnedHostKey {
    fn check(&mut self, key: &KeyData) -> bool {
        if *key == self.key {
            return true;
        }
        let msg = format!(
            "cpu: the server's host key ({} {}) is not the one in {} ({} {}).\nHost key verification failed.",
            key_type_label(key),
            fingerprint(key),
            self.file.display(),
            key_type_label(&self.key),
            fingerprint(&self.key)
        );
        say(&self.messages, msg);
        false
    }
}

impl HostKeyCheck for TofuCheck {
    fn check(&mut self, key: &KeyData) -> bool {
        let name = host_pattern(&self.host, self.port);
        let label = key_type_label(key);
        let fp = fingerprint(key);
        match self.known.check(&self.host, self.port, key) {
            Verdict::Known => true,
            Verdict::Unknown if self.strict == Strict::Yes => {
                self.say(format!(
                    "cpu: no {label} host key is known for {name} in {} and StrictHostKeyChecking is yes \
                     (the server shows {fp}).\nHost key verification failed.",
                    self.path.display()
                ));
                false
            }
            Verdict::Unknown => {
                match append(&self.path, &self.host, self.port, key) {
                    Ok(()) => {
                        self.known.remember(&self.host, self.port, key);
                        self.say(format!(
                            "cpu: added host key for {name} ({label} {fp}) to {}",
                            self.path.display()
                        ));
                    }
                    // As ssh with accept-new: the key is still trusted for
                    // this connection, the user is told it was not saved.
                    Err(e) => self.say(format!(
                        "cpu: could not add host key for {name} ({label} {fp}) to {}: {e}",
                        self.path.display()
                    )),
                }
                true
            }
            Verdict::Changed { line, path } => {
                let warning = changed_warning(&name, &label, &fp, &path, line);
                if self.strict == Strict::No {
                    // As ssh with StrictHostKeyChecking no: warned, let in.
                    let head = warning.lines().take(11).collect::<Vec<_>>().join("\n");
                    self.say(format!(
                        "{head}\ncpu: StrictHostKeyChecking is no: connecting anyway."
                    ));
                    return true;
                }
                self.say(warning);
                false
            }
            Verdict::Revoked => {
                self.say(format!(
                    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
                     @       WARNING: REVOKED HOST KEY DETECTED!               @\n\
                     @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
                     The {label} host key for {name} is marked as revoked in {}.\n\
                     This could mean that a stolen key is being used to\n\
                     impersonate this host.\n\
                     Host key verification failed.",
                    self.path.display()
                ));
                false
            }
        }
    }
}

/// OpenSSH's "REMOTE HOST IDENTIFICATION HAS CHANGED" text.
fn changed_warning(name: &str, label: &str, fp: &str, path: &Path, line: usize) -> String {
    let path = path.display();
    format!(
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
         @    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n\
         @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
         IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n\
         Someone could be eavesdropping on you right now (man-in-the-middle attack)!\n\
         It is also possible that a host key has just been changed.\n\
         The fingerprint for the {label} key sent by the remote host is\n\
         {fp}.\n\
         Please contact your system administrator.\n\
         Add correct host key in {path} to get rid of this message.\n\
         Offending {label} key in {path}:{line}\n\
         Host key for {name} has changed and you have requested strict checking.\n\
         Host key verification failed."
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use ssh_key::public::Ed25519PublicKey;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    fn test_key(name: &str) -> KeyData {
        let p = format!(
            "{}/../proto-ssh/tests/keys/{name}.pub",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(p).unwrap();
        PublicKey::from_openssh(text.trim())
            .unwrap()
            .key_data()
            .clone()
    }

    fn ed(b: u8) -> KeyData {
        KeyData::Ed25519(Ed25519PublicKey([b; 32]))
    }

    fn line(hosts: &str, key: &KeyData) -> String {
        format!("{hosts} {}\n", key_text(key).unwrap())
    }

    fn kh(text: &str) -> KnownHosts {
        KnownHosts::parse(text, Path::new("/kh"))
    }

    fn has_ssh_keygen() -> bool {
        Command::new("ssh-keygen")
            .arg("-?")
            .output()
            .map(|_| true)
            .unwrap_or(false)
    }

    fn changed(line: usize) -> Verdict {
        Verdict::Changed {
            line,
            path: PathBuf::from("/kh"),
        }
    }

    #[test]
    fn plain_known_unknown_changed() {
        let k = test_key("sig_ed25519");
        let f = kh(&format!(
            "# comment\n\n{}{}",
            line("a.example,b.example", &k),
            line("c.example", &ed(1))
        ));
        assert!(f.warnings().is_empty(), "{:?}", f.warnings());
        assert_eq!(f.check("a.example", 22, &k), Verdict::Known);
        assert_eq!(f.check("B.Example", 22, &k), Verdict::Known);
        assert_eq!(f.check("d.example", 22, &k), Verdict::Unknown);
        // Port 2222 is a different name: unknown, not changed.
        assert_eq!(f.check("a.example", 2222, &k), Verdict::Unknown);
        assert_eq!(f.check("a.example", 22, &ed(2)), changed(3));
        assert_eq!(f.check("c.example", 22, &k), changed(4));
    }

    #[test]
    fn other_algorithm_is_not_changed() {
        let f = kh(&line("h", &test_key("sig_rsa")));
        assert_eq!(f.check("h", 22, &test_key("sig_ed25519")), Verdict::Unknown);
        let f = kh(&line("h", &test_key("sig_ecdsa")));
        assert_eq!(f.check("h", 22, &test_key("sig_ecdsa")), Verdict::Known);
    }

    #[test]
    fn any_matching_entry_makes_known() {
        // Two lines for one host (a key rotation in progress): either key
        // is fine.
        let f = kh(&format!("{}{}", line("h", &ed(1)), line("h", &ed(2))));
        assert_eq!(f.check("h", 22, &ed(2)), Verdict::Known);
        assert_eq!(f.check("h", 22, &ed(3)), changed(1));
    }

    #[test]
    fn bracketed_port() {
        let f = kh(&line("[h.example]:2222", &ed(1)));
        assert_eq!(f.check("h.example", 2222, &ed(1)), Verdict::Known);
        assert_eq!(f.check("h.example", 22, &ed(1)), Verdict::Unknown);
        assert_eq!(f.check("h.example", 2223, &ed(1)), Verdict::Unknown);
        assert_eq!(f.check("h.example", 2222, &ed(2)), changed(1));
        // "[h]:22" is not how port 22 is written, so it does not match.
        let f = kh(&line("[h.example]:22", &ed(1)));
        assert_eq!(f.check("h.example", 22, &ed(1)), Verdict::Unknown);
    }

    #[test]
    fn wildcards_and_negation() {
        let f = kh(&line("*.example,!bad.example,host?", &ed(1)));
        assert_eq!(f.check("a.example", 22, &ed(1)), Verdict::Known);
        assert_eq!(f.check("bad.example", 22, &ed(1)), Verdict::Unknown);
        assert_eq!(f.check("bad.example", 22, &ed(2)), Verdict::Unknown);
        assert_eq!(f.check("host1", 22, &ed(1)), Verdict::Known);
        assert_eq!(f.check("host12", 22, &ed(1)), Verdict::Unknown);
        assert_eq!(f.check("a.example", 22, &ed(2)), changed(1));
        // `*.example` does not match "[x.example]:2222": the bracket
        // comes first; a port wildcard has to be written out.
        assert_eq!(f.check("x.example", 2222, &ed(1)), Verdict::Unknown);
        let f = kh(&line("[*.example]:*", &ed(1)));
        assert_eq!(f.check("x.example", 2222, &ed(1)), Verdict::Known);
        // A negation alone matches nothing.
        let f = kh(&line("!h", &ed(1)));
        assert_eq!(f.check("other", 22, &ed(1)), Verdict::Unknown);
    }

    #[test]
    fn hashed_entries() {
        let salt = [7u8; 20];
        let f = kh(&format!(
            "{}{}",
            line(&hash_host(&salt, "h.example", 22), &ed(1)),
            line(&hash_host(&salt, "h.example", 2222), &ed(2))
        ));
        assert!(f.warnings().is_empty(), "{:?}", f.warnings());
        assert_eq!(f.check("h.example", 22, &ed(1)), Verdict::Known);
        assert_eq!(f.check("H.EXAMPLE", 22, &ed(1)), Verdict::Known);
        assert_eq!(f.check("h.example", 22, &ed(3)), changed(1));
        assert_eq!(f.check("h.example", 2222, &ed(2)), Verdict::Known);
        assert_eq!(f.check("h.example", 2222, &ed(1)), changed(2));
        assert_eq!(f.check("g.example", 22, &ed(1)), Verdict::Unknown);
    }

    #[test]
    fn hashed_by_ssh_keygen() {
        if !has_ssh_keygen() {
            eprintln!("ssh-keygen missing: skipped");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("known_hosts");
        let k = test_key("sig_ed25519");
        std::fs::write(
            &p,
            format!(
                "{}{}",
                line("h.example", &k),
                line("[h.example]:2222", &test_key("sig_rsa"))
            ),
        )
        .unwrap();
        let out = Command::new("ssh-keygen")
            .arg("-H")
            .arg("-f")
            .arg(&p)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("|1|"), "{text}");
        assert!(!text.contains("h.example"), "{text}");
        let f = KnownHosts::load(&p).unwrap();
        assert!(f.warnings().is_empty(), "{:?}", f.warnings());
        assert_eq!(f.check("h.example", 22, &k), Verdict::Known);
        assert_eq!(
            f.check("h.example", 2222, &test_key("sig_rsa")),
            Verdict::Known
        );
        assert!(matches!(
            f.check("h.example", 22, &ed(1)),
            Verdict::Changed { line: 1, .. }
        ));
        assert_eq!(f.check("g.example", 22, &k), Verdict::Unknown);
    }

    #[test]
    fn revoked_and_markers() {
        let f = kh(&format!(
            "@revoked * {}{}@cert-authority *.example {}@bogus h {}",
            line("", &ed(9)).trim_start(),
            line("h", &ed(9)),
            key_text(&ed(5)).unwrap() + "\n",
            key_text(&ed(6)).unwrap() + "\n",
        ));
        assert_eq!(f.warnings().len(), 1, "{:?}", f.warnings());
        // Revoked wins over the plain entry for the same key.
        assert_eq!(f.check("h", 22, &ed(9)), Verdict::Revoked);
        assert_eq!(f.check("elsewhere", 22, &ed(9)), Verdict::Revoked);
        // The CA key is not a host key.
        assert_eq!(f.check("a.example", 22, &ed(5)), Verdict::Unknown);
        // A revoked line is not a "known" one: another key is unknown.
        assert_eq!(f.check("elsewhere", 22, &ed(1)), Verdict::Unknown);
    }

    #[test]
    fn malformed_lines_are_skipped_with_warnings() {
        let good = line("h", &ed(1));
        let f = kh(&format!(
            "h\nh ssh-ed25519\nh ssh-ed25519 !!!!\n|1|abc h-no-hash {k}|1|!!|!! {k}\
             |2|a|b {k}h ssh-rsa {b64}\n{good}",
            k = key_text(&ed(2)).unwrap() + "\n",
            b64 = key_text(&ed(2)).unwrap().split(' ').nth(1).unwrap(),
        ));
        assert_eq!(f.warnings().len(), 7, "{:#?}", f.warnings());
        assert!(f.warnings()[0].starts_with("/kh:1: "));
        assert_eq!(f.check("h", 22, &ed(1)), Verdict::Known);
        assert_eq!(f.check("h", 22, &ed(3)), changed(8));
    }

    #[test]
    fn whitespace_comments_and_crlf() {
        let kt = key_text(&ed(1)).unwrap().replace(' ', "\t  ");
        let f = kh(&format!(
            "  # c\r\n\t\r\n  h,g \t{kt}  a comment\twith  tabs\r\n"
        ));
        assert!(f.warnings().is_empty(), "{:?}", f.warnings());
        assert_eq!(f.check("g", 22, &ed(1)), Verdict::Known);
        assert_eq!(f.check("h", 22, &ed(2)), changed(3));
    }

    #[test]
    fn load_missing_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let f = KnownHosts::load(&dir.path().join("nope")).unwrap();
        assert_eq!(f.check("h", 22, &ed(1)), Verdict::Unknown);
    }

    #[test]
    fn append_creates_private_files() {
        let dir = tempfile::tempdir().unwrap();
        let ssh = dir.path().join("home/.ssh");
        let p = ssh.join("known_hosts");
        append(&p, "Host.Example", 2222, &ed(1)).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&ssh), 0o700);
        assert_eq!(mode(&p), 0o600);
        // A last line without newline gets one before ours.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"# no newline").unwrap();
        append(&p, "h", 22, &test_key("sig_rsa")).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.starts_with("[host.example]:2222 ssh-ed25519 "));
        let f = KnownHosts::load(&p).unwrap();
        assert!(f.warnings().is_empty(), "{:?}", f.warnings());
        assert_eq!(f.check("host.example", 2222, &ed(1)), Verdict::Known);
        assert_eq!(f.check("h", 22, &test_key("sig_rsa")), Verdict::Known);
    }

    #[test]
    fn fingerprint_matches_ssh_keygen() {
        for name in ["sig_ed25519", "sig_rsa", "sig_ecdsa"] {
            let fp = fingerprint(&test_key(name));
            assert!(fp.starts_with("SHA256:") && !fp.ends_with('='), "{fp}");
            if !has_ssh_keygen() {
                eprintln!("ssh-keygen missing: comparison skipped");
                continue;
            }
            let p = format!(
                "{}/../proto-ssh/tests/keys/{name}.pub",
                env!("CARGO_MANIFEST_DIR")
            );
            let out = Command::new("ssh-keygen")
                .arg("-lf")
                .arg(p)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            let out = String::from_utf8(out.stdout).unwrap();
            // "256 SHA256:... comment (ED25519)"
            assert_eq!(out.split_whitespace().nth(1), Some(fp.as_str()), "{out}");
            let label = format!("({})", key_type_label(&test_key(name)));
            assert!(out.trim_end().ends_with(&label), "{out} {label}");
        }
    }

    #[test]
    fn tofu_adds_then_knows_then_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".ssh/known_hosts");
        let k = test_key("sig_ed25519");
        let mut c = TofuCheck::new(p.clone(), "h", 2222).unwrap();
        assert!(c.check(&k));
        let msgs = c.messages.lock().unwrap().clone();
        assert_eq!(
            msgs,
            [format!(
                "cpu: added host key for [h]:2222 (ED25519 {}) to {}",
                fingerprint(&k),
                p.display()
            )]
        );
        // Known in memory and on disk.
        assert!(c.check(&k));
        assert!(!c.check(&ed(1)));
        assert!(c.messages.lock().unwrap()[1].contains(&format!("{}:1", p.display())));
        c.messages.lock().unwrap().clear();
        let mut c = TofuCheck::new(p.clone(), "h", 2222).unwrap();
        assert!(c.check(&k));
        assert!(c.messages.lock().unwrap().is_empty());
        // Another ed25519 key: refused, loudly.
        assert!(!c.check(&ed(1)));
        let msgs = c.messages.lock().unwrap().clone();
        assert_eq!(msgs.len(), 1);
        assert!(msgs[0].contains("REMOTE HOST IDENTIFICATION HAS CHANGED!"));
        assert!(msgs[0].contains(&fingerprint(&ed(1))));
        assert!(msgs[0].contains(&format!("Offending ED25519 key in {}:1", p.display())));
        // The file is not touched by a refusal.
        assert_eq!(std::fs::read_to_string(&p).unwrap().lines().count(), 1);
        // Revoked.
        std::fs::write(&p, format!("@revoked * {}", key_text(&k).unwrap())).unwrap();
        let mut c = TofuCheck::new(p.clone(), "h", 2222).unwrap();
        assert!(!c.check(&k));
        assert!(c.messages.lock().unwrap()[0].contains("REVOKED HOST KEY"));
    }

    #[test]
    fn strict_host_key_checking() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kh");
        let k = test_key("sig_ed25519");
        let check = |strict, key: &KeyData| {
            let mut c = TofuCheck::new(p.clone(), "h", 2222).unwrap();
            c.strict = strict;
            let ok = c.check(key);
            let msgs = c.messages.lock().unwrap().join("\n");
            (ok, msgs)
        };
        // yes: an unknown key is refused and not written.
        let (ok, msg) = check(Strict::Yes, &k);
        assert!(!ok && msg.contains("StrictHostKeyChecking is yes"), "{msg}");
        assert!(msg.ends_with("Host key verification failed."));
        assert!(!p.exists());
        // no: learned; then a changed key passes with the warning.
        assert!(check(Strict::No, &k).0);
        assert!(check(Strict::Yes, &k).0);
        let (ok, msg) = check(Strict::No, &ed(1));
        assert!(
            ok && msg.contains("HAS CHANGED") && msg.contains("connecting anyway"),
            "{msg}"
        );
        assert!(!msg.contains("verification failed"));
        // accept-new and yes refuse it; the file still holds one line.
        assert!(!check(Strict::AcceptNew, &ed(1)).0);
        assert!(!check(Strict::Yes, &ed(1)).0);
        assert_eq!(std::fs::read_to_string(&p).unwrap().lines().count(), 1);
    }

    fn host_strategy() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9][a-zA-Z0-9.-]{0,20}"
    }

    proptest! {
        #[test]
        fn written_lines_read_back(host in host_strategy(), port in 1u16.., other in 1u16..,
                                   b in any::<u8>(), salt in any::<[u8; 20]>()) {
            let k = ed(b);
            let plain = kh(&line(&host_pattern(&host.to_ascii_lowercase(), port), &k));
            let hashed = kh(&line(&hash_host(&salt, &host, port), &k));
            for f in [plain, hashed] {
                prop_assert!(f.warnings().is_empty());
                prop_assert_eq!(f.check(&host, port, &k), Verdict::Known);
                prop_assert_eq!(f.check(&host.to_ascii_uppercase(), port, &k), Verdict::Known);
                prop_assert_eq!(f.check(&host, port, &ed(b.wrapping_add(1))), changed(1));
                if other != port {
                    prop_assert_eq!(f.check(&host, other, &k), Verdict::Unknown);
                }
            }
        }

        #[test]
        fn host_pattern_shape(host in host_strategy(), port in any::<u16>()) {
            let p = host_pattern(&host, port);
            if port == 22 {
                prop_assert_eq!(p, host);
            } else {
                prop_assert_eq!(p, format!("[{host}]:{port}"));
            }
        }

        #[test]
        fn parse_never_panics(text in "\\PC*(\n\\PC*){0,4}") {
            let f = kh(&text);
            let _ = f.check("h", 22, &ed(0));
        }
    }
}
