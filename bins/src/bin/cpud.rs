//! cpud: the SSH server of cpu sessions. See `cpud -h`.
//!
//! `cpud [-hk FILE] [-pk FILE] [-sp PORT] [-addr ADDR] [-d]` serves; the
//! form `cpud -remote ...` is the per-session child it starts itself.

use std::path::Path;
use std::process::ExitCode;

use cpu_bins::authorized::Policy;
use cpu_bins::cli::{self, CpudArgs, CpudMode, Outcome};
use cpu_bins::daemon::{self_exe, Daemon};
use cpu_bins::net::{self, Listener, Net};
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
            if !msg.is_empty() {
                eprintln!("{msg}");
            }
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
    let net = Net::parse(&args.net)?;
    if args.klog {
        log_to_kmsg()?;
    }
    if args.accounts && !nix::unistd::geteuid().is_root() {
        return Err("-accounts needs cpud to run as root".into());
    }
    if cpu_bins::init::wanted(args.init) {
        // Init only mounts and reaps; the daemon is its child, started
        // with these same arguments.
        let argv: Vec<String> = std::env::args().skip(1).collect();
        return cpu_bins::init::run(&self_exe(), &argv, args.d);
    }
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
    let listener = Listener::bind(net, &args.sp, &args.addr)?;
    stop_on_signals(listener.unix_path().map(Path::to_path_buf))?;
    // Tests and service managers wait for this line.
    eprintln!("cpud: listening on {}", listener.describe());
    if !args.register.is_empty() {
        // As the reference: a failure is only reported, serving goes on.
        if let Err(e) = net::register(net, &args.register, args.register_timeout) {
            eprintln!("cpud: -register {}: {e}", args.register);
        }
    }
    if !args.sleep_before_serving.is_zero() {
        // The reference's knob, for init setups where the network (and
        // mDNS) comes up late; not synchronisation.
        std::thread::sleep(args.sleep_before_serving);
    }
    let daemon = Daemon {
        host_key,
        policy,
        exe: self_exe(),
        debug: args.d,
        accounts: args.accounts,
    };
    daemon.serve(&listener).map_err(|e| e.to_string())
}

/// SIGTERM, SIGINT and SIGHUP stop cpud: every session it serves is
/// killed first (a service manager's stop leaves nothing running), and
/// its Unix socket file is removed. The signals are blocked here, before
/// any other thread starts, so that only the waiting thread takes them.
fn stop_on_signals(socket_file: Option<std::path::PathBuf>) -> Result<(), String> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(s);
    }
    set.thread_block()
        .map_err(|e| format!("blocking signals: {e}"))?;
    std::thread::spawn(move || {
        let sig = set.wait();
        runtime_std::ssh::session::kill_all();
        if let Some(path) = socket_file {
            let _ = std::fs::remove_file(path);
        }
        match sig {
            Ok(sig) => eprintln!("cpud: {sig}: stopped"),
            Err(e) => eprintln!("cpud: waiting for signals: {e}; stopped"),
        }
        std::process::exit(0);
    });
    Ok(())
}

/// `-klog`: cpud's own messages go to the kernel log (a board without a
/// console or syslog), by making /dev/kmsg its stderr; each line is one
/// record. Sessions have their own stderr and are not affected.
fn log_to_kmsg() -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let kmsg = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/kmsg")
        .map_err(|e| format!("-klog: /dev/kmsg: {e}"))?;
    nix::unistd::dup2(kmsg.as_raw_fd(), 2).map_err(|e| format!("-klog: {e}"))?;
    Ok(())
}
