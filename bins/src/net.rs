//! The transports of `-net`, as the reference names them: tcp (tcp4,
//! tcp6), unix, vsock, and the client's unix-vsock (a Firecracker
//! hybrid vsock: a Unix socket that takes `CONNECT <port>`). Parsing is
//! pure; dialing and listening return one [`Stream`] type for all.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::Duration;

use runtime_std::socket::Socket;
use runtime_std::vsock::{VsockListener, VsockStream};

/// A `-net` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    /// tcp: IPv6 and IPv4.
    Tcp,
    /// tcp4: IPv4 only.
    Tcp4,
    /// tcp6: IPv6 only.
    Tcp6,
    /// unix: the port is a socket path, `@name` for an abstract one.
    Unix,
    /// vsock: the host is a CID.
    Vsock,
    /// unix-vsock (client only): the host is the Unix socket of a
    /// Firecracker VM's vsock device.
    UnixVsock,
}

impl Net {
    /// Parses a `-net` value; "" is tcp.
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "" | "tcp" => Net::Tcp,
            "tcp4" => Net::Tcp4,
            "tcp6" => Net::Tcp6,
            "unix" => Net::Unix,
            "vsock" => Net::Vsock,
            "unix-vsock" => Net::UnixVsock,
            "unixgram" | "unixpacket" => {
                return Err(format!("-net {s}: SSH needs a byte stream; use -net unix"))
            }
            _ => {
                return Err(format!(
                    "-net {s}: unknown network (tcp, tcp4, tcp6, unix, vsock, unix-vsock)"
                ))
            }
        })
    }
}

/// Parses an unsigned number as Go's `strconv.ParseUint(s, 0, bits)`
/// does: `0x`, `0o`, `0b` prefixes, a leading `0` for octal, and `_`
/// between digits when a prefix is given.
pub fn parse_uint_base0(s: &str, bits: u32) -> Result<u64, String> {
    let bad = || format!("{s:?}: not a number");
    let lower = s.to_ascii_lowercase();
    let (digits, radix, prefixed) = if let Some(r) = lower.strip_prefix("0x") {
        (r, 16, true)
    } else if let Some(r) = lower.strip_prefix("0o") {
        (r, 8, true)
    } else if let Some(r) = lower.strip_prefix("0b") {
        (r, 2, true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (&lower[1..], 8, true)
    } else {
        (lower.as_str(), 10, false)
    };
    let digits = if prefixed {
        // Go allows one underscore between digits, only with a base prefix.
        if digits.starts_with('_') && radix != 8 || digits.ends_with('_') || digits.contains("__") {
            return Err(bad());
        }
        digits.replace('_', "")
    } else {
        digits.to_string()
    };
    if digits.is_empty() {
        return Err(bad());
    }
    let n = u64::from_str_radix(&digits, radix).map_err(|_| bad())?;
    if bits < 64 && n >> bits != 0 {
        return Err(format!("{s:?}: out of range"));
    }
    Ok(n)
}

/// Where a client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A host name or address and a port.
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
        /// Which address families to try.
        net: Net,
    },
    /// A Unix socket path (`@name` is abstract).
    Unix(String),
    /// A vsock CID and port.
    Vsock {
        /// The CID.
        cid: u32,
        /// The port.
        port: u32,
    },
    /// A Firecracker hybrid vsock: its Unix socket, then the port.
    UnixVsock {
        /// The Unix socket.
        path: String,
        /// The guest's vsock port.
        port: u32,
    },
}

