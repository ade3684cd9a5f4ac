//! The daemon's gate: [`crate::startups`]'s rules applied to live
//! connections of either runtime (through [`Handle`]), the cuts they
//! call for, and how accept failures are survived. The runtimes only
//! call [`Gate::admit`], [`Gate::attach`], [`Gate::reap`] on a timer and
//! [`Gate::accept_failed`].

use std::collections::HashSet;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use runtime_std::ssh::state::Handle;

use crate::oplog;
use crate::startups::{Admission, Limits, Phase, Probe, Startups};

/// A connection as the gate sees it, whatever its runtime.
trait Watch: Send + Sync {
    fn phase(&self) -> Phase;
    fn cut(&self, why: &str);
}

impl<H: Handle + Send + Sync> Watch for H {
    fn phase(&self) -> Phase {
        let st = self.lock_state();
        if st.finished() {
            Phase::Closed
        } else if st.conn.is_authenticated() {
            Phase::In
        } else if st.conn.session_id().is_some() {
            Phase::Login
        } else if st.conn.peer_identified() {
            Phase::Kex
        } else {
            Phase::Fresh
        }
    }

    fn cut(&self, why: &str) {
        self.disconnect(why);
    }
}

struct Watched {
    conn: Arc<dyn Watch>,
    peer: String,
    id: u64,
}

impl Probe for Watched {
    fn phase(&self) -> Phase {
        self.conn.phase()
    }
}

/// The unauthenticated connections of one daemon.
pub struct Gate {
    table: Mutex<Startups<Watched>>,
    clock: Instant,
    dice: Mutex<u64>,
    /// When an accept failure was last logged, and how many were not.
    failing: Mutex<(Option<Instant>, u64)>,
    /// Connections cut and not yet gone (their threads, tasks and fds
    /// still held): accepting waits while there are `dying_cap`, so a
    /// flood's churn cannot outrun their teardown.
    dying: Mutex<Dying>,
    dying_cap: usize,
}

/// The tickets alive, and which of them were cut: one lock, so that a
/// cut racing its connection's end never counts a ticket already gone.
#[derive(Default)]
struct Dying {
    live: HashSet<u64>,
    cut: HashSet<u64>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").finish_non_exhaustive()
    }
}

/// A connection's place at the gate; leaving it (the connection is
/// over) frees the place.
pub struct Ticket {
    gate: Arc<Gate>,
    id: u64,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket").field("id", &self.id).finish()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.gate.lock().remove(self.id);
        let mut d = self.gate.dying();
        d.live.remove(&self.id);
        d.cut.remove(&self.id);
    }
}

/// How long the accept loop waits after a failed accept: the fds or
/// memory it lacked may come back as connections end.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How often a run of accept failures is logged.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(60);

/// The accept loop's wait while too many cut connections are going.
const DYING_WAIT: Duration = Duration::from_millis(5);

/// The longest the reaper sleeps (a connection attached meanwhile may
/// have an earlier deadline): deadlines are kept to this much.
const REAP_TICK: Duration = Duration::from_millis(500);

impl Gate {
    /// A gate with `limits`.
    pub fn new(limits: Limits) -> Self {
        let seed = rand_core::RngCore::next_u64(&mut rand_core::OsRng) | 1;
        Self {
            table: Mutex::new(Startups::new(limits)),
            clock: Instant::now(),
            dice: Mutex::new(seed),
            failing: Mutex::new((None, 0)),
            dying: Mutex::new(Dying::default()),
            dying_cap: limits.max.full as usize,
        }
    }

    fn dying(&self) -> MutexGuard<'_, Dying> {
        self.dying.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Cuts `w`, counted as dying until its ticket goes.
    fn cut(&self, w: &Watched, why: &str) {
        {
            let mut d = self.dying();
            if d.live.contains(&w.id) {
                d.cut.insert(w.id);
            }
        }
        w.conn.cut(why);
    }

    /// How long to wait before the next accept, if the connections cut
    /// are still too many to be gone (each ends promptly: its socket is
    /// shut down).
    pub fn pause(&self) -> Option<Duration> {
        (self.dying().cut.len() >= self.dying_cap).then_some(DYING_WAIT)
    }

