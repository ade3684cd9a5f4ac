//! What `cpu` does with its flags before it connects: the host, user,
//! port and keys from the flags and ssh_config, the namespace, the host
//! key check. Shared by `cpu` and `decpu` (which finds the host first).

use std::path::{Path, PathBuf};

use crate::cli::CpuArgs;
use crate::client::{exit, Failure, Options};
use crate::debug;
use crate::keys::{self, KeyError, KeyFile};
use crate::known_hosts::{self, PinnedHostKey, TofuCheck};
use crate::net::{Net, Target};
use crate::server_software::CpudOnly;
use crate::{agent, namespace, passphrase, ssh_config};
use proto_ssh::connection::Keepalive;
use proto_ssh::sig::Signer;
use proto_ssh::transport::AcceptAnyHostKey;
use std::sync::{Arc, Mutex};

/// cpud's port, unless a flag or ssh_config says otherwise (the
/// reference silently falls back to 22; we do not).
pub const DEFAULT_PORT: u16 = 17010;

/// Debug output: `-d`, or `-dump` (which sends it to a file).
fn debug(a: &CpuArgs) -> bool {
    a.d || a.dump
}

fn usage(msg: impl Into<String>) -> Failure {
    Failure {
        message: msg.into(),
        code: exit::USAGE,
    }
}