impl Target {
    /// The target for `host` on `net`, with `sp` the `-sp` value ("" for
    /// none) and `port` the port otherwise resolved for TCP.
    pub fn new(net: Net, host: &str, sp: &str, port: u16) -> Result<Self, String> {
        let vport = || -> Result<u32, String> {
            match sp {
                "" => Ok(u32::from(port)),
                sp => parse_uint_base0(sp, 32)
                    .map(|p| p as u32)
                    .map_err(|e| format!("-sp {e}")),
            }
        };
        Ok(match net {
            Net::Tcp | Net::Tcp4 | Net::Tcp6 => Target::Tcp {
                host: host.to_string(),
                port,
                net,
            },
            Net::Unix => Target::Unix(host.to_string()),
            Net::Vsock => Target::Vsock {
                cid: parse_uint_base0(host, 32)
                    .map(|c| c as u32)
                    .map_err(|e| format!("vsock CID {e}"))?,
                port: vport()?,
            },
            Net::UnixVsock => Target::UnixVsock {
                path: host.to_string(),
                port: vport()?,
            },
        })
    }

    /// The host and port under which the server's key is remembered in
    /// known_hosts.
    pub fn known_hosts_name(&self) -> (String, u16) {
        match self {
            Target::Tcp { host, port, .. } => (host.clone(), *port),
            Target::Unix(path) => (format!("unix:{path}"), 0),
            Target::Vsock { cid, port } => (format!("vsock:{cid}"), *port as u16),
            Target::UnixVsock { path, port } => (format!("unix-vsock:{path}"), *port as u16),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp { host, port, .. } => write!(f, "{host}:{port}"),
            Target::Unix(path) => write!(f, "unix socket {path}"),
            Target::Vsock { cid, port } => write!(f, "vsock {cid}:{port}"),
            Target::UnixVsock { path, port } => write!(f, "vsock port {port} through {path}"),
        }
    }
}

/// A connected stream on any of the transports.
#[derive(Debug)]
pub enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// A Unix socket.
    Unix(UnixStream),
    /// vsock.
    Vsock(VsockStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            Stream::Vsock(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            Stream::Vsock(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// Through shared references too, as the sockets have them: what a
// runtime that shares one socket between its reading and writing halves
// (async-io) needs.
impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).read(buf),
            Stream::Unix(s) => (&*s).read(buf),
            Stream::Vsock(s) => (&*s).read(buf),
        }
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).write(buf),
            Stream::Unix(s) => (&*s).write(buf),
            Stream::Vsock(s) => (&*s).write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// Descriptors, for runtimes that wait on them (async-io).
impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
            Stream::Vsock(s) => s.as_fd(),
        }
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Listener::Tcp(l) => l.as_fd(),
            Listener::Unix(l, _) => l.as_fd(),
            Listener::Vsock(l) => l.as_fd(),
        }
    }
}

impl Socket for Stream {
    fn try_clone(&self) -> io::Result<Self> {
        Ok(match self {
            Stream::Tcp(s) => Stream::Tcp(Socket::try_clone(s)?),
            Stream::Unix(s) => Stream::Unix(Socket::try_clone(s)?),
            Stream::Vsock(s) => Stream::Vsock(Socket::try_clone(s)?),
        })
    }
    fn shutdown_both(&self) {
        match self {
            Stream::Tcp(s) => s.shutdown_both(),
            Stream::Unix(s) => s.shutdown_both(),
            Stream::Vsock(s) => s.shutdown_both(),
        }
    }
    fn set_low_latency(&self) {
        if let Stream::Tcp(s) = self {
            s.set_low_latency();
        }
    }
}

/// A Unix socket address: `@name` is abstract, anything else a path.
fn unix_addr(name: &str) -> io::Result<SocketAddr> {
    match name.strip_prefix('@') {
        Some(abs) => SocketAddr::from_abstract_name(abs.as_bytes()),
        None => SocketAddr::from_pathname(name),
    }
}

