//! cpud: the SSH server of cpu sessions. See `cpud -h`.
//!
//! `cpud [-hk FILE] [-pk FILE] [-sp PORT] [-addr ADDR] [-d]` serves; the
//! form `cpud -remote ...` is the per-session child it starts itself.

use std::net::TcpListener;
use std::path::Path;
use std::process::ExitCode;

use cpu_bins::authorized::Policy;
use cpu_bins::daemon::{self_exe, Daemon};
use cpu_bins::goflags::{self, Flag, FlagError};
use cpu_bins::{hostkey, remote};

const SYNOPSIS: &str = "cpud [flags]";

const FLAGS: &[Flag] = &[
    Flag {
        name: "hk",
        default: "",
        boolean: false,
        help: "host private key file (default: an Ed25519 key made once and kept)",
    },
    Flag {
        name: "pk",
        default: "key.pub",
        boolean: false,
        help: "authorized public keys file; \"\" lets anyone in",
    },
    Flag {
        name: "sp",
        default: "17010",
        boolean: false,
        help: "port to listen on",
    },
    Flag {
        name: "net",
        default: "tcp",
        boolean: false,
        help: "network: tcp (vsock and unix are not built yet)",
    },
    Flag {
        name: "addr",
        default: "",
        boolean: false,
        help: "address to listen on (default: every address)",
    },
    Flag {
        name: "d",
        default: "false",
        boolean: true,
        help: "debug output on stderr",
    },
    Flag {
        name: "port9p",
        default: "",
        boolean: false,
        help: "ignored in daemon mode (the reference accepts it)",
    },
];

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if remote::is_remote(&argv) {
        let (msg, code) = remote::main(&argv);
        if code == 0 {
            print!("{msg}");
        } else {
            eprintln!("{msg}");
        }
        return ExitCode::from(code);
    }
    match run(&argv[1..]) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(FlagError::Help)) => {
            print!("{}", goflags::usage(SYNOPSIS, FLAGS));
            ExitCode::SUCCESS
        }
        Err(Failure::Usage(e)) => {
            eprintln!("cpud: {e}");
            eprint!("{}", goflags::usage(SYNOPSIS, FLAGS));
            ExitCode::from(2)
        }
        Err(Failure::Run(msg)) => {
            eprintln!("cpud: {msg}");
            ExitCode::from(1)
        }
    }
}

enum Failure {
    Usage(FlagError),
    Run(String),
}

impl From<FlagError> for Failure {
    fn from(e: FlagError) -> Self {
        Failure::Usage(e)
    }
}

fn run(args: &[String]) -> Result<(), Failure> {
    let flags = goflags::parse(FLAGS, args)?;
    if let Some(extra) = flags.rest.first() {
        return Err(Failure::Run(format!("unexpected argument {extra:?}")));
    }
    let debug = flags.bool("d")?;
    if flags.get("net") != "tcp" {
        return Err(Failure::Run(format!(
            "-net {}: only tcp is built yet",
            flags.get("net")
        )));
    }
    let port: u16 = flags.get("sp").parse().map_err(|_| {
        Failure::Usage(FlagError::BadValue {
            name: "sp".into(),
            value: flags.get("sp").into(),
            expected: "a port number",
        })
    })?;
    let host_key = match flags.get("hk") {
        "" => {
            let path = hostkey::default_path();
            let (key, new) = hostkey::load_or_create(&path).map_err(Failure::Run)?;
            if new {
                eprintln!("cpud: made host key {}", path.display());
            }
            key
        }
        hk => hostkey::load(Path::new(hk)).map_err(Failure::Run)?,
    };
    let policy = match flags.get("pk") {
        "" => {
            eprintln!("cpud: -pk \"\": anyone may log in");
            Policy::Anyone
        }
        pk => Policy::load(Path::new(pk)).map_err(Failure::Run)?,
    };
    let listener = match flags.get("addr") {
        "" => TcpListener::bind(("::", port)).or_else(|_| TcpListener::bind(("0.0.0.0", port))),
        addr => TcpListener::bind((addr, port)),
    }
    .map_err(|e| Failure::Run(format!("listen on port {port}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure::Run(e.to_string()))?;
    // Tests and service managers wait for this line.
    eprintln!("cpud: listening on {local}");
    let daemon = Daemon {
        host_key,
        policy,
        exe: self_exe(),
        debug,
    };
    daemon
        .serve(listener)
        .map_err(|e| Failure::Run(e.to_string()))
}
