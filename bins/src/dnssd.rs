//! The network-free half of decpu/decpud (spec §1.4, §1.5, §3.6, §3.7):
//! the `dnssd://` URI, the `-dsTxt` pairs, the TXT record decpud
//! advertises, the requirement check and the sort of the candidates.
//! The mDNS traffic itself is in [`crate::mdns`].

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// What decpu uses for an empty host or `.`: the least-loaded node of
/// our arch and os.
pub const DEFAULT_URI: &str = "dnssd://?sort=tenants&sort=cpu.pcnt";
/// The service type of cpud.
pub const DEFAULT_SERVICE: &str = "_ncpu._tcp";
/// The mDNS domain.
pub const DEFAULT_DOMAIN: &str = "local";

/// The host argument of decpu.
#[derive(Debug, Clone, PartialEq)]
pub enum Host {
    /// Not a `dnssd:` URI: plain cpu behaviour with this host.
    Plain(String),
    /// A query to browse for.
    Dnssd(Query),
}

/// A parsed `dnssd://[instance.]_type._proto[.domain][/]?k=v&...` URI.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The one instance wanted, if named.
    pub instance: Option<String>,
    /// The service type, e.g. `_ncpu._tcp`.
    pub service: String,
    /// The domain, e.g. `local`.
    pub domain: String,
    /// The requirements per TXT key, in the order first written.
    pub require: Vec<(String, Requirement)>,
    /// The sort keys, most significant first.
    pub sort: Vec<SortKey>,
}

/// What one TXT key must satisfy. As in the reference, only the first
/// value of a repeated key counts for the operators `*`, `<`, `>` and `!`;
/// plain values of a repeated key are alternatives.
#[derive(Debug, Clone, PartialEq)]
pub enum Requirement {
    /// `*`: anything, or nothing.
    Any,
    /// `<N`: a number ≤ N (the reference's `<` includes N).
    AtMost(f64),
    /// `>N`: a number ≥ N.
    AtLeast(f64),
    /// `!v`: anything but v (a missing key passes).
    Not(String),
    /// One of these values (a missing key is the empty value).
    OneOf(Vec<String>),
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::AtMost(n) => write!(f, "<={n}"),
            Self::AtLeast(n) => write!(f, ">={n}"),
            Self::Not(v) => write!(f, "not {v:?}"),
            Self::OneOf(vs) => write!(f, "one of {vs:?}"),
        }
    }
}

/// How a sort key orders the candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOp {
    /// `<` (the default): ascending numbers.
    Ascending,
    /// `>`: descending numbers.
    Descending,
    /// `=`: entries having the key first.
    Present,
    /// `!`: entries lacking the key first.
    Absent,
}

/// One `sort=` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// The TXT key.
    pub key: String,
    /// The order.
    pub op: SortOp,
}

/// Why a host argument is not a usable `dnssd:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UriError {
    /// An empty label in the host part (`a..b`).
    EmptyLabel(String),
    /// The service type has one label: `_type._proto` needs two.
    ShortType(String),
    /// A `%` escape that is not two hex digits, or not UTF-8 once decoded.
    BadEscape(String),
    /// A `;` in the query, which Go's url package refuses.
    Semicolon(String),
    /// `<`, `>` or `!` with nothing after it, in a requirement or sort key.
    EmptyOperand(String),
    /// `<N` or `>N` whose N is not a number.
    NotANumber(String),
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyLabel(h) => write!(f, "empty label in {h:?}"),
            Self::ShortType(t) => write!(f, "service type {t:?}: want _type._proto"),
            Self::BadEscape(s) => write!(f, "bad %-escape in {s:?}"),
            Self::Semicolon(s) => write!(f, "';' in query {s:?}"),
            Self::EmptyOperand(s) => write!(f, "{s:?}: an operator needs a value"),
            Self::NotANumber(s) => write!(f, "{s:?}: not a number"),
        }
    }
}

impl std::error::Error for UriError {}

