//! `cpu9p`: serve a directory over 9P2000.L on a TCP address.
//!
//! This is the file service `cpu` runs for the remote side, exposed on its
//! own for tests, benchmarks and for mounting a tree from any 9P client.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use cpu_bins::goflags::{self, Flag, FlagError};
use proto_9p::server::ServerConfig;
use runtime_std::export::{ExportOptions, LocalExport};
use runtime_std::p9server::ServeConfig;

const FLAGS: &[Flag] = &[
    Flag {
        name: "addr",
        default: "127.0.0.1:5640",
        boolean: false,
        help: "TCP address to listen on (port 0 picks a free port)",
    },
    Flag {
        name: "root",
        default: "/",
        boolean: false,
        help: "directory to export",
    },
    Flag {
        name: "msize",
        default: "1048576",
        boolean: false,
        help: "largest 9P message size granted",
    },
    Flag {
        name: "allow-devices",
        default: "false",
        boolean: true,
        help: "allow clients to open device nodes in the export",
    },
];

const SYNOPSIS: &str = "cpu9p [flags]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(FlagError::Help)) => {
            print!("{}", goflags::usage(SYNOPSIS, FLAGS));
            ExitCode::SUCCESS
        }
        Err(Failure::Usage(FlagError::Version)) => {
            print!("{}", goflags::version(SYNOPSIS));
            ExitCode::SUCCESS
        }
        Err(Failure::Usage(e)) => {
            eprintln!("cpu9p: {e}");
            eprint!("{}", goflags::usage(SYNOPSIS, FLAGS));
            ExitCode::from(2)
        }
        Err(Failure::Run(msg)) => {
            eprintln!("cpu9p: {msg}");
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
        return Err(FlagError::Unknown(extra.clone()).into());
    }
    let msize = u32::try_from(flags.u64("msize")?)
        .ok()
        .filter(|m| *m >= proto_9p::consts::MIN_MSIZE)
        .ok_or_else(|| FlagError::BadValue {
            name: "msize".into(),
            value: flags.get("msize").into(),
            expected: "between 4096 and 4294967295",
        })?;
    let root = PathBuf::from(flags.get("root"));
    let options = ExportOptions {
        allow_devices: flags.bool("allow-devices")?,
    };
    let export = LocalExport::new(&root, options)
        .map_err(|e| Failure::Run(format!("cannot export {}: {e}", root.display())))?;
    let addr = flags.get("addr");
    let listener = TcpListener::bind(addr)
        .map_err(|e| Failure::Run(format!("cannot listen on {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure::Run(format!("cannot listen on {addr}: {e}")))?;
    eprintln!("listening on {local}");
    let config = ServeConfig {
        session: ServerConfig { max_msize: msize },
        ..ServeConfig::default()
    };
    cpu_bins::rt::serve_9p_tcp(Arc::new(export), listener, config)
        .map_err(|e| Failure::Run(format!("accept: {e}")))
}
