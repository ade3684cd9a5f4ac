//! cpud's login policy: the keys of an authorized_keys file (all of
//! them, not only the first as in the reference), or no login check at
//! all with `-pk ""`, as the reference has it.

use std::collections::HashSet;
use std::path::Path;

use proto_ssh::auth::AuthPolicy;
use ssh_key::public::KeyData;
use ssh_key::PublicKey;

/// Who may log in.
#[derive(Debug, Clone)]
pub enum Policy {
    /// The keys of the file.
    Keys(HashSet<KeyData>),
    /// `-pk ""`: anyone, with `none`.
    Anyone,
}

impl Policy {
    /// The keys of `path` in authorized_keys format; options before a
    /// key (`from=...`, `command=...`) are refused rather than ignored,
    /// since we do not enforce them.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|(line, e)| format!("{}:{line}: {e}", path.display()))
    }

    /// Parses authorized_keys text; an error names the line.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut keys = HashSet::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = PublicKey::from_openssh(line).map_err(|e| (i + 1, e.to_string()))?;
            keys.insert(key.key_data().clone());
        }
        if keys.is_empty() {
            return Err((0, "no keys".into()));
        }
        Ok(Self::Keys(keys))
    }
}

impl AuthPolicy for Policy {
    fn allow_key(&mut self, _user: &str, key: &KeyData) -> bool {
        match self {
            Self::Keys(keys) => keys.contains(key),
            Self::Anyone => true,
        }
    }

    fn allow_none(&mut self, _user: &str) -> bool {
        matches!(self, Self::Anyone)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const ED: &str = include_str!("../../proto-ssh/tests/keys/sig_ed25519.pub");

    #[test]
    fn every_key_of_the_file_counts() {
        let rsa = include_str!("../../proto-ssh/tests/keys/sig_rsa.pub");
        let text = format!("# comment\n\n{}\n{}\n", ED.trim(), rsa.trim());
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
}
