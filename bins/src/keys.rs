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
/// of a protected key is readable without the passphrase.
pub fn read(path: &Path) -> Result<PrivateKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|e| KeyError::Load(e.to_string()))?;
    PrivateKey::from_openssh(text).map_err(|e| KeyError::Load(e.to_string()))
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

    #[test]
    fn unprotected_keys_need_no_asking() {
        let k = PrivateKey::from(Ed25519Keypair::from_seed(&[9; 32]));
        let got = unlock(Path::new("k"), k.clone(), &Asker::Nowhere);
        assert!(matches!(got, Ok(g) if g == k));
    }
}
