//! The working directory of a cpu session with a 9P mount: the command
//! starts in the client's own directory, so that what it writes there
//! lands on the client. The reference runs it in the board's directory of
//! the same path (a private tmpfs for anything under /tmp, lost with the
//! session), or refuses a path the board lacks.
//!
//! After the namespace is built, the client's cwd (`/tmp/cpu$PWD`) is
//! bound over `$PWD`, unless a namespace entry already serves `$PWD`
//! from the client (namespace::serves_from_client). The awkward cases:
//! * `$PWD` is `/`: a mount over the root is invisible to path lookup,
//!   and replacing the board's root would hide the board; the command
//!   starts in /tmp/cpu (the client's root) instead, with PWD=/tmp/cpu.
//! * `$PWD` is `/tmp` or lies below it: /tmp is the session's private
//!   tmpfs, so a missing mount point is made there (nothing persists).
//!   A bind over /tmp itself hides the 9P mount's path /tmp/cpu (the
//!   mount stays, and so do the binds made from it).
//! * `$PWD` does not exist on the board elsewhere: making the mount point
//!   there would write to the board's own file systems, which this never
//!   does. Its deepest existing ancestor is shadowed by a tmpfs of binds
//!   (crate::shadow: for `/`, the session's root becomes the shadow), and
//!   the mount point is made in that tmpfs. Should that fail, the command
//!   starts in the client's directory through the mount, `/tmp/cpu$PWD`,
//!   with PWD set to that path.
//! * The client's directory cannot be reached through the mount (gone,
//!   or PWD does not name it): today's rule, with a warning.
//!
//! The client's path is resolved inside the mount (openat2
//! RESOLVE_IN_ROOT), so that its absolute symlinks lead to the client's
//! files, not the board's.

use std::os::fd::RawFd;
use std::path::Path;

use nix::fcntl::{open, openat2, OFlag, OpenHow, ResolveFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{stat, Mode};
use nix::unistd::fchdir;

use crate::namespace::{clean, covers, serves_from_client, MountEntry, CPU_MOUNT};

/// Where the command starts, once the namespace is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// In $PWD as the namespace has it (served by an entry, bound from
    /// the client here, or a session whose cwd could not be reached).
    Pwd,
    /// In this directory, which replaces PWD in the command's
    /// environment.
    At(String),
}

/// An open descriptor, closed when dropped.
struct Fd(RawFd);

impl Drop for Fd {
    fn drop(&mut self) {
        let _ = nix::unistd::close(self.0);
    }
}

/// Makes the client's directory `pwd` the command's starting point.
/// `mounted` are the fstab entries that were mounted; `tmp_dev` is the
/// device of the session's /tmp tmpfs, the one place where a missing
/// mount point may be made. Fails only when the client's directory,
/// once open, cannot be entered.
pub fn client_cwd(
    pwd: &str,
    mounted: &[MountEntry],
    tmp_dev: u64,
    debug: bool,
) -> Result<Start, String> {
    if !pwd.starts_with('/') {
        return Ok(Start::Pwd);
    }
    let p = clean(pwd);
    if let Some(e) = mounted.iter().find(|e| serves_from_client(e, &p)) {
        if debug {
            eprintln!(
                "cpud -remote: cwd {p}: served by {} on {}",
                e.source, e.target
            );
        }
        return Ok(Start::Pwd);
    }
    let dir = match open_in_mount(&p) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!(
                "cpud -remote: warning: your cwd {p} cannot be reached through the 9P mount \
                 ({e}): the board's own {p} is used"
            );
            return Ok(Start::Pwd);
        }
    };
    if p == "/" {
        if debug {
            eprintln!("cpud -remote: cwd /: starting in {CPU_MOUNT}, the client's root");
        }
        return Ok(Start::At(CPU_MOUNT.into()));
    }
    // First the mount point: the shadow of / changes the root (and the
    // cwd with it).
    let target_ok = Path::new(&p).is_dir() || make_mount_point(&p, tmp_dev, debug);
    fchdir(dir.0).map_err(|e| format!("entering the client's {p}: {e}"))?;
    if target_ok {
        // The source is the resolved directory, named as "." from inside
        // it: no /proc needed.
        match mount(
            Some("."),
            p.as_str(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        ) {
            Ok(()) => {
                if debug {
                    eprintln!("cpud -remote: cwd {p}: bound from the client");
                }
                return Ok(Start::Pwd);
            }
            Err(e) => eprintln!("cpud -remote: warning: binding the client's {p} over {p}: {e}"),
        }
    }
    // We are in the client's directory: the command starts here.
    let at = std::env::current_dir()
        .map(|d| d.to_string_lossy().into_owned())
        .unwrap_or_else(|_| clean(&format!("{CPU_MOUNT}{p}")));
    if debug {
        eprintln!("cpud -remote: cwd {p}: no mount point on the board, starting in {at}");
    }
    Ok(Start::At(at))
}

/// Opens the client's `p` (absolute) inside the 9P mount, its symlinks
/// resolved with the mount as the root. Kernels before 5.6 lack openat2:
/// there the plain path is opened.
fn open_in_mount(p: &str) -> nix::Result<Fd> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let root = Fd(open(CPU_MOUNT, flags, Mode::empty())?);
    let how = OpenHow::new()
        .flags(flags)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT);
    match openat2(root.0, p, how) {
        Err(nix::errno::Errno::ENOSYS) => open(
            clean(&format!("{CPU_MOUNT}{p}")).as_str(),
            flags,
            Mode::empty(),
        )
        .map(Fd),
        r => r.map(Fd),
    }
}

/// Makes the missing directory `p`: in the session's tmpfs (device
/// `tmp_dev`) when its deepest existing ancestor lies there, else by
/// shadowing that ancestor (crate::shadow), so nothing persists on the
/// board. Never inside the 9P mount: that would write on the client.
/// True when `p` is a directory now.
fn make_mount_point(p: &str, tmp_dev: u64, debug: bool) -> bool {
    let mut base = Path::new(p);
    while !base.exists() {
        match base.parent() {
            Some(up) => base = up,
            None => return false,
        }
    }
    if !base.is_dir() || covers(CPU_MOUNT, &base.to_string_lossy()) {
        return false;
    }
    let made = if stat(base).is_ok_and(|st| st.st_dev == tmp_dev) {
        std::fs::create_dir_all(p).map_err(|e| e.to_string())
    } else {
        let rest = Path::new(p).strip_prefix(base).unwrap_or(Path::new(""));
        crate::shadow::add_dirs(base, rest, debug)
    };
    match made {
        Ok(()) => {
            if debug {
                eprintln!("cpud -remote: made the mount point {p}");
            }
            true
        }
        Err(e) => {
            eprintln!("cpud -remote: warning: making the mount point {p}: {e}");
            false
        }
    }
}
