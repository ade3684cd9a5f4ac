//! decpud: cpud that advertises itself with DNS-SD (mDNS) as
//! `<hostname>-cpud._ncpu._tcp.local.`, with a TXT record of its arch,
//! os, cores, memory, CPU use and tenants, so that `decpu` can pick a
//! node. See `decpud -h`; the cpud flags are cpud's.

use std::process::ExitCode;
use std::sync::Arc;

use cpu_bins::cli::{self, CpudArgs, DecpudMode, DsArgs, Outcome};
use cpu_bins::cpud_main::{self, Extension};
use cpu_bins::mdns::{AdvertiseConfig, Advertiser};
use cpu_bins::net::Listener;
use cpu_bins::{dnssd, remote};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = match cli::parse_decpud(&args) {
        Ok(Outcome::Run(m)) => m,
        Ok(Outcome::Help(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("decpud: {e}");
            eprint!("{}", cli::decpud_usage());
            return ExitCode::from(2);
        }
    };
    match mode {
        DecpudMode::Remote(r) => {
            let (msg, code) = remote::main(&r);
            if !msg.is_empty() {
                eprintln!("{msg}");
            }
            ExitCode::from(code)
        }
        DecpudMode::Daemon(d, ds) => match cpud_main::run(&d, |l| advertise(&d, &ds, l)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(msg) => {
                eprintln!("decpud: {msg}");
                ExitCode::from(1)
            }
        },
    }
}

/// Starts the advertisement of the bound listener; its session hook
/// counts tenants, and the stop hook withdraws the record.
fn advertise(d: &CpudArgs, ds: &DsArgs, listener: &Listener) -> Result<Extension, String> {
    if !ds.enabled {
        return Ok(Extension::default());
    }
    let port = match listener {
        Listener::Tcp(l) => l.local_addr().map_err(|e| e.to_string())?.port(),
        // As the reference, which fails to read a socket path as a port:
        // cpud serves on, unadvertised.
        _ => {
            eprintln!(
                "decpud: -net {}: not advertised (DNS-SD needs a TCP port)",
                d.net
            );
            return Ok(Extension::default());
        }
    };
    let adv = Advertiser::start(AdvertiseConfig {
        instance: ds.instance.clone(),
        service: ds.service.clone(),
        domain: ds.domain.clone(),
        interface: ds.interface.clone(),
        port,
        user_txt: dnssd::parse_kv(&ds.txt),
        debug: d.d,
    })
    .map_err(|e| e.to_string())?;
    eprintln!("decpud: advertising {} on port {port}", adv.fullname());
    let stop = Arc::clone(&adv);
    Ok(Extension {
        on_session: Some(adv.session_hook()),
        on_stop: Some(Box::new(move || {
            stop.stop();
            eprintln!("decpud: withdrew {}", stop.fullname());
        })),
    })
}