/// Resolves flags into what a run needs.
pub fn options(a: &CpuArgs) -> Result<Options, Failure> {
    let net = Net::parse(&a.net).map_err(usage)?;
    if a.nfs || a.sshd || !a.cpio.is_empty() {
        // The reference's NFS mode for OpenSSH servers; cpu serves 9P only.
        return Err(usage(
            "-nfs, -sshd and -cpio (NFS mode for an OpenSSH server) are not supported; \
             use cpud, or -ssh for plain ssh",
        ));
    }
    if a.dump {
        let path =
            crate::log::to_temp_file("cpu-dump-").map_err(|e| usage(format!("-dump: {e}")))?;
        eprintln!("cpu: debug output and 9P trace in {}", path.display());
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let local_user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let resolved = ssh_config_for(&a.host, &home, &local_user)?;
    let user = resolved.user.clone().unwrap_or_else(|| local_user.clone());
    let host = resolved.host.clone();
    // -sp, else ssh_config's Port, else cpud's port (never 22 by accident).
    // (For vsock, Target reads -sp itself, in any base as the reference.)
    let port = match a.sp.as_str() {
        "" => resolved.port.unwrap_or(DEFAULT_PORT),
        _ if matches!(net, Net::Vsock | Net::UnixVsock) => DEFAULT_PORT,
        sp => sp
            .parse()
            .map_err(|_| usage(format!("-sp {sp:?}: not a port number")))?,
    };
    let target = Target::new(net, &host, &a.sp, port).map_err(usage)?;
    let messages = Arc::new(Mutex::new(Vec::new()));
    let keys = if a.use_key {
        keys(a, &resolved)?
    } else {
        Vec::new()
    };
    // Plain ssh: no forward, no namespace.
    let ninep = a.ninep && !a.ssh;
    // CPU_FSTAB is never empty, even with -ssh or -9p=false: the
    // reference always sends it, and cpud knows a cpu client by it.
    let fstab = {
        let user_fstab = match a.fstab.as_str() {
            "" => String::new(),
            f => std::fs::read_to_string(f).map_err(|e| usage(format!("-fstab {f}: {e}")))?,
        };
        // -ssh empties the namespace, as in the reference.
        let binds = if a.ssh {
            String::new()
        } else {
            namespace::parse_binds(&a.namespace).map_err(|e| usage(format!("-namespace: {e}")))?
        };
        namespace::join_fstab(&user_fstab, &binds)
    };
    let host_key_check: Box<dyn proto_ssh::transport::HostKeyCheck + Send> = if !a.hk.is_empty() {
        let mut pin =
            PinnedHostKey::load(&expand_home(&a.hk)).map_err(|e| usage(format!("-hk {e}")))?;
        pin.messages = messages.clone();
        Box::new(pin)
    } else if a.hostkeycheck {
        // UserKnownHostsFile's first file: the one ssh writes to.
        let path = match resolved.known_hosts_files.first() {
            Some(f) => Some(PathBuf::from(f)),
            None => known_hosts::default_path(),
        }
        .ok_or_else(|| {
            usage("no $HOME for ~/.ssh/known_hosts: set HOME, or give -hostkeycheck=false")
        })?;
        let (kh_host, kh_port) = target.known_hosts_name();
        let mut check = TofuCheck::new(path.clone(), &kh_host, kh_port)
            .map_err(|e| usage(format!("{}: {e}", path.display())))?;
        check.messages = messages.clone();
        check.strict = resolved.strict.unwrap_or_default();
        Box::new(check)
    } else {
        Box::new(AcceptAnyHostKey)
    };
    // -ssh is for any SSH server; without it, a plain one is refused.
    let not_cpud = Arc::new(Mutex::new(None));
    let host_key_check: Box<dyn proto_ssh::transport::HostKeyCheck + Send> = if a.ssh {
        host_key_check
    } else {
        Box::new(CpudOnly {
            inner: host_key_check,
            seen: not_cpud.clone(),
        })
    };
    Ok(Options {
        not_cpud,
        target,
        user,
        keys,
        host_key_check,
        messages,
        ninep,
        root: PathBuf::from(&a.root),
        fstab,
        cmd: a.cmd.clone(),
        debug: debug(a),
        dbg9p: a.dbg9p || a.dump,
        connect_timeout: resolved
            .connect_timeout
            .unwrap_or(crate::client::DEFAULT_CONNECT_TIMEOUT),
        keepalive: resolved.keepalive.map(|(interval, max_missed)| Keepalive {
            interval,
            max_missed,
        }),
    })
}

/// The keys to offer: the agent's (`SSH_AUTH_SOCK`) and the key files,
/// in OpenSSH's order (see `cpu_bins::keys`). The files are the `-key`
/// file, else ssh_config's IdentityFile entries, else the usual keys of
/// ~/.ssh that exist. Protected files not held by the agent are unlocked
/// here, asking for their passphrase.
fn keys(
    a: &CpuArgs,
    resolved: &ssh_config::Resolved,
) -> Result<Vec<Box<dyn Signer + Send>>, Failure> {
    let files = key_files(a, &resolved.identity_files)?;
    let agent = agent_keys(debug(a));
    let files = files
        .into_iter()
        .map(|f| (f.key.public_key().key_data().clone(), f))
        .collect();
    let agent = agent
        .into_iter()
        .map(|k| (k.key_data().clone(), k))
        .collect();
    let mut asker = None;
    let mut out: Vec<Box<dyn Signer + Send>> = Vec::new();
    let mut skipped = Vec::new();
    for source in keys::order(agent, files, resolved.identities_only) {
        match source {
            keys::Source::Agent(k) => {
                let source = format!("agent key {}", k.comment);
                out.push(traced(debug(a), Box::new(k), &source));
            }
            keys::Source::File(f) => {
                let unlocked = if f.key.is_encrypted() {
                    // Chosen once, and only when a key needs it: the choice
                    // opens /dev/tty.
                    let asker = asker.get_or_insert_with(|| {
                        passphrase::choose(|v| std::env::var_os(v), passphrase::tty_available())
                    });
                    keys::unlock(&f.path, f.key, asker)
                } else {
                    Ok(f.key)
                };
                match unlocked {
                    Ok(k) => {
                        let source = format!("key file {}", f.path.display());
                        out.push(traced(debug(a), Box::new(k), &source));
                    }
                    Err(KeyError::Interrupted) => {
                        return Err(Failure {
                            message: "interrupted".into(),
                            code: exit::INTERRUPTED,
                        })
                    }
                    Err(e) => skipped.push(format!("key {}: {e}", f.path.display())),
                }
            }
        }
    }
    if out.is_empty() {
        // One clear line: why the last key could not be used.
        return Err(match skipped.pop() {
            Some(message) => Failure {
                message,
                code: exit::AUTH,
            },
            None => usage("no key: give -key FILE, create ~/.ssh/id_ed25519, or start ssh-agent"),
        });
    }
    for line in skipped {
        eprintln!("cpu: {line}");
    }
    Ok(out)
}

/// With -d, `key` says when it is offered and when it is accepted.
fn traced(debug: bool, key: Box<dyn Signer + Send>, source: &str) -> Box<dyn Signer + Send> {
    if debug {
        Box::new(keys::Traced::new(key, source))
    } else {
        key
    }
}

/// The agent's keys, if `SSH_AUTH_SOCK` names one that answers; as
/// OpenSSH, an agent that cannot be reached is no error.
fn agent_keys(debug: bool) -> Vec<agent::AgentKey> {
    let Some(sock) = std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty()) else {
        return Vec::new();
    };
    let got = agent::Agent::connect(Path::new(&sock)).and_then(|ag| agent::keys(&ag));
    match got {
        Ok(k) => k,
        Err(e) => {
            debug!(debug, "agent {}: {e}", Path::new(&sock).display());
            Vec::new()
        }
    }
}

