//! cpud as init: PID 1 of a tiny image (the LinuxBoot case), or `-init`.
//!
//! Init mounts what a bare kernel lacks (/proc, /sys, /dev, /dev/pts,
//! and /tmp, /run unless they hold files), brings up loopback (the 9P
//! forward dials 127.0.0.1); as PID 1 it also loads the kernel modules
//! listed in [`MODULES_FILE`] and configures the interface of the kernel
//! command line's `ip=` (for a kernel whose drivers are modules, where
//! nothing else would). Then it does nothing but reap: the daemon itself runs as its child (the
//! same program started again), so that the sessions' own waits and the
//! reaping of orphans never take each other's children. A daemon that
//! dies is started again. SIGTERM or SIGINT (Ctrl-Alt-Del) stop the
//! daemon, which ends its sessions; then PID 1 powers off, and `-init`
//! only exits.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// A timestamped log line (crate::oplog), as the daemon's.
macro_rules! say {
    ($($arg:tt)*) => {
        crate::oplog::daemon(format_args!($($arg)*))
    };
}

/// Set in the daemon that init starts, so that it does not become init
/// again.
pub const CHILD_ENV: &str = "CPUD_INIT_CHILD";

/// Whether this cpud should be init: PID 1 or `-init`, and not init's
/// own daemon child.
pub fn wanted(flag: bool) -> bool {
    (flag || std::process::id() == 1) && std::env::var_os(CHILD_ENV).is_none()
}

/// Kernel modules PID 1 loads before the network, one file a line, in
/// dependency order: an absolute path, or one under
/// /lib/modules/RELEASE. Blank lines and `#` comments are skipped; a
/// module already there is fine.
pub const MODULES_FILE: &str = "/etc/cpud/modules";

/// The kernel command line's `ip=` (the kernel's IP autoconfiguration
/// syntax, `ip=ADDR:SERVER:GW:NETMASK:HOSTNAME:DEVICE:AUTOCONF`), when it
/// is static: an address, and AUTOCONF empty, `off` or `none`. The device
/// defaults to eth0, the netmask to the address's class.
#[derive(Debug, PartialEq)]
pub struct IpParam {
    pub addr: Ipv4Addr,
    pub mask: Ipv4Addr,
    pub gw: Option<Ipv4Addr>,
    pub dev: String,
}

/// Finds a static `ip=` among the words of a kernel command line.
pub fn ip_param(cmdline: &str) -> Option<IpParam> {
    let v = cmdline
        .split_whitespace()
        .take_while(|w| *w != "--")
        .filter_map(|w| w.strip_prefix("ip="))
        .last()?;
    let f: Vec<&str> = v.split(':').collect();
    let field = |i: usize| f.get(i).copied().unwrap_or("");
    if !matches!(field(6), "" | "off" | "none") {
        return None;
    }
    let addr: Ipv4Addr = field(0).parse().ok()?;
    let mask = match field(3) {
        "" => {
            let bits = match addr.octets()[0] {
                0..=127 => 8,
                128..=191 => 16,
                _ => 24,
            };
            Ipv4Addr::from(u32::MAX << (32 - bits))
        }
        m => m.parse().ok()?,
    };
    let gw = match field(2) {
        "" => None,
        g => Some(g.parse().ok()?),
    };
    let dev = match field(5) {
        "" => "eth0".to_string(),
        d => d.to_string(),
    };
    Some(IpParam {
        addr,
        mask,
        gw,
        dev,
    })
}

/// Loads the modules of [`MODULES_FILE`], if there is one.
fn load_modules(debug: bool) {
    let Ok(list) = std::fs::read_to_string(MODULES_FILE) else {
        return;
    };
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let dir = Path::new("/lib/modules").join(release.trim());
    for line in list.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let path = dir.join(line);
        let loaded = std::fs::File::open(&path)
            .map_err(|e| e.to_string())
            .and_then(|f| {
                match nix::kmod::finit_module(&f, c"", nix::kmod::ModuleInitFlags::empty()) {
                    Ok(()) | Err(Errno::EEXIST) => Ok(()),
                    Err(e) => Err(e.to_string()),
                }
            });
        match loaded {
            Ok(()) if debug => say!("init: loaded {}", path.display()),
            Ok(()) => {}
            Err(e) => say!("init: module {}: {e}", path.display()),
        }
    }
}

