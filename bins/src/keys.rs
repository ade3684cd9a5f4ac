//! The user keys `cpu` offers, in OpenSSH's order (sshconnect2.c
//! `pubkey_prepare`): first the agent's keys in the agent's order (a key
//! file whose public key the agent holds is used through the agent and
//! not unlocked), then the remaining key files in their order. With
//! `IdentitiesOnly yes`, agent keys that match no key file are left out.
//!
//! Passphrase-protected key files are unlocked before connecting, not
//! after the server's PK_OK as OpenSSH does: a prompt in the middle of
//! the login would race the login timeout.

use std::fmt;
use std::path::{Path, PathBuf};

use ssh_key::public::KeyData;
use ssh_key::PrivateKey;

use proto_ssh::sig::{SigAlg, SigError, Signer};

use crate::passphrase::{self, Answer, Asker};

/// Where a key comes from, once ordered.
#[derive(Debug, PartialEq, Eq)]
pub enum Source<A, F> {
    /// A key held by the agent.
    Agent(A),
    /// A key file.
    File(F),
}

/// Orders agent keys and key files as OpenSSH does; `agent` and `files`
/// pair each key's public half with what the caller keeps.
pub fn order<A, F>(
    agent: Vec<(KeyData, A)>,
    files: Vec<(KeyData, F)>,
    identities_only: bool,
) -> Vec<Source<A, F>> {
    let mut files: Vec<Option<(KeyData, F)>> = files.into_iter().map(Some).collect();
    let mut out = Vec::new();
    for (public, a) in agent {
        let matching = files
            .iter_mut()
            .find(|f| f.as_ref().is_some_and(|(k, _)| *k == public));
        match matching {
            // The file is used through the agent: no passphrase needed.
            Some(slot) => {
                *slot = None;
                out.push(Source::Agent(a));
            }
            None if !identities_only => out.push(Source::Agent(a)),
            None => {}
        }
    }
    out.extend(files.into_iter().flatten().map(|(_, f)| Source::File(f)));
    out
}

/// Why a key file gave no usable key.
#[derive(Debug)]
pub enum KeyError {
    /// It could not be read or parsed.
    Load(String),
    /// It holds a public key; the private one is `private` when it exists
    /// beside it (the name without `.pub`).
    PublicKey {
        /// The private key's file, if there is one.
        private: Option<PathBuf>,
    },
    /// A private key in the old PEM form (PKCS#1, SEC1, PKCS#8), which
    /// only the OpenSSH form replaces here.
    OldPem(PathBuf),
    /// A key of a type this build cannot sign with (its description).
    Unsupported(String),
    /// Others may read it (its mode): ignored, as ssh ignores it.
    TooOpen(PathBuf, u32),
    /// It is passphrase-protected and nothing can ask for the passphrase.
    NoTerminal,
    /// The passphrase was wrong at each of the attempts.
    WrongPassphrase,
    /// An empty passphrase, or a cancelled askpass: this key is skipped.
    NoPassphrase,
    /// The user pressed the interrupt key at the prompt.
    Interrupted,
    /// Asking failed.
    Ask(String),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Load(e) => f.write_str(e),
            Self::PublicKey { private: Some(p) } => write!(
                f,
                "this is a public key; give the private key ({})",
                p.display()
            ),
            Self::PublicKey { private: None } => {
                f.write_str("this is a public key; give the private key file")
            }
            Self::OldPem(p) => write!(
                f,
                "a private key in the old PEM format; convert it to OpenSSH's \
                 with `ssh-keygen -p -f {}`",
                p.display()
            ),
            Self::Unsupported(what) => write!(
                f,
                "{what} keys are not supported by this build; use an Ed25519, \
                 RSA or ECDSA P-256 key"
            ),
            Self::TooOpen(p, mode) => write!(
                f,
                "permissions {mode:04o} are too open (others can read it), so it \
                 is ignored, as ssh does; chmod 600 {}",
                p.display()
            ),
            Self::NoTerminal => f.write_str(
                "passphrase-protected, and there is no terminal to ask on \
                 (SSH_ASKPASS with SSH_ASKPASS_REQUIRE=force can answer instead)",
            ),
            Self::WrongPassphrase => write!(f, "wrong passphrase ({ATTEMPTS} attempts)"),
            Self::NoPassphrase => f.write_str("no passphrase given"),
            Self::Interrupted => f.write_str("interrupted at the passphrase prompt"),
            Self::Ask(e) => write!(f, "asking for the passphrase: {e}"),
        }
    }
}