/// The `-key` file, else ssh_config's IdentityFile entries that exist,
/// else the usual keys of ~/.ssh that exist; none of them unlocked yet.
/// A `-key` that cannot be used ends cpu; of the others, one that others
/// may read or of a type we cannot sign with is left out with a line
/// (as ssh does), and so is a default key that cannot be read.
fn key_files(a: &CpuArgs, identity_files: &[String]) -> Result<Vec<KeyFile>, Failure> {
    let failed = |path: &Path, e: &KeyError| usage(format!("key {}: {e}", path.display()));
    if !a.key.is_empty() {
        let path = expand_home(&a.key);
        return match keys::read(&path) {
            Ok(key) => Ok(vec![KeyFile { path, key }]),
            Err(e) => Err(failed(&path, &e)),
        };
    }
    let mut files = Vec::new();
    for f in identity_files {
        let path = expand_home(f);
        if !path.exists() {
            debug!(debug(a), "IdentityFile {} does not exist", path.display());
            continue;
        }
        match keys::read(&path) {
            Ok(key) => files.push(KeyFile { path, key }),
            Err(e @ (KeyError::TooOpen(..) | KeyError::Unsupported(_))) => {
                eprintln!("cpu: key {}: {e}", path.display());
            }
            Err(e) => return Err(failed(&path, &e)),
        }
    }
    if !files.is_empty() {
        return Ok(files);
    }
    if let Some(home) = std::env::var_os("HOME").map(PathBuf::from) {
        for name in ["id_ed25519", "id_ecdsa", "id_rsa", "cpu_rsa", "identity"] {
            let path = home.join(".ssh").join(name);
            if !path.exists() {
                continue;
            }
            match keys::read(&path) {
                Ok(key) => files.push(KeyFile { path, key }),
                Err(e @ (KeyError::TooOpen(..) | KeyError::Unsupported(_))) => {
                    eprintln!("cpu: key {}: {e}", path.display());
                }
                Err(e) => debug!(debug(a), "skipping {}: {e}", path.display()),
            }
        }
    }
    Ok(files)
}

/// Reads ssh_config files and lists the directories of Include globs.
struct FsLoader;

impl ssh_config::IncludeLoader for FsLoader {
    fn load(&mut self, path: &str) -> Result<Option<String>, String> {
        use std::io::ErrorKind;
        match std::fs::read_to_string(path) {
            Ok(t) => Ok(Some(t)),
            // A glob may name a directory, or a path through a file: ssh
            // reads nothing there.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::NotFound | ErrorKind::IsADirectory | ErrorKind::NotADirectory
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(format!("{path}: {e}")),
        }
    }

    fn list(&mut self, dir: &str) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect()
    }
}

/// Host, user, port, keys and connection settings from `~/.ssh/config`,
/// then `/etc/ssh/ssh_config` (the first value found wins), as OpenSSH
/// reads them. Missing files are no error; what cannot be honoured (a
/// `Match exec`) is said in one line each.
fn ssh_config_for(host_arg: &str, home: &str, user: &str) -> Result<ssh_config::Resolved, Failure> {
    use ssh_config::IncludeLoader;
    let user_dir = format!("{home}/.ssh");
    let files = [
        (format!("{user_dir}/config"), user_dir.clone()),
        ("/etc/ssh/ssh_config".to_string(), "/etc/ssh".to_string()),
    ];
    let mut configs = Vec::new();
    for (file, include_dir) in &files {
        let Some(text) = FsLoader.load(file).map_err(usage)? else {
            continue;
        };
        let env = ssh_config::ParseEnv { home, include_dir };
        let config = ssh_config::parse(file, &text, &env, &mut FsLoader)
            .map_err(|e| usage(format!("{e}")))?;
        for w in &config.warnings {
            eprintln!("cpu: {w}");
        }
        configs.push(config);
    }
    let refs: Vec<&ssh_config::Config> = configs.iter().collect();
    ssh_config::resolve(host_arg, &refs, &ssh_config::LocalEnv { home, user })
        .map_err(|e| usage(format!("{e}")))
}

fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(p),
    }
}