/// Configures the interface of the kernel command line's `ip=`; waits up
/// to 5 s for the device (a driver just loaded may probe late).
fn ip_from_cmdline(debug: bool) {
    let Some(ip) = std::fs::read_to_string("/proc/cmdline")
        .ok()
        .and_then(|c| ip_param(&c))
    else {
        return;
    };
    let sys = Path::new("/sys/class/net").join(&ip.dev);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sys.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    match crate::netif::configure(&ip.dev, ip.addr, ip.mask, ip.gw) {
        Ok(()) if debug => say!(
            "init: {} is {}/{}{}",
            ip.dev,
            ip.addr,
            ip.mask,
            ip.gw.map(|g| format!(" via {g}")).unwrap_or_default()
        ),
        Ok(()) => {}
        Err(e) => say!("init: ip= on {}: {e}", ip.dev),
    }
}

/// The file systems init mounts where nothing is mounted yet.
const MOUNTS: &[(&str, &str, &str, &str)] = &[
    ("proc", "/proc", "proc", ""),
    ("sysfs", "/sys", "sysfs", ""),
    ("devtmpfs", "/dev", "devtmpfs", "mode=0755"),
    ("devpts", "/dev/pts", "devpts", "mode=0620,ptmxmode=0666"),
    ("tmpfs", "/tmp", "tmpfs", "mode=1777"),
    ("tmpfs", "/run", "tmpfs", "mode=0755"),
];

/// Mount points listed in a mountinfo text (the fifth field).
pub fn mount_points(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_octal)
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &s[i + 1..i + 4];
            if let Ok(v) = u8::from_str_radix(oct, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether /proc is this pid namespace's: a /proc of another namespace
/// (inherited by `unshare --pid`) names another process as "self".
fn proc_is_ours() -> bool {
    std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str().and_then(|s| s.parse::<u32>().ok()))
        == Some(std::process::id())
}

fn mount_missing(debug: bool) {
    // Read once /proc is ours: what init mounts itself is never listed
    // twice in MOUNTS.
    let mut present: Option<Vec<String>> = None;
    for &(src, target, fstype, data) in MOUNTS {
        let mounted = if target == "/proc" {
            proc_is_ours()
        } else {
            present
                .get_or_insert_with(|| {
                    std::fs::read_to_string("/proc/self/mountinfo")
                        .map(|t| mount_points(&t))
                        .unwrap_or_default()
                })
                .iter()
                .any(|m| m == target)
        };
        // A tmpfs would hide what is there: a folder with files in it is
        // the system's own, left alone.
        let has_files =
            fstype == "tmpfs" && std::fs::read_dir(target).is_ok_and(|mut d| d.next().is_some());
        if mounted || has_files {
            continue;
        }
        let _ = std::fs::create_dir_all(target);
        let flags = MsFlags::MS_NOSUID
            | if fstype == "devtmpfs" || fstype == "devpts" {
                MsFlags::empty()
            } else {
                MsFlags::MS_NODEV
            };
        match mount(Some(src), target, Some(fstype), flags, Some(data)) {
            Ok(()) => {
                if debug {
                    say!("init: mounted {fstype} on {target}");
                }
            }
            Err(e) => say!("init: mount {fstype} on {target}: {e}"),
        }
    }
}

/// Starts the daemon: this program again, with the same arguments.
fn start_daemon(exe: &str, args: &[String]) -> Option<Child> {
    match Command::new(exe).args(args).env(CHILD_ENV, "1").spawn() {
        Ok(c) => Some(c),
        Err(e) => {
            say!("init: cannot start {exe}: {e}");
            None
        }
    }
}