/// How many times a passphrase is asked (OpenSSH's
/// NumberOfPasswordPrompts default).
pub const ATTEMPTS: usize = 3;

/// Reads an OpenSSH private key file, protected or not. The public half
/// of a protected key is readable without the passphrase. As ssh, a
/// private key file of ours that others may read is refused.
pub fn read(path: &Path) -> Result<PrivateKey, KeyError> {
    use std::os::unix::fs::MetadataExt;
    let text = std::fs::read_to_string(path).map_err(|e| KeyError::Load(e.to_string()))?;
    let meta = std::fs::metadata(path).map_err(|e| KeyError::Load(e.to_string()))?;
    // ssh's sshkey_perm_ok: only a file we own is judged by its mode (and
    // a public key, world-readable as it should be, is said as such).
    let ours = meta.uid() == nix::unistd::geteuid().as_raw();
    if ours && meta.mode() & 0o077 != 0 && !is_public_key(&text) {
        return Err(KeyError::TooOpen(path.to_path_buf(), meta.mode() & 0o7777));
    }
    parse(path, &text)
}

/// Parses a private key file's text; says what it is when it is no
/// OpenSSH private key we can use (a public key, an old PEM key, a type
/// this build does not sign with).
pub fn parse(path: &Path, text: &str) -> Result<PrivateKey, KeyError> {
    let key = match PrivateKey::from_openssh(text) {
        Ok(k) => k,
        Err(e) => {
            return Err(if is_public_key(text) {
                KeyError::PublicKey {
                    private: private_beside(path),
                }
            } else if is_old_pem(text) {
                KeyError::OldPem(path.to_path_buf())
            } else {
                KeyError::Load(e.to_string())
            })
        }
    };
    if proto_ssh::sig::algs_for_key(key.public_key().key_data()).is_empty() {
        return Err(KeyError::Unsupported(describe(&key.algorithm())));
    }
    Ok(key)
}

/// An OpenSSH public key line (`ssh-ed25519 AAAA... comment`), or an
/// RFC 4716 / PEM public key.
fn is_public_key(text: &str) -> bool {
    let first = text.trim_start().lines().next().unwrap_or_default();
    ssh_key::PublicKey::from_openssh(first).is_ok()
        || first.starts_with("---- BEGIN SSH2 PUBLIC KEY")
        || first.starts_with("-----BEGIN PUBLIC KEY-----")
        || first.starts_with("-----BEGIN RSA PUBLIC KEY-----")
}

/// A private key in PEM form other than OpenSSH's own.
fn is_old_pem(text: &str) -> bool {
    let first = text.trim_start().lines().next().unwrap_or_default();
    [
        "-----BEGIN RSA PRIVATE KEY-----",
        "-----BEGIN EC PRIVATE KEY-----",
        "-----BEGIN DSA PRIVATE KEY-----",
        "-----BEGIN PRIVATE KEY-----",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----",
    ]
    .contains(&first.trim_end())
}

/// `F` for a public key file `F.pub`, when `F` exists.
fn private_beside(path: &Path) -> Option<PathBuf> {
    let private = path.to_str()?.strip_suffix(".pub")?;
    Path::new(private).is_file().then(|| PathBuf::from(private))
}

/// A key type as a user knows it, with its SSH name.
pub fn describe(alg: &ssh_key::Algorithm) -> String {
    use ssh_key::{Algorithm, EcdsaCurve};
    let name = match alg {
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        } => "ECDSA P-256",
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP384,
        } => "ECDSA P-384",
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP521,
        } => "ECDSA P-521",
        Algorithm::Dsa => "DSA",
        Algorithm::Ed25519 => "Ed25519",
        Algorithm::Rsa { .. } => "RSA",
        Algorithm::SkEcdsaSha2NistP256 | Algorithm::SkEd25519 => "security key (FIDO)",
        _ => return alg.as_str().to_string(),
    };
    format!("{name} ({})", alg.as_str())
}

