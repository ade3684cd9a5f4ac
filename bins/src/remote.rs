//! `cpud -remote [-d] [-port9p P] cmd args...`: the session child. The
//! daemon starts one per session (a fresh exec, so it is single-threaded
//! when it changes namespaces); it prepares the session and then becomes
//! the user's command, so the command's exit status is the session's.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use crate::cli::RemoteArgs;

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
    if std::env::var_os("CPUNONCE").is_some() {
        // The 9P namespace is built by the session code that mounts the
        // client's files; without it the command would run in a world
        // the client did not ask for.
        return (
            "cpud -remote: this cpud cannot mount the client's files yet (9P namespace not built)"
                .into(),
            1,
        );
    }
    let mut cmd = Command::new(&args[0]);
    cmd.args(&args[1..]);
    for k in SETUP_ENV {
        cmd.env_remove(k);
    }
    if let Some(pwd) = std::env::var_os("PWD") {
        let pwd = Path::new(&pwd);
        if pwd.is_dir() {
            cmd.current_dir(pwd);
        } else if debug {
            eprintln!(
                "cpud -remote: $PWD {:?} is not here; staying in {:?}",
                pwd,
                std::env::current_dir().ok()
            );
        }
    }
    if debug {
        eprintln!("cpud -remote: exec {args:?}");
    }
    let err = cmd.exec();
    let code = if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    };
    (format!("cpud -remote: {}: {err}", args[0]), code)
}
