//! Sessions that are not cpu sessions, run as OpenSSH's sshd runs them.
//! A cpu session is one whose client sent one of the cpu setup variables
//! ([`SETUP_ENV`]: u-root/cpu's client always sends CPU_FSTAB); it keeps
//! the reference's argument handling. Any other session is plain SSH
//! (ssh, scp, sftp, rsync, Ansible): its command string goes to the
//! account's login shell as `SHELL -c 'string'`, a `shell` request starts
//! that shell as a login shell (argv[0] `-sh`), both in the account's home
//! directory, and the `sftp` subsystem runs the host's `sftp-server`.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use runtime_std::ssh::session::SessionSetup;

use crate::remote::SETUP_ENV;

/// Where distributions put OpenSSH's sftp-server, tried in order when
/// cpud has no `-sftp`: Debian and Ubuntu; Alpine and Arch; buildroot,
/// the BSDs and a default OpenSSH build; Fedora and RHEL; Gentoo.
pub const SFTP_SERVERS: &[&str] = &[
    "/usr/lib/openssh/sftp-server",
    "/usr/lib/ssh/sftp-server",
    "/usr/libexec/sftp-server",
    "/usr/libexec/openssh/sftp-server",
    "/usr/lib/misc/sftp-server",
    "/usr/local/libexec/sftp-server",
];

/// The shell of an account whose passwd entry has none (as sshd).
const DEFAULT_SHELL: &str = "/bin/sh";

/// PATH for a plain session when cpud itself has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Whether the client is a cpu client: it sent CPUNONCE, CPU_FSTAB or
/// LC_GLENDA_CPU_FSTAB (any value, even empty).
pub fn is_cpu_session(setup: &SessionSetup) -> bool {
    setup
        .env
        .iter()
        .any(|(name, _)| SETUP_ENV.contains(&name.as_str()))
}

/// The account a plain session runs as, from its passwd entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// The account's name; `None` when cpud's own uid has no entry.
    pub name: Option<String>,
    /// Its login shell (/bin/sh when the entry names none).
    pub shell: PathBuf,
    /// Its home directory; `None` when there is no entry.
    pub home: Option<PathBuf>,
}

impl Login {
    /// The entry of `account` (cpud `-accounts`: the SSH user), else of
    /// cpud's own uid. An account with no entry gets /bin/sh and no home
    /// (the session child then refuses an unknown `-accounts` user).
    pub fn of(account: Option<&str>) -> Self {
        use nix::unistd::{getuid, User};
        let user = match account {
            Some(name) => User::from_name(name),
            None => User::from_uid(getuid()),
        }
        .ok()
        .flatten();
        match user {
            Some(u) => Self::from_entry(u.name, u.shell, u.dir),
            None => Self {
                name: account.map(str::to_string),
                shell: DEFAULT_SHELL.into(),
                home: None,
            },
        }
    }

    fn from_entry(name: String, shell: PathBuf, home: PathBuf) -> Self {
        let shell = if shell.as_os_str().is_empty() {
            DEFAULT_SHELL.into()
        } else {
            shell
        };
        Self {
            name: Some(name),
            shell,
            home: Some(home),
        }
    }

    /// Where the session starts: the home directory, or `/` when it does
    /// not exist (sshd does the same).
    pub fn start_dir(&self) -> PathBuf {
        match &self.home {
            Some(h) if h.is_dir() => h.clone(),
            _ => PathBuf::from("/"),
        }
    }

    /// The login shell's argv[0]: `-` and its file name (`-bash`).
    pub fn login_argv0(&self) -> OsString {
        let base = self.shell.file_name().unwrap_or(self.shell.as_os_str());
        let mut a0 = OsString::from("-");
        a0.push(base);
        a0
    }
}

/// What a plain session runs: the program and its arguments, and the
/// argv[0] to give it when that differs from the program (a login shell).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The program, then its arguments.
    pub argv: Vec<OsString>,
    /// argv[0], when not the program's path.
    pub argv0: Option<OsString>,
}

/// The plan for a plain session that `exec`s `command` (`None`: `shell`)
/// as `login`. The command string goes to the shell byte for byte.
pub fn shell_plan(login: &Login, command: Option<&[u8]>) -> Plan {
    let shell = login.shell.clone().into_os_string();
    match command {
        Some(raw) => Plan {
            argv: vec![shell, "-c".into(), OsString::from_vec(raw.to_vec())],
            argv0: None,
        },
        None => Plan {
            argv: vec![shell],
            argv0: Some(login.login_argv0()),
        },
    }
}

/// The environment of a plain session, as sshd builds it: PATH (cpud's
/// own, else the usual one), HOME, USER, LOGNAME and SHELL of the
/// account, then the client's `env` requests but LD_*, then PWD (where
/// it starts).
pub fn environment(
    login: &Login,
    client: &[(String, Vec<u8>)],
    cpud_path: Option<OsString>,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = Vec::new();
    let path = cpud_path
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| DEFAULT_PATH.into());
    env.push(("PATH".into(), path));
    if let Some(home) = &login.home {
        env.push(("HOME".into(), home.clone().into_os_string()));
    }
    if let Some(name) = &login.name {
        env.push(("USER".into(), name.into()));
        env.push(("LOGNAME".into(), name.into()));
    }
    env.push(("SHELL".into(), login.shell.clone().into_os_string()));
    // Not the dynamic loader's: `cpud -remote` starts as root (-accounts)
    // before it becomes the account.
    for (k, v) in client.iter().filter(|(k, _)| !k.starts_with("LD_")) {
        env.push((k.into(), OsString::from_vec(v.clone())));
    }
    env.push(("PWD".into(), login.start_dir().into_os_string()));
    env
}

