//! `bench9p`: throughput and latency of a 9P2000.L server, measured with our
//! own client (the sans-IO `ClientSession` driven by `runtime_std::p9client`)
//! over TCP. `tests/bench/bench-9p.sh` runs it against cpu9p and diod.
//!
//! Metrics, each repeated `-repeat` times, the median reported:
//! * `seq_read`: MiB/s reading `-file` front to back in iounit-sized Treads,
//!   `-depth` in flight;
//! * `seq_write`: MiB/s writing a new file of the same size (Tlcreate, then
//!   iounit-sized Twrites, `-depth` in flight, then Tclunk);
//! * `stat_dir`: ms to Treaddir all of `-dir` and then Twalk+Tgetattr+Tclunk
//!   each entry, one request at a time, as `ls -l` over v9fs does;
//! * `rand_read`: 4 KiB Treads per second at random 4 KiB-aligned offsets of
//!   `-file`, `-rand-depth` in flight, for `-seconds`.
//!
//! Output: one line per metric,
//! `BENCH label=L metric=M value=V unit=U samples=a,b,c`, plus a
//! `metric=msize` line with the negotiated msize.

use std::collections::HashMap;
use std::error::Error;
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use proto_9p::consts::{getattr, open_flags, NOFID};
use proto_9p::messages::{Message, Tattach, Tclunk, Tfsync, Tlcreate, Tread, Tremove, Twrite};
use runtime_std::p9client::{CallError, Client};

type Res<T> = Result<T, Box<dyn Error>>;
type Conn = Client<TcpStream>;

const MIB: f64 = 1024.0 * 1024.0;
const RAND_BLOCK: u32 = 4096;

const USAGE: &str = "usage: bench9p -addr HOST:PORT [-aname NAME] [-msize N] [-label L]
       [-file PATH] [-dir PATH] [-write-dir PATH] [-repeat N] [-depth N]
       [-rand-depth N] [-seconds S] [-seed N] [-only read,write,stat,rand]
Paths are relative to the attached root. Defaults: aname '/', msize 65536,
file big.bin, dir many, write-dir . (the root), repeat 3, depth 4,
rand-depth 16, seconds 5.";

#[derive(Debug)]
struct Opts {
    addr: String,
    aname: String,
    msize: u32,
    label: String,
    file: String,
    dir: String,
    write_dir: String,
    repeat: usize,
    depth: usize,
    rand_depth: usize,
    seconds: f64,
    seed: u64,
    only: Vec<String>,
}