    fn lock(&self) -> MutexGuard<'_, Startups<Watched>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Uniform enough in 0..100 for a drop decision (xorshift; the seed
    /// is random, so a client cannot predict its luck).
    fn roll(&self) -> u32 {
        let mut s = self.dice.lock().unwrap_or_else(|p| p.into_inner());
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        (*s % 100) as u32
    }

    /// Judges a connection from `peer` just accepted: `None` to close it
    /// at once. Connections it displaces are cut here.
    pub fn admit(self: &Arc<Self>, peer: &str) -> Option<Ticket> {
        let roll = self.roll();
        let now = self.clock.elapsed();
        let judged = self.lock().admit(source(peer), now, roll);
        match judged {
            Admission::Admit { id, evicted } => {
                for w in evicted {
                    oplog::daemon(format_args!(
                        "{}: evicted before login for {peer} (startups full)",
                        w.peer
                    ));
                    self.cut(&w, "too many connections before login");
                }
                self.dying().live.insert(id);
                Some(Ticket {
                    gate: self.clone(),
                    id,
                })
            }
            Admission::Refuse(why) => {
                oplog::daemon(format_args!("{peer}: dropped: {why}"));
                None
            }
        }
    }

    /// Gives `ticket`'s place its connection, for the deadlines and
    /// evictions to act on; cuts it if it was evicted while being made.
    pub fn attach<H: Handle + Send + Sync + 'static>(&self, ticket: &Ticket, conn: &H, peer: &str) {
        let w = Watched {
            conn: Arc::new(conn.clone()),
            peer: peer.to_owned(),
            id: ticket.id,
        };
        let late = self.lock().attach(ticket.id, w);
        if let Err(w) = late {
            oplog::daemon(format_args!("{peer}: evicted before login (startups full)"));
            self.cut(&w, "too many connections before login");
        }
    }

    /// Cuts the connections past their deadline; returns how long to
    /// wait before the next call.
    pub fn reap(&self) -> Duration {
        let now = self.clock.elapsed();
        let (gone, next) = self.lock().expired(now);
        for (w, why) in gone {
            oplog::auth(format_args!("{}: cut before login: {why}", w.peer));
            self.cut(&w, why);
        }
        next.map_or(REAP_TICK, |at| at.saturating_sub(now).min(REAP_TICK))
    }

    /// An accept failed: logged at most once a minute (with how many
    /// were not); returns how long to wait before accepting again.
    pub fn accept_failed(&self, e: &io::Error) -> Duration {
        let mut f = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        let (last, quiet) = &mut *f;
        if last.is_none_or(|t| t.elapsed() >= ACCEPT_LOG_EVERY) {
            match *quiet {
                0 => oplog::daemon(format_args!("accept: {e} (retrying)")),
                n => oplog::daemon(format_args!("accept: {e} (retrying; {n} more since)")),
            }
            *last = Some(Instant::now());
            *quiet = 0;
        } else {
            *quiet += 1;
        }
        ACCEPT_BACKOFF
    }

    /// A thread or task for `peer` could not start.
    pub fn spawn_failed(&self, peer: &str, e: &io::Error) {
        oplog::daemon(format_args!("{peer}: cannot start its thread: {e}"));
    }
}

/// The address part of a peer's name (`1.2.3.4:5`, `[::1]:5`): the
/// per-source cap's key.
fn source(peer: &str) -> &str {
    match peer.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !host.is_empty() => {
            host.trim_start_matches('[').trim_end_matches(']')
        }
        _ => peer,
    }
}

/// Raises the soft fd limit to the hard one (sshd's trick is to need
/// few; a cap on startups bounds us, the rest is for sessions).
pub fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                oplog::daemon(format_args!("raising the fd limit to {hard}: {e}"));
            }
        }
        Ok(_) => {}
        Err(e) => oplog::daemon(format_args!("reading the fd limit: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::source;

    #[test]
    fn sources() {
        assert_eq!(source("127.0.0.1:4022"), "127.0.0.1");
        assert_eq!(source("[::1]:22"), "::1");
        assert_eq!(source("unix peer"), "unix peer");
        assert_eq!(source("vsock 3:17010"), "vsock 3");
    }
}
