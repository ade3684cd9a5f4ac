//! The peer's rekeys are bounded (`proto_ssh::kex::budget`): one before
//! login, a second refused with DISCONNECT; after login a rate in the
//! caller's time, lifted by traffic. Each side is a real state machine:
//! a hand-driven client transport before login, a logged-in pair after.

#![allow(clippy::unwrap_used)]

mod common;

use core::time::Duration;

use common::{client, logged_in, server};
use proptest::prelude::*;
use proto_ssh::connection::{Connection, Error, Event};
use proto_ssh::fuzzing::TestRng;
use proto_ssh::kex::budget::{
    RekeyBudget, RekeyRefused, PEER_REKEYS_PER_WINDOW, REKEY_EARNED_BYTES, REKEY_WINDOW,
};
use proto_ssh::pair::Pair;
use proto_ssh::transport::{Transport, TransportError};

/// A client transport that never logs in: it only does key exchanges.
struct RawClient {
    t: Transport,
    rng: TestRng,
    exchanges: usize,
    /// What the client's transport said when it stopped, if it did.
    stopped: Option<TransportError>,
}

impl RawClient {
    fn new() -> Self {
        let (t, rng) = common::raw_client_transport(21);
        Self {
            t,
            rng,
            exchanges: 0,
            stopped: None,
        }
    }

    /// Exchanges bytes with `server` until quiet; returns the server's
    /// error, if it failed.
    fn run(&mut self, server: &mut Connection) -> Option<Error> {
        let mut err = None;
        for _ in 0..40 {
            let mut moved = false;
            while let Some(b) = self.t.poll_transmit() {
                moved = true;
                if let Err(e) = server.handle_input(&b, Duration::ZERO) {
                    err.get_or_insert(e);
                }
            }
            while let Some(mut b) = server.poll_transmit() {
                moved = true;
                while !b.is_empty() && self.stopped.is_none() {
                    match self.t.feed(&b, Duration::ZERO, &mut self.rng) {
                        Ok((used, _)) => {
                            b.drain(..used);
                        }
                        Err(e) => self.stopped = Some(e),
                    }
                }
            }
            while self.t.poll_kex_done().is_some() {
                self.exchanges += 1;
            }
            if !moved {
                break;
            }
        }
        err
    }
}

fn raw_server() -> Connection {
    Connection::server(server("sig_ed25519"), Duration::ZERO, Box::new(TestRng(3))).unwrap()
}

#[test]
fn one_rekey_before_login_is_served_a_second_is_refused() {
    let mut s = raw_server();
    let mut c = RawClient::new();
    assert!(c.run(&mut s).is_none());
    assert_eq!(c.exchanges, 1, "first exchange");

    c.t.rekey(&mut c.rng).unwrap();
    assert!(c.run(&mut s).is_none(), "the first rekey is served");
    assert_eq!(c.exchanges, 2);
    assert!(c.stopped.is_none(), "{:?}", c.stopped);

    c.t.rekey(&mut c.rng).unwrap();
    let err = c.run(&mut s);
    assert!(
        matches!(
            err,
            Some(Error::Transport(TransportError::TooManyRekeys(
                RekeyRefused::BeforeLogin
            )))
        ),
        "{err:?}"
    );
    assert_eq!(c.exchanges, 2, "the second rekey was not served");
    // The client was told why, in a DISCONNECT.
    match &c.stopped {
        Some(TransportError::PeerDisconnected { description, .. }) => {
            assert_eq!(description, "too many key exchanges before login")
        }
        other => panic!("expected a DISCONNECT, got {other:?}"),
    }
    assert!(s.is_closed());
}

fn server_exchanges(p: &Pair) -> usize {
    p.server_events
        .iter()
        .filter(|e| matches!(e, Event::KexDone { .. }))
        .count()
}

/// The client starts a rekey and the pair runs until quiet.
fn client_rekey(p: &mut Pair) {
    p.client.rekey().unwrap();
    p.drive(50);
}