/// How long the Firecracker CONNECT handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to `target`; each TCP address tried may take `timeout` (a
/// `TimedOut` error), as ssh's ConnectTimeout.
pub fn dial(target: &Target, timeout: Duration) -> io::Result<Stream> {
    Ok(match target {
        Target::Tcp { host, port, net } => {
            let addrs = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), *port))?;
            let addrs: Vec<_> = addrs
                .filter(|a| match net {
                    Net::Tcp4 => a.is_ipv4(),
                    Net::Tcp6 => a.is_ipv6(),
                    _ => true,
                })
                .collect();
            if addrs.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    "no address of that family",
                ));
            }
            // Each address in turn, as TcpStream::connect does; the last
            // error stands for all.
            let mut last = None;
            for a in &addrs {
                match TcpStream::connect_timeout(a, timeout) {
                    Ok(s) => return Ok(Stream::Tcp(s)),
                    Err(e) => last = Some(e),
                }
            }
            return Err(last.unwrap_or_else(|| io::ErrorKind::NotFound.into()));
        }
        Target::Unix(path) => Stream::Unix(UnixStream::connect_addr(&unix_addr(path)?)?),
        Target::Vsock { cid, port } => Stream::Vsock(VsockStream::connect(*cid, *port)?),
        Target::UnixVsock { path, port } => {
            let s = UnixStream::connect_addr(&unix_addr(path)?)?;
            firecracker_connect(&s, *port)?;
            Stream::Unix(s)
        }
    })
}

/// Firecracker's host-initiated vsock: `CONNECT <port>\n`, answered by
/// `OK <host port>\n`.
fn firecracker_connect(s: &UnixStream, port: u32) -> io::Result<()> {
    s.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    (&*s).write_all(format!("CONNECT {port}\n").as_bytes())?;
    // Byte by byte: what follows the line is already SSH.
    let mut line = Vec::new();
    let mut reader = BufReader::with_capacity(1, s);
    reader.read_until(b'\n', &mut line)?;
    s.set_read_timeout(None)?;
    if !line.starts_with(b"OK") {
        return Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!(
                "vsock CONNECT {port}: {:?}",
                String::from_utf8_lossy(&line).trim_end()
            ),
        ));
    }
    Ok(())
}

/// `cpud -register ADDR`: once listening, tell ADDR (on the same network)
/// by connecting and writing "ok", as the reference does.
pub fn register(net: Net, addr: &str, timeout: Duration) -> io::Result<()> {
    let mut s: Box<dyn Write> = match net {
        Net::Tcp | Net::Tcp4 | Net::Tcp6 => {
            let sa = std::net::ToSocketAddrs::to_socket_addrs(addr)?
                .next()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
            let timeout = if timeout.is_zero() {
                HANDSHAKE_TIMEOUT
            } else {
                timeout
            };
            Box::new(TcpStream::connect_timeout(&sa, timeout)?)
        }
        Net::Unix | Net::UnixVsock => Box::new(UnixStream::connect_addr(&unix_addr(addr)?)?),
        Net::Vsock => {
            let (cid, port) = addr
                .split_once(':')
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "want CID:PORT"))?;
            let num = |v: &str| {
                parse_uint_base0(v, 32)
                    .map(|n| n as u32)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
            };
            Box::new(VsockStream::connect(num(cid)?, num(port)?)?)
        }
    };
    s.write_all(b"ok")
}

/// A listening socket on any of the transports.
#[derive(Debug)]
pub enum Listener {
    /// TCP.
    Tcp(TcpListener),
    /// A Unix socket; the path is removed when the listener goes.
    Unix(UnixListener, Option<PathBuf>),
    /// vsock.
    Vsock(VsockListener),
}

