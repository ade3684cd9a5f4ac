//! How many key re-exchanges the peer may start: each one costs us a
//! post-quantum hybrid exchange and a host-key signature (about 7 ms of
//! CPU), so a peer that loops on KEXINIT must not get them for free.
//!
//! - Before login, one rekey after the first exchange (sshd serves none);
//!   a second is refused.
//! - After login, a rekey that follows at least [`REKEY_EARNED_BYTES`] of
//!   traffic is always served: its cost is small beside the data's, and
//!   clients with a small `RekeyLimit` (OpenSSH's `-o RekeyLimit=1M`)
//!   rekey that way many times a minute. Others are served at most
//!   [`PEER_REKEYS_PER_WINDOW`] times in any [`REKEY_WINDOW`].
//!
//! Time is the caller's `now`, as everywhere in this crate.

use core::time::Duration;

/// Peer-started rekeys allowed before login, after the first exchange.
pub const MAX_PREAUTH_REKEYS: u32 = 1;
/// Traffic since the previous exchange that makes a rekey free of the
/// rate limit.
pub const REKEY_EARNED_BYTES: u64 = 256 << 10;
/// Rekeys without that much traffic allowed in any [`REKEY_WINDOW`].
pub const PEER_REKEYS_PER_WINDOW: usize = 10;
/// The sliding window of the rate limit.
pub const REKEY_WINDOW: Duration = Duration::from_secs(60);

/// Why a peer's rekey was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RekeyRefused {
    /// A second rekey before login.
    BeforeLogin,
    /// More than the rate allows after login.
    TooFast,
}

/// The count of the peer's rekeys, for one connection.
#[derive(Debug, Clone, Default)]
pub struct RekeyBudget {
    preauth: u32,
    /// When the last unearned rekeys were served: a ring whose slot `next`
    /// is the oldest once all are filled.
    recent: [Option<Duration>; PEER_REKEYS_PER_WINDOW],
    next: usize,
}

impl RekeyBudget {
    /// A budget with nothing spent.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the peer may start a rekey (not the first exchange) at
    /// `now`, `bytes` after the previous exchange; if so, it is counted.
    pub fn allow(
        &mut self,
        authenticated: bool,
        now: Duration,
        bytes: u64,
    ) -> Result<(), RekeyRefused> {
        if !authenticated {
            if self.preauth >= MAX_PREAUTH_REKEYS {
                return Err(RekeyRefused::BeforeLogin);
            }
            self.preauth += 1;
            return Ok(());
        }
        if bytes >= REKEY_EARNED_BYTES {
            return Ok(());
        }
        if let Some(oldest) = self.recent[self.next] {
            if now.saturating_sub(oldest) < REKEY_WINDOW {
                return Err(RekeyRefused::TooFast);
            }
        }
        self.recent[self.next] = Some(now);
        self.next = (self.next + 1) % PEER_REKEYS_PER_WINDOW;
        Ok(())
    }
}