/// Reads decpu's host argument: empty or `.` is [`DEFAULT_URI`], a
/// `dnssd:` URI (any case of the scheme) a query, anything else a plain
/// host. `arch` and `os` default to the local [`go_arch`] and [`go_os`].
pub fn parse_host(arg: &str) -> Result<Host, UriError> {
    let arg = if arg.is_empty() || arg == "." {
        DEFAULT_URI
    } else {
        arg
    };
    let Some(rest) = strip_prefix_ignore_case(arg, "dnssd:") else {
        return Ok(Host::Plain(arg.to_string()));
    };
    parse_query(rest, go_arch(), go_os()).map(Host::Dnssd)
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Parses what follows `dnssd:`, with the given defaults for `arch` and
/// `os` (a parameter so that tests can name them).
pub fn parse_query(rest: &str, arch: &str, os: &str) -> Result<Query, UriError> {
    // The fragment plays no part, as in a URL.
    let rest = rest.split_once('#').map_or(rest, |(a, _)| a);
    let (before_query, raw_query) = rest.split_once('?').unwrap_or((rest, ""));
    // Only `//host` carries the names; a path after it is ignored.
    let host = match before_query.strip_prefix("//") {
        Some(h) => h.split_once('/').map_or(h, |(h, _)| h),
        None => "",
    };
    let mut q = Query {
        instance: None,
        service: DEFAULT_SERVICE.into(),
        domain: DEFAULT_DOMAIN.into(),
        require: Vec::new(),
        sort: Vec::new(),
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if !host.is_empty() {
        let labels: Vec<&str> = host.split('.').collect();
        if labels.iter().any(|l| l.is_empty()) {
            return Err(UriError::EmptyLabel(host.into()));
        }
        match labels.iter().position(|l| l.starts_with('_')) {
            // No service type: the whole host is the domain (as the reference).
            None => q.domain = host.into(),
            Some(i) => {
                let n = labels[i..]
                    .iter()
                    .take_while(|l| l.starts_with('_'))
                    .count();
                if n < 2 {
                    return Err(UriError::ShortType(labels[i].into()));
                }
                if i > 0 {
                    q.instance = Some(labels[..i].join("."));
                }
                q.service = labels[i..i + n].join(".");
                if i + n < labels.len() {
                    q.domain = labels[i + n..].join(".");
                }
            }
        }
    }
    let mut values: Vec<(String, Vec<String>)> = Vec::new();
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        if pair.contains(';') {
            return Err(UriError::Semicolon(pair.into()));
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (unescape(k)?, unescape(v)?);
        if k == "sort" {
            q.sort.push(parse_sort_key(&v)?);
            continue;
        }
        match values.iter_mut().find(|(key, _)| *key == k) {
            Some((_, vs)) => vs.push(v),
            None => values.push((k, vec![v])),
        }
    }
    for (key, default) in [("arch", arch), ("os", os)] {
        if !values.iter().any(|(k, _)| k == key) {
            values.push((key.into(), vec![default.into()]));
        }
    }
    for (k, vs) in values {
        let r = requirement(&vs)?;
        q.require.push((k, r));
    }
    Ok(q)
}

fn requirement(values: &[String]) -> Result<Requirement, UriError> {
    let first = values.first().map_or("", String::as_str);
    let number = |s: &str| -> Result<f64, UriError> {
        if s.len() < 2 {
            return Err(UriError::EmptyOperand(s.into()));
        }
        parse_number(&s[1..]).ok_or_else(|| UriError::NotANumber(s.into()))
    };
    Ok(match first.as_bytes().first() {
        Some(b'*') => Requirement::Any,
        Some(b'<') => Requirement::AtMost(number(first)?),
        Some(b'>') => Requirement::AtLeast(number(first)?),
        Some(b'!') if first.len() < 2 => return Err(UriError::EmptyOperand(first.into())),
        Some(b'!') => Requirement::Not(first[1..].into()),
        _ => Requirement::OneOf(values.to_vec()),
    })
}

fn parse_sort_key(v: &str) -> Result<SortKey, UriError> {
    let op = match v.as_bytes().first() {
        Some(b'<') => Some(SortOp::Ascending),
        Some(b'>') => Some(SortOp::Descending),
        Some(b'=') => Some(SortOp::Present),
        Some(b'!') => Some(SortOp::Absent),
        _ => None,
    };
    let (op, key) = match op {
        Some(op) => (op, &v[1..]),
        None => (SortOp::Ascending, v),
    };
    if key.is_empty() {
        return Err(UriError::EmptyOperand(v.into()));
    }
    Ok(SortKey {
        key: key.into(),
        op,
    })
}

/// Go's QueryUnescape: `+` is a space, `%XX` a byte.
fn unescape(s: &str) -> Result<String, UriError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| UriError::BadEscape(s.into()))?;
                out.push(hex);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| UriError::BadEscape(s.into()))
}

