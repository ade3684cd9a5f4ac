//! The flag sets of `cpu` and `cpud` with the reference's names and
//! defaults (spec §1.1–1.3), read with Go `flag` syntax (see goflags).
//! Values are returned as given; the mode rules that follow flag parsing
//! in the reference (plain `-ssh`, port 22, `-nfs`) belong to the callers.

use std::fmt;
use std::time::Duration;

use crate::goduration::{parse_duration, DurationError};
use crate::goflags::{self, Flag, FlagError};

/// The `cpu -namespace` default.
pub const DEFAULT_NAMESPACE: &str = "/lib:/lib64:/usr:/bin:/etc:/home";

/// What a command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    /// Run with these arguments.
    Run(T),
    /// `-h` / `-help`: print this usage text and exit 0.
    Help(String),
}

/// Why a command line was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// The flags themselves (unknown flag, missing or bad value).
    Flag(FlagError),
    /// A duration flag that Go's ParseDuration would refuse.
    Duration {
        /// The flag.
        flag: &'static str,
        /// The parse failure.
        err: DurationError,
    },
    /// `cpu` needs a host.
    NoHost,
    /// `-dump` and `-d` together, which the reference refuses.
    DumpWithDebug,
    /// `-port9p` is not a port number.
    BadPort(String),
    /// `decpu -n` below 1.
    NoCpus,
    /// `decpu -n` above 1 without a command, which the reference refuses.
    InteractiveMany,
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag(e) => e.fmt(f),
            Self::Duration { flag, err } => write!(f, "-{flag}: {err}"),
            Self::NoHost => f.write_str("no host given"),
            Self::DumpWithDebug => f.write_str("-dump and -d are exclusive"),
            Self::BadPort(p) => write!(f, "-port9p: {p:?} is not a port number"),
            Self::NoCpus => f.write_str("-n: at least 1"),
            Self::InteractiveMany => {
                f.write_str("Interactive access with more than one CPU is not supported (yet)")
            }
        }
    }
}

impl std::error::Error for CliError {}

impl From<FlagError> for CliError {
    fn from(e: FlagError) -> Self {
        Self::Flag(e)
    }
}

const fn string(name: &'static str, default: &'static str, help: &'static str) -> Flag {
    Flag {
        name,
        default,
        boolean: false,
        help,
    }
}

const fn boolean(name: &'static str, default: bool, help: &'static str) -> Flag {
    Flag {
        name,
        default: if default { "true" } else { "false" },
        boolean: true,
        help,
    }
}

/// `cpu`'s flags (cmds/cpu/cpu.go), in the reference's order.
pub const CPU_FLAGS: &[Flag] = &[
    boolean("9p", true, "Enable the 9p mount in the client"),
    string("cpio", "", "cpio initrd backing the NFS server (with -nfs)"),
    string(
        "cpuns",
        "cpuns",
        "remote command that builds the namespace in sshd mode",
    ),
    boolean("d", false, "enable debug prints"),
    boolean("dbg9p", false, "show 9p io"),
    boolean(
        "dump",
        false,
        "Dump copious output, including a 9p trace, to a temp file",
    ),
    string("fstab", "", "pass an fstab to the cpud"),
    string("hk", "", "file for host key"),
    string("key", "", "key file"),
    boolean(
        "useKey",
        true,
        "use a key; if false, only 'none' auth is offered",
    ),
    string(
        "namespace",
        DEFAULT_NAMESPACE,
        "Default namespace for the remote process -- set to \"\" for none",
    ),
    string(
        "net",
        "",
        "network type to use. Defaults to whatever the cpu client defaults to",
    ),
    string("sp", "", "cpu default port"),
    string("root", "/", "root for cpu"),
    string(
        "timeout9p",
        "100ms",
        "time to wait for the 9p mount to happen.",
    ),
    boolean("nfs", false, "use nfs instead of 9p"),
    boolean("ssh", false, "ssh only, no namespace"),
    boolean("sshd", false, "server is sshd, not cpud"),
    // Ours: OpenSSH-style known_hosts checking (learn on first use, refuse
    // a changed key); -hostkeycheck=false turns it off.
    boolean(
        "hostkeycheck",
        true,
        "check the host key against ~/.ssh/known_hosts",
    ),
];

/// `cpu`'s synopsis line.
pub const CPU_SYNOPSIS: &str = "cpu [flags] host [cmd [args...]]";