/// The decrypted key: `key` itself if unprotected, else after asking for
/// the passphrase up to [`ATTEMPTS`] times with OpenSSH's prompt.
pub fn unlock(path: &Path, key: PrivateKey, asker: &Asker) -> Result<PrivateKey, KeyError> {
    if !key.is_encrypted() {
        return Ok(key);
    }
    if *asker == Asker::Nowhere {
        return Err(KeyError::NoTerminal);
    }
    let prompt = prompt(path);
    for _ in 0..ATTEMPTS {
        let secret = match passphrase::ask(asker, &prompt) {
            Ok(Answer::Given(s)) => s,
            Ok(Answer::Interrupted) => return Err(KeyError::Interrupted),
            Err(e) => return Err(KeyError::Ask(e.to_string())),
        };
        if secret.is_empty() {
            return Err(KeyError::NoPassphrase);
        }
        // ssh-key reports a wrong passphrase as a failed check of the
        // decrypted bytes; any failure is worth another attempt.
        if let Ok(k) = key.decrypt(secret.as_slice()) {
            return Ok(k);
        }
    }
    Err(KeyError::WrongPassphrase)
}

/// OpenSSH's prompt, with the path cut at 100 bytes as it does.
pub fn prompt(path: &Path) -> String {
    let shown = path.display().to_string();
    let mut cut = shown.len().min(100);
    while !shown.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("Enter passphrase for key '{}': ", &shown[..cut])
}

/// A key that says (cpu -d) when it is offered and when the server takes
/// it: proto-ssh's client asks for a key's public half once, as it
/// offers it, and signs only after the server's PK_OK.
pub struct Traced {
    /// The key.
    pub inner: Box<dyn Signer + Send>,
    /// How the lines name it: its source, type and fingerprint.
    pub name: String,
}

impl Traced {
    /// `inner`, named after `source` (a path, "agent key COMMENT").
    pub fn new(inner: Box<dyn Signer + Send>, source: &str) -> Self {
        let public = inner.public();
        let name = format!(
            "{source} ({} {})",
            public.algorithm().as_str(),
            public.fingerprint(ssh_key::HashAlg::Sha256)
        );
        Self { inner, name }
    }
}

impl fmt::Debug for Traced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Traced")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Signer for Traced {
    fn public(&self) -> &KeyData {
        crate::log::line(format_args!("offering {}", self.name));
        self.inner.public()
    }

    fn sign_as(&self, alg: SigAlg, data: &[u8]) -> Result<Vec<u8>, SigError> {
        crate::log::line(format_args!(
            "the server accepts {}; signing with {}",
            self.name,
            alg.name()
        ));
        self.inner.sign_as(alg, data)
    }
}

/// A key file to offer: its path and its key (perhaps still protected).
#[derive(Debug)]
pub struct KeyFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// The key.
    pub key: PrivateKey,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use ssh_key::private::Ed25519Keypair;

    fn public(seed: u8) -> KeyData {
        PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
            .public_key()
            .key_data()
            .clone()
    }

    #[test]
    fn agent_keys_first_and_files_held_by_the_agent_go_through_it() {
        let agent = vec![(public(1), "a1"), (public(2), "a2"), (public(3), "a3")];
        let files = vec![(public(4), "f4"), (public(2), "f2"), (public(5), "f5")];
        assert_eq!(
            order(agent, files, false),
            [
                Source::Agent("a1"),
                Source::Agent("a2"),
                Source::Agent("a3"),
                Source::File("f4"),
                Source::File("f5"),
            ]
        );
    }

    #[test]
    fn identities_only_keeps_agent_keys_that_match_a_file() {
        let agent = vec![(public(1), "a1"), (public(2), "a2")];
        let files = vec![(public(2), "f2"), (public(5), "f5")];
        assert_eq!(
            order(agent, files, true),
            [Source::Agent("a2"), Source::File("f5")]
        );
    }

    #[test]
    fn no_agent_keeps_the_file_order() {
        let files = vec![(public(2), "f2"), (public(1), "f1")];
        assert_eq!(
            order(Vec::<(KeyData, ())>::new(), files, false),
            [Source::File("f2"), Source::File("f1")]
        );
    }

    #[test]
    fn prompt_is_openssh_s() {
        assert_eq!(
            prompt(Path::new("/home/me/.ssh/id_ed25519")),
            "Enter passphrase for key '/home/me/.ssh/id_ed25519': "
        );
        let long = format!("/{}", "é".repeat(80));
        assert!(prompt(Path::new(&long)).len() <= 100 + 31);
    }

    /// A throwaway ECDSA P-384 key (ssh-keygen -t ecdsa -b 384).
    const P384: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAiAAAABNlY2RzYS
