//! cpud's log for the operator: timestamped lines on stderr, or syslog
//! records (RFC 3164 datagrams to /dev/log, no C library needed) with
//! LOG_AUTH for logins and LOG_DAEMON for the rest.

use std::fmt;
use std::io::IsTerminal;
use std::os::unix::net::UnixDatagram;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where the lines go, chosen once at start.
#[derive(Debug)]
enum Sink {
    Stderr,
    Syslog(UnixDatagram),
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// The default syslog socket.
pub const DEFAULT_SOCKET: &str = "/dev/log";

/// Which facility a line belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Facility {
    /// Logins accepted and refused (LOG_AUTH).
    Auth,
    /// Everything else (LOG_DAEMON).
    Daemon,
}

/// Picks the sink: `mode` is `stderr`, `syslog` or `auto` (syslog when
/// stderr is not a terminal and `socket` takes datagrams). `syslog` with
/// no socket is an error; `auto` then falls back to stderr.
pub fn init(mode: &str, socket: &str) -> Result<(), String> {
    let want = match mode {
        "stderr" => false,
        "syslog" => true,
        "auto" => !std::io::stderr().is_terminal(),
        _ => return Err("-log: not stderr, syslog or auto".into()),
    };
    let sink = if want {
        match UnixDatagram::unbound().and_then(|s| s.connect(socket).map(|()| s)) {
            Ok(s) => Sink::Syslog(s),
            Err(e) if mode == "syslog" => return Err(format!("-log syslog: {socket}: {e}")),
            Err(_) => Sink::Stderr,
        }
    } else {
        Sink::Stderr
    };
    let _ = SINK.set(sink);
    Ok(())
}

/// Writes one line: `TIME cpud: msg` on stderr, or a syslog record.
pub fn line(fac: Facility, args: fmt::Arguments<'_>) {
    let now = now();
    match SINK.get() {
        Some(Sink::Syslog(s)) => {
            // <PRI> is facility * 8 + severity (6, informational).
            let pri = match fac {
                Facility::Auth => 4 * 8 + 6,
                Facility::Daemon => 3 * 8 + 6,
            };
            let rec = format!(
                "<{pri}>{} cpud[{}]: {args}",
                rfc3164_time(now),
                std::process::id()
            );
            // A full or gone syslog loses the line rather than block cpud.
            if s.send(rec.as_bytes()).is_err() {
                eprintln!("{} cpud: {args}", iso_time(now));
            }
        }
        _ => eprintln!("{} cpud: {args}", iso_time(now)),
    }
}

/// A LOG_AUTH line.
pub fn auth(args: fmt::Arguments<'_>) {
    line(Facility::Auth, args);
}

/// A LOG_DAEMON line.
pub fn daemon(args: fmt::Arguments<'_>) {
    line(Facility::Daemon, args);
}

/// A LOG_DAEMON line that also goes to stderr when the log is syslog:
/// the line service managers and tests wait for, and fatal errors.
pub fn always(args: fmt::Arguments<'_>) {
    line(Facility::Daemon, args);
    if is_syslog() {
        eprintln!("{} cpud: {args}", iso_time(now()));
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether the lines go to syslog (stderr then has only the lines
/// service managers wait for, and fatal errors).
pub fn is_syslog() -> bool {
    matches!(SINK.get(), Some(Sink::Syslog(_)))
}

/// `2026-12-07T22:53:08Z`.
pub fn iso_time(secs: u64) -> String {
    let (y, mo, d, h, mi, s) = utc(secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `Dec  7 22:53:08`, RFC 3164's TIMESTAMP (in UTC: cpud has no zones).
fn rfc3164_time(secs: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (_, mo, d, h, mi, s) = utc(secs);
    let name = MONTHS.get(mo as usize - 1).unwrap_or(&"Jan");
    format!("{name} {d:>2} {h:02}:{mi:02}:{s:02}")
}

/// Year, month, day, hour, minute, second of `secs` since the epoch.
pub(crate) fn utc(secs: u64) -> (u64, u64, u64, u64, u64, u64) {
    let (days, rem) = (secs / 86400, secs % 86400);
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn times() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_time(1_796_683_988), "2026-12-07T22:53:08Z");
        assert_eq!(rfc3164_time(1_796_683_988), "Dec  7 22:53:08");
        assert_eq!(iso_time(951_782_400), "2000-02-29T00:00:00Z");
    }
}
