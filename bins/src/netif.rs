//! Network interfaces for cpud as init on a bare kernel: `lo` up (the 9P
//! forward of every session dials 127.0.0.1), and the kernel command
//! line's `ip=` for one interface (an address, a netmask, a default
//! route), as the kernel's own IP autoconfiguration does when it is built
//! in. There is no safe wrapper for the interface ioctls, hence this
//! small module.
#![allow(unsafe_code)]

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

// Linux's values on every architecture (linux/sockios.h).
const SIOCSIFADDR: u32 = 0x8916;
const SIOCSIFNETMASK: u32 = 0x891c;
const SIOCADDRT: u32 = 0x890b;

fn inet_socket() -> io::Result<OwnedFd> {
    Ok(socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?)
}

fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {name:?}"),
        ));
    }
    // SAFETY: ifreq is plain data for which all-zero bytes are valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    Ok(req)
}

fn sockaddr_in(a: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(a).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size (16 bytes) and
    // both are plain data.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

/// ioctl(fd, request, arg); the request type differs between glibc
/// (c_ulong) and musl (c_int), hence the `as _`.
///
/// # Safety
/// `arg` must be the structure the request reads or writes.
unsafe fn ioctl<T>(fd: &OwnedFd, request: u32, arg: *mut T) -> io::Result<()> {
    // SAFETY: the caller passes the request's own structure.
    if unsafe { libc::ioctl(fd.as_raw_fd(), request as _, arg) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets IFF_UP on interface `name` (a no-op when it is up already).
pub fn up(name: &str) -> io::Result<()> {
    let sock = inet_socket()?;
    let mut req = ifreq(name)?;
    // SAFETY: SIOCGIFFLAGS reads the name and writes ifru_flags of `req`.
    unsafe { ioctl(&sock, libc::SIOCGIFFLAGS as u32, &mut req)? };
    // SAFETY: the kernel just filled ifru_flags, the union's active field.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    if flags & libc::IFF_UP as libc::c_short != 0 {
        return Ok(());
    }
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads `req`.
    unsafe { ioctl(&sock, libc::SIOCSIFFLAGS as u32, &mut req) }
}

/// Sets IFF_UP on `lo`.
pub fn loopback_up() -> io::Result<()> {
    up("lo")
}

/// Gives `dev` the address `addr`/`mask`, brings it up, and routes
/// everything else through `gw` when there is one.
pub fn configure(
    dev: &str,
    addr: Ipv4Addr,
    mask: Ipv4Addr,
    gw: Option<Ipv4Addr>,
) -> io::Result<()> {
    let sock = inet_socket()?;
    let mut req = ifreq(dev)?;
    req.ifr_ifru.ifru_addr = sockaddr_in(addr);
    // SAFETY: SIOCSIFADDR reads the name and ifru_addr of `req`.
    unsafe { ioctl(&sock, SIOCSIFADDR, &mut req)? };
    req.ifr_ifru.ifru_netmask = sockaddr_in(mask);
    // SAFETY: SIOCSIFNETMASK reads the name and ifru_netmask of `req`.
    unsafe { ioctl(&sock, SIOCSIFNETMASK, &mut req)? };
    up(dev)?;
    let Some(gw) = gw else { return Ok(()) };
    // SAFETY: rtentry is plain data for which all-zero bytes are valid
    // (a null rt_dev: the kernel picks the interface by the gateway).
    let mut rt: libc::rtentry = unsafe { std::mem::zeroed() };
    rt.rt_dst = sockaddr_in(Ipv4Addr::UNSPECIFIED);
    rt.rt_genmask = sockaddr_in(Ipv4Addr::UNSPECIFIED);
    rt.rt_gateway = sockaddr_in(gw);
    rt.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
    // SAFETY: SIOCADDRT reads `rt`.
    match unsafe { ioctl(&sock, SIOCADDRT, &mut rt) } {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        r => r,
    }
}