/// A parsed `cpu` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuArgs {
    /// `-9p`: serve 9P through a reverse forward.
    pub ninep: bool,
    /// `-cpio`: newc archive backing the NFS server.
    pub cpio: String,
    /// `-cpuns`: namespace helper command in sshd mode.
    pub cpuns: String,
    /// `-d`: debug logging.
    pub d: bool,
    /// `-dbg9p`: log 9P traffic.
    pub dbg9p: bool,
    /// `-dump`: debug log and 9P trace to a temp file.
    pub dump: bool,
    /// `-fstab`: local fstab file prepended to the binds.
    pub fstab: String,
    /// `-hk`: host key file (no effect in the reference).
    pub hk: String,
    /// `-key`: private key file.
    pub key: String,
    /// `-useKey`: offer key auth at all.
    pub use_key: bool,
    /// `-namespace`: bind list (see namespace).
    pub namespace: String,
    /// `-net`: transport.
    pub net: String,
    /// `-sp`: server port.
    pub sp: String,
    /// `-root`: exported local directory.
    pub root: String,
    /// `-timeout9p`, already parsed.
    pub timeout9p: Duration,
    /// `-nfs`: NFS instead of 9P.
    pub nfs: bool,
    /// `-ssh`: plain ssh, no forward or namespace.
    pub ssh: bool,
    /// `-sshd`: the server is OpenSSH.
    pub sshd: bool,
    /// `-hostkeycheck` (ours): check ~/.ssh/known_hosts.
    pub hostkeycheck: bool,
    /// The first non-flag argument, as written (may be `user@host`).
    pub host: String,
    /// The command and its arguments; empty means the remote $SHELL.
    pub cmd: Vec<String>,
}

/// The `cpu` usage text.
pub fn cpu_usage() -> String {
    goflags::usage(CPU_SYNOPSIS, CPU_FLAGS)
}

/// Parses `cpu`'s arguments (without the program name).
pub fn parse_cpu(args: &[String]) -> Result<Outcome<CpuArgs>, CliError> {
    let p = match goflags::parse(CPU_FLAGS, args) {
        Ok(p) => p,
        Err(FlagError::Help) => return Ok(Outcome::Help(cpu_usage())),
        Err(FlagError::Version) => return Ok(Outcome::Help(goflags::version(CPU_SYNOPSIS))),
        Err(e) => return Err(e.into()),
    };
    let timeout9p = parse_duration(p.get("timeout9p")).map_err(|err| CliError::Duration {
        flag: "timeout9p",
        err,
    })?;
    let Some((host, cmd)) = p.rest.split_first() else {
        return Err(CliError::NoHost);
    };
    let a = CpuArgs {
        ninep: p.bool("9p")?,
        cpio: p.get("cpio").into(),
        cpuns: p.get("cpuns").into(),
        d: p.bool("d")?,
        dbg9p: p.bool("dbg9p")?,
        dump: p.bool("dump")?,
        fstab: p.get("fstab").into(),
        hk: p.get("hk").into(),
        key: p.get("key").into(),
        use_key: p.bool("useKey")?,
        namespace: p.get("namespace").into(),
        net: p.get("net").into(),
        sp: p.get("sp").into(),
        root: p.get("root").into(),
        timeout9p,
        nfs: p.bool("nfs")?,
        ssh: p.bool("ssh")?,
        sshd: p.bool("sshd")?,
        hostkeycheck: p.bool("hostkeycheck")?,
        host: host.clone(),
        cmd: cmd.to_vec(),
    };
    if a.dump && a.d {
        return Err(CliError::DumpWithDebug);
    }
    Ok(Outcome::Run(a))
}

/// `decpu`'s flags (cmds/decpu/decpu.go): a subset of cpu's with the
/// same defaults, plus `-n`, and ours `-hostkeycheck` and `-dsTimeout`.
pub fn decpu_flags() -> Vec<Flag> {
    const CPU_SUBSET: &[&str] = &[
        "9p",
        "d",
        "dbg9p",
        "dump",
        "fstab",
        "hk",
        "key",
        "namespace",
        "net",
        "sp",
        "root",
        "timeout9p",
        "hostkeycheck",
    ];
    let mut flags: Vec<Flag> = CPU_FLAGS
        .iter()
        .filter(|f| CPU_SUBSET.contains(&f.name))
        .copied()
        .collect();
    flags.push(string("n", "1", "number of CPUs to run on"));
    // Ours: the reference browses for a fixed second; slow networks (and
    // tests under load) may want longer.
    flags.push(string(
        "dsTimeout",
        "1s",
        "how long to browse for DNS-SD services",
    ));
    flags
}

/// `decpu`'s synopsis line.
pub const DECPU_SYNOPSIS: &str = "decpu [flags] [URI|host|.] [cmd [args...]]";

