//! The mDNS half of decpu/decpud, on the `mdns-sd` crate (its own
//! thread, no async runtime): decpud's advertisement, kept up to date,
//! and decpu's bounded browse. What to say and whom to pick is decided in
//! [`crate::dnssd`]. Only decpu and decpud use this module, so cpu and
//! cpud link none of it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};

use crate::daemon::{SessionEvent, SessionHook};
use crate::dnssd::{self, CpuTimes, Entry, SysFigures};

/// How often the TXT record is refreshed without a session change (the
/// reference's dsUpdate).
pub const REFRESH: Duration = Duration::from_secs(60);

/// How long a withdrawal or a shutdown of the mDNS thread may take
/// before we go on without its answer.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// An mDNS failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MdnsError {
    /// The settings cannot be advertised.
    Config(String),
    /// The mDNS daemon refused or failed.
    Daemon(String),
}

impl fmt::Display for MdnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(m) => write!(f, "DNS-SD: {m}"),
            Self::Daemon(m) => write!(f, "mDNS: {m}"),
        }
    }
}

impl std::error::Error for MdnsError {}

fn daemon_err(e: mdns_sd::Error) -> MdnsError {
    MdnsError::Daemon(e.to_string())
}

/// What decpud advertises.
#[derive(Debug, Clone)]
pub struct AdvertiseConfig {
    /// The instance name; "" for `<hostname>-cpud`.
    pub instance: String,
    /// The service type, e.g. `_ncpu._tcp`.
    pub service: String,
    /// The domain; mDNS serves `local` only.
    pub domain: String,
    /// The one interface to advertise on; "" for all.
    pub interface: String,
    /// The TCP port cpud listens on.
    pub port: u16,
    /// The `-dsTxt` pairs.
    pub user_txt: BTreeMap<String, String>,
    /// Log each record published.
    pub debug: bool,
}

/// decpud's live advertisement: republished every [`REFRESH`] and on
/// every session start and end, withdrawn by [`Advertiser::stop`].
pub struct Advertiser {
    daemon: ServiceDaemon,
    fullname: String,
    tenants: Arc<AtomicUsize>,
    /// Wakes the refresh thread; dropped by stop, which ends that thread.
    wake: Mutex<Option<mpsc::Sender<()>>>,
}

/// The machine's name, as the reference's os.Hostname (which reads
/// this file on Linux): the UTS namespace's name.
fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

impl Advertiser {
    /// Publishes the record and starts the refresh thread.
    pub fn start(cfg: AdvertiseConfig) -> Result<Arc<Self>, MdnsError> {
        let domain = cfg.domain.trim_matches('.');
        if !domain.eq_ignore_ascii_case("local") {
            return Err(MdnsError::Config(format!(
                "-dsDomain {domain:?}: mDNS serves the local domain only"
            )));
        }
        let host = hostname();
        let instance = match (cfg.instance.as_str(), &host) {
            ("", Some(h)) => format!("{h}-cpud"),
            ("", None) => "cpud".to_string(),
            (i, _) => i.to_string(),
        };
        // The SRV target: our name in .local, which mdns-sd answers for
        // with the interfaces' addresses.
        let host_name = format!("{}.local.", host.as_deref().unwrap_or("cpud"));
        let ty_domain = format!("{}.{domain}.", cfg.service.trim_matches('.'));
        let daemon = ServiceDaemon::new().map_err(daemon_err)?;
        if !cfg.interface.is_empty() {
            daemon.disable_interface(IfKind::All).map_err(daemon_err)?;
            daemon
                .enable_interface(IfKind::Name(cfg.interface.clone()))
                .map_err(daemon_err)?;
        }
        let (tx, rx) = mpsc::channel();
        let tenants = Arc::new(AtomicUsize::new(0));
        let mut publisher = Publisher {
            daemon: daemon.clone(),
            ty_domain,
            instance,
            host_name,
            cfg,
            tenants: tenants.clone(),
            last_cpu: CpuTimes { busy: 0, total: 0 },
            probed: false,
        };
        // The first record is published here so that its errors (a bad
        // service type, say) stop decpud at once.
        let fullname = publisher.publish()?;
        std::thread::spawn(move || {
            // Ends when the sender goes (stop), else runs for the daemon's life.
            while let Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(REFRESH) {
                // Several session changes at once need one update.
                while rx.try_recv().is_ok() {}
                if let Err(e) = publisher.publish() {
                    eprintln!("decpud: {e}");
                }
            }
        });
        Ok(Arc::new(Self {
            daemon,
            fullname,
            tenants,
            wake: Mutex::new(Some(tx)),
        }))
    }

