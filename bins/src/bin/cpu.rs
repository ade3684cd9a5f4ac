//! cpu: run a command on a cpud host that sees this machine's files.
//! See `cpu -h`.

use std::process::ExitCode;

use cpu_bins::cli::{self, Outcome};
use cpu_bins::client::{self, exit};
use cpu_bins::cpu_main::options;

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
