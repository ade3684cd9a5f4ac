//! Serving a session channel on this host, as
//! `runtime_std::ssh::session` does and with its logic (setup requests,
//! control requests, exit status, the session's process group): the
//! command runs on pipes or on a pty whose descriptors are driven by
//! async-io, its exit is awaited on smol's blocking pool, and when the
//! channel goes first every process of its session is killed.

use std::fs::File;
use std::io;
use std::process::{Command, ExitStatus};
use std::sync::Arc;

use async_io::Async;
use futures_lite::{future, AsyncRead, AsyncWriteExt};
use runtime_std::pty::{self, WinSize};
use runtime_std::ssh::session::{cannot_run, exit_request, Group};

pub use runtime_std::ssh::session::{kill_all, no_subsystems, SessionSetup, StartCheck};

use super::{copy, Channel};

/// Answers requests until `exec`, `shell` or `subsystem` starts the
/// session; `None` if the channel closed first, or if `check` refused
/// the start (the channel is then ended, as [`StartCheck`] says).
pub async fn read_setup(ch: &Channel, check: StartCheck<'_>) -> Option<SessionSetup> {
    read_setup_with(ch, SessionSetup::default(), check).await
}

/// As [`read_setup`], from `setup` (its `no_pty`).
pub async fn read_setup_with(
    ch: &Channel,
    mut setup: SessionSetup,
    check: StartCheck<'_>,
) -> Option<SessionSetup> {
    loop {
        let (req, want_reply) = ch.next_request().await?;
        let (ok, start) = setup.apply(req);
        answer(ch, want_reply, ok);
        if start {
            if let Some(why) = check(&setup) {
                let _ = ch.stderr_writer().write_all(why.as_bytes()).await;
                let _ = ch.request(&exit_request(None), false).await;
                let _ = ch.send_eof();
                let _ = ch.close();
                return None;
            }
            return Some(setup);
        }
    }
}

fn answer(ch: &Channel, want_reply: bool, ok: bool) {
    if want_reply {
        let _ = ch.reply(ok);
    }
}

/// Runs `cmd` for the channel in a session of its own, on a pty when
/// `pty` is set (with TERM from it), then sends exit-status or
/// exit-signal, EOF and CLOSE. A command that cannot start gets its error
/// on stderr and status 127. Returns how the command ended.
pub async fn run(
    ch: &Channel,
    mut cmd: Command,
    pty: Option<(String, WinSize)>,
) -> Option<ExitStatus> {
    let result = match pty {
        Some((term, size)) => {
            cmd.env("TERM", term);
            run_pty(ch, cmd, size).await
        }
        None => run_pipes(ch, cmd).await,
    };
    let status = match result {
        Ok(s) => Some(s),
        Err(e) => {
            let _ = ch.write_stderr(cannot_run(&e).as_bytes()).await;
            None
        }
    };
    let _ = ch.request(&exit_request(status), false).await;
    let _ = ch.send_eof();
    let _ = ch.close();
    status
}

/// Watches the channel in a task of its own: window-change and signal
/// requests go to the command; when the channel closes while the command
/// still runs (the client went away), its whole session is killed.
fn watch(ch: &Channel, group: &Group, master: Option<Arc<Async<File>>>) {
    let (ch, group) = (ch.clone(), group.clone());
    smol::spawn(async move {
        while let Some((req, want_reply)) = ch.next_request().await {
            let ok = group.control(req, master.as_deref().map(Async::get_ref));
            answer(&ch, want_reply, ok);
        }
        group.hang_up();
    })
    .detach();
}

/// Waits for the child, and ends its session. The wait holds no thread:
/// the child's pidfd turns readable when it exits (Linux 5.3 and later),
/// and only then is it reaped, on the blocking pool (the reap also kills
/// what the command left in its session). Waiting there instead would
/// take a pool thread per running session, and the pool grows slowly: a
/// long session at the head of its queue held back the exit statuses of
/// the sessions behind it.
async fn reap(child: std::process::Child, group: Group) -> io::Result<ExitStatus> {
    let pid = rustix::process::Pid::from_child(&child);
    // Without pidfds (an old kernel), the wait itself goes to the pool.
    if let Ok(fd) = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
        Async::new(File::from(fd))?.readable().await?;
    }
    blocking::unblock(move || group.reap(child)).await
}

async fn run_pipes(ch: &Channel, cmd: Command) -> io::Result<ExitStatus> {
    // Socket pairs, not pipes: see spawn_session_stdio. Here it matters
    // most, as one executor thread both reads the command's output and
    // relays the 9P forward its files may come through.
    let (child, io) = pty::spawn_session_stdio(cmd)?;
    let group = Group::register(&child)?;
    watch(ch, &group, None);
    {
        let mut stdin = Async::new(io.stdin)?;
        let ch = ch.clone();
        // Dropping our end at the channel's EOF is the command's EOF.
        smol::spawn(async move { copy(&mut ch.reader(), &mut stdin).await }).detach();
    }
    let out = output(Some(Async::new(io.stdout)?), ch.writer());
    let err = output(Some(Async::new(io.stderr)?), ch.stderr_writer());
    future::zip(out, err).await;
    reap(child, group).await
}

/// Copies one output of the command to the channel.
async fn output(from: Option<impl AsyncRead + Unpin>, mut to: super::ChannelWriter) {
    if let Some(mut from) = from {
        copy(&mut from, &mut to).await;
    }
}

async fn run_pty(ch: &Channel, cmd: Command, size: WinSize) -> io::Result<ExitStatus> {
    let (child, master) = pty::spawn(cmd, size)?;
    let group = Group::register(&child)?;
    let master = Arc::new(Async::new(master)?);
    watch(ch, &group, Some(master.clone()));
    {
        let (ch, master) = (ch.clone(), master.clone());
        smol::spawn(async move { copy(&mut ch.reader(), &mut &*master).await }).detach();
    }
    // The master reads EIO once the last process holding the slave is
    // gone: that ends the output.
    copy(&mut &*master, &mut ch.writer()).await;
    reap(child, group).await
}