#[test]
fn rekeys_after_login_are_rate_limited_in_the_callers_time() {
    let mut p = logged_in(client("sig_ed25519"), server("sig_ed25519"));
    let base = server_exchanges(&p);
    // A burst of PEER_REKEYS_PER_WINDOW is served, one a second.
    for i in 1..=PEER_REKEYS_PER_WINDOW {
        client_rekey(&mut p);
        assert!(p.server_error.is_none(), "rekey {i}: {:?}", p.server_error);
        assert_eq!(server_exchanges(&p), base + i);
        p.advance(Duration::from_secs(1));
    }
    // After a minute, the oldest has left the window: PEER_REKEYS_PER_WINDOW
    // - 1 seconds passed since it; wait for the window to slide past it.
    p.advance(REKEY_WINDOW - Duration::from_secs(PEER_REKEYS_PER_WINDOW as u64));
    client_rekey(&mut p);
    assert!(p.server_error.is_none(), "{:?}", p.server_error);
    assert_eq!(server_exchanges(&p), base + PEER_REKEYS_PER_WINDOW + 1);
    // The second one of the burst is only 59 s old: one more is too fast.
    client_rekey(&mut p);
    assert!(
        matches!(
            p.server_error,
            Some(Error::Transport(TransportError::TooManyRekeys(
                RekeyRefused::TooFast
            )))
        ),
        "{:?}",
        p.server_error
    );
    assert_eq!(server_exchanges(&p), base + PEER_REKEYS_PER_WINDOW + 1);
    match &p.client_error {
        Some(Error::Transport(TransportError::PeerDisconnected { description, .. })) => {
            assert_eq!(description, "too many key exchanges per minute")
        }
        other => panic!("expected a DISCONNECT, got {other:?}"),
    }
}

#[test]
fn rekeys_after_login_within_the_rate_go_on_for_ever() {
    let mut p = logged_in(client("sig_ed25519"), server("sig_ed25519"));
    let base = server_exchanges(&p);
    // 30 rekeys at the highest steady rate: one per window / N.
    let step = REKEY_WINDOW / PEER_REKEYS_PER_WINDOW as u32;
    for i in 1..=3 * PEER_REKEYS_PER_WINDOW {
        client_rekey(&mut p);
        assert!(p.server_error.is_none(), "rekey {i}: {:?}", p.server_error);
        assert_eq!(server_exchanges(&p), base + i);
        p.advance(step);
    }
}

proptest! {
    /// After login: a rekey is refused exactly when it follows less than
    /// REKEY_EARNED_BYTES and PEER_REKEYS_PER_WINDOW unearned ones were
    /// served in the window before it.
    #[test]
    fn budget_after_login_matches_a_sliding_window(
        steps in prop::collection::vec((0u64..20_000, any::<bool>()), 1..200)
    ) {
        let mut b = RekeyBudget::new();
        let mut now = Duration::ZERO;
        let mut served: Vec<Duration> = Vec::new();
        for (ms, earned) in steps {
            now += Duration::from_millis(ms);
            let bytes = if earned { REKEY_EARNED_BYTES } else { REKEY_EARNED_BYTES - 1 };
            let in_window = served.iter().filter(|&&t| now - t < REKEY_WINDOW).count();
            let want_ok = earned || in_window < PEER_REKEYS_PER_WINDOW;
            let got = b.allow(true, now, bytes);
            prop_assert_eq!(got.is_ok(), want_ok);
            if !want_ok {
                prop_assert_eq!(got, Err(RekeyRefused::TooFast));
            }
            if got.is_ok() && !earned {
                served.push(now);
            }
        }
    }

    /// Before login only the first rekey is served, whatever the time and
    /// traffic; login then starts the rate limit afresh.
    #[test]
    fn budget_before_login_serves_one(
        steps in prop::collection::vec((0u64..120_000, any::<u64>()), 1..50)
    ) {
        let mut b = RekeyBudget::new();
        let mut now = Duration::ZERO;
        for (i, (ms, bytes)) in steps.into_iter().enumerate() {
            now += Duration::from_millis(ms);
            let got = b.allow(false, now, bytes);
            if i == 0 {
                prop_assert_eq!(got, Ok(()));
            } else {
                prop_assert_eq!(got, Err(RekeyRefused::BeforeLogin));
            }
        }
        prop_assert_eq!(b.allow(true, now, 0), Ok(()));
    }
}
