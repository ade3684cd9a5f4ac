//! cpud's host key: the `-hk` file, or one Ed25519 key generated on the
//! first start and kept, so that clients see the same host key every
//! time (the reference makes a new RSA key at every start).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ssh_key::{Algorithm, LineEnding, PrivateKey};

/// Where the generated key is kept: `$CPUD_STATE_DIR`, else
/// `/var/lib/cpud` for root, else `$HOME/.local/state/cpud`.
pub fn default_path() -> PathBuf {
    let dir = match std::env::var_os("CPUD_STATE_DIR") {
        Some(d) => PathBuf::from(d),
        None if nix::unistd::geteuid().is_root() => PathBuf::from("/var/lib/cpud"),
        None => {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
            Path::new(&home).join(".local/state/cpud")
        }
    };
    dir.join("ssh_host_ed25519_key")
}

/// Reads the key at `path`; a public key, an old PEM key or a type we
/// cannot sign with is said as such (see [`crate::keys::parse`]).
pub fn load(path: &Path) -> Result<PrivateKey, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("host key {}: {e}", path.display()))?;
    crate::keys::parse(path, &text).map_err(|e| format!("host key {}: {e}", path.display()))
}

/// Reads the key at `path`, or makes one there (mode 0600, in a 0700
/// folder) if there is none. Returns the key and whether it is new.
pub fn load_or_create(path: &Path) -> Result<(PrivateKey, bool), String> {
    match fs::metadata(path) {
        Ok(_) => load(path).map(|k| (k, false)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let key = PrivateKey::random(&mut rand_core::OsRng, Algorithm::Ed25519)
                .map_err(|e| format!("generating a host key: {e}"))?;
            write(path, &key).map_err(|e| format!("host key {}: {e}", path.display()))?;
            Ok((key, true))
        }
        Err(e) => Err(format!("host key {}: {e}", path.display())),
    }
}

fn write(path: &Path, key: &PrivateKey) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| io::Error::other(e.to_string()))?;
    // Written beside and renamed: a crash leaves no half key.
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn generated_once_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/key");
        let (first, new) = load_or_create(&path).unwrap();
        assert!(new);
        let (again, new) = load_or_create(&path).unwrap();
        assert!(!new);
        assert_eq!(first.public_key(), again.public_key());
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn unreadable_key_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        fs::write(&path, "not a key").unwrap();
        let err = load_or_create(&path).unwrap_err();
        assert!(err.contains("host key"), "{err}");
    }

    #[test]
    fn a_public_key_is_said_to_be_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let (key, _) = load_or_create(&path).unwrap();
        let public = dir.path().join("key.pub");
        fs::write(&public, key.public_key().to_openssh().unwrap()).unwrap();
        let err = load(&public).unwrap_err();
        let want = format!(
            "this is a public key; give the private key ({})",
            path.display()
        );
        assert!(err.ends_with(&want), "{err}");
    }
}
