//! decpu: cpu that finds its host with DNS-SD. The host is a
//! `dnssd://[instance.]_type._proto[.domain]?key=value&...&sort=key` URI,
//! or empty or `.` for the least-loaded node of our arch and os; anything
//! else is a plain host, as for cpu. See `decpu -h`.

use std::process::ExitCode;

use cpu_bins::cli::{self, DecpuArgs, Outcome};
use cpu_bins::client::{self, exit, Failure};
use cpu_bins::cpu_main::options;
use cpu_bins::dnssd::{self, Entry, Host, Query};
use cpu_bins::mdns;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = match cli::parse_decpu(&args) {
        Ok(Outcome::Run(a)) => a,
        Ok(Outcome::Help(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("decpu: {e}");
            eprint!("{}", cli::decpu_usage());
            return ExitCode::from(exit::USAGE);
        }
    };
    match run(&a) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("decpu: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn run(a: &DecpuArgs) -> Result<u8, Failure> {
    let query = match dnssd::parse_host(&a.cpu.host) {
        Ok(Host::Plain(_)) => return options(&a.cpu).and_then(client::run),
        Ok(Host::Dnssd(q)) => q,
        Err(e) => {
            return Err(Failure {
                message: format!("{:?}: {e}", a.cpu.host),
                code: exit::USAGE,
            })
        }
    };
    let chosen = find(a, &query)?;
    // As the reference: the same command on each node, one after the
    // other; the first failure ends the run.
    let mut code = 0;
    for (e, addr) in chosen {
        let mut cpu = a.cpu.clone();
        cpu.host = addr;
        cpu.sp = e.port.to_string();
        if a.cpu.d {
            eprintln!("decpu: running on {} ({}:{})", e.fullname, cpu.host, e.port);
        }
        code = options(&cpu).and_then(client::run)?;
        if code != 0 {
            break;
        }
    }
    Ok(code)
}

/// Browses, checks and sorts the candidates; returns the first `-n` ones
/// that have an address we can dial.
fn find(a: &DecpuArgs, q: &Query) -> Result<Vec<(Entry, String)>, Failure> {
    let debug = a.cpu.d;
    let name = q.browse_name();
    if debug {
        let secs = a.ds_timeout.max(mdns::MIN_BROWSE).as_secs_f64();
        eprintln!("decpu: browsing {name} for {secs}s");
    }
    let seen = mdns::browse(&name, a.ds_timeout, |m| {
        if debug {
            eprintln!("decpu: {m}");
        }
    })
    .map_err(|e| Failure {
        message: e.to_string(),
        code: exit::CONNECT,
    })?;
    let (kept, dropped) = q.choose(seen);
    if debug {
        for (e, why) in &dropped {
            eprintln!("decpu: dropped {}: {why}", e.fullname);
        }
    }
    let mut chosen = Vec::new();
    for e in kept {
        let Some(addr) = dnssd::pick_addr(&e.addrs) else {
            if debug {
                eprintln!("decpu: dropped {}: no address to dial", e.fullname);
            }
            continue;
        };
        if debug {
            eprintln!(
                "decpu: kept {} ({addr}:{}) {:?}{}",
                e.fullname,
                e.port,
                e.txt,
                if chosen.len() < a.n { " (chosen)" } else { "" }
            );
        }
        if chosen.len() < a.n {
            chosen.push((e, addr.to_string()));
        }
    }
    if chosen.is_empty() {
        return Err(Failure {
            message: "dnssd found no suitable service".into(),
            code: exit::CONNECT,
        });
    }
    Ok(chosen)
}