/// The sftp-server to run: `flag` (cpud `-sftp`) when given, else the
/// first of [`SFTP_SERVERS`] that exists. The error names what is
/// missing and what to do, for the user and for cpud's log.
pub fn sftp_server(flag: Option<&Path>) -> Result<PathBuf, String> {
    match flag {
        Some(p) => runnable(p).map(|()| p.to_path_buf()).map_err(|e| {
            format!(
                "the sftp subsystem's program {} (cpud -sftp) cannot run: {e}",
                p.display()
            )
        }),
        None => SFTP_SERVERS
            .iter()
            .map(Path::new)
            .find(|p| runnable(p).is_ok())
            .map(Path::to_path_buf)
            .ok_or_else(|| {
                format!(
                    "no sftp-server on this host (looked for {}): install OpenSSH's \
                     sftp-server, or give cpud -sftp PATH",
                    SFTP_SERVERS.join(", ")
                )
            }),
    }
}

/// An executable regular file.
fn runnable(p: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(p).map_err(|e| match e.raw_os_error() {
        // "No such file or directory", without Rust's "(os error 2)".
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_string(),
        None => e.to_string(),
    })?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err("not executable".into());
    }
    Ok(())
}

/// The refusal of a subsystem other than sftp.
pub fn unknown_subsystem(name: &str) -> String {
    format!("no subsystem {name:?} here (cpud serves sftp only)")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
    use std::os::unix::ffi::OsStrExt;

    fn login(shell: &str, home: &str) -> Login {
        Login::from_entry("u".into(), shell.into(), home.into())
    }

    #[test]
    fn cpu_sessions_are_those_with_a_setup_variable() {
        let mut s = SessionSetup::default();
        assert!(!is_cpu_session(&s));
        s.env.push(("LANG".into(), b"C".to_vec()));
        assert!(!is_cpu_session(&s));
        for name in SETUP_ENV {
            let mut t = s.clone();
            t.env.push(((*name).into(), Vec::new()));
            assert!(is_cpu_session(&t), "{name}");
        }
        // Only the exact names count.
        s.env.push(("CPU_FSTAB_X".into(), Vec::new()));
        assert!(!is_cpu_session(&s));
    }

    #[test]
    fn an_empty_passwd_shell_is_bin_sh() {
        assert_eq!(login("", "/h").shell, PathBuf::from("/bin/sh"));
        assert_eq!(login("/bin/bash", "/h").login_argv0(), "-bash");
        assert_eq!(login("", "/h").login_argv0(), "-sh");
    }

    #[test]
    fn a_missing_home_starts_in_root() {
        assert_eq!(login("/bin/sh", "/").start_dir(), PathBuf::from("/"));
        assert_eq!(
            login("/bin/sh", "/nonexistent-cpu-rs").start_dir(),
            PathBuf::from("/")
        );
        let dir = std::env::temp_dir();
        assert_eq!(login("/bin/sh", dir.to_str().unwrap()).start_dir(), dir);
    }

    #[test]
    fn shell_request_is_a_login_shell() {
        let p = shell_plan(&login("/bin/zsh", "/"), None);
        assert_eq!(p.argv, vec![OsString::from("/bin/zsh")]);
        assert_eq!(p.argv0, Some("-zsh".into()));
    }

    #[test]
    fn the_environment_ends_with_the_start_dir() {
        let l = login("/bin/sh", "/nonexistent-cpu-rs");
        let env = environment(
            &l,
            &[
                ("PWD".into(), b"/elsewhere".to_vec()),
                ("LD_PRELOAD".into(), b"/tmp/x.so".to_vec()),
                ("LANG".into(), b"C".to_vec()),
            ],
            Some("/p".into()),
        );
        let get = |k: &str| {
            env.iter()
                .rev()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("PATH"), Some("/p".into()));
        assert_eq!(get("SHELL"), Some("/bin/sh".into()));
        assert_eq!(get("USER"), Some("u".into()));
        assert_eq!(get("HOME"), Some("/nonexistent-cpu-rs".into()));
        assert_eq!(get("PWD"), Some("/".into()));
        assert_eq!(get("LANG"), Some("C".into()));
        assert_eq!(get("LD_PRELOAD"), None);
        let none = environment(&l, &[], None);
        assert!(none.iter().any(|(k, v)| k == "PATH" && v == DEFAULT_PATH));
    }

    #[test]
    fn sftp_server_names_what_is_missing() {
        let e = sftp_server(Some(Path::new("/nonexistent/sftp-server"))).unwrap_err();
        assert!(e.contains("/nonexistent/sftp-server"), "{e}");
        assert!(e.ends_with("No such file or directory"), "{e}");
        let e = sftp_server(Some(Path::new("/"))).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        let sh = Path::new("/bin/sh");
        assert_eq!(sftp_server(Some(sh)).unwrap(), sh);
        // The default list: found, or an error that lists every path.
        match sftp_server(None) {
            Ok(p) => assert!(SFTP_SERVERS.contains(&p.to_str().unwrap())),
            Err(e) => assert!(SFTP_SERVERS.iter().all(|p| e.contains(p)), "{e}"),
        }
    }

    proptest! {
        /// Any command string reaches the shell unchanged, as one argument.
        #[test]
        fn command_bytes_reach_the_shell_as_one_argument(
            raw in proptest::collection::vec(1u8..=255, 0..64)
        ) {
            let p = shell_plan(&login("/bin/sh", "/"), Some(&raw));
            prop_assert_eq!(p.argv.len(), 3);
            prop_assert_eq!(p.argv[2].as_bytes(), &raw[..]);
            prop_assert_eq!(p.argv0, None);
        }
    }
}
