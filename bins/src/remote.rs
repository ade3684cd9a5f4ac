//! `cpud -remote [-d] [-port9p P] cmd args...`: the session child. The
//! daemon starts one per session (a fresh exec, so it is single-threaded
//! when it changes namespaces); it prepares the session and then becomes
//! the user's command, so the command's exit status is the session's.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use std::io::Write;
use std::net::TcpStream;
use std::os::fd::AsRawFd;

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};

use crate::cli::RemoteArgs;
use crate::cwd::Start;
use crate::daemon::{ACCOUNT_ENV, ARGV0_ENV};
use crate::namespace::{parse_fstab, CPU_MOUNT};

/// Environment variables that carry the session setup and must not reach
/// the user's command.
pub const SETUP_ENV: &[&str] = &["CPUNONCE", "CPU_FSTAB", "LC_GLENDA_CPU_FSTAB"];

/// Runs the remote form; returns only on failure, with the message and
/// exit code.
pub fn main(r: &RemoteArgs) -> (String, u8) {
    let debug = r.d;
    let mut args: Vec<String> = r.cmd.clone();
    if args.is_empty() {
        match std::env::var("SHELL") {
            Ok(sh) if !sh.is_empty() => args.push(sh),
            _ => return ("cpud -remote: no command and $SHELL is not set".into(), 1),
        }
    }
    let mut fuse = None;
    let mut start = Start::Pwd;
    if let Some(nonce) = std::env::var_os("CPUNONCE") {
        let nonce = nonce.to_string_lossy().into_owned();
        match namespace(r, &nonce, debug) {
            Ok((f, s)) => (fuse, start) = (f, s),
            Err(e) => return (format!("cpud -remote: {e}"), crate::client::exit::MOUNT),
        }
    }
    let account = std::env::var(ACCOUNT_ENV).ok();
    if let Some(name) = &account {
        if let Err(e) = become_account(name, debug) {
            return (format!("cpud -remote: {e}"), 1);
        }
    }
    let mut cmd = Command::new(&args[0]);
    cmd.env_remove(ACCOUNT_ENV);
    // A plain session's login shell ("-sh"), named by the daemon only.
    if let Some(argv0) = std::env::var_os(ARGV0_ENV) {
        cmd.arg0(argv0);
    }
    cmd.env_remove(ARGV0_ENV);
    cmd.args(&args[1..]);
    for k in SETUP_ENV {
        cmd.env_remove(k);
    }
    let pwd = match start {
        Start::At(dir) => {
            cmd.env("PWD", &dir);
            Some(PathBuf::from(dir))
        }
        Start::Pwd => std::env::var_os("PWD").map(PathBuf::from),
    };
    if let Some(pwd) = &pwd {
        if !pwd.is_dir() {
            // As the reference: the command would run somewhere the user
            // did not ask for.
            return (
                format!("cpud -remote: your $PWD {pwd:?} is not in the remote namespace"),
                1,
            );
        }
        cmd.current_dir(pwd);
    }
    if debug {
        eprintln!("cpud -remote: exec {}", args.join(" "));
    }
    if fuse.is_some() {
        // The FUSE server is a thread of this process: the command runs as
        // a child, and its status becomes ours.
        return match runtime_std::pty::spawn_plain(&mut cmd).and_then(|mut c| c.wait()) {
            Ok(status) => {
                use std::os::unix::process::ExitStatusExt;
                if let Some(sig) = status.signal() {
                    die_of(sig);
                }
                let code = status
                    .code()
                    .or_else(|| status.signal().map(|s| 128 + s))
                    .unwrap_or(1);
                (String::new(), u8::try_from(code).unwrap_or(1))
            }
            Err(e) => {
                let code = if e.kind() == std::io::ErrorKind::NotFound {
                    127
                } else {
                    126
                };
                (format!("cpud -remote: {}: {e}", args[0]), code)
            }
        };
    }
    let err = cmd.exec();
    let code = if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    };
    (format!("cpud -remote: {}: {err}", args[0]), code)
}

/// Ends this process by the signal that ended the command, so that the
/// daemon reports exit-signal just as for a command run by exec. Without
/// a core file: the command's crash is not ours. Returns only when the
/// signal does not terminate (it is ignored by default).
fn die_of(sig: i32) {
    use nix::sys::resource::{setrlimit, Resource};
    use nix::sys::signal::{raise, SigSet, Signal};
    let Ok(sig) = Signal::try_from(sig) else {
        return;
    };
    let _ = setrlimit(Resource::RLIMIT_CORE, 0, 0);
    // Dispositions are the defaults here (the daemon reset them before
    // exec); only the mask needs opening.
    let mut set = SigSet::empty();
    set.add(sig);
    let _ = set.thread_unblock();
    let _ = raise(sig);
}

