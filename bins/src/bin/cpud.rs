//! cpud: the SSH server of cpu sessions. See `cpud -h`.
//!
//! `cpud [-hk FILE] [-pk FILE] [-sp PORT] [-addr ADDR] [-d]` serves; the
//! form `cpud -remote ...` is the per-session child it starts itself.

use std::net::TcpListener;
use std::path::Path;
use std::process::ExitCode;

use cpu_bins::authorized::Policy;
use cpu_bins::cli::{self, CpudArgs, CpudMode, Outcome};
use cpu_bins::daemon::{self_exe, Daemon};
use cpu_bins::{hostkey, remote};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = match cli::parse_cpud(&args) {
        Ok(Outcome::Run(m)) => m,
        Ok(Outcome::Help(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("cpud: {e}");
            eprint!("{}", cli::cpud_usage());
            return ExitCode::from(2);
        }
    };
    match mode {
        CpudMode::Remote(r) => {
            let (msg, code) = remote::main(&r);
            eprintln!("{msg}");
            ExitCode::from(code)
        }
        CpudMode::Daemon(d) => match run(&d) {
            Ok(()) => ExitCode::SUCCESS,
            Err(msg) => {
                eprintln!("cpud: {msg}");
                ExitCode::from(1)
            }
        },
    }
}

fn run(args: &CpudArgs) -> Result<(), String> {
    if let Some(extra) = args.rest.first() {
        return Err(format!("unexpected argument {extra:?}"));
    }
    if args.net != "tcp" {
        return Err(format!("-net {}: only tcp is built yet", args.net));
    }
    if args.accounts && !nix::unistd::geteuid().is_root() {
        return Err("-accounts needs cpud to run as root".into());
    }
    if args.init {
        return Err("-init: running as init is not built yet".into());
    }
    let port: u16 = args
        .sp
        .parse()
        .map_err(|_| format!("-sp {:?}: not a port number", args.sp))?;
    let host_key = match args.hk.as_str() {
        "" => {
            let path = hostkey::default_path();
            let (key, new) = hostkey::load_or_create(&path)?;
            if new {
                eprintln!("cpud: made host key {}", path.display());
            }
            key
        }
        hk => hostkey::load(Path::new(hk))?,
    };
    let policy = match args.pk.as_str() {
        "" => {
            eprintln!("cpud: -pk \"\": anyone may log in");
            Policy::Anyone
        }
        pk => Policy::load(Path::new(pk))?,
    };
    let listener = match args.addr.as_str() {
        "" => TcpListener::bind(("::", port)).or_else(|_| TcpListener::bind(("0.0.0.0", port))),
        addr => TcpListener::bind((addr, port)),
    }
    .map_err(|e| format!("listen on port {port}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    // Tests and service managers wait for this line.
    eprintln!("cpud: listening on {local}");
    let daemon = Daemon {
        host_key,
        policy,
        exe: self_exe(),
        debug: args.d,
        accounts: args.accounts,
    };
    daemon.serve(listener).map_err(|e| e.to_string())
}