impl Listener {
    /// Listens as cpud does: on `port` (a socket path for unix) of every
    /// address, or of `addr` when given (TCP only).
    pub fn bind(net: Net, port: &str, addr: &str) -> Result<Self, String> {
        let tcp_port = || -> Result<u16, String> {
            port.parse()
                .map_err(|_| format!("-sp {port:?}: not a port number"))
        };
        let listen_err = |e: io::Error| format!("listen on {port}: {e}");
        Ok(match net {
            Net::Tcp | Net::Tcp4 | Net::Tcp6 => {
                let p = tcp_port()?;
                let l = match (addr, net) {
                    ("", Net::Tcp) => {
                        TcpListener::bind(("::", p)).or_else(|_| TcpListener::bind(("0.0.0.0", p)))
                    }
                    ("", Net::Tcp4) => TcpListener::bind(("0.0.0.0", p)),
                    ("", _) => TcpListener::bind(("::", p)),
                    (a, _) => TcpListener::bind((a, p)),
                };
                Listener::Tcp(l.map_err(listen_err)?)
            }
            Net::Unix => {
                if !addr.is_empty() {
                    return Err("-addr is for TCP only".into());
                }
                let sa = unix_addr(port).map_err(listen_err)?;
                let l = match UnixListener::bind_addr(&sa) {
                    Err(e) if e.kind() == io::ErrorKind::AddrInUse && !port.starts_with('@') => {
                        // A socket file left by a cpud that died: nobody
                        // answers on it, so it may go.
                        if UnixStream::connect(port).is_ok() {
                            return Err(listen_err(e));
                        }
                        std::fs::remove_file(port).map_err(listen_err)?;
                        UnixListener::bind_addr(&sa)
                    }
                    other => other,
                }
                .map_err(listen_err)?;
                let path = (!port.starts_with('@')).then(|| PathBuf::from(port));
                Listener::Unix(l, path)
            }
            Net::Vsock => {
                if !addr.is_empty() {
                    return Err("-addr is for TCP only".into());
                }
                // As the reference: a 16-bit port, any base.
                let p = parse_uint_base0(port, 16).map_err(|e| format!("-sp {e}"))?;
                Listener::Vsock(VsockListener::bind(p as u32).map_err(listen_err)?)
            }
            Net::UnixVsock => return Err("-net unix-vsock is for the client only".into()),
        })
    }

    /// The socket file of a Unix listener, removed when it goes.
    pub fn unix_path(&self) -> Option<&std::path::Path> {
        match self {
            Listener::Unix(_, Some(p)) => Some(p),
            _ => None,
        }
    }

