//! cpu: run a command on a cpud host that sees this machine's files.
//! See `cpu -h`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cpu_bins::cli::{self, CpuArgs, Outcome};
use cpu_bins::client::{self, exit, Failure, Options};
use cpu_bins::namespace;
use proto_ssh::transport::AcceptAnyHostKey;
use ssh_key::PrivateKey;

/// cpud's port, unless a flag or ssh_config says otherwise (the
/// reference silently falls back to 22; we do not).
const DEFAULT_PORT: u16 = 17010;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = match cli::parse_cpu(&args) {
        Ok(Outcome::Run(a)) => a,
        Ok(Outcome::Help(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("cpu: {e}");
            eprint!("{}", cli::cpu_usage());
            return ExitCode::from(exit::USAGE);
        }
    };
    match options(&a).and_then(client::run) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("cpu: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn usage(msg: impl Into<String>) -> Failure {
    Failure {
        message: msg.into(),
        code: exit::USAGE,
    }
}

/// Resolves flags into what a run needs.
fn options(a: &CpuArgs) -> Result<Options, Failure> {
    if !a.net.is_empty() && a.net != "tcp" {
        return Err(usage(format!("-net {}: only tcp is built yet", a.net)));
    }
    let (user, host) = match a.host.split_once('@') {
        Some((u, h)) => (u.to_string(), h.to_string()),
        None => (
            std::env::var("USER").unwrap_or_else(|_| "root".into()),
            a.host.clone(),
        ),
    };
    let port = match a.sp.as_str() {
        "" => DEFAULT_PORT,
        sp => sp
            .parse()
            .map_err(|_| usage(format!("-sp {sp:?}: not a port number")))?,
    };
    let keys = if a.use_key { keys(a)? } else { Vec::new() };
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
    Ok(Options {
        host,
        port,
        user,
        keys,
        host_key_check: Box::new(AcceptAnyHostKey),
        ninep,
        root: PathBuf::from(&a.root),
        fstab,
        cmd: a.cmd.clone(),
        debug: a.d,
    })
}

/// The `-key` file, or the usual keys of ~/.ssh that exist.
fn keys(a: &CpuArgs) -> Result<Vec<PrivateKey>, Failure> {
    if !a.key.is_empty() {
        return Ok(vec![load_key(&expand_home(&a.key))?]);
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
