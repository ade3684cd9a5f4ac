//! Admission of connections that have not logged in yet ("startups"):
//! sshd's `MaxStartups` random early drop and `PerSourceMaxStartups`,
//! with one rule better than sshd's: at the cap, the oldest connection
//! that has not sent its identification line (else has not finished
//! kex) is evicted for the newcomer, so an idle flood cannot lock users
//! out. Also the deadlines: the identification line's and the login
//! grace time. Pure: the runtime supplies the clock, the dice and the
//! connections (through [`Probe`]).

use std::collections::BTreeMap;
use std::time::Duration;

/// `-maxStartups start:rate:full`, as sshd's `MaxStartups`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxStartups {
    /// Below this many unauthenticated connections, all are admitted.
    pub start: u32,
    /// The drop probability (percent) at `start`, rising linearly...
    pub rate: u32,
    /// ...to 100% at this many.
    pub full: u32,
}

impl Default for MaxStartups {
    fn default() -> Self {
        Self {
            start: 10,
            rate: 30,
            full: 100,
        }
    }
}

impl MaxStartups {
    /// Parses `start:rate:full`, or one number `n` (`n:100:n`), with
    /// sshd's checks.
    pub fn parse(s: &str) -> Result<Self, String> {
        let num = |w: &str| {
            w.parse::<u32>()
                .map_err(|_| format!("-maxStartups: {w:?} is not a number"))
        };
        let parts: Vec<&str> = s.split(':').collect();
        let m = match parts.as_slice() {
            [n] => {
                let n = num(n)?;
                Self {
                    start: n,
                    rate: 100,
                    full: n,
                }
            }
            [a, b, c] => Self {
                start: num(a)?,
                rate: num(b)?,
                full: num(c)?,
            },
            _ => return Err(format!("-maxStartups: {s:?} is not start:rate:full")),
        };
        if m.full == 0 {
            return Err("-maxStartups: full must be at least 1".into());
        }
        if m.start > m.full {
            return Err("-maxStartups: start above full".into());
        }
        if m.rate == 0 || m.rate > 100 {
            return Err("-maxStartups: rate must be 1 to 100".into());
        }
        Ok(m)
    }

    /// Whether a newcomer meeting `n` unauthenticated connections is
    /// dropped, `roll` being uniform in 0..100 (sshd's
    /// should_drop_connection).
    pub fn drops(&self, n: u32, roll: u32) -> bool {
        if n < self.start {
            return false;
        }
        if n >= self.full || self.rate == 100 {
            return true;
        }
        let p = (100 - self.rate) * (n - self.start) / (self.full - self.start) + self.rate;
        roll < p
    }
}

/// `-perSourceMaxStartups`: `none` (sshd's default) or a number.
pub fn parse_per_source(s: &str) -> Result<Option<u32>, String> {
    match s {
        "none" | "" => Ok(None),
        n => match n.parse::<u32>() {
            Ok(0) | Err(_) => Err(format!(
                "-perSourceMaxStartups: {n:?} is not none or a number from 1"
            )),
            Ok(n) => Ok(Some(n)),
        },
    }
}

/// How far a connection has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Its identification line has not come.
    Fresh,
    /// Identified; the first key exchange is not over.
    Kex,
    /// Keys exchanged; not authenticated.
    Login,
    /// Authenticated: no longer a startup.
    In,
    /// Over.
    Closed,
}

/// A connection the table watches.
pub trait Probe {
    /// How far it has come.
    fn phase(&self) -> Phase;
}

/// The admission rules and deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `-maxStartups`.
    pub max: MaxStartups,
    /// `-perSourceMaxStartups`.
    pub per_source: Option<u32>,
    /// The identification line's deadline (capped by `grace`).
    pub ident: Duration,
    /// `-loginGraceTime`; zero for none, as sshd.
    pub grace: Duration,
}

/// The identification line's own deadline.
pub const IDENT_TIME: Duration = Duration::from_secs(10);