    /// The full instance name, e.g. `board-cpud._ncpu._tcp.local.`.
    pub fn fullname(&self) -> &str {
        &self.fullname
    }

    fn refresh(&self) {
        if let Ok(w) = self.wake.lock() {
            if let Some(tx) = w.as_ref() {
                let _ = tx.send(());
            }
        }
    }

    /// The daemon's session hook: counts tenants and republishes.
    pub fn session_hook(self: &Arc<Self>) -> SessionHook {
        let this = self.clone();
        SessionHook(Arc::new(move |ev| {
            match ev {
                SessionEvent::Start => {
                    this.tenants.fetch_add(1, Ordering::SeqCst);
                }
                SessionEvent::End => {
                    // Never below zero, whatever the order of events.
                    let _ = this
                        .tenants
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                            Some(n.saturating_sub(1))
                        });
                }
            }
            this.refresh();
        }))
    }

    /// Withdraws the record (goodbye packets, so browsers drop it now
    /// rather than when its TTL runs out) and stops the mDNS thread,
    /// waiting for each at most a bounded time.
    pub fn stop(&self) {
        if let Ok(mut w) = self.wake.lock() {
            w.take();
        }
        if let Ok(rx) = self.daemon.unregister(&self.fullname) {
            let _ = rx.recv_timeout(STOP_WAIT);
        }
        if let Ok(rx) = self.daemon.shutdown() {
            let _ = rx.recv_timeout(STOP_WAIT);
        }
    }
}

impl fmt::Debug for Advertiser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Advertiser")
            .field("fullname", &self.fullname)
            .field("tenants", &self.tenants)
            .finish_non_exhaustive()
    }
}

/// The refresh thread's state.
struct Publisher {
    daemon: ServiceDaemon,
    ty_domain: String,
    instance: String,
    host_name: String,
    cfg: AdvertiseConfig,
    tenants: Arc<AtomicUsize>,
    last_cpu: CpuTimes,
    /// The name was probed by the first registration.
    probed: bool,
}

impl Publisher {
    /// Reads the machine's figures and (re)registers the record; returns
    /// the full instance name.
    fn publish(&mut self) -> Result<String, MdnsError> {
        let mem = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| dnssd::parse_meminfo(&t));
        let cpu_pcnt = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|t| dnssd::parse_stat(&t))
            .map(|now| {
                // The first sample covers the time since boot.
                let p = dnssd::cpu_percent(self.last_cpu, now);
                self.last_cpu = now;
                p
            });
        let figures = SysFigures {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            mem,
            cpu_pcnt,
            tenants: self.tenants.load(Ordering::SeqCst),
        };
        let txt: HashMap<String, String> = dnssd::txt_record(&self.cfg.user_txt, &figures)
            .into_iter()
            .collect();
        if self.cfg.debug {
            eprintln!("decpud: TXT {txt:?}");
        }
        let mut info = ServiceInfo::new(
            &self.ty_domain,
            &self.instance,
            &self.host_name,
            "",
            self.cfg.port,
            txt,
        )
        .map_err(|e| MdnsError::Config(e.to_string()))?
        .enable_addr_auto();
        if !self.cfg.interface.is_empty() {
            info.set_interfaces(vec![IfKind::Name(self.cfg.interface.clone())]);
        }
        // An update of our own record: probing it again would set the new
        // TXT against our old one and leave it unannounced (mdns-sd keeps
        // answering with the old one), so it is announced at once.
        if self.probed {
            info.set_requires_probe(false);
        }
        let fullname = info.get_fullname().to_string();
        self.daemon.register(info).map_err(daemon_err)?;
        self.probed = true;
        Ok(fullname)
    }
}