/// The 9P namespace of a cpu session, as the reference builds it: a
/// private mount namespace, a fresh tmpfs on /tmp, the client's files at
/// /tmp/cpu (the kernel's 9P client on the forwarded connection, after
/// the nonce), then the binds of CPU_FSTAB. A bind that fails is a
/// warning, as in the reference; everything else is fatal. Unlike the
/// reference, the client's cwd is bound last (crate::cwd); where the
/// command starts is returned.
///
/// On a kernel without 9p the same stream is mounted through FUSE, served
/// by a thread of this process; its handle is returned.
fn namespace(
    r: &RemoteArgs,
    nonce: &str,
    debug: bool,
) -> Result<(Option<FuseThread>, Start), String> {
    let port = r
        .port9p
        .ok_or("CPUNONCE is set but -port9p is not: no 9P to mount")?;
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare(CLONE_NEWNS): {e}"))?;
    // Nothing mounted here may reach the host's namespace.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("making / private: {e}"))?;
    mount(
        Some("cpu"),
        "/tmp",
        Some("tmpfs"),
        MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| format!("tmpfs on /tmp: {e}"))?;
    let tmp_dev = nix::sys::stat::stat("/tmp")
        .map_err(|e| format!("the tmpfs on /tmp: {e}"))?
        .st_dev;
    for dir in [CPU_MOUNT, "/home"] {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {dir}: {e}"))?;
    }
    let mut sock = TcpStream::connect(("127.0.0.1", port))
        .or_else(|_| TcpStream::connect(("::1", port)))
        .map_err(|e| format!("dialing the 9P forward on port {port}: {e}"))?;
    sock.write_all(nonce.as_bytes())
        .map_err(|e| format!("sending the nonce: {e}"))?;
    let fd = sock.as_raw_fd();
    let uname = std::env::var("USER").unwrap_or_else(|_| "nouser".into());
    let opts = format!(
        "version=9p2000.L,trans=fd,rfdno={fd},wfdno={fd},uname={uname},msize=1048576,debug=0"
    );
    if debug {
        eprintln!("cpud -remote: mount 9p on {CPU_MOUNT}: {opts}");
    }
    let fuse = match mount(
        Some("localhost"),
        CPU_MOUNT,
        Some("9p"),
        MsFlags::MS_NODEV | MsFlags::MS_NOSUID,
        Some(opts.as_str()),
    ) {
        Ok(()) => {
            if debug {
                eprintln!("cpud -remote: mounted with the kernel's 9p client");
            }
            // The kernel holds the connection now.
            drop(sock);
            None
        }
        Err(nix::errno::Errno::ENODEV) => {
            if debug {
                eprintln!("cpud -remote: this kernel has no 9p: mounting through FUSE");
            }
            Some(fuse_mount(sock, &uname)?)
        }
        Err(e) => return Err(format!("9p mount on {CPU_MOUNT}: {e}")),
    };
    let tab = std::env::var("CPU_FSTAB").unwrap_or_default();
    let mut mounted = Vec::new();
    for e in parse_fstab(&tab) {
        let fstype = (e.fstype != "none").then_some(e.fstype.as_str());
        let data = (!e.data.is_empty()).then_some(e.data.as_str());
        let flags = MsFlags::from_bits_truncate(e.flags as nix::libc::c_ulong);
        match mount(
            Some(e.source.as_str()),
            e.target.as_str(),
            fstype,
            flags,
            data,
        ) {
            Ok(()) => {
                if debug {
                    eprintln!("cpud -remote: mounted {} on {}", e.source, e.target);
                }
                mounted.push(e);
            }
            Err(err) => eprintln!(
                "cpud -remote: warning: mount {} on {}: {err}",
                e.source, e.target
            ),
        }
    }
    let start = match std::env::var("PWD") {
        Ok(pwd) => crate::cwd::client_cwd(&pwd, &mounted, tmp_dev, debug)?,
        Err(_) => Start::Pwd,
    };
    Ok((fuse, start))
}

/// The thread serving the FUSE mount.
pub type FuseThread = std::thread::JoinHandle<std::io::Result<()>>;

/// Mounts the 9P stream at /tmp/cpu through FUSE, served by a thread;
/// returns once the mount is in place. The signals a session gets are
/// blocked first, in every thread: they are for the command, which
/// starts with them unblocked.
fn fuse_mount(sock: TcpStream, uname: &str) -> Result<FuseThread, String> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        set.add(s);
    }
    set.thread_block()
        .map_err(|e| format!("blocking signals: {e}"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    let uname = uname.to_string();
    let handle = std::thread::spawn(move || {
        crate::fuse9p::serve(sock, &uname, Path::new(CPU_MOUNT), move || {
            let _ = tx.send(());
        })
    });
    match rx.recv_timeout(std::time::Duration::from_secs(30)) {
        Ok(()) => Ok(handle),
        Err(_) => match handle.join() {
            Ok(Err(e)) => Err(format!("FUSE mount on {CPU_MOUNT}: {e}")),
            _ => Err(format!("FUSE mount on {CPU_MOUNT} did not come up")),
        },
    }
}

/// Becomes the account `name` after the mounts are made: its groups, gid
/// and uid, and HOME, SHELL, USER and LOGNAME. An unknown account is
/// refused.
fn become_account(name: &str, debug: bool) -> Result<(), String> {
    use nix::unistd::{initgroups, setgid, setuid, User};
    let user = User::from_name(name)
        .map_err(|e| format!("looking up account {name:?}: {e}"))?
        .ok_or_else(|| format!("there is no account {name:?} on this host"))?;
    let cname = std::ffi::CString::new(name).map_err(|_| format!("bad account name {name:?}"))?;
    initgroups(&cname, user.gid).map_err(|e| format!("groups of {name}: {e}"))?;
    setgid(user.gid).map_err(|e| format!("setgid({}): {e}", user.gid))?;
    setuid(user.uid).map_err(|e| format!("setuid({}): {e}", user.uid))?;
    // One thread here (a fresh exec): setting the environment races with
    // nothing, and the command inherits it.
    std::env::set_var("HOME", &user.dir);
    std::env::set_var("SHELL", &user.shell);
    std::env::set_var("USER", name);
    std::env::set_var("LOGNAME", name);
    if debug {
        eprintln!(
            "cpud -remote: running as {name} (uid {}, gid {})",
            user.uid, user.gid
        );
    }
    Ok(())
}