    /// What it listens on, for the log line tests and services wait for.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map_or_else(|_| "tcp".into(), |a| a.to_string()),
            Listener::Unix(l, _) => match l.local_addr() {
                Ok(a) => match (a.as_pathname(), a.as_abstract_name()) {
                    (Some(p), _) => format!("unix:{}", p.display()),
                    (_, Some(n)) => format!("unix:@{}", String::from_utf8_lossy(n)),
                    _ => "unix".into(),
                },
                Err(_) => "unix".into(),
            },
            Listener::Vsock(l) => match l.local_port() {
                Ok(p) => format!("vsock:{p}"),
                Err(_) => "vsock".into(),
            },
        }
    }

    /// Waits for a connection; returns it with a name for the peer.
    pub fn accept(&self) -> io::Result<(Stream, String)> {
        Ok(match self {
            Listener::Tcp(l) => {
                let (s, a) = l.accept()?;
                (Stream::Tcp(s), a.to_string())
            }
            Listener::Unix(l, _) => {
                let (s, _) = l.accept()?;
                (Stream::Unix(s), "unix peer".into())
            }
            Listener::Vsock(l) => {
                let (s, (cid, port)) = l.accept()?;
                (Stream::Vsock(s), format!("vsock {cid}:{port}"))
            }
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, Some(path)) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nets() {
        assert_eq!(Net::parse(""), Ok(Net::Tcp));
        assert_eq!(Net::parse("vsock"), Ok(Net::Vsock));
        assert_eq!(Net::parse("unix-vsock"), Ok(Net::UnixVsock));
        assert!(Net::parse("unixpacket").is_err());
        assert!(Net::parse("blarg").is_err());
    }

    #[test]
    fn go_base0_numbers() {
        // The reference's vsockIDPort cases: hex CIDs, empty and bad values.
        assert_eq!(parse_uint_base0("0x42", 32), Ok(0x42));
        assert_eq!(parse_uint_base0("0X42", 32), Ok(0x42));
        assert_eq!(parse_uint_base0("017", 32), Ok(0o17));
        assert_eq!(parse_uint_base0("0o17", 32), Ok(0o17));
        assert_eq!(parse_uint_base0("0b101", 32), Ok(5));
        assert_eq!(parse_uint_base0("0", 32), Ok(0));
        assert_eq!(parse_uint_base0("17010", 16), Ok(17010));
        assert_eq!(parse_uint_base0("0x1_000", 32), Ok(0x1000));
        for bad in ["", "x", "0x", "1_000", "0x_", "0x1__0", "-1", "08", "3cpu"] {
            assert!(parse_uint_base0(bad, 32).is_err(), "{bad:?}");
        }
        assert!(parse_uint_base0("65536", 16).is_err());
        assert!(parse_uint_base0("0x100000000", 32).is_err());
    }

    #[test]
    fn targets() {
        assert_eq!(
            Target::new(Net::Vsock, "0x3", "", 17010),
            Ok(Target::Vsock {
                cid: 3,
                port: 17010
            })
        );
        assert_eq!(
            Target::new(Net::Vsock, "3", "0x10", 17010),
            Ok(Target::Vsock { cid: 3, port: 16 })
        );
        assert!(Target::new(Net::Vsock, "board", "", 17010).is_err());
        assert_eq!(
            Target::new(Net::Unix, "/run/cpud.sock", "", 17010),
            Ok(Target::Unix("/run/cpud.sock".into()))
        );
    }

    #[test]
    fn unix_listener_round_trip_and_cleanup() {
        let dir = std::env::temp_dir().join(format!("cpu-net-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s");
        let p = path.to_str().unwrap().to_string();
        // A stale socket file (its listener gone) is replaced.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let l = Listener::bind(Net::Unix, &p, "").unwrap();
        assert_eq!(l.describe(), format!("unix:{p}"));
        let mut c = dial(&Target::Unix(p.clone()), Duration::from_secs(5)).unwrap();
        let (mut s, _) = l.accept().unwrap();
        c.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        // A live listener's path is not taken over.
        assert!(Listener::bind(Net::Unix, &p, "").is_err());
        drop(l);
        assert!(!path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn abstract_unix_socket() {
        let name = format!("@cpu-rs-net-test-{}", std::process::id());
        let l = Listener::bind(Net::Unix, &name, "").unwrap();
        assert_eq!(l.describe(), format!("unix:{name}"));
        assert_eq!(l.unix_path(), None);
        let mut c = dial(&Target::Unix(name), Duration::from_secs(5)).unwrap();
        let (mut s, _) = l.accept().unwrap();
        s.write_all(b"pong").unwrap();
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong");
    }

    #[test]
    fn register_writes_ok() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        register(Net::Tcp, &addr, Duration::from_secs(5)).unwrap();
        let (mut s, _) = l.accept().unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"ok");
        // Nobody there: an error, which cpud only reports.
        drop(l);
        assert!(register(Net::Tcp, &addr, Duration::from_secs(5)).is_err());
    }

    #[test]
    fn firecracker_handshake() {
        let (a, b) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || {
            let mut line = String::new();
            BufReader::new(&b).read_line(&mut line).unwrap();
            (&b).write_all(b"OK 1073741824\nSSH-").unwrap();
            line
        });
        firecracker_connect(&a, 17010).unwrap();
        assert_eq!(t.join().unwrap(), "CONNECT 17010\n");
        // The handshake consumed its line and nothing more.
        let mut rest = [0u8; 4];
        (&a).read_exact(&mut rest).unwrap();
        assert_eq!(&rest, b"SSH-");
        let (a, b) = UnixStream::pair().unwrap();
        (&b).write_all(b"NO\n").unwrap();
        assert!(firecracker_connect(&a, 1).is_err());
    }

    proptest! {
        #[test]
        fn base0_decimal_and_hex_agree(n in any::<u32>()) {
            prop_assert_eq!(parse_uint_base0(&n.to_string(), 32), Ok(u64::from(n)));
            prop_assert_eq!(parse_uint_base0(&format!("{n:#x}"), 32), Ok(u64::from(n)));
            prop_assert_eq!(parse_uint_base0(&format!("{n:#o}").replace("0o", "0"), 32), Ok(u64::from(n)));
        }
    }
}
