//! What `cpud` does once its flags are read, shared with `decpud`, which
//! is cpud plus a DNS-SD advertisement: the extension point
//! ([`Extension`]) is how decpud counts sessions and withdraws its record
//! before the process exits.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::admission::{self, Gate};
use crate::authorized::Policy;
use crate::cli::CpudArgs;
use crate::daemon::{self_exe, Daemon, SessionHook};
use crate::net::{self, Listener, Net};
use crate::startups::{self, Limits, MaxStartups};
use crate::{hostkey, oplog};

/// What a variant of cpud adds to the daemon.
#[derive(Default)]
pub struct Extension {
    /// Told of every session's start and end.
    pub on_session: Option<SessionHook>,
    /// Run once when a signal stops the daemon, after its sessions are
    /// killed and before the process exits.
    pub on_stop: Option<Box<dyn FnOnce() + Send>>,
}

impl std::fmt::Debug for Extension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extension")
            .field("on_session", &self.on_session)
            .field("on_stop", &self.on_stop.is_some())
            .finish()
    }
}

/// Serves as cpud. `extend` is called once the listener is bound (and
/// stop signals are blocked, so threads it starts never take them).
pub fn run(
    args: &CpudArgs,
    extend: impl FnOnce(&Listener) -> Result<Extension, String>,
) -> Result<(), String> {
    if let Some(extra) = args.rest.first() {
        return Err(format!("unexpected argument {extra:?}"));
    }
    let net = Net::parse(&args.net)?;
    let limits = Limits {
        max: MaxStartups::parse(&args.max_startups)?,
        per_source: startups::parse_per_source(&args.per_source_max_startups)?,
        ident: startups::IDENT_TIME,
        grace: args.login_grace_time,
    };
    if args.klog {
        log_to_kmsg()?;
    }
    // -d and -klog are for stderr; else sshd's rule: syslog when there
    // is no terminal to read the lines.
    let mode = if args.d || args.klog {
        "stderr"
    } else {
        args.log.as_str()
    };
    oplog::init(mode, &args.log_socket)?;
    if args.accounts && !nix::unistd::geteuid().is_root() {
        return Err("-accounts needs cpud to run as root".into());
    }
    if crate::init::wanted(args.init) {
        // Init only mounts and reaps; the daemon is its child, started
        // with these same arguments.
        let argv: Vec<String> = std::env::args().skip(1).collect();
        return crate::init::run(&self_exe(), &argv, args.d);
    }
    let host_key = match args.hk.as_str() {
        "" => {
            let path = hostkey::default_path();
            let (key, new) = hostkey::load_or_create(&path)?;
            if new {
                oplog::daemon(format_args!("made host key {}", path.display()));
            }
            key
        }
        hk => hostkey::load(Path::new(hk))?,
    };
    let policy = match args.pk.as_str() {
        "" => {
            oplog::auth(format_args!("-pk \"\": anyone may log in"));
            Policy::Anyone
        }
        pk => Policy::load(Path::new(pk))?,
    };
    admission::raise_fd_limit();
    let listener = Listener::bind(net, &args.sp, &args.addr)?;
    let signals = block_stop_signals()?;
    let ext = extend(&listener)?;
    stop_on_signals(
        signals,
        listener.unix_path().map(Path::to_path_buf),
        ext.on_stop,
    );
    if !nix::unistd::geteuid().is_root() {
        oplog::daemon(format_args!(
            "not running as root: sessions cannot make their mount namespace and will fail"
        ));
    }
    // Tests and service managers wait for this line.
    oplog::always(format_args!("listening on {}", listener.describe()));
    if !args.register.is_empty() {
        // As the reference: a failure is only reported, serving goes on.
        if let Err(e) = net::register(net, &args.register, args.register_timeout) {
            oplog::daemon(format_args!("-register {}: {e}", args.register));
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
        permit_env: args.permit_user_environment,
        exe: self_exe(),
        debug: args.d,
        accounts: args.accounts,
        sftp: (!args.sftp.is_empty()).then(|| PathBuf::from(&args.sftp)),
        on_session: ext.on_session,
        gate: Arc::new(Gate::new(limits)),
    };
    daemon.serve(&listener).map_err(|e| e.to_string())
}

/// Blocks SIGTERM, SIGINT and SIGHUP in this thread, before any other
/// thread starts, so that only the waiting thread takes them.
fn block_stop_signals() -> Result<nix::sys::signal::SigSet, String> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(s);
    }
    set.thread_block()
        .map_err(|e| format!("blocking signals: {e}"))?;
    Ok(set)
}

/// SIGTERM, SIGINT and SIGHUP stop cpud: every session it serves is
/// killed first (a service manager's stop leaves nothing running), and
/// its Unix socket file is removed.
fn stop_on_signals(
    set: nix::sys::signal::SigSet,
    socket_file: Option<PathBuf>,
    on_stop: Option<Box<dyn FnOnce() + Send>>,
) {
    std::thread::spawn(move || {
        let sig = set.wait();
        runtime_std::ssh::session::kill_all();
        if let Some(path) = socket_file {
            let _ = std::fs::remove_file(path);
        }
        if let Some(f) = on_stop {
            f();
        }
        match sig {
            Ok(sig) => oplog::daemon(format_args!("{sig}: stopped")),
            Err(e) => oplog::daemon(format_args!("waiting for signals: {e}; stopped")),
        }
        std::process::exit(0);
    });
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