/// A parsed `decpu` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecpuArgs {
    /// cpu's arguments (the flags decpu lacks at cpu's defaults); `host`
    /// is the URI, host or `.` as given ("" when none).
    pub cpu: CpuArgs,
    /// `-n`: how many nodes to run the command on, one after the other.
    pub n: usize,
    /// `-dsTimeout`: the browse time.
    pub ds_timeout: Duration,
}

/// The `decpu` usage text.
pub fn decpu_usage() -> String {
    goflags::usage(DECPU_SYNOPSIS, &decpu_flags())
}

/// Parses `decpu`'s arguments (without the program name).
pub fn parse_decpu(args: &[String]) -> Result<Outcome<DecpuArgs>, CliError> {
    let p = match goflags::parse(&decpu_flags(), args) {
        Ok(p) => p,
        Err(FlagError::Help) => return Ok(Outcome::Help(decpu_usage())),
        Err(FlagError::Version) => return Ok(Outcome::Help(goflags::version(DECPU_SYNOPSIS))),
        Err(e) => return Err(e.into()),
    };
    let duration = |flag: &'static str| {
        parse_duration(p.get(flag)).map_err(|err| CliError::Duration { flag, err })
    };
    let (host, cmd) = match p.rest.split_first() {
        Some((h, c)) => (h.clone(), c.to_vec()),
        None => (String::new(), Vec::new()),
    };
    let n = usize::try_from(p.u64("n")?).unwrap_or(usize::MAX);
    if n == 0 {
        return Err(CliError::NoCpus);
    }
    if n > 1 && cmd.is_empty() {
        return Err(CliError::InteractiveMany);
    }
    let cpu = CpuArgs {
        ninep: p.bool("9p")?,
        cpio: String::new(),
        cpuns: "cpuns".into(),
        d: p.bool("d")?,
        dbg9p: p.bool("dbg9p")?,
        dump: p.bool("dump")?,
        fstab: p.get("fstab").into(),
        hk: p.get("hk").into(),
        key: p.get("key").into(),
        use_key: true,
        namespace: p.get("namespace").into(),
        net: p.get("net").into(),
        sp: p.get("sp").into(),
        root: p.get("root").into(),
        timeout9p: duration("timeout9p")?,
        nfs: false,
        ssh: false,
        sshd: false,
        hostkeycheck: p.bool("hostkeycheck")?,
        host,
        cmd,
    };
    if cpu.dump && cpu.d {
        return Err(CliError::DumpWithDebug);
    }
    Ok(Outcome::Run(DecpuArgs {
        cpu,
        n,
        ds_timeout: duration("dsTimeout")?,
    }))
}

/// `cpud`'s daemon/init flags (cmds/cpud/main_linux.go).
pub const CPUD_FLAGS: &[Flag] = &[
    string("hk", "", "file for host key"),
    string("pk", "key.pub", "file for public key"),
    string("sp", "17010", "cpu default port"),
    string("net", "tcp", "network to use"),
    // Ours, not the reference's: the address to listen on (default every
    // address, as the reference); tests and careful boards use 127.0.0.1.
    string("addr", "", "address to listen on (default: every address)"),
    // Ours: per-account sessions (the reference runs every session as
    // cpud's own user, which stays the default).
    boolean(
        "accounts",
        false,
        "run each session as the account named by the SSH user (cpud as root)",
    ),
    // Ours: the sftp subsystem's program (plain SSH clients' scp, sftp).
    string(
        "sftp",
        "",
        "sftp-server for the sftp subsystem (default: the first of the usual paths)",
    ),
    boolean("d", false, "enable debug prints"),
    boolean(
        "init",
        false,
        "run as init (Debug only; normal test is if we are pid 1",
    ),
    boolean(
        "remote",
        false,
        "indicates we are the remote side of the cpu session",
    ),
    string("port9p", "", "port9p # on remote machine for 9p mount"),
    boolean("klog", false, "Log cpud messages in kernel log, not stdout"),
    string(
        "register",
        "",
        "address and port to register with after listen on cpu server port",
    ),
    string(
        "registerTO",
        "5s",
        "time.Duration for Dial address for registering",
    ),
    string(
        "sleepBeforeServing",
        "0s",
        "add a sleep before serving -- usually only needed if cpud runs as init with mDNS",
    ),
    // Ours: sshd's PermitUserEnvironment for authorized_keys environment=.
    boolean(
        "permitUserEnvironment",
        false,
        "let authorized_keys environment= options set variables (else such a key may not log in)",
    ),
    // Ours: where the log lines go (sshd logs to syslog unless -D -e).
    string(
        "log",
        "auto",
        "where log lines go: stderr, syslog, or auto (syslog when stderr is not a terminal and the socket exists; -d means stderr)",
    ),
    string("logSocket", "/dev/log", "the syslog socket"),
    // Ours: sshd's MaxStartups, PerSourceMaxStartups and LoginGraceTime.
    string(
        "maxStartups",
        "10:30:100",
        "connections before login: start:rate:full random early drop (or one number); at full the oldest not past key exchange is evicted",
    ),
    string(
        "perSourceMaxStartups",
        "none",
        "connections before login from one address (none, or a number)",
    ),
    string(
        "loginGraceTime",
        "120s",
        "time to log in before the connection is cut (0 for none)",
    ),
];

