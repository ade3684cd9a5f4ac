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

/// Browses `name` (e.g. `_ncpu._tcp.local.`) for `wait`, and returns the
/// instances resolved and not withdrawn by then, in the order they were
/// first resolved. `log` hears of each event (decpu -d).
pub fn browse(
    name: &str,
    wait: Duration,
    mut log: impl FnMut(&str),
) -> Result<Vec<Entry>, MdnsError> {
    let daemon = ServiceDaemon::new().map_err(daemon_err)?;
    let rx = daemon.browse(name).map_err(daemon_err)?;
    let mut deadline = Instant::now() + wait;
    let mut extended = false;
    let mut found: Vec<Entry> = Vec::new();
    // Bounded by the deadline: each wait is at most the time left.
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            // A record seen without an address to dial yet (its A record
            // still on the way): once, wait as long again for it.
            if !extended && found.iter().any(|e| dnssd::pick_addr(&e.addrs).is_none()) {
                extended = true;
                deadline = Instant::now() + wait;
                continue;
            }
            break;
        }
        let ev = match rx.recv_timeout(left) {
            Ok(ev) => ev,
            Err(mdns_sd::RecvTimeoutError::Timeout) => continue,
            Err(mdns_sd::RecvTimeoutError::Disconnected) => break,
        };
        match ev {
            ServiceEvent::ServiceResolved(r) => {
                let mut e = Entry {
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
                match found.iter_mut().find(|f| f.fullname == e.fullname) {
                    Some(f) => {
                        // A re-announced record (a TXT update) can resolve
                        // with only some of its addresses (a link-local
                        // IPv6 one before the IPv4 one): within one browse
                        // the addresses seen add up.
                        for a in std::mem::take(&mut f.addrs) {
                            if !e.addrs.contains(&a) {
                                e.addrs.push(a);
                            }
                        }
                        *f = e;
                    }
                    None => found.push(e),
                }
            }
            ServiceEvent::ServiceRemoved(_, fullname) => {
                log(&format!("removed {fullname}"));
                found.retain(|f| f.fullname != fullname);
            }
            _ => {}
        }
    }
    let _ = daemon.stop_browse(name);
    if let Ok(rx) = daemon.shutdown() {
        let _ = rx.recv_timeout(STOP_WAIT);
    }
    Ok(found)
}
