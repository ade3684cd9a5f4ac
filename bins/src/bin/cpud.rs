//! cpud: the SSH server of cpu sessions. See `cpud -h`.
//!
//! `cpud [-hk FILE] [-pk FILE] [-sp PORT] [-addr ADDR] [-d]` serves; the
//! form `cpud -remote ...` is the per-session child it starts itself.

use std::process::ExitCode;

use cpu_bins::cli::{self, CpudMode, Outcome};
use cpu_bins::cpud_main::{self, Extension};
use cpu_bins::remote;

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
            if !msg.is_empty() {
                eprintln!("{msg}");
            }
            ExitCode::from(code)
        }
        CpudMode::Daemon(d) => match cpud_main::run(&d, |_| Ok(Extension::default())) {
            Ok(()) => ExitCode::SUCCESS,
            Err(msg) => {
                cpu_bins::oplog::always(format_args!("{msg}"));
                ExitCode::from(1)
            }
        },
    }
}