/// Runs init; returns only when it is to exit (not PID 1), with the
/// daemon's last word.
pub fn run(exe: &str, args: &[String], debug: bool) -> Result<(), String> {
    let pid1 = std::process::id() == 1;
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        set.add(s);
    }
    set.thread_block()
        .map_err(|e| format!("init: blocking signals: {e}"))?;
    mount_missing(debug);
    if let Err(e) = crate::netif::loopback_up() {
        say!("init: bringing up lo: {e}");
    }
    if pid1 {
        // Only as PID 1: with -init (a service, a test) the machine's
        // modules and interfaces are someone else's.
        load_modules(debug);
        ip_from_cmdline(debug);
    }
    if pid1 {
        // Ctrl-Alt-Del becomes SIGINT to us instead of an instant reboot.
        let _ = nix::sys::reboot::set_cad_enabled(false);
    } else {
        // Orphans of the sessions come to us, as they would to PID 1.
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|e| format!("init: becoming a subreaper: {e}"))?;
    }
    // The daemon must start with signals open; Command resets nothing,
    // so unblock around the spawn (a signal in between stays pending).
    let spawn = |set: &SigSet| {
        let _ = set.thread_unblock();
        let c = start_daemon(exe, args);
        let _ = set.thread_block();
        c
    };
    let mut daemon = spawn(&set);
    let mut started = Instant::now();
    let mut stopping = false;
    loop {
        let sig = set.wait().map_err(|e| format!("init: {e}"))?;
        if sig != Signal::SIGCHLD {
            if debug {
                say!("init: {sig}: stopping");
            }
            stopping = true;
            match &daemon {
                Some(d) => {
                    let _ = kill(Pid::from_raw(d.id() as i32), Signal::SIGTERM);
                }
                None => break,
            }
            continue;
        }
        // Reap everything that ended: orphans and maybe the daemon.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(format!("init: wait: {e}")),
                Ok(status) => {
                    let Some(pid) = status.pid() else { continue };
                    if daemon.as_ref().map(|d| d.id() as i32) == Some(pid.as_raw()) {
                        daemon = None;
                        say!("init: the daemon ended: {}", wait_text(status));
                    }
                }
            }
        }
        if daemon.is_none() {
            if stopping {
                break;
            }
            // Not in a tight loop when it cannot start at all.
            if started.elapsed() < Duration::from_secs(1) {
                std::thread::sleep(Duration::from_secs(1));
            }
            daemon = spawn(&set);
            started = Instant::now();
        }
    }
    if pid1 {
        nix::unistd::sync();
        let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    }
    Ok(())
}

/// `exit status 1` or `signal SIGKILL`, for the log.
fn wait_text(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exit status {code}"),
        WaitStatus::Signaled(_, sig, _) => format!("signal {sig}"),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_of_mountinfo() {
        let text = "22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
                    23 1 0:22 / /my\\040dir rw - tmpfs tmpfs rw\n\
                    bad line\n";
        assert_eq!(mount_points(text), vec!["/proc", "/my dir"]);
    }

    #[test]
    fn ip_params() {
        let a = |s: &str| s.parse::<Ipv4Addr>().expect("an address");
        assert_eq!(
            ip_param("console=ttyS0 ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off quiet"),
            Some(IpParam {
                addr: a("10.0.2.15"),
                mask: a("255.255.255.0"),
                gw: Some(a("10.0.2.2")),
                dev: "eth0".into()
            })
        );
        assert_eq!(
            ip_param("ip=192.168.1.7"),
            Some(IpParam {
                addr: a("192.168.1.7"),
                mask: a("255.255.255.0"),
                gw: None,
                dev: "eth0".into()
            })
        );
        assert_eq!(
            ip_param("ip=10.1.2.3:::::end0").map(|p| (p.mask, p.dev)),
            Some((a("255.0.0.0"), "end0".into()))
        );
        // DHCP is not ours; nor are the words init gets as arguments.
        assert_eq!(ip_param("ip=dhcp"), None);
        assert_eq!(ip_param("ip=10.0.0.2::::::dhcp"), None);
        assert_eq!(ip_param("quiet -- ip=10.0.0.2"), None);
        assert_eq!(ip_param("ip=10.0.0.300"), None);
    }

    #[test]
    fn octal_escapes() {
        assert_eq!(unescape_octal("a\\134b"), "a\\b");
        assert_eq!(unescape_octal("tab\\011x"), "tab\tx");
        assert_eq!(unescape_octal("end\\04"), "end\\04");
        assert_eq!(unescape_octal("plain"), "plain");
    }
}
