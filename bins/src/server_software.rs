//! Which SSH servers `cpu` logs in to: cpud (ours, `cpu_rs_*`; u-root's,
//! `Go`) and any server it does not know, but not the usual plain SSH
//! servers. Their login shell would get the reference's command string
//! (`-port9p=N 'cmd'`) and print its usage, which tells the user nothing;
//! refusing them by their identification, before any key is offered,
//! says what is wrong instead.

use std::sync::{Arc, Mutex, PoisonError};

use proto_ssh::transport::HostKeyCheck;
use ssh_key::public::KeyData;

/// Whether `software` (the identification's software version) names a
/// plain SSH server that cannot be cpud: OpenSSH's sshd (also "for
/// Windows") or Dropbear.
pub fn plain_ssh_server(software: &[u8]) -> bool {
    software.starts_with(b"OpenSSH_") || software.to_ascii_lowercase().starts_with(b"dropbear")
}

/// A host key check that also refuses [`plain_ssh_server`]s, leaving
/// their software version in `seen` for the message.
pub struct CpudOnly {
    /// The check of the host key itself.
    pub inner: Box<dyn HostKeyCheck + Send>,
    /// The refused server's software version.
    pub seen: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for CpudOnly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpudOnly")
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

impl HostKeyCheck for CpudOnly {
    fn check(&mut self, key: &KeyData) -> bool {
        self.inner.check(key)
    }

    fn check_software(&mut self, software_version: &[u8]) -> bool {
        if plain_ssh_server(software_version) {
            // Printed to a terminal: only printable ASCII of it.
            let text = software_version
                .iter()
                .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
                .collect();
            *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = Some(text);
            return false;
        }
        self.inner.check_software(software_version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openssh_and_dropbear_are_plain_ssh_and_others_are_not() {
        for s in [
            &b"OpenSSH_9.2p1"[..],
            b"OpenSSH_for_Windows_8.1",
            b"dropbear_2022.83",
            b"dropbear",
        ] {
            assert!(plain_ssh_server(s), "{s:?}");
        }
        for s in [&b"Go"[..], b"cpu_rs_0.1", b"libssh_0.10.6", b"OpenSSHish"] {
            assert!(!plain_ssh_server(s), "{s:?}");
        }
    }
}