/// The shortest browse. An mDNS responder multicasts a record at most
/// once a second (RFC 6762 §6; mdns-sd holds to it) and leaves it out of
/// its answers meanwhile, and decpud announces its TXT update at every
/// session start and end twice, 1.1 s apart. A browse begun within that
/// time gets no answer to its first query, but it hears the second
/// announcement, or (begun after it) the answer to its second query,
/// which mdns-sd sends 1 s after the first: both within 1.1 s and the
/// answer delay (20-120 ms).
pub const MIN_BROWSE: Duration = Duration::from_millis(1300);

/// How long each further browse for an incomplete record lasts, and how
/// many there may be: longer than a rate-limit second and the answer
/// delay, so that our own last answer never holds back the next one.
pub const RETRY: Duration = Duration::from_millis(1250);
/// See [`RETRY`].
pub const RETRIES: usize = 2;

/// Browses `name` (e.g. `_ncpu._tcp.local.`) for `wait`, at least
/// [`MIN_BROWSE`], and returns the instances resolved and not withdrawn
/// by then, in the order they were first resolved. `log` hears of each
/// event (decpu -d).
///
/// While a record is not complete yet (no address to dial, or no TXT
/// record), it browses again, [`RETRIES`] times at most, each for
/// [`RETRY`] with a new mDNS cache. Within one browse, waiting longer
/// does not help: mdns-sd counts a record without its TXT as resolved,
/// and its next queries name the PTR record as known, so the responder
/// stays silent and the TXT never comes. It is missing when the responder
/// multicast it less than a second before (a TXT update right after a
/// session), which is when answers leave it out.
pub fn browse(
    name: &str,
    wait: Duration,
    mut log: impl FnMut(&str),
) -> Result<Vec<Entry>, MdnsError> {
    let (mut found, _) = browse_once(name, wait.max(MIN_BROWSE), &mut log)?;
    let incomplete = |e: &Entry| dnssd::pick_addr(&e.addrs).is_none() || e.txt.is_empty();
    for _ in 0..RETRIES {
        if !found.iter().any(incomplete) {
            break;
        }
        log("browsing again, with a new cache: a record is not complete yet");
        let (again, removed) = browse_once(name, RETRY, &mut log)?;
        found.retain(|f| !removed.contains(&f.fullname));
        for e in again {
            match found.iter_mut().find(|f| f.fullname == e.fullname) {
                Some(f) => merge(f, e),
                None => found.push(e),
            }
        }
    }
    Ok(found)
}

/// Takes a newer resolution `e` of the record `f`: the addresses seen add
/// up (a re-announced record can resolve with only some of them, a
/// link-local IPv6 one before the IPv4 one), and an empty TXT (not come
/// yet) does not replace one that came.
fn merge(f: &mut Entry, mut e: Entry) {
    for a in std::mem::take(&mut f.addrs) {
        if !e.addrs.contains(&a) {
            e.addrs.push(a);
        }
    }
    if e.txt.is_empty() {
        e.txt = std::mem::take(&mut f.txt);
    }
    *f = e;
}

