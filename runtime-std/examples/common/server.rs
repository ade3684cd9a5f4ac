//! The command line and keys of the example SSH servers, shared by
//! runtime-std's `ssh_server` and runtime-smol's `ssh_server_smol`
//! (included by path: examples have no library of their own).
//!
//! `-addr 127.0.0.1:PORT -hostkey FILE -authorized-keys FILE [-pq-only]`

use std::collections::HashSet;
use std::sync::Arc;

use proto_ssh::auth::AuthPolicy;
use proto_ssh::channel::GlobalRequest;
use proto_ssh::connection::ServerConfig;
use ssh_key::public::KeyData;
use ssh_key::{PrivateKey, PublicKey};

pub(crate) struct Args {
    pub(crate) addr: String,
    hostkey: String,
    authorized: String,
    pq_only: bool,
}

pub(crate) fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut a = Args {
        addr: "127.0.0.1:0".into(),
        hostkey: String::new(),
        authorized: String::new(),
        pq_only: false,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.trim_start_matches('-') {
            "addr" => a.addr = value()?,
            "hostkey" => a.hostkey = value()?,
            "authorized-keys" => a.authorized = value()?,
            "pq-only" => a.pq_only = true,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.hostkey.is_empty() || a.authorized.is_empty() {
        return Err("usage: ssh_server -addr A -hostkey F -authorized-keys F [-pq-only]".into());
    }
    Ok(a)
}

/// Keys from an authorized_keys file (options before the key are not
/// supported by this example).
struct Authorized(HashSet<KeyData>);

impl AuthPolicy for Authorized {
    fn allow_key(&mut self, _user: &str, key: &KeyData) -> bool {
        self.0.contains(key)
    }
}

fn load(args: &Args) -> Result<(PrivateKey, Authorized), String> {
    let text =
        std::fs::read_to_string(&args.hostkey).map_err(|e| format!("{}: {e}", args.hostkey))?;
    let host = PrivateKey::from_openssh(text).map_err(|e| format!("{}: {e}", args.hostkey))?;
    let text = std::fs::read_to_string(&args.authorized)
        .map_err(|e| format!("{}: {e}", args.authorized))?;
    let mut keys = HashSet::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = PublicKey::from_openssh(line).map_err(|e| format!("{}: {e}", args.authorized))?;
        keys.insert(key.key_data().clone());
    }
    Ok((host, Authorized(keys)))
}

/// What every connection is served with.
pub(crate) struct Setup {
    host: PrivateKey,
    keys: Arc<HashSet<KeyData>>,
    pq_only: bool,
}

impl Setup {
    /// Reads the keys named by `args`.
    pub(crate) fn new(args: &Args) -> Result<Self, String> {
        let (host, policy) = load(args)?;
        Ok(Self {
            host,
            keys: Arc::new(policy.0),
            pq_only: args.pq_only,
        })
    }

    /// The configuration of one connection.
    pub(crate) fn config(&self) -> ServerConfig {
        let mut config = ServerConfig::new(
            vec![self.host.clone()],
            Box::new(Authorized((*self.keys).clone())),
        );
        if self.pq_only {
            config.common.prefs = config.common.prefs.pq_only();
        }
        config
    }
}

/// The command of a session: `/bin/sh -c` (a login shell for `shell`),
/// with the client's environment.
pub(crate) fn command(setup: &runtime_std::ssh::session::SessionSetup) -> std::process::Command {
    let mut cmd = std::process::Command::new("/bin/sh");
    match &setup.command {
        Some(c) => cmd.arg("-c").arg(String::from_utf8_lossy(c).as_ref()),
        None => cmd.arg("-l"),
    };
    for (k, v) in &setup.env {
        cmd.env(k, String::from_utf8_lossy(v).as_ref());
    }
    cmd
}

/// A runtime's `RemoteForward`.
pub(crate) trait Forward {
    fn address(&self) -> &str;
    fn port(&self) -> u32;
}

/// Answers a global request: tcpip-forward starts a forward with `start`
/// and keeps it in `forwards`, cancel-tcpip-forward drops it. Returns the
/// reply (success, and the port bound for port 0).
pub(crate) fn global<F: Forward>(
    forwards: &mut Vec<F>,
    request: GlobalRequest,
    start: impl FnOnce(&str, u32) -> std::io::Result<F>,
) -> (bool, Option<u32>) {
    match request {
        GlobalRequest::TcpipForward { address, port } => match start(&address, port) {
            Ok(f) => {
                let bound = f.port();
                forwards.push(f);
                (true, (port == 0).then_some(bound))
            }
            Err(e) => {
                eprintln!("ssh_server: tcpip-forward {address}:{port}: {e}");
                (false, None)
            }
        },
        GlobalRequest::CancelTcpipForward { address, port } => {
            let before = forwards.len();
            forwards.retain(|f| !(f.address() == address && f.port() == port));
            (forwards.len() < before, None)
        }
        _ => (false, None),
    }
}