/// A TXT value as a number, as Go's ParseFloat reads most of them; NaN
/// is refused so that numbers always compare.
pub fn parse_number(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|n| !n.is_nan())
}

/// Why a candidate was dropped.
#[derive(Debug, Clone, PartialEq)]
pub enum Mismatch {
    /// A TXT key failed its requirement.
    Requirement {
        /// The key.
        key: String,
        /// What it had to be.
        wanted: Requirement,
        /// What it was (None: absent).
        got: Option<String>,
    },
    /// Not the instance the URI names.
    Instance {
        /// The instance wanted.
        wanted: String,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Requirement { key, wanted, got } => match got {
                Some(v) => write!(f, "{key}={v:?}, wanted {wanted}"),
                None => write!(f, "no {key}, wanted {wanted}"),
            },
            Self::Instance { wanted } => write!(f, "not instance {wanted:?}"),
        }
    }
}

/// Checks one TXT record against a requirement (the reference's
/// `required`: a missing key reads as the empty value).
pub fn meets(txt: &BTreeMap<String, String>, key: &str, r: &Requirement) -> bool {
    let got = txt.get(key).map_or("", String::as_str);
    match r {
        Requirement::Any => true,
        Requirement::AtMost(n) => parse_number(got).is_some_and(|v| v <= *n),
        Requirement::AtLeast(n) => parse_number(got).is_some_and(|v| v >= *n),
        Requirement::Not(v) => got != v,
        Requirement::OneOf(vs) => vs.iter().any(|v| v == got),
    }
}

/// One service instance seen while browsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The full instance name, e.g. `board-cpud._ncpu._tcp.local.`.
    pub fullname: String,
    /// The target host name from SRV.
    pub host: String,
    /// Its addresses.
    pub addrs: Vec<IpAddr>,
    /// The port.
    pub port: u16,
    /// The TXT record.
    pub txt: BTreeMap<String, String>,
}

impl Query {
    /// The name to browse for, e.g. `_ncpu._tcp.local.`.
    pub fn browse_name(&self) -> String {
        format!(
            "{}.{}.",
            self.service.trim_matches('.'),
            self.domain.trim_matches('.')
        )
    }

    /// Whether `e` may be chosen, and if not why.
    pub fn check(&self, e: &Entry) -> Result<(), Mismatch> {
        if let Some(inst) = &self.instance {
            let want = format!("{inst}.{}", self.browse_name());
            if !e.fullname.eq_ignore_ascii_case(&want) {
                return Err(Mismatch::Instance {
                    wanted: inst.clone(),
                });
            }
        }
        for (key, r) in &self.require {
            if !meets(&e.txt, key, r) {
                return Err(Mismatch::Requirement {
                    key: key.clone(),
                    wanted: r.clone(),
                    got: e.txt.get(key).cloned(),
                });
            }
        }
        Ok(())
    }

    /// Splits the candidates into the kept ones, sorted, and the dropped
    /// ones with their reason. The sort is stable: ties keep arrival order.
    pub fn choose(&self, entries: Vec<Entry>) -> (Vec<Entry>, Vec<(Entry, Mismatch)>) {
        let mut kept = Vec::new();
        let mut dropped = Vec::new();
        for e in entries {
            match self.check(&e) {
                Ok(()) => kept.push(e),
                Err(m) => dropped.push((e, m)),
            }
        }
        sort_entries(&mut kept, &self.sort);
        (kept, dropped)
    }
}

/// Sorts by the keys, most significant first, stably. Unlike the
/// reference, where a value that is no number compares "not less" than
/// anything (which is no order at all), such values go after every
/// number: a node with a broken figure is not preferred.
pub fn sort_entries(entries: &mut [Entry], keys: &[SortKey]) {
    entries.sort_by(|a, b| {
        keys.iter()
            .map(|k| compare(a, b, k))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    });
}