fn parse_args(args: &[String]) -> Res<Opts> {
    let mut o = Opts {
        addr: String::new(),
        aname: "/".into(),
        msize: 65536,
        label: "server".into(),
        file: "big.bin".into(),
        dir: "many".into(),
        write_dir: String::new(),
        repeat: 3,
        depth: 4,
        rand_depth: 16,
        seconds: 5.0,
        seed: 0x9e37_79b9_7f4a_7c15,
        only: ["read", "write", "stat", "rand"].map(String::from).to_vec(),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let name = flag.trim_start_matches('-');
        if name == "h" || name == "help" {
            return Err(USAGE.into());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("flag {flag} needs a value\n{USAGE}"))?;
        let bad = |e: &dyn std::fmt::Display| format!("bad value {value:?} for {flag}: {e}");
        match name {
            "addr" => o.addr = value.clone(),
            "aname" => o.aname = value.clone(),
            "msize" => o.msize = value.parse().map_err(|e| bad(&e))?,
            "label" => o.label = value.clone(),
            "file" => o.file = value.clone(),
            "dir" => o.dir = value.clone(),
            "write-dir" => o.write_dir = value.clone(),
            "repeat" => o.repeat = value.parse().map_err(|e| bad(&e))?,
            "depth" => o.depth = value.parse().map_err(|e| bad(&e))?,
            "rand-depth" => o.rand_depth = value.parse().map_err(|e| bad(&e))?,
            "seconds" => o.seconds = value.parse().map_err(|e| bad(&e))?,
            "seed" => o.seed = value.parse().map_err(|e| bad(&e))?,
            "only" => o.only = value.split(',').map(String::from).collect(),
            _ => return Err(format!("unknown flag {flag}\n{USAGE}").into()),
        }
    }
    if o.addr.is_empty() {
        return Err(format!("-addr is required\n{USAGE}").into());
    }
    if o.repeat == 0
        || o.depth == 0
        || o.rand_depth == 0
        || !o.seconds.is_finite()
        || o.seconds <= 0.0
    {
        return Err("repeat, depth, rand-depth and seconds must be positive".into());
    }
    Ok(o)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse_args(&args).and_then(|o| run(&o)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench9p: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A connection with the export root attached.
struct Session {
    c: Conn,
    root: u32,
}

fn connect(o: &Opts) -> Res<Session> {
    let stream =
        TcpStream::connect(&o.addr).map_err(|e| format!("cannot connect to {}: {e}", o.addr))?;
    // Small requests must not wait for Nagle; every server gets the same.
    stream.set_nodelay(true)?;
    let mut c = Client::connect(stream, o.msize)?;
    let root = c.new_fid();
    // As root by number: diod (run with -U root) looks the user up and
    // fails an attach with no uname and no n_uname.
    let r = c
        .call(Tattach {
            fid: root,
            afid: NOFID,
            uname: b"root".to_vec(),
            aname: o.aname.as_bytes().to_vec(),
            n_uname: 0,
        })
        .map_err(|e| format!("attach {:?}: {e}", o.aname))?;
    if !matches!(r, Message::Rattach(_)) {
        return Err(format!("Tattach answered by {}", r.name()).into());
    }
    Ok(Session { c, root })
}

fn run(o: &Opts) -> Res<()> {
    let mut s = connect(o)?;
    println!(
        "BENCH label={} metric=msize value={} unit=bytes samples={}",
        o.label,
        s.c.msize(),
        s.c.msize()
    );
    let size = file_size(&mut s, &o.file)?;
    if size < u64::from(RAND_BLOCK) {
        return Err(format!("{} is too small ({size} bytes)", o.file).into());
    }
    for metric in &o.only {
        let (name, unit, lower_is_better) = match metric.as_str() {
            "read" => ("seq_read", "MiB/s", false),
            "write" => ("seq_write", "MiB/s", false),
            "stat" => ("stat_dir", "ms", true),
            "rand" => ("rand_read", "IOPS", false),
            other => return Err(format!("unknown metric {other:?}").into()),
        };
        let mut samples = Vec::with_capacity(o.repeat);
        for i in 0..o.repeat {
            let v = match metric.as_str() {
                "read" => seq_read(&mut s, o, size)?,
                "write" => seq_write(&mut s, o, size, i)?,
                "stat" => stat_dir(&mut s, o)?,
                _ => rand_read(&mut s, o, size, i)?,
            };
            samples.push(v);
        }
        let list: Vec<String> = samples.iter().map(|v| format!("{v:.1}")).collect();
        println!(
            "BENCH label={} metric={name} value={:.1} unit={unit} better={} samples={}",
            o.label,
            median(&mut samples),
            if lower_is_better { "lower" } else { "higher" },
            list.join(",")
        );
    }
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Walks from the root to `path` on a fresh fid.
fn walk_to(s: &mut Session, path: &str) -> Res<u32> {
    let fid = s.c.new_fid();
    s.c.walk(s.root, fid, path)
        .map_err(|e| format!("walk {path:?}: {e}"))?;
    Ok(fid)
}

fn file_size(s: &mut Session, path: &str) -> Res<u64> {
    let fid = walk_to(s, path)?;
    let a = s.c.getattr(fid, getattr::SIZE)?;
    s.c.clunk(fid)?;
    Ok(a.size)
}

/// The payload limit: the session's, lowered by the server's iounit if it
/// announced one.
fn io_size(c: &Conn, iounit: u32) -> u32 {
    match iounit {
        0 => c.iounit(),
        n => n.min(c.iounit()),
    }
}

fn open(s: &mut Session, path: &str, flags: u32) -> Res<(u32, u32)> {
    let fid = walk_to(s, path)?;
    let r = s.c.lopen(fid, flags)?;
    let chunk = io_size(&s.c, r.iounit);
    Ok((fid, chunk))
}

/// Waits for the next reply; an Rlerror is an error here.
fn recv_ok(c: &mut Conn) -> Res<(u16, Message)> {
    let (tag, r) = c.recv()?;
    Ok((tag, r.map_err(CallError::Errno)?))
}

fn seq_read(s: &mut Session, o: &Opts, size: u64) -> Res<f64> {
    let (fid, chunk) = open(s, &o.file, open_flags::RDONLY)?;
    let start = Instant::now();
    // tag -> (offset, count) of each read in flight, so that a short read
    // (allowed before EOF) is finished by asking for the rest.
    let mut pending: HashMap<u16, (u64, u32)> = HashMap::new();
    let mut next = 0u64;
    let mut got = 0u64;
    loop {
        while pending.len() < o.depth && next < size {
            let count = (size - next).min(u64::from(chunk)) as u32;
            let tag = s.c.send(Tread {
                fid,
                offset: next,
                count,
            })?;
            pending.insert(tag, (next, count));
            next += u64::from(count);
        }
        if pending.is_empty() {
            break;
        }
        let (tag, msg) = recv_ok(&mut s.c)?;
        let (offset, count) = pending.remove(&tag).ok_or("reply to no read")?;
        let Message::Rread(r) = msg else {
            return Err(format!("Tread answered by {}", msg.name()).into());
        };
        let n = r.data.len() as u32;
        if n == 0 {
            return Err(format!("unexpected EOF at {offset} of {size}").into());
        }
        got += u64::from(n);
        if n < count {
            let rest = offset + u64::from(n);
            let tag = s.c.send(Tread {
                fid,
                offset: rest,
                count: count - n,
            })?;
            pending.insert(tag, (rest, count - n));
        }
    }
    let secs = start.elapsed().as_secs_f64();
    s.c.clunk(fid)?;
    if got != size {
        return Err(format!("read {got} bytes of {size}").into());
    }
    Ok(size as f64 / MIB / secs)
}

fn seq_write(s: &mut Session, o: &Opts, size: u64, round: usize) -> Res<f64> {
    let name = format!("bench9p-write-{}-{round}.bin", std::process::id());
    // Tlcreate turns this directory fid into the new file's.
    let fid = walk_to(s, &o.write_dir)?;
    // Random-ish bytes, so a compressing file system gains nothing.
    let mut rng = Rng::new(o.seed ^ round as u64);
    let payload: Vec<u8> = (0..(s.c.iounit() as usize).div_ceil(8))
        .flat_map(|_| rng.next().to_le_bytes())
        .collect();
    let payload = Bytes::from(payload);
    let start = Instant::now();
    let create = Tlcreate {
        fid,
        name: name.clone().into_bytes(),
        flags: open_flags::WRONLY | open_flags::CREATE | open_flags::EXCL,
        mode: 0o644,
        gid: 0,
    };
    let r =
        s.c.call(create)
            .map_err(|e| format!("create {name}: {e}"))?;
    let Message::Rlcreate(r) = r else {
        return Err(format!("Tlcreate answered by {}", r.name()).into());
    };
    let chunk = io_size(&s.c, r.iounit) as usize;
    let mut pending: HashMap<u16, (u64, usize)> = HashMap::new();
    let mut next = 0u64;
    let mut done = 0u64;
    loop {
        while pending.len() < o.depth && next < size {
            let count = (size - next).min(chunk as u64) as usize;
            let tag = s.c.send(Twrite {
                fid,
                offset: next,
                data: payload.slice(..count),
            })?;
            pending.insert(tag, (next, count));
            next += count as u64;
        }
        if pending.is_empty() {
            break;
        }
        let (tag, msg) = recv_ok(&mut s.c)?;
        let (offset, count) = pending.remove(&tag).ok_or("reply to no write")?;
        let Message::Rwrite(w) = msg else {
            return Err(format!("Twrite answered by {}", msg.name()).into());
        };
        let n = w.count as usize;
        if n == 0 || n > count {
            return Err(format!("Rwrite count {n} for {count} bytes at {offset}").into());
        }
        done += n as u64;
        if n < count {
            let rest = offset + n as u64;
            let tag = s.c.send(Twrite {
                fid,
                offset: rest,
                data: payload.slice(..count - n),
            })?;
            pending.insert(tag, (rest, count - n));
        }
    }
    // Timed up to the close, as `cp` would be; the data is in the server's
    // page cache, like the file that the read test reads.
    s.c.call(Tclunk { fid })?;
    let secs = start.elapsed().as_secs_f64();
    if done != size {
        return Err(format!("wrote {done} bytes of {size}").into());
    }
    // Untimed: flush to disk so that this round's write-back does not
    // slow the next measurement, then remove the file (Tremove: diod does
    // not implement Tunlinkat).
    let f2 = walk_to(s, &format!("{}/{name}", o.write_dir))?;
    s.c.lopen(f2, open_flags::RDONLY)
        .map_err(|e| format!("reopen {name}: {e}"))?;
    s.c.call(Tfsync {
        fid: f2,
        datasync: 0,
    })
    .map_err(|e| format!("fsync {name}: {e}"))?;
    s.c.call(Tremove { fid: f2 })
        .map_err(|e| format!("remove {name}: {e}"))?;
    Ok(size as f64 / MIB / secs)
}

fn stat_dir(s: &mut Session, o: &Opts) -> Res<f64> {
    let start = Instant::now();
    let (dir, _) = open(s, &o.dir, open_flags::RDONLY | open_flags::DIRECTORY)?;
    let entries = s.c.readdir_all(dir)?;
    s.c.clunk(dir)?;
    // Walks start from a directory fid that is not open (open fids cannot
    // be walked from).
    let dir = walk_to(s, &o.dir)?;
    let mut n = 0usize;
    let mut bytes = 0u64;
    for e in &entries {
        if e.name == b"." || e.name == b".." {
            continue;
        }
        let fid = s.c.new_fid();
        let name = std::str::from_utf8(&e.name)?;
        s.c.walk(dir, fid, name)?;
        let a = s.c.getattr(fid, getattr::BASIC)?;
        bytes += a.size;
        s.c.clunk(fid)?;
        n += 1;
    }
    s.c.clunk(dir)?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    if n == 0 {
        return Err(format!("{} has no entries", o.dir).into());
    }
    // Keeps the sizes "used" and tells the reader what was measured.
    eprintln!("bench9p: stat_dir {n} entries, {bytes} bytes in all, {ms:.1} ms");
    Ok(ms)
}

fn rand_read(s: &mut Session, o: &Opts, size: u64, round: usize) -> Res<f64> {
    let (fid, _) = open(s, &o.file, open_flags::RDONLY)?;
    let blocks = size / u64::from(RAND_BLOCK);
    let mut rng = Rng::new(o.seed.wrapping_add(round as u64));
    let limit = Duration::from_secs_f64(o.seconds);
    let start = Instant::now();
    let mut in_flight = 0usize;
    let mut done = 0u64;
    let mut stop = false;
    loop {
        while !stop && in_flight < o.rand_depth {
            let offset = rng.below(blocks) * u64::from(RAND_BLOCK);
            s.c.send(Tread {
                fid,
                offset,
                count: RAND_BLOCK,
            })?;
            in_flight += 1;
        }
        if in_flight == 0 {
            break;
        }
        let (_, msg) = recv_ok(&mut s.c)?;
        in_flight -= 1;
        match msg {
            Message::Rread(r) if r.data.len() == RAND_BLOCK as usize => done += 1,
            Message::Rread(r) => {
                return Err(format!("short random read: {} bytes", r.data.len()).into())
            }
            m => return Err(format!("Tread answered by {}", m.name()).into()),
        }
        if !stop && start.elapsed() >= limit {
            stop = true;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    s.c.clunk(fid)?;
    Ok(done as f64 / secs)
}

/// xorshift64*: deterministic, so every server reads the same offsets.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        // The modulo bias is below 2^-40 for n < 2^24 blocks; irrelevant here.
        self.next() % n
    }
}
