//! The command line of the example SSH clients, shared by runtime-std's
//! `ssh_client` and runtime-smol's `ssh_client_smol` (included by path:
//! examples have no library of their own).
//!
//! `-p PORT -i KEY -l USER [-c CIPHER] [-kex ALG] [-hostkey-alg ALG] [-pq-only]
//!  [-R 0:HOST:PORT] [-rekey-bytes N] [-v] HOST CMD...`

use proto_ssh::channel::ChannelRequest;
use proto_ssh::connection::ClientConfig;
use proto_ssh::kex::negotiate::{CipherAlg, KexAlg};
use proto_ssh::sig::SigAlg;
use proto_ssh::transport::AcceptAnyHostKey;
use ssh_key::PrivateKey;

#[derive(Default)]
pub(crate) struct Args {
    pub(crate) port: u16,
    pub(crate) keys: Vec<String>,
    pub(crate) user: String,
    pub(crate) cipher: Option<String>,
    pub(crate) kex: Option<String>,
    pub(crate) host_key_alg: Option<String>,
    pub(crate) pq_only: bool,
    pub(crate) remote: Option<(String, u16)>,
    pub(crate) rekey_bytes: Option<u64>,
    pub(crate) verbose: bool,
    pub(crate) host: String,
    pub(crate) command: Vec<String>,
}

pub(crate) fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        port: 22,
        user: std::env::var("USER").unwrap_or_else(|_| "root".into()),
        ..Args::default()
    };
    while let Some(arg) = it.next() {
        if !arg.starts_with('-') {
            a.host = arg;
            a.command = it.collect();
            break;
        }
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.trim_start_matches('-') {
            "p" => a.port = value()?.parse().map_err(|e| format!("-p: {e}"))?,
            "i" => a.keys.push(value()?),
            "l" => a.user = value()?,
            "c" => a.cipher = Some(value()?),
            "kex" => a.kex = Some(value()?),
            "hostkey-alg" => a.host_key_alg = Some(value()?),
            "pq-only" => a.pq_only = true,
            "rekey-bytes" => {
                a.rekey_bytes = Some(value()?.parse().map_err(|e| format!("-rekey-bytes: {e}"))?)
            }
            "R" => {
                // 0:HOST:PORT: a remote port chosen by the server,
                // forwarded to HOST:PORT here.
                let spec = value()?;
                let mut parts = spec.splitn(3, ':');
                let (Some(_), Some(h), Some(p)) = (parts.next(), parts.next(), parts.next()) else {
                    return Err(format!("-R {spec}: want 0:HOST:PORT"));
                };
                let p = p.parse().map_err(|e| format!("-R port: {e}"))?;
                a.remote = Some((h.to_string(), p));
            }
            "v" => a.verbose = true,
            _ => return Err(format!("unknown flag {arg}")),
        }
    }
    if a.host.is_empty() {
        return Err("usage: ssh_client [-p PORT] [-i KEY] [-l USER] HOST CMD...".into());
    }
    Ok(a)
}

/// The client configuration the arguments ask for, with their keys.
pub(crate) fn config(args: &Args) -> Result<ClientConfig, String> {
    let mut keys = Vec::new();
    for path in &args.keys {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        keys.push(PrivateKey::from_openssh(text).map_err(|e| format!("{path}: {e}"))?);
    }
    let mut config = ClientConfig::new(&args.user, keys, Box::new(AcceptAnyHostKey));
    if let Some(c) = &args.cipher {
        let alg = CipherAlg::from_name(c).ok_or(format!("unknown cipher {c}"))?;
        config.common.prefs.ciphers = vec![alg];
    }
    if let Some(k) = &args.kex {
        let alg = KexAlg::ALL
            .iter()
            .copied()
            .find(|a| a.name() == k)
            .ok_or(format!("unknown kex {k}"))?;
        config.common.prefs.kex = vec![alg];
    }
    if let Some(h) = &args.host_key_alg {
        let alg = SigAlg::from_name(h).ok_or(format!("unknown host key algorithm {h}"))?;
        config.common.prefs.host_key = vec![alg];
    }
    if args.pq_only {
        config.common.prefs = config.common.prefs.pq_only();
    }
    if let Some(n) = args.rekey_bytes {
        config.common.rekey.bytes = n;
    }
    Ok(config)
}

/// With -v, the negotiated algorithms as OpenSSH's -v prints them.
pub(crate) fn print_algorithms(args: &Args, algorithms: Option<[&'static str; 4]>) {
    if !args.verbose {
        return;
    }
    if let Some([kex, hk, c2s, s2c]) = algorithms {
        eprintln!("kex: algorithm: {kex}");
        eprintln!("kex: host key algorithm: {hk}");
        // One line per direction, as OpenSSH's -v has it.
        eprintln!("cipher: {c2s}");
        if s2c != c2s {
            eprintln!("cipher: {s2c}");
        }
    }
}

/// The request that starts the command: `exec`, or `shell` without one.
pub(crate) fn start_request(args: &Args) -> ChannelRequest {
    let command = args.command.join(" ");
    if command.is_empty() {
        ChannelRequest::Shell
    } else {
        ChannelRequest::Exec(command.into_bytes())
    }
}

/// What the answer to tcpip-forward means: the port said on stderr, or
/// the error of a refusal.
pub(crate) fn forward_reply(reply: Option<Option<u32>>) -> Result<(), String> {
    match reply {
        Some(Some(p)) => eprintln!("allocated port {p}"),
        Some(None) => {}
        None => return Err("remote port forwarding refused".into()),
    }
    Ok(())
}

/// The program's exit: the remote status, 255 when there is none or the
/// connection failed.
pub(crate) fn exit(result: Result<Option<u8>, String>) -> std::process::ExitCode {
    match result {
        Ok(code) => std::process::ExitCode::from(code.unwrap_or(255)),
        Err(e) => {
            eprintln!("ssh_client: {e}");
            std::process::ExitCode::from(255)
        }
    }
}