/// What to do with a newcomer.
#[derive(Debug)]
pub enum Admission<T> {
    /// Serve it under `id`; cut `evicted` (the ones it displaced).
    Admit {
        /// Its entry, for [`Startups::attach`] and [`Startups::remove`].
        id: u64,
        /// Connections to cut to make room.
        evicted: Vec<T>,
    },
    /// Close it at once.
    Refuse(&'static str),
}

struct Entry<T> {
    source: String,
    since: Duration,
    conn: Option<T>,
}

impl<T: Probe> Entry<T> {
    fn phase(&self) -> Phase {
        self.conn.as_ref().map_or(Phase::Fresh, Probe::phase)
    }
}

/// The unauthenticated connections.
pub struct Startups<T> {
    limits: Limits,
    entries: BTreeMap<u64, Entry<T>>,
    next: u64,
}

impl<T> std::fmt::Debug for Startups<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Startups")
            .field("limits", &self.limits)
            .field("count", &self.entries.len())
            .finish()
    }
}

impl<T: Probe> Startups<T> {
    /// An empty table.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            entries: BTreeMap::new(),
            next: 0,
        }
    }

    /// How many connections count as startups.
    pub fn len(&mut self) -> usize {
        self.sweep();
        self.entries.len()
    }

    /// Whether none does.
    pub fn is_empty(&mut self) -> bool {
        self.len() == 0
    }

    /// Forgets the connections that logged in or ended.
    fn sweep(&mut self) {
        self.entries
            .retain(|_, e| !matches!(e.phase(), Phase::In | Phase::Closed));
    }

    /// The oldest connection (of `source`, if given) that may be
    /// evicted: one not identified first, else one in its first kex.
    /// One still being set up (not attached) counts as not identified:
    /// its [`Startups::attach`] then says it is to be cut.
    fn victim(&self, source: Option<&str>) -> Option<u64> {
        let mut best: Option<(Phase, u64)> = None;
        for (&id, e) in &self.entries {
            if source.is_some_and(|s| s != e.source) {
                continue;
            }
            let p = e.phase();
            if p > Phase::Kex {
                continue;
            }
            // Ids grow with age: the first of a phase is its oldest.
            if best.is_none_or(|(bp, _)| p < bp) {
                best = Some((p, id));
            }
        }
        best.map(|(_, id)| id)
    }

    fn evict(&mut self, id: u64, out: &mut Vec<T>) {
        if let Some(c) = self.entries.remove(&id).and_then(|e| e.conn) {
            out.push(c);
        }
    }

    /// Judges a newcomer from `source` at `now`; `roll` is uniform in
    /// 0..100 (the random early drop's dice).
    pub fn admit(&mut self, source: &str, now: Duration, roll: u32) -> Admission<T> {
        self.sweep();
        let mut evicted = Vec::new();
        if let Some(cap) = self.limits.per_source {
            let from = self.entries.values().filter(|e| e.source == source).count();
            if from >= cap as usize {
                match self.victim(Some(source)) {
                    Some(id) => self.evict(id, &mut evicted),
                    None => return Admission::Refuse("per-source startups full"),
                }
            }
        }
        let n = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        if self.limits.max.drops(n, roll) {
            match self.victim(None) {
                Some(id) => self.evict(id, &mut evicted),
                None => return Admission::Refuse("startups full"),
            }
        }
        let id = self.next;
        self.next += 1;
        self.entries.insert(
            id,
            Entry {
                source: source.to_owned(),
                since: now,
                conn: None,
            },
        );
        Admission::Admit { id, evicted }
    }

    /// Gives entry `id` its connection, once made; `Err` gives it back
    /// when the entry was evicted meanwhile (the caller cuts it).
    pub fn attach(&mut self, id: u64, conn: T) -> Result<(), T> {
        match self.entries.get_mut(&id) {
            Some(e) => {
                e.conn = Some(conn);
                Ok(())
            }
            None => Err(conn),
        }
    }

    /// Forgets entry `id` (its connection is over).
    pub fn remove(&mut self, id: u64) {
        self.entries.remove(&id);
    }

    /// Takes out the connections past a deadline at `now`, each with
    /// why; and says when the next deadline is.
    pub fn expired(&mut self, now: Duration) -> (Vec<(T, &'static str)>, Option<Duration>) {
        self.sweep();
        let grace = (!self.limits.grace.is_zero()).then_some(self.limits.grace);
        let ident = grace.map_or(self.limits.ident, |g| g.min(self.limits.ident));
        let mut out = Vec::new();
        let mut next: Option<Duration> = None;
        let mut gone = Vec::new();
        for (&id, e) in &self.entries {
            if e.conn.is_none() {
                continue;
            }
            let (limit, why) = match e.phase() {
                Phase::Fresh => (Some(ident), "no identification line in time"),
                _ => (grace, "login grace time over"),
            };
            let Some(limit) = limit else { continue };
            let at = e.since + limit;
            if at <= now {
                gone.push((id, why));
            } else if next.is_none_or(|n| at < n) {
                next = Some(at);
            }
        }
        for (id, why) in gone {
            if let Some(c) = self.entries.remove(&id).and_then(|e| e.conn) {
                out.push((c, why));
            }
        }
        (out, next)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
    use std::cell::Cell;
    use std::rc::Rc;

    #[derive(Clone, Debug)]
    struct Fake(Rc<Cell<Phase>>, u32);

    impl Probe for Fake {
        fn phase(&self) -> Phase {
            self.0.get()
        }
    }

    fn fake(n: u32, p: Phase) -> Fake {
        Fake(Rc::new(Cell::new(p)), n)
    }

    fn limits(max: &str) -> Limits {
        Limits {
            max: MaxStartups::parse(max).unwrap(),
            per_source: None,
            ident: IDENT_TIME,
            grace: Duration::from_secs(120),
        }
    }

    fn admit(t: &mut Startups<Fake>, src: &str, at: u64, roll: u32, c: Fake) -> Vec<u32> {
        match t.admit(src, Duration::from_secs(at), roll) {
            Admission::Admit { id, evicted } => {
                assert!(t.attach(id, c).is_ok());
                evicted.into_iter().map(|f| f.1).collect()
            }
            Admission::Refuse(_) => panic!("refused"),
        }
    }

    #[test]
    fn parses_as_sshd() {
        assert_eq!(MaxStartups::parse("10:30:100"), Ok(MaxStartups::default()));
        let one = MaxStartups::parse("7").unwrap();
        assert_eq!((one.start, one.rate, one.full), (7, 100, 7));
        for bad in [
            "", "a", "1:2", "20:30:10", "1:0:5", "1:101:5", "0", "1:2:3:4",
        ] {
            assert!(MaxStartups::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_per_source("none"), Ok(None));
        assert_eq!(parse_per_source("3"), Ok(Some(3)));
        assert!(parse_per_source("0").is_err());
        assert!(parse_per_source("x").is_err());
    }

    #[test]
    fn random_early_drop_is_sshds() {
        let m = MaxStartups::default();
        assert!(!m.drops(9, 0));
        // At start, rate percent: rolls 0..30 drop.
        assert!(m.drops(10, 29));
        assert!(!m.drops(10, 30));
        // Halfway (55): 30 + 70*45/90 = 65.
        assert!(m.drops(55, 64));
        assert!(!m.drops(55, 65));
        assert!(m.drops(100, 99));
    }

    #[test]
    fn full_evicts_the_unidentified_first_then_kex() {
        let mut t = Startups::new(limits("3"));
        let a = fake(0, Phase::Kex);
        let b = fake(1, Phase::Fresh);
        let c = fake(2, Phase::Login);
        assert!(admit(&mut t, "x", 0, 99, a.clone()).is_empty());
        assert!(admit(&mut t, "x", 1, 99, b).is_empty());
        assert!(admit(&mut t, "x", 2, 99, c).is_empty());
        // b is younger than a but has not identified: it goes first.
        assert_eq!(admit(&mut t, "x", 3, 99, fake(3, Phase::Kex)), vec![1]);
        // Then the oldest in kex (a), never the one after kex (c).
        assert_eq!(admit(&mut t, "x", 4, 99, fake(4, Phase::Kex)), vec![0]);
        assert_eq!(admit(&mut t, "x", 5, 99, fake(5, Phase::Login)), vec![3]);
        assert_eq!(admit(&mut t, "x", 6, 99, fake(6, Phase::Login)), vec![4]);
        // Only logins left (2, 5, 6): the newcomer is refused.
        assert!(matches!(
            t.admit("x", Duration::from_secs(7), 99),
            Admission::Refuse(_)
        ));
        drop(a);
    }

    #[test]
    fn one_not_attached_yet_is_evicted_first_and_told_at_attach() {
        let mut t = Startups::new(limits("2"));
        admit(&mut t, "x", 0, 0, fake(0, Phase::Fresh));
        let Admission::Admit { id: late, .. } = t.admit("x", Duration::from_secs(1), 0) else {
            panic!("refused")
        };
        assert_eq!(admit(&mut t, "x", 2, 0, fake(2, Phase::Kex)), vec![0]);
        assert_eq!(
            admit(&mut t, "x", 3, 0, fake(3, Phase::Kex)),
            Vec::<u32>::new()
        );
        assert_eq!(
            t.attach(late, fake(1, Phase::Fresh)).map_err(|f| f.1),
            Err(1)
        );
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn logged_in_and_closed_do_not_count() {
        let mut t = Startups::new(limits("2"));
        let a = fake(0, Phase::Login);
        admit(&mut t, "x", 0, 0, a.clone());
        admit(&mut t, "x", 0, 0, fake(1, Phase::Login));
        a.0.set(Phase::In);
        assert_eq!(t.len(), 1);
        assert!(admit(&mut t, "x", 0, 0, fake(2, Phase::Login)).is_empty());
    }

    #[test]
    fn per_source_evicts_its_own() {
        let mut l = limits("100");
        l.per_source = Some(2);
        let mut t = Startups::new(l);
        admit(&mut t, "a", 0, 0, fake(0, Phase::Fresh));
        admit(&mut t, "b", 0, 0, fake(1, Phase::Fresh));
        admit(&mut t, "a", 0, 0, fake(2, Phase::Fresh));
        assert_eq!(admit(&mut t, "a", 0, 0, fake(3, Phase::Fresh)), vec![0]);
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn deadlines() {
        let mut l = limits("100");
        l.grace = Duration::from_secs(3);
        let mut t = Startups::new(l);
        admit(&mut t, "a", 0, 0, fake(0, Phase::Fresh));
        admit(&mut t, "a", 1, 0, fake(1, Phase::Login));
        let (gone, next) = t.expired(Duration::from_secs(2));
        assert!(gone.is_empty());
        assert_eq!(next, Some(Duration::from_secs(3)));
        let (gone, next) = t.expired(Duration::from_secs(3));
        assert_eq!(gone.iter().map(|g| g.0 .1).collect::<Vec<_>>(), vec![0]);
        assert_eq!(next, Some(Duration::from_secs(4)));
        let (gone, _) = t.expired(Duration::from_secs(4));
        assert_eq!(gone[0].1, "login grace time over");
        // The identification deadline stands without a grace time.
        l.grace = Duration::ZERO;
        let mut t = Startups::new(l);
        admit(&mut t, "a", 0, 0, fake(0, Phase::Fresh));
        admit(&mut t, "a", 0, 0, fake(1, Phase::Login));
        let (gone, next) = t.expired(Duration::from_secs(1000));
        assert_eq!(gone.len(), 1);
        assert_eq!(next, None);
    }

    fn phase() -> impl Strategy<Value = Phase> {
        prop_oneof![
            Just(Phase::Fresh),
            Just(Phase::Kex),
            Just(Phase::Login),
            Just(Phase::In),
            Just(Phase::Closed),
        ]
    }

    proptest! {
        /// Whatever arrives, the table never holds more than `full`; a
        /// newcomer is refused only when nothing evictable is there;
        /// what is evicted never got past kex.
        #[test]
        fn never_above_full(
            full in 1u32..8,
            arrivals in proptest::collection::vec((phase(), 0u32..100, 0u8..3), 1..60),
        ) {
            let mut l = limits(&full.to_string());
            l.per_source = Some(full.div_ceil(2));
            let mut t: Startups<Fake> = Startups::new(l);
            for (i, (p, roll, src)) in arrivals.into_iter().enumerate() {
                let src = src.to_string();
                let before: Vec<Phase> = t.entries.values().map(Entry::phase).collect();
                match t.admit(&src, Duration::from_secs(i as u64), roll) {
                    Admission::Admit { id, evicted } => {
                        for e in &evicted {
                            prop_assert!(e.phase() <= Phase::Kex);
                        }
                        prop_assert!(t.attach(id, fake(i as u32, p)).is_ok());
                    }
                    Admission::Refuse(_) => {
                        prop_assert!(
                            before.iter().all(|p| *p >= Phase::Login)
                                || l.per_source.is_some()
                        );
                    }
                }
                prop_assert!(t.len() <= full as usize);
            }
        }

        #[test]
        fn drop_probability_rises(start in 0u32..50, span in 1u32..50, rate in 1u32..=100, n in 0u32..120, roll in 0u32..100) {
            let m = MaxStartups { start, rate, full: start + span };
            if m.drops(n, roll) {
                prop_assert!(n >= start);
                prop_assert!(m.drops(n + 1, roll));
                prop_assert!(m.drops(n, roll.saturating_sub(1)));
            }
        }
    }
}