fn compare(a: &Entry, b: &Entry, k: &SortKey) -> Ordering {
    let has = |e: &Entry| e.txt.get(&k.key).is_some_and(|v| !v.is_empty());
    // +0.0 folds -0 into 0, so that total_cmp is the numeric order.
    let num = |e: &Entry| {
        e.txt
            .get(&k.key)
            .and_then(|v| parse_number(v))
            .map(|n| n + 0.0)
    };
    match k.op {
        SortOp::Present => has(b).cmp(&has(a)),
        SortOp::Absent => has(a).cmp(&has(b)),
        SortOp::Ascending | SortOp::Descending => match (num(a), num(b)) {
            (Some(x), Some(y)) if k.op == SortOp::Ascending => x.total_cmp(&y),
            (Some(x), Some(y)) => y.total_cmp(&x),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        },
    }
}

/// The address to dial: the first IPv4 one (in address order, since the
/// resolver's set has none), else a routable IPv6 one. Link-local IPv6
/// is left out: it needs a zone we cannot name in a host string.
pub fn pick_addr(addrs: &[IpAddr]) -> Option<IpAddr> {
    let mut v: Vec<IpAddr> = addrs.to_vec();
    v.sort();
    v.iter().find(|a| a.is_ipv4()).copied().or_else(|| {
        v.into_iter().find(|a| match a {
            IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
            IpAddr::V4(_) => false,
        })
    })
}

/// `-dsTxt`: `k=v,k2=v2`; a bare `k` means `k=true` (ds.ParseKv). A
/// later pair wins over an earlier one with the same key.
pub fn parse_kv(arg: &str) -> BTreeMap<String, String> {
    let mut txt = BTreeMap::new();
    if arg.is_empty() {
        return txt;
    }
    for pair in arg.split(',') {
        match pair.split_once('=') {
            Some((k, v)) => txt.insert(k.to_string(), v.to_string()),
            None => txt.insert(pair.to_string(), "true".to_string()),
        };
    }
    txt
}

/// What the machine tells about itself for the TXT record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SysFigures {
    /// Logical CPUs usable by us.
    pub cores: usize,
    /// MemAvailable and MemTotal in bytes, when /proc/meminfo has them.
    pub mem: Option<(u64, u64)>,
    /// Busy percent since the previous sample.
    pub cpu_pcnt: Option<f64>,
    /// Sessions being served.
    pub tenants: usize,
}

/// decpud's TXT record: `arch`, `os`, `cores`, `mem.avail`, `mem.total`,
/// `cpu.pcnt` (`%.6f`) and `tenants`, then the user's `-dsTxt` pairs,
/// which win over every computed key (so that a board can advertise a
/// fixed figure, and tests can pin one).
pub fn txt_record(user: &BTreeMap<String, String>, s: &SysFigures) -> BTreeMap<String, String> {
    let mut txt = BTreeMap::new();
    txt.insert("arch".to_string(), go_arch().to_string());
    txt.insert("os".to_string(), go_os().to_string());
    txt.insert("cores".to_string(), s.cores.to_string());
    if let Some((avail, total)) = s.mem {
        txt.insert("mem.avail".to_string(), avail.to_string());
        txt.insert("mem.total".to_string(), total.to_string());
    }
    if let Some(p) = s.cpu_pcnt {
        txt.insert("cpu.pcnt".to_string(), format!("{p:.6}"));
    }
    txt.insert("tenants".to_string(), s.tenants.to_string());
    for (k, v) in user {
        // The reference only fills arch/os/cores when the user left them
        // empty; an empty user value keeps ours for them too.
        if v.is_empty() && matches!(k.as_str(), "arch" | "os" | "cores") {
            continue;
        }
        txt.insert(k.clone(), v.clone());
    }
    txt
}

/// This machine's architecture in Go's GOARCH spelling, so that the Go
/// decpu's default `arch` requirement matches us.
pub const fn go_arch() -> &'static str {
    match std::env::consts::ARCH.as_bytes() {
        b"x86_64" => "amd64",
        b"aarch64" => "arm64",
        b"x86" => "386",
        b"loongarch64" => "loong64",
        b"powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        b"powerpc64" => "ppc64",
        b"mips64" if cfg!(target_endian = "little") => "mips64le",
        b"mips" if cfg!(target_endian = "little") => "mipsle",
        _ => std::env::consts::ARCH,
    }
}