/// `cpud`'s synopsis line.
pub const CPUD_SYNOPSIS: &str = "cpud [flags]";

/// A parsed `cpud` daemon command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpudArgs {
    /// `-hk`: host private key file.
    pub hk: String,
    /// `-pk`: authorized public key file; "" means no auth.
    pub pk: String,
    /// `-sp`: listen port, or socket path for unix networks.
    pub sp: String,
    /// `-net`: listen network.
    pub net: String,
    /// `-addr`: listen address (ours); "" for every address.
    pub addr: String,
    /// `-accounts` (ours): sessions run as the SSH user's account.
    pub accounts: bool,
    /// `-sftp` (ours): the sftp subsystem's program; "" for the usual paths.
    pub sftp: String,
    /// `-d`: debug logging.
    pub d: bool,
    /// `-init`: run as init.
    pub init: bool,
    /// `-port9p`: accepted and ignored in daemon mode.
    pub port9p: String,
    /// `-klog`: log to the kernel log.
    pub klog: bool,
    /// `-register`: address to report "ok" to after listening.
    pub register: String,
    /// `-registerTO`: dial timeout for -register.
    pub register_timeout: Duration,
    /// `-sleepBeforeServing`.
    pub sleep_before_serving: Duration,
    /// `-permitUserEnvironment` (ours).
    pub permit_user_environment: bool,
    /// `-log` (ours): stderr, syslog or auto.
    pub log: String,
    /// `-logSocket` (ours): the syslog socket.
    pub log_socket: String,
    /// `-maxStartups` (ours), checked by [`crate::startups`].
    pub max_startups: String,
    /// `-perSourceMaxStartups` (ours).
    pub per_source_max_startups: String,
    /// `-loginGraceTime` (ours).
    pub login_grace_time: Duration,
    /// Arguments after the flags (the reference ignores them).
    pub rest: Vec<String>,
}

/// `cpud -remote`'s flags: a separate set, as in the reference.
pub const REMOTE_FLAGS: &[Flag] = &[
    boolean("d", false, "enable debug prints"),
    boolean(
        "remote",
        false,
        "indicates we are the remote side of the cpu session",
    ),
    string("port9p", "", "port9p # on remote machine for 9p mount"),
];

/// `cpud -remote`'s synopsis line.
pub const REMOTE_SYNOPSIS: &str = "cpud -remote [-d] [-port9p port] [cmd [args...]]";

/// A parsed `cpud -remote` command line (one session child).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteArgs {
    /// `-d`: debug logging.
    pub d: bool,
    /// `-port9p`: the 9P forward port; None when not given (no 9P mount).
    pub port9p: Option<u16>,
    /// The command; empty means $SHELL.
    pub cmd: Vec<String>,
}

/// The two roles of `cpud`.
// Made once per process: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpudMode {
    /// Daemon or init.
    Daemon(CpudArgs),
    /// Session child.
    Remote(RemoteArgs),
}

/// The `cpud` daemon usage text.
pub fn cpud_usage() -> String {
    goflags::usage(CPUD_SYNOPSIS, CPUD_FLAGS)
}

/// The `cpud -remote` usage text.
pub fn remote_usage() -> String {
    goflags::usage(REMOTE_SYNOPSIS, REMOTE_FLAGS)
}

/// True when the reference would pick the session-child role: only the
/// exact first argument `-remote` or `-remote=true` does.
pub fn is_remote(args: &[String]) -> bool {
    args.first()
        .is_some_and(|a| a == "-remote" || a == "-remote=true")
}

/// Parses `cpud`'s arguments (without the program name).
pub fn parse_cpud(args: &[String]) -> Result<Outcome<CpudMode>, CliError> {
    Ok(match parse_cpud_with(args, CPUD_FLAGS, CPUD_SYNOPSIS)? {
        Outcome::Run(CpudParsed::Daemon(d, _)) => Outcome::Run(CpudMode::Daemon(d)),
        Outcome::Run(CpudParsed::Remote(r)) => Outcome::Run(CpudMode::Remote(r)),
        Outcome::Help(h) => Outcome::Help(h),
    })
}