1zaGEyLW5pc3RwMzg0AAAACG5pc3RwMzg0AAAAYQSDEPe8tOaoodMf7qWY/FNOw8Ml7brr
UPBE5yVFjTXCOaFHobvXC2HialuBYKCioEThyY3rSTpUmz6yDsy6Ni5SOMTnvpK65ybWAb
AV806G6mREOzGK/rlJKyT08TkWtAYAAADQIdjkaCHY5GgAAAATZWNkc2Etc2hhMi1uaXN0
cDM4NAAAAAhuaXN0cDM4NAAAAGEEgxD3vLTmqKHTH+6lmPxTTsPDJe2661DwROclRY01wj
mhR6G71wth4mpbgWCgoqBE4cmN60k6VJs+sg7MujYuUjjE576Suucm1gGwFfNOhupkRDsx
iv65SSsk9PE5FrQGAAAAMQCqi02pYbIKHVHa+pJ03yFViaUNU1heGYqcSM6NtDP5mtEUux
HQsK2coKDYEvZh/AIAAAAHZml4dHVyZQ==
-----END OPENSSH PRIVATE KEY-----
";

    #[test]
    fn a_p384_key_is_named_as_unsupported() {
        let err = parse(Path::new("k"), P384).unwrap_err().to_string();
        assert_eq!(
            err,
            "ECDSA P-384 (ecdsa-sha2-nistp384) keys are not supported by this build; \
             use an Ed25519, RSA or ECDSA P-256 key"
        );
    }

    #[test]
    fn a_public_key_points_at_the_private_one_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("id");
        let k = PrivateKey::from(Ed25519Keypair::from_seed(&[3; 32]));
        let line = k.public_key().to_openssh().unwrap();
        let public = dir.path().join("id.pub");
        let err = parse(&public, &line).unwrap_err().to_string();
        assert_eq!(err, "this is a public key; give the private key file");
        std::fs::write(&private, "").unwrap();
        let err = parse(&public, &line).unwrap_err().to_string();
        let want = format!(
            "this is a public key; give the private key ({})",
            private.display()
        );
        assert_eq!(err, want);
    }

    #[test]
    fn an_old_pem_key_is_told_how_to_convert() {
        let text = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n";
        let err = parse(Path::new("/k"), text).unwrap_err().to_string();
        assert!(
            err.contains("old PEM format") && err.ends_with("ssh-keygen -p -f /k`"),
            "{err}"
        );
    }

    #[test]
    fn a_key_others_may_read_is_refused_with_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id");
        let k = PrivateKey::from(Ed25519Keypair::from_seed(&[4; 32]));
        std::fs::write(&path, k.to_openssh(ssh_key::LineEnding::LF).unwrap()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read(&path).unwrap_err();
        assert!(matches!(err, KeyError::TooOpen(_, 0o644)), "{err:?}");
        assert!(
            err.to_string().starts_with("permissions 0644 are too open"),
            "{err}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(read(&path).is_ok_and(|r| r == k));
    }

    #[test]
    fn unprotected_keys_need_no_asking() {
        let k = PrivateKey::from(Ed25519Keypair::from_seed(&[9; 32]));
        let got = unlock(Path::new("k"), k.clone(), &Asker::Nowhere);
        assert!(matches!(got, Ok(g) if g == k));
    }
}
