//! Test support for `cpu_bins::fuse9p`, not installed for users.
//!
//! `fuse9p-test HOST:PORT MOUNTPOINT SCRIPT`: in a mount namespace of its
//! own (so nothing leaks to the host), dials a 9P server, mounts it at
//! MOUNTPOINT through FUSE, runs `sh -c SCRIPT` with `$M` set to the
//! mount point, unmounts and exits with the script's status. Exits 77
//! after a `SKIP` line when this machine cannot mount FUSE.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::mpsc;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

const SKIP: u8 = 77;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, mountpoint, script] = args.as_slice() else {
        eprintln!("usage: fuse9p-test HOST:PORT MOUNTPOINT SCRIPT");
        return ExitCode::from(2);
    };
    // Before any thread exists: unshare wants a single-threaded caller for
    // some flags, and the mount must never show outside this process.
    if let Err(e) = unshare(CloneFlags::CLONE_NEWNS) {
        println!("SKIP fuse9p: unshare(CLONE_NEWNS): {e}");
        return ExitCode::from(SKIP);
    }
    if let Err(e) = mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    ) {
        eprintln!("fuse9p-test: making / private: {e}");
        return ExitCode::from(1);
    }
    let stream = match TcpStream::connect(addr) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fuse9p-test: dialing {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    let mp = PathBuf::from(mountpoint);
    let (tx, rx) = mpsc::channel();
    let server = {
        let mp = mp.clone();
        std::thread::spawn(move || {
            let ready_tx = tx.clone();
            let r = cpu_bins::fuse9p::serve(stream, "root", &mp, move || {
                let _ = ready_tx.send(Ok(()));
            });
            // Only heard when the mount never came up.
            let _ = tx.send(
                r.as_ref()
                    .map(drop)
                    .map_err(|e| (cannot_fuse(e), e.to_string())),
            );
            r
        })
    };
    match rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err((skip, e))) => {
            let _ = server.join();
            if skip {
                println!("SKIP fuse9p: cannot mount FUSE: {e}");
                return ExitCode::from(SKIP);
            }
            eprintln!("fuse9p-test: mount: {e}");
            return ExitCode::from(1);
        }
        Err(_) => {
            eprintln!("fuse9p-test: the server thread died");
            return ExitCode::from(1);
        }
    }
    let status = Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("M", &mp)
        .status();
    // Unmounting ends the FUSE session; serve returns then.
    if let Err(e) = umount2(&mp, MntFlags::empty()) {
        eprintln!("fuse9p-test: umount {}: {e}; detaching", mp.display());
        let _ = umount2(&mp, MntFlags::MNT_DETACH);
    }
    match server.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("fuse9p-test: serve: {e}"),
        Err(_) => eprintln!("fuse9p-test: serve panicked"),
    }
    match status {
        Ok(s) => ExitCode::from(s.code().map_or(1, |c| c as u8)),
        Err(e) => {
            eprintln!("fuse9p-test: sh: {e}");
            ExitCode::from(1)
        }
    }
}

/// No FUSE on this machine: no /dev/fuse or fuse file system, mounting
/// not allowed, and no fusermount3 to fall back on.
fn cannot_fuse(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
    ) || matches!(e.raw_os_error(), Some(libc::ENODEV) | Some(libc::EPERM))
        || e.to_string().contains("ENODEV")
}