/// This system in Go's GOOS spelling.
pub const fn go_os() -> &'static str {
    match std::env::consts::OS.as_bytes() {
        b"macos" => "darwin",
        _ => std::env::consts::OS,
    }
}

/// /proc/meminfo's MemAvailable and MemTotal, in bytes.
pub fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let rest = line.get(name.len()..)?.trim_start().strip_prefix(':')?;
        let kb: u64 = rest.split_whitespace().next()?.parse().ok()?;
        kb.checked_mul(1024)
    };
    Some((field("MemAvailable")?, field("MemTotal")?))
}

/// The aggregate `cpu` line of /proc/stat: busy and total jiffies, as
/// gopsutil counts them (busy excludes idle and iowait; guest time is
/// already inside user time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// Jiffies not idle.
    pub busy: u64,
    /// All jiffies.
    pub total: u64,
}

/// Reads the `cpu ` line of /proc/stat.
pub fn parse_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|w| w.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest, guest_nice
    // are counted in user and nice already).
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    let total = (0..8).map(at).fold(0u64, u64::saturating_add);
    let idle = at(3).saturating_add(at(4));
    Some(CpuTimes {
        busy: total.saturating_sub(idle),
        total,
    })
}

/// Busy percent between two samples, in 0..=100 (gopsutil's rules: no
/// busy time is 0, no elapsed time 100).
pub fn cpu_percent(before: CpuTimes, now: CpuTimes) -> f64 {
    if now.busy <= before.busy {
        return 0.0;
    }
    if now.total <= before.total {
        return 100.0;
    }
    let busy = (now.busy - before.busy) as f64;
    let all = (now.total - before.total) as f64;
    (busy / all * 100.0).clamp(0.0, 100.0)
}