/// A cpud command line with the raw flags kept for a variant's own.
// Made once per process: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
enum CpudParsed {
    Daemon(CpudArgs, goflags::Parsed),
    Remote(RemoteArgs),
}

/// Parses a cpud command line with the flag set `flags` (cpud's own and
/// a variant's), returning the parsed flags too for the variant's.
fn parse_cpud_with(
    args: &[String],
    flags: &[Flag],
    synopsis: &str,
) -> Result<Outcome<CpudParsed>, CliError> {
    if is_remote(args) {
        return Ok(match parse_remote(args)? {
            Outcome::Run(r) => Outcome::Run(CpudParsed::Remote(r)),
            Outcome::Help(h) => Outcome::Help(h),
        });
    }
    let p = match goflags::parse(flags, args) {
        Ok(p) => p,
        Err(FlagError::Help) => return Ok(Outcome::Help(goflags::usage(synopsis, flags))),
        Err(FlagError::Version) => return Ok(Outcome::Help(goflags::version(synopsis))),
        Err(e) => return Err(e.into()),
    };
    let duration = |flag: &'static str| {
        parse_duration(p.get(flag)).map_err(|err| CliError::Duration { flag, err })
    };
    let args = CpudArgs {
        hk: p.get("hk").into(),
        pk: p.get("pk").into(),
        sp: p.get("sp").into(),
        net: p.get("net").into(),
        addr: p.get("addr").into(),
        accounts: p.bool("accounts")?,
        sftp: p.get("sftp").into(),
        d: p.bool("d")?,
        init: p.bool("init")?,
        port9p: p.get("port9p").into(),
        klog: p.bool("klog")?,
        register: p.get("register").into(),
        register_timeout: duration("registerTO")?,
        sleep_before_serving: duration("sleepBeforeServing")?,
        permit_user_environment: p.bool("permitUserEnvironment")?,
        log: p.get("log").into(),
        log_socket: p.get("logSocket").into(),
        max_startups: p.get("maxStartups").into(),
        per_source_max_startups: p.get("perSourceMaxStartups").into(),
        login_grace_time: duration("loginGraceTime")?,
        rest: p.rest.clone(),
    };
    Ok(Outcome::Run(CpudParsed::Daemon(args, p)))
}

/// decpud's DNS-SD flags, added to cpud's (spec §1.4).
pub const DECPUD_FLAGS: &[Flag] = &[
    // The reference never reads it (it always advertises); we do.
    boolean("dnssd", true, "advertise this cpud with DNS-SD (mDNS)"),
    string(
        "dsInstance",
        "",
        "DNS-SD instance name (default <hostname>-cpud)",
    ),
    string("dsDomain", "local", "DNS-SD domain"),
    string("dsService", "_ncpu._tcp", "DNS-SD service type"),
    string(
        "dsInterface",
        "",
        "DNS-SD interface to advertise on (default: all)",
    ),
    string(
        "dsTxt",
        "",
        "extra DNS-SD TXT pairs k=v,k2=v2 (a bare k is k=true)",
    ),
];

/// `decpud`'s synopsis line.
pub const DECPUD_SYNOPSIS: &str = "decpud [flags]";

/// decpud's DNS-SD settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsArgs {
    /// `-dnssd`: advertise at all.
    pub enabled: bool,
    /// `-dsInstance`; "" for `<hostname>-cpud`.
    pub instance: String,
    /// `-dsDomain`.
    pub domain: String,
    /// `-dsService`.
    pub service: String,
    /// `-dsInterface`; "" for every interface.
    pub interface: String,
    /// `-dsTxt`, unparsed.
    pub txt: String,
}

/// The two roles of `decpud`.
// Made once per process: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecpudMode {
    /// Daemon, with its advertisement.
    Daemon(CpudArgs, DsArgs),
    /// Session child (the same as cpud's).
    Remote(RemoteArgs),
}

/// The flags of decpud: cpud's, then the DNS-SD ones.
pub fn decpud_flags() -> Vec<Flag> {
    CPUD_FLAGS.iter().chain(DECPUD_FLAGS).copied().collect()
}

/// The `decpud` usage text.
pub fn decpud_usage() -> String {
    goflags::usage(DECPUD_SYNOPSIS, &decpud_flags())
}