/// One browse of `name` for `wait` with a new daemon (and so an empty
/// cache): the records resolved and not withdrawn, and the names
/// withdrawn.
fn browse_once(
    name: &str,
    wait: Duration,
    log: &mut impl FnMut(&str),
) -> Result<(Vec<Entry>, Vec<String>), MdnsError> {
    let daemon = ServiceDaemon::new().map_err(daemon_err)?;
    let rx = daemon.browse(name).map_err(daemon_err)?;
    let deadline = Instant::now() + wait;
    let mut found: Vec<Entry> = Vec::new();
    let mut removed = Vec::new();
    // Bounded by the deadline: each wait is at most the time left.
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let ev = match rx.recv_timeout(left) {
            Ok(ev) => ev,
            Err(mdns_sd::RecvTimeoutError::Timeout) => continue,
            Err(mdns_sd::RecvTimeoutError::Disconnected) => break,
        };
        match ev {
            ServiceEvent::ServiceResolved(r) => {
                let e = Entry {
                    fullname: r.get_fullname().to_string(),
                    host: r.get_hostname().to_string(),
                    addrs: r.get_addresses().iter().map(|a| a.to_ip_addr()).collect(),
                    port: r.get_port(),
                    txt: r
                        .get_properties()
                        .iter()
                        .map(|p| (p.key().to_string(), p.val_str().to_string()))
                        .collect(),
                };
                log(&format!(
                    "resolved {} at {}:{} {:?} {:?}",
                    e.fullname, e.host, e.port, e.addrs, e.txt
                ));
                removed.retain(|n| *n != e.fullname);
                match found.iter_mut().find(|f| f.fullname == e.fullname) {
                    Some(f) => merge(f, e),
                    None => found.push(e),
                }
            }
            ServiceEvent::ServiceRemoved(_, fullname) => {
                log(&format!("removed {fullname}"));
                found.retain(|f| f.fullname != fullname);
                removed.push(fullname);
            }
            _ => {}
        }
    }
    let _ = daemon.stop_browse(name);
    if let Ok(rx) = daemon.shutdown() {
        let _ = rx.recv_timeout(STOP_WAIT);
    }
    Ok((found, removed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::IpAddr;

    fn entry(addrs: &[&str], txt: &[(&str, &str)]) -> Entry {
        Entry {
            fullname: "board-cpud._ncpu._tcp.local.".into(),
            host: "board.local.".into(),
            addrs: addrs.iter().filter_map(|a| a.parse().ok()).collect(),
            port: 17010,
            txt: txt
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn a_later_resolution_adds_addresses_and_keeps_a_txt_that_came() {
        let mut f = entry(&["fe80::1"], &[("tenants", "1")]);
        merge(&mut f, entry(&["10.0.0.1"], &[]));
        assert_eq!(f.addrs, entry(&["10.0.0.1", "fe80::1"], &[]).addrs);
        assert_eq!(f.txt, entry(&[], &[("tenants", "1")]).txt);
        // A TXT that comes replaces the older one.
        merge(&mut f, entry(&["10.0.0.1"], &[("tenants", "0")]));
        assert_eq!(f.txt, entry(&[], &[("tenants", "0")]).txt);
        assert_eq!(f.addrs.len(), 2);
    }

    proptest! {
        /// Whatever the resolutions of one record and their order, the
        /// merged one has every address seen, once, and the TXT of the
        /// last resolution that had one (none only if none had).
        #[test]
        fn resolutions_merge_into_every_address_and_the_last_txt(
            seen in prop::collection::vec(
                // mdns-sd gives each resolution's addresses as a set.
                (prop::collection::btree_set(0u8..6, 0..4), prop::option::of(0u8..4)),
                1..8,
            )
        ) {
            let resolution = |(addrs, txt): &(std::collections::BTreeSet<u8>, Option<u8>)| Entry {
                fullname: "n._ncpu._tcp.local.".into(),
                host: "n.local.".into(),
                addrs: addrs.iter().map(|a| IpAddr::from([10, 0, 0, *a])).collect(),
                port: 1,
                txt: txt.iter().map(|t| ("tenants".to_string(), t.to_string())).collect(),
            };
            let mut f = resolution(&seen[0]);
            for s in &seen[1..] {
                merge(&mut f, resolution(s));
            }
            let mut want: Vec<u8> = seen.iter().flat_map(|(a, _)| a.iter().copied()).collect();
            want.sort_unstable();
            want.dedup();
            let mut got: Vec<u8> = f
                .addrs
                .iter()
                .map(|a| match a {
                    IpAddr::V4(v4) => v4.octets()[3],
                    IpAddr::V6(_) => u8::MAX,
                })
                .collect();
            got.sort_unstable();
            let unique = got.len();
            got.dedup();
            prop_assert_eq!(unique, got.len());
            prop_assert_eq!(got, want);
            let last_txt = seen.iter().rev().find_map(|(_, t)| *t);
            prop_assert_eq!(f.txt.get("tenants").cloned(), last_txt.map(|t| t.to_string()));
        }
    }
}