/// The fuzz target `dnssd_uri`: any bytes as a host argument must give
/// a result, never a panic, and a parsed query must be self-consistent.
pub fn fuzz_uri(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    if let Ok(Host::Dnssd(q)) = parse_host(&s) {
        assert!(!q.service.is_empty() && !q.domain.is_empty());
        assert!(q.require.iter().any(|(k, _)| k == "arch"));
        let name = q.browse_name();
        assert!(name.ends_with('.'));
        let _ = q.choose(Vec::new());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn q(uri: &str) -> Query {
        match parse_query(uri.strip_prefix("dnssd:").unwrap(), "amd64", "linux") {
            Ok(q) => q,
            Err(e) => panic!("{uri}: {e}"),
        }
    }

    fn req(q: &Query, k: &str) -> Requirement {
        q.require
            .iter()
            .find(|(key, _)| key == k)
            .unwrap()
            .1
            .clone()
    }

    fn entry(name: &str, kv: &[(&str, &str)]) -> Entry {
        Entry {
            fullname: format!("{name}._ncpu._tcp.local."),
            host: format!("{name}.local."),
            addrs: vec![IpAddr::from([10, 0, 0, 1])],
            port: 17010,
            txt: kv
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn default_and_plain_hosts() {
        for h in ["", "."] {
            let Host::Dnssd(d) = parse_host(h).unwrap() else {
                panic!()
            };
            assert_eq!(d.service, "_ncpu._tcp");
            assert_eq!(d.domain, "local");
            assert_eq!(d.instance, None);
            assert_eq!(
                d.sort,
                vec![
                    SortKey {
                        key: "tenants".into(),
                        op: SortOp::Ascending
                    },
                    SortKey {
                        key: "cpu.pcnt".into(),
                        op: SortOp::Ascending
                    }
                ]
            );
            assert_eq!(req(&d, "arch"), Requirement::OneOf(vec![go_arch().into()]));
            assert_eq!(req(&d, "os"), Requirement::OneOf(vec![go_os().into()]));
        }
        for h in ["board", "u@board", "10.0.0.1", "board:22", "dnssdx"] {
            assert_eq!(parse_host(h).unwrap(), Host::Plain(h.into()));
        }
        assert!(matches!(parse_host("DNSSD:"), Ok(Host::Dnssd(_))));
    }

    #[test]
    fn host_part() {
        let x = q("dnssd://board._ncpu._tcp.example.org/ignored?x=1");
        assert_eq!(x.instance.as_deref(), Some("board"));
        assert_eq!(x.service, "_ncpu._tcp");
        assert_eq!(x.domain, "example.org");
        let x = q("dnssd://a.b._x._udp");
        assert_eq!(x.instance.as_deref(), Some("a.b"));
        assert_eq!(
            (x.service.as_str(), x.domain.as_str()),
            ("_x._udp", "local")
        );
        let x = q("dnssd://example.com");
        assert_eq!((x.instance, x.domain.as_str()), (None, "example.com"));
        let x = q("dnssd://_ncpu._tcp.local.");
        assert_eq!(x.browse_name(), "_ncpu._tcp.local.");
        assert_eq!(
            parse_query("//_ncpu.local", "a", "b"),
            Err(UriError::ShortType("_ncpu".into()))
        );
        assert!(matches!(
            parse_query("//a..b", "a", "b"),
            Err(UriError::EmptyLabel(_))
        ));
    }

    #[test]
    fn requirements() {
        let x = q("dnssd://?arch=*&cores=%3E4&mem=<8e9&near=gpu&near=fpga&os=!plan9&a+b=c%20d");
        assert_eq!(req(&x, "arch"), Requirement::Any);
        assert_eq!(req(&x, "cores"), Requirement::AtLeast(4.0));
        assert_eq!(req(&x, "mem"), Requirement::AtMost(8e9));
        assert_eq!(
            req(&x, "near"),
            Requirement::OneOf(vec!["gpu".into(), "fpga".into()])
        );
        assert_eq!(req(&x, "os"), Requirement::Not("plan9".into()));
        assert_eq!(req(&x, "a b"), Requirement::OneOf(vec!["c d".into()]));
        // The operator of the first value decides.
        let x = q("dnssd:?k=>2&k=7");
        assert_eq!(req(&x, "k"), Requirement::AtLeast(2.0));
        for (bad, want) in [
            ("?k=<", UriError::EmptyOperand("<".into())),
            ("?k=>x", UriError::NotANumber(">x".into())),
            ("?k=!", UriError::EmptyOperand("!".into())),
            ("?sort=>", UriError::EmptyOperand(">".into())),
            ("?k=%zz", UriError::BadEscape("%zz".into())),
            ("?k=%e2%82", UriError::BadEscape("%e2%82".into())),
            ("?k=1;j=2", UriError::Semicolon("k=1;j=2".into())),
        ] {
            assert_eq!(parse_query(bad, "a", "b"), Err(want), "{bad}");
        }
    }

    #[test]
    fn matching() {
        let x = q("dnssd:?arch=*&cores=>4&near=gpu&near=fpga&os=!plan9");
        assert!(x
            .check(&entry(
                "a",
                &[("arch", "arm64"), ("cores", "4"), ("near", "fpga")]
            ))
            .is_ok());
        let e = entry("b", &[("cores", "3"), ("near", "gpu")]);
        assert_eq!(
            x.check(&e),
            Err(Mismatch::Requirement {
                key: "cores".into(),
                wanted: Requirement::AtLeast(4.0),
                got: Some("3".into())
            })
        );
        assert!(
            x.check(&entry("c", &[("near", "gpu")])).is_err(),
            "no cores"
        );
        assert!(x
            .check(&entry("d", &[("cores", "x"), ("near", "gpu")]))
            .is_err());
        assert!(x
            .check(&entry(
                "e",
                &[("cores", "8"), ("near", "gpu"), ("os", "plan9")]
            ))
            .is_err());
        // arch and os default to the given local values.
        let d = q("dnssd:");
        assert!(d
            .check(&entry("f", &[("arch", "amd64"), ("os", "linux")]))
            .is_ok());
        assert!(d
            .check(&entry("g", &[("arch", "arm64"), ("os", "linux")]))
            .is_err());
        let named = q("dnssd://F._ncpu._tcp.local");
        let ok = entry("f", &[("arch", "amd64"), ("os", "linux")]);
        assert!(named.check(&ok).is_ok());
        let other = entry("g", &[("arch", "amd64"), ("os", "linux")]);
        assert_eq!(
            named.check(&other),
            Err(Mismatch::Instance { wanted: "F".into() })
        );
    }

    #[test]
    fn sorting() {
        let es = || {
            vec![
                entry("a", &[("tenants", "2"), ("cpu.pcnt", "1.0")]),
                entry("b", &[("tenants", "0"), ("cpu.pcnt", "50.0"), ("gpu", "1")]),
                entry("c", &[("tenants", "0"), ("cpu.pcnt", "3.5")]),
                entry("d", &[("tenants", "bad")]),
            ]
        };
        let names = |v: &[Entry]| {
            v.iter()
                .map(|e| e.host[..1].to_string())
                .collect::<String>()
        };
        let mut v = es();
        sort_entries(&mut v, &q("dnssd:?sort=tenants&sort=cpu.pcnt").sort);
        assert_eq!(names(&v), "cbad");
        sort_entries(&mut v, &q("dnssd:?sort=>cpu.pcnt").sort);
        assert_eq!(names(&v), "bcad");
        let mut v = es();
        sort_entries(&mut v, &q("dnssd:?sort==gpu").sort);
        assert_eq!(names(&v), "bacd");
        sort_entries(&mut v, &q("dnssd:?sort=!gpu").sort);
        assert_eq!(names(&v), "acdb");
        let mut v = es();
        sort_entries(&mut v, &[]);
        assert_eq!(names(&v), "abcd", "no sort keeps arrival order");
    }

    #[test]
    fn addresses() {
        let v6ll: IpAddr = "fe80::1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let v4: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(pick_addr(&[v6ll, v6, v4]), Some(v4));
        assert_eq!(pick_addr(&[v6ll, v6]), Some(v6));
        assert_eq!(pick_addr(&[v6ll]), None);
    }

    #[test]
    fn kv_and_txt() {
        let kv = parse_kv("near=gpu,fast,cores=64,x=a=b");
        assert_eq!(kv["near"], "gpu");
        assert_eq!(kv["fast"], "true");
        assert_eq!(kv["x"], "a=b");
        assert!(parse_kv("").is_empty());
        let s = SysFigures {
            cores: 8,
            mem: Some((1024, 4096)),
            cpu_pcnt: Some(12.5),
            tenants: 2,
        };
        let t = txt_record(&kv, &s);
        assert_eq!(t["arch"], go_arch());
        assert_eq!(t["os"], "linux");
        assert_eq!(t["cores"], "64");
        assert_eq!(t["mem.avail"], "1024");
        assert_eq!(t["mem.total"], "4096");
        assert_eq!(t["cpu.pcnt"], "12.500000");
        assert_eq!(t["tenants"], "2");
        assert_eq!(t["fast"], "true");
        let t = txt_record(&parse_kv("cores="), &s);
        assert_eq!(t["cores"], "8");
    }

    #[test]
    fn proc_files() {
        let mi = "MemTotal:       16318412 kB\nMemFree:  1 kB\nMemAvailable:   12000000 kB\n";
        assert_eq!(
            parse_meminfo(mi),
            Some((12_000_000 * 1024, 16_318_412 * 1024))
        );
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
        let a = parse_stat("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 1 1 1\n").unwrap();
        assert_eq!(
            a,
            CpuTimes {
                busy: 200,
                total: 1000
            }
        );
        let b = parse_stat("cpu  150 0 150 750 150 0 0 0 0 0\n").unwrap();
        assert_eq!(cpu_percent(a, b), 50.0);
        assert_eq!(cpu_percent(b, a), 0.0);
        assert_eq!(parse_stat("cpu x\n"), None);
        assert_eq!(go_os(), "linux");
    }

    #[test]
    fn fuzz_seeds() {
        for s in [
            "",
            ".",
            "dnssd:",
            "dnssd://?sort=",
            "dnssd://_a._b?x=<1",
            "dnssd:%",
        ] {
            fuzz_uri(s.as_bytes());
        }
    }

    fn label() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9-]{0,8}"
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,80}") {
            fuzz_uri(s.as_bytes());
            let _ = parse_host(&format!("dnssd://{s}"));
            let _ = parse_host(&format!("dnssd:?{s}"));
        }

        #[test]
        fn round_trip(
            inst in proptest::option::of(label()),
            ty in label(),
            proto in prop_oneof![Just("tcp"), Just("udp")],
            domain in proptest::option::of(label()),
            pairs in proptest::collection::vec((label(), "[a-zA-Z0-9 &=%+]{0,6}"), 0..5),
        ) {
            prop_assume!(pairs.iter().all(|(k, _)| k != "sort"));
            let esc = |s: &str| s.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
            let mut host = String::new();
            if let Some(i) = &inst { host += i; host += "."; }
            host += &format!("_{ty}._{proto}");
            if let Some(d) = &domain { host += "."; host += d; }
            let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{}={}", k, esc(v))).collect();
            let uri = format!("dnssd://{host}?{}", query.join("&"));
            let x = parse_query(&uri["dnssd:".len()..], "amd64", "linux").unwrap();
            prop_assert_eq!(x.instance, inst);
            prop_assert_eq!(x.service, format!("_{ty}._{proto}"));
            prop_assert_eq!(x.domain, domain.unwrap_or_else(|| "local".into()));
            for (k, v) in &pairs {
                let r = &x.require.iter().find(|(key, _)| key == k).unwrap().1;
                if let Requirement::OneOf(vs) = r {
                    prop_assert!(vs.contains(v));
                }
            }
        }

        #[test]
        fn numeric_requirements(v in -1000i64..1000, n in -1000i64..1000) {
            let txt: BTreeMap<String, String> = [("k".to_string(), v.to_string())].into();
            prop_assert_eq!(meets(&txt, "k", &Requirement::AtMost(n as f64)), v <= n);
            prop_assert_eq!(meets(&txt, "k", &Requirement::AtLeast(n as f64)), v >= n);
            prop_assert!(meets(&txt, "k", &Requirement::Any));
            prop_assert_eq!(
                meets(&txt, "k", &Requirement::Not(n.to_string())),
                !meets(&txt, "k", &Requirement::OneOf(vec![n.to_string()]))
            );
            prop_assert!(!meets(&BTreeMap::new(), "k", &Requirement::AtLeast(n as f64)));
        }

        #[test]
        fn sort_is_ordered_and_stable(
            vals in proptest::collection::vec(proptest::option::of(0u8..5), 0..12),
            desc in any::<bool>(),
        ) {
            let mut es: Vec<Entry> = vals.iter().enumerate().map(|(i, v)| {
                let mut e = entry(&format!("n{i}"), &[]);
                if let Some(v) = v { e.txt.insert("k".into(), v.to_string()); }
                e.port = i as u16;
                e
            }).collect();
            let op = if desc { SortOp::Descending } else { SortOp::Ascending };
            sort_entries(&mut es, &[SortKey { key: "k".into(), op }]);
            prop_assert_eq!(es.len(), vals.len());
            let key = |e: &Entry| e.txt.get("k").map(|v| v.parse::<i32>().unwrap());
            for w in es.windows(2) {
                let (a, b) = (key(&w[0]), key(&w[1]));
                match (a, b) {
                    (Some(a), Some(b)) if desc => prop_assert!(a >= b),
                    (Some(a), Some(b)) => prop_assert!(a <= b),
                    (None, Some(_)) => prop_assert!(false, "missing value before a number"),
                    _ => {}
                }
                if a == b { prop_assert!(w[0].port < w[1].port, "stable"); }
            }
        }

        #[test]
        fn kv_round_trip(pairs in proptest::collection::btree_map("[a-z.]{1,6}", "[a-z0-9=]{1,6}", 0..6)) {
            let arg: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            prop_assert_eq!(parse_kv(&arg.join(",")), pairs);
        }

        #[test]
        fn percent_in_range(a in any::<(u32, u32)>(), b in any::<(u32, u32)>()) {
            let t = |(busy, idle): (u32, u32)| CpuTimes { busy: busy as u64, total: busy as u64 + idle as u64 };
            let p = cpu_percent(t(a), t(b));
            prop_assert!((0.0..=100.0).contains(&p));
        }
    }
}