/// Parses `decpud`'s arguments (without the program name).
pub fn parse_decpud(args: &[String]) -> Result<Outcome<DecpudMode>, CliError> {
    let flags = decpud_flags();
    Ok(match parse_cpud_with(args, &flags, DECPUD_SYNOPSIS)? {
        Outcome::Help(h) => Outcome::Help(h),
        Outcome::Run(CpudParsed::Remote(r)) => Outcome::Run(DecpudMode::Remote(r)),
        Outcome::Run(CpudParsed::Daemon(d, p)) => {
            let ds = DsArgs {
                enabled: p.bool("dnssd")?,
                instance: p.get("dsInstance").into(),
                domain: p.get("dsDomain").into(),
                service: p.get("dsService").into(),
                interface: p.get("dsInterface").into(),
                txt: p.get("dsTxt").into(),
            };
            Outcome::Run(DecpudMode::Daemon(d, ds))
        }
    })
}

/// Parses a `cpud -remote ...` command line (without the program name);
/// the `-remote` flag itself is part of `args`.
pub fn parse_remote(args: &[String]) -> Result<Outcome<RemoteArgs>, CliError> {
    let p = match goflags::parse(REMOTE_FLAGS, args) {
        Ok(p) => p,
        Err(FlagError::Help) => return Ok(Outcome::Help(remote_usage())),
        Err(FlagError::Version) => return Ok(Outcome::Help(goflags::version(REMOTE_SYNOPSIS))),
        Err(e) => return Err(e.into()),
    };
    // Validated here although the reference only fails at dial time.
    let port9p = match p.get("port9p") {
        "" => None,
        s => Some(s.parse().map_err(|_| CliError::BadPort(s.into()))?),
    };
    Ok(Outcome::Run(RemoteArgs {
        d: p.bool("d")?,
        port9p,
        cmd: p.rest.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn cpu(a: &[&str]) -> CpuArgs {
        match parse_cpu(&v(a)) {
            Ok(Outcome::Run(c)) => c,
            other => panic!("{a:?}: {other:?}"),
        }
    }

    fn cpud(a: &[&str]) -> CpudMode {
        match parse_cpud(&v(a)) {
            Ok(Outcome::Run(c)) => c,
            other => panic!("{a:?}: {other:?}"),
        }
    }

    #[test]
    fn cpu_defaults() {
        let c = cpu(&["h"]);
        assert_eq!(
            c,
            CpuArgs {
                ninep: true,
                cpio: String::new(),
                cpuns: "cpuns".into(),
                d: false,
                dbg9p: false,
                dump: false,
                fstab: String::new(),
                hk: String::new(),
                key: String::new(),
                use_key: true,
                namespace: DEFAULT_NAMESPACE.into(),
                net: String::new(),
                sp: String::new(),
                root: "/".into(),
                timeout9p: Duration::from_millis(100),
                nfs: false,
                ssh: false,
                sshd: false,
                hostkeycheck: true,
                host: "h".into(),
                cmd: vec![],
            }
        );
    }

    #[test]
    fn cpu_forms() {
        let c = cpu(&[
            "-d",
            "--key",
            "k",
            "-sp=23",
            "-9p=false",
            "--useKey=false",
            "-namespace=",
            "-timeout9p",
            "2s",
            "-ssh",
            "u@h",
            "ls",
            "-l",
            "-d",
        ]);
        assert!(c.d && c.ssh && !c.ninep && !c.use_key);
        assert_eq!(c.key, "k");
        assert_eq!(c.sp, "23");
        assert_eq!(c.namespace, "");
        assert_eq!(c.timeout9p, Duration::from_secs(2));
        assert_eq!(c.host, "u@h");
        assert_eq!(c.cmd, v(&["ls", "-l", "-d"]));
        let c = cpu(&["--", "-h", "x"]);
        assert_eq!(c.host, "-h");
        assert_eq!(c.cmd, v(&["x"]));
        let c = cpu(&[
            "-fstab", "f", "-hk", "hk", "-net", "vsock", "-root", "/r", "-dbg9p", "-nfs", "-sshd",
            "-cpio", "c", "-cpuns", "ns", "-dump", "h",
        ]);
        assert!(c.dbg9p && c.nfs && c.sshd && c.dump);
        assert_eq!(
            (&*c.fstab, &*c.hk, &*c.net, &*c.root, &*c.cpio, &*c.cpuns),
            ("f", "hk", "vsock", "/r", "c", "ns")
        );
    }

    #[test]
    fn cpu_errors() {
        assert_eq!(parse_cpu(&[]), Err(CliError::NoHost));
        assert_eq!(
            parse_cpu(&v(&["-bogus", "h"])),
            Err(CliError::Flag(FlagError::Unknown("bogus".into())))
        );
        assert!(parse_cpu(&v(&["-bogus", "h"]))
            .err()
            .is_some_and(|e| e.to_string().contains("-bogus")));
        assert!(matches!(
            parse_cpu(&v(&["-timeout9p=soon", "h"])),
            Err(CliError::Duration {
                flag: "timeout9p",
                ..
            })
        ));
        assert_eq!(
            parse_cpu(&v(&["-d", "-dump", "h"])),
            Err(CliError::DumpWithDebug)
        );
        assert_eq!(
            parse_cpu(&v(&["-key"])),
            Err(CliError::Flag(FlagError::MissingValue("key".into())))
        );
        // Flags that only exist in the stale doc.go.
        for stale in ["-port9p=1", "-remote", "-msize=1", "-srv=x"] {
            assert!(parse_cpu(&v(&[stale, "h"])).is_err(), "{stale}");
        }
    }

    #[test]
    fn help() {
        for h in ["-h", "-help", "--help"] {
            match parse_cpu(&v(&[h])) {
                Ok(Outcome::Help(t)) => {
                    assert!(t.starts_with("usage: cpu "));
                    assert!(t.contains("-namespace value"));
                    assert!(t.contains("-useKey"));
                }
                other => panic!("{other:?}"),
            }
            assert!(
                matches!(parse_cpud(&v(&[h])), Ok(Outcome::Help(t)) if t.contains("-pk value"))
            );
            assert!(matches!(
                parse_cpud(&v(&["-remote", h])),
                Ok(Outcome::Help(t)) if t.contains("-port9p value") && !t.contains("-pk")
            ));
        }
    }

    #[test]
    fn cpud_defaults() {
        assert_eq!(
            cpud(&[]),
            CpudMode::Daemon(CpudArgs {
                hk: String::new(),
                pk: "key.pub".into(),
                sp: "17010".into(),
                net: "tcp".into(),
                addr: String::new(),
                accounts: false,
                sftp: String::new(),
                d: false,
                init: false,
                port9p: String::new(),
                klog: false,
                register: String::new(),
                register_timeout: Duration::from_secs(5),
                sleep_before_serving: Duration::ZERO,
                permit_user_environment: false,
                log: "auto".into(),
                log_socket: "/dev/log".into(),
                max_startups: "10:30:100".into(),
                per_source_max_startups: "none".into(),
                login_grace_time: Duration::from_secs(120),
                rest: vec![],
            })
        );
    }

    #[test]
    fn decpu_flags() {
        let d = |a: &[&str]| match parse_decpu(&v(a)) {
            Ok(Outcome::Run(d)) => d,
            other => panic!("{a:?}: {other:?}"),
        };
        let x = d(&[]);
        assert_eq!((x.cpu.host.as_str(), x.n), ("", 1));
        assert_eq!(x.ds_timeout, Duration::from_secs(1));
        assert!(x.cpu.ninep && x.cpu.use_key && x.cpu.hostkeycheck && x.cpu.cmd.is_empty());
        assert_eq!(x.cpu.namespace, DEFAULT_NAMESPACE);
        let x = d(&[
            "-n",
            "2",
            "-dsTimeout=3s",
            "-9p=false",
            "dnssd:?near=gpu",
            "ls",
            "-l",
        ]);
        assert_eq!((x.cpu.host.as_str(), x.n), ("dnssd:?near=gpu", 2));
        assert_eq!(x.cpu.cmd, v(&["ls", "-l"]));
        assert_eq!(x.ds_timeout, Duration::from_secs(3));
        assert!(!x.cpu.ninep);
        assert_eq!(
            parse_decpu(&v(&["-n=2", "."])),
            Err(CliError::InteractiveMany)
        );
        assert_eq!(parse_decpu(&v(&["-n=0", ".", "x"])), Err(CliError::NoCpus));
        // Flags of cpu that decpu lacks.
        for f in ["-ssh", "-nfs", "-useKey=false", "-cpuns=x", "-sshd"] {
            assert!(parse_decpu(&v(&[f, "h"])).is_err(), "{f}");
        }
        assert!(
            matches!(parse_decpu(&v(&["-h"])), Ok(Outcome::Help(h)) if h.contains("-dsTimeout"))
        );
    }

    #[test]
    fn decpud_flags() {
        let Ok(Outcome::Run(DecpudMode::Daemon(d, ds))) = parse_decpud(&v(&[])) else {
            panic!()
        };
        assert_eq!(d.sp, "17010");
        assert_eq!(
            ds,
            DsArgs {
                enabled: true,
                instance: String::new(),
                domain: "local".into(),
                service: "_ncpu._tcp".into(),
                interface: String::new(),
                txt: String::new(),
            }
        );
        let Ok(Outcome::Run(DecpudMode::Daemon(d, ds))) = parse_decpud(&v(&[
            "-sp=1",
            "-dsTxt",
            "near=gpu,fast",
            "-dnssd=false",
            "-dsInstance=x",
            "-dsInterface",
            "eth1",
        ])) else {
            panic!()
        };
        assert_eq!(d.sp, "1");
        assert!(!ds.enabled);
        assert_eq!((ds.instance.as_str(), ds.interface.as_str()), ("x", "eth1"));
        assert_eq!(ds.txt, "near=gpu,fast");
        assert!(matches!(
            parse_decpud(&v(&["-remote", "-port9p", "5", "ls"])),
            Ok(Outcome::Run(DecpudMode::Remote(_)))
        ));
        assert!(matches!(parse_decpud(&v(&["-h"])), Ok(Outcome::Help(h)) if h.contains("-dsTxt")));
        // cpud itself does not take them.
        assert!(parse_cpud(&v(&["-dsTxt", "a"])).is_err());
    }

    #[test]
    fn cpud_forms() {
        let CpudMode::Daemon(d) = cpud(&[
            "-hk",
            "/etc/hk",
            "--pk=",
            "-sp",
            "@abs",
            "-net=unix",
            "-d",
            "-init",
            "-register",
            "r:1",
            "-registerTO=1m",
            "-sleepBeforeServing",
            "3s",
            "-klog",
            "-port9p",
            "9",
            "-remote",
            "extra",
        ]) else {
            panic!("not a daemon");
        };
        assert!(d.d && d.init && d.klog);
        assert_eq!(
            (&*d.hk, &*d.pk, &*d.sp, &*d.net, &*d.register, &*d.port9p),
            ("/etc/hk", "", "@abs", "unix", "r:1", "9")
        );
        assert_eq!(d.register_timeout, Duration::from_secs(60));
        assert_eq!(d.sleep_before_serving, Duration::from_secs(3));
        assert_eq!(d.rest, v(&["extra"]));
        assert!(matches!(
            parse_cpud(&v(&["-registerTO=x"])),
            Err(CliError::Duration {
                flag: "registerTO",
                ..
            })
        ));
        assert_eq!(
            parse_cpud(&v(&["-nope"])),
            Err(CliError::Flag(FlagError::Unknown("nope".into())))
        );
    }

    #[test]
    fn remote_forms() {
        assert_eq!(
            cpud(&["-remote", "-port9p=40123", "/bin/bash", "-c", "x"]),
            CpudMode::Remote(RemoteArgs {
                d: false,
                port9p: Some(40123),
                cmd: v(&["/bin/bash", "-c", "x"]),
            })
        );
        assert_eq!(
            cpud(&["-remote=true", "-d", "-port9p", "1"]),
            CpudMode::Remote(RemoteArgs {
                d: true,
                port9p: Some(1),
                cmd: vec![],
            })
        );
        // Only argv[1] selects the role.
        assert!(matches!(cpud(&["-d", "-remote"]), CpudMode::Daemon(_)));
        assert!(matches!(cpud(&["-remote=false"]), CpudMode::Daemon(_)));
        assert!(matches!(cpud(&["--remote"]), CpudMode::Daemon(_)));
        // The daemon-only flags do not exist in the remote set.
        assert_eq!(
            parse_cpud(&v(&["-remote", "-pk=x"])),
            Err(CliError::Flag(FlagError::Unknown("pk".into())))
        );
        assert_eq!(
            parse_cpud(&v(&["-remote", "-port9p=x"])),
            Err(CliError::BadPort("x".into()))
        );
        // As in the reference, a user command that starts with '-' is
        // read as a flag.
        assert!(parse_cpud(&v(&["-remote", "-ls"])).is_err());
    }

    proptest! {
        #[test]
        fn cpu_rest_is_host_and_cmd(host in "[a-z@.]{1,10}", cmd in prop::collection::vec("\\PC{0,8}", 0..5)) {
            let mut a = vec!["-d".to_string(), host.clone()];
            a.extend(cmd.iter().cloned());
            let c = match parse_cpu(&a) {
                Ok(Outcome::Run(c)) => c,
                other => return Err(TestCaseError::fail(format!("{other:?}"))),
            };
            prop_assert_eq!(c.host, host);
            prop_assert_eq!(c.cmd, cmd);
        }

        #[test]
        fn never_panics(a in prop::collection::vec("-{0,2}[a-z9=]{0,10}", 0..6)) {
            let _ = parse_cpu(&a);
            let _ = parse_cpud(&a);
        }
    }
}
