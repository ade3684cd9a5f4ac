//! What `cpu` does with its flags before it connects: the host, user,
//! port and keys from the flags and ssh_config, the namespace, the host
//! key check. Shared by `cpu` and `decpu` (which finds the host first).

use std::path::{Path, PathBuf};

use crate::cli::CpuArgs;
use crate::client::{exit, Failure, Options};
use crate::known_hosts::{self, TofuCheck};
use crate::net::{Net, Target};
use crate::{namespace, ssh_config};
use proto_ssh::transport::AcceptAnyHostKey;
use ssh_key::PrivateKey;
use std::sync::{Arc, Mutex};

/// cpud's port, unless a flag or ssh_config says otherwise (the
/// reference silently falls back to 22; we do not).
pub const DEFAULT_PORT: u16 = 17010;

fn usage(msg: impl Into<String>) -> Failure {
    Failure {
        message: msg.into(),
        code: exit::USAGE,
    }
}

/// Resolves flags into what a run needs.
pub fn options(a: &CpuArgs) -> Result<Options, Failure> {
    let net = Net::parse(&a.net).map_err(usage)?;
    let home = std::env::var("HOME").unwrap_or_default();
    let local_user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let resolved = ssh_config_for(&a.host, &home, &local_user, a.d)?;
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
        keys(a, &resolved.identity_files)?
    } else {
        Vec::new()
    };
    // Plain ssh: no forward, no namespace.
    let ninep = a.ninep && !a.ssh;
    let fstab = if a.ssh {
        String::new()
    } else {
        let user_fstab = match a.fstab.as_str() {
            "" => String::new(),
            f => std::fs::read_to_string(f).map_err(|e| usage(format!("-fstab {f}: {e}")))?,
        };
        let binds =
            namespace::parse_binds(&a.namespace).map_err(|e| usage(format!("-namespace: {e}")))?;
        namespace::join_fstab(&user_fstab, &binds)
    };
    let host_key_check: Box<dyn proto_ssh::transport::HostKeyCheck + Send> = if a.hostkeycheck {
        let path = known_hosts::default_path().ok_or_else(|| {
            usage("no $HOME for ~/.ssh/known_hosts: set HOME, or give -hostkeycheck=false")
        })?;
        let (kh_host, kh_port) = target.known_hosts_name();
        let mut check = TofuCheck::new(path.clone(), &kh_host, kh_port)
            .map_err(|e| usage(format!("{}: {e}", path.display())))?;
        check.messages = messages.clone();
        Box::new(check)
    } else {
        Box::new(AcceptAnyHostKey)
    };
    Ok(Options {
        target,
        user,
        keys,
        host_key_check,
        messages,
        ninep,
        root: PathBuf::from(&a.root),
        fstab,
        cmd: a.cmd.clone(),
        debug: a.d,
        dbg9p: a.dbg9p,
    })
}

/// The `-key` file, else ssh_config's IdentityFile entries, else the
/// usual keys of ~/.ssh that exist.
fn keys(a: &CpuArgs, identity_files: &[String]) -> Result<Vec<PrivateKey>, Failure> {
    if !a.key.is_empty() {
        return Ok(vec![load_key(&expand_home(&a.key))?]);
    }
    if !identity_files.is_empty() {
        let mut keys = Vec::new();
        for f in identity_files {
            let path = expand_home(f);
            if path.exists() {
                keys.push(load_key(&path)?);
            } else if a.d {
                eprintln!("cpu: IdentityFile {} does not exist", path.display());
            }
        }
        if !keys.is_empty() {
            return Ok(keys);
        }
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let mut keys = Vec::new();
    if let Some(home) = home {
        for name in ["id_ed25519", "id_ecdsa", "id_rsa", "cpu_rsa", "identity"] {
            let path = home.join(".ssh").join(name);
            if path.exists() {
                match load_key(&path) {
                    Ok(k) => keys.push(k),
                    Err(f) if a.d => eprintln!("cpu: skipping {}: {}", path.display(), f.message),
                    Err(_) => {}
                }
            }
        }
    }
    if keys.is_empty() {
        return Err(usage("no key: give -key FILE, or create ~/.ssh/id_ed25519"));
    }
    Ok(keys)
}

/// Host, user, port and keys from `~/.ssh/config`, then
/// `/etc/ssh/ssh_config` (the first value found wins), as OpenSSH reads
/// them. Missing files are no error.
fn ssh_config_for(
    host_arg: &str,
    home: &str,
    user: &str,
    debug: bool,
) -> Result<ssh_config::Resolved, Failure> {
    let mut loader = |path: &str| -> Result<Option<String>, String> {
        match std::fs::read_to_string(path) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{path}: {e}")),
        }
    };
    let user_dir = format!("{home}/.ssh");
    let files = [
        (format!("{user_dir}/config"), user_dir.clone()),
        ("/etc/ssh/ssh_config".to_string(), "/etc/ssh".to_string()),
    ];
    let mut configs = Vec::new();
    for (file, include_dir) in &files {
        let Some(text) = loader(file).map_err(usage)? else {
            continue;
        };
        let env = ssh_config::ParseEnv { home, include_dir };
        let config =
            ssh_config::parse(file, &text, &env, &mut loader).map_err(|e| usage(format!("{e}")))?;
        if debug {
            for w in &config.warnings {
                eprintln!("cpu: {w:?}");
            }
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

fn load_key(path: &Path) -> Result<PrivateKey, Failure> {
    let text =
        std::fs::read_to_string(path).map_err(|e| usage(format!("key {}: {e}", path.display())))?;
    let key = PrivateKey::from_openssh(text)
        .map_err(|e| usage(format!("key {}: {e}", path.display())))?;
    if key.is_encrypted() {
        return Err(usage(format!(
            "key {}: passphrase-protected keys are not supported yet",
            path.display()
        )));
    }
    Ok(key)
}
