//! The FUSE bridge against the repository's own 9P server: the server
//! exports a temporary directory on 127.0.0.1; the `fuse9p-test` helper
//! mounts it through FUSE inside a private mount namespace and runs a
//! shell script against the mount; then the exported directory is checked
//! from the host side. Skips (passing) where FUSE cannot be mounted.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use proto_9p::server::ServerConfig;
use runtime_std::export::{ExportOptions, LocalExport};
use runtime_std::p9server::{self, ServeConfig};
use sha2::{Digest, Sha256};

const BIG: usize = 20 << 20;

/// Deterministic bytes that do not compress or repeat at small periods.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

const SCRIPT: &str = r#"
set -eu
echo "fromhost=$(sha256sum < "$M/fromhost" | cut -d' ' -f1)"
cp "$SRC/big" "$M/big"
echo "big=$(sha256sum < "$M/big" | cut -d' ' -f1)"
echo "bigsize=$(stat -c %s "$M/big")"
mkdir "$M/d"
mkdir "$M/d/sub"
echo hello > "$M/d/a"
echo "ls=$(ls -a "$M/d" | tr '\n' ' ')"
mv "$M/d/a" "$M/d/b"
echo x > "$M/d/c"
mv -n "$M/d/c" "$M/d/b" 2>/dev/null || true
if [ -e "$M/d/c" ] && [ "$(cat "$M/d/b")" = hello ]; then echo noreplace=ok; else echo noreplace=bad; fi
rm "$M/d/c"
test ! -e "$M/d/a"
ln -s b "$M/d/sym"
echo "readlink=$(readlink "$M/d/sym")"
echo "viasym=$(cat "$M/d/sym")"
ln "$M/d/b" "$M/d/hard"
echo "nlink=$(stat -c %h "$M/d/b")"
chmod 640 "$M/d/b"
echo "mode=$(stat -c %a "$M/d/hard")"
truncate -s 3 "$M/d/b"
echo "trunc=$(cat "$M/d/b")"
touch -m -d @1000000000 "$M/d/b"
echo "mtime=$(stat -c %Y "$M/d/b")"
printf a > "$M/app"
printf b >> "$M/app"
echo "append=$(cat "$M/app")"
mkdir "$M/gone"
rmdir "$M/gone"
test ! -e "$M/gone"
echo x > "$M/gone.txt"
rm "$M/gone.txt"
test ! -e "$M/gone.txt"
mkdir "$M/many"
i=0
while [ $i -lt 300 ]; do : > "$M/many/f$i"; i=$((i+1)); done
echo "many=$(ls "$M/many" | wc -l)"
echo "df=$(df -P "$M" | tail -n 1 | awk '{print ($2 > 0) ? "ok" : "zero"}')"
rm -f "$M/nonexistent" 2>/dev/null
if cat "$M/nonexistent" 2>/dev/null; then echo "enoent=bad"; else echo "enoent=ok"; fi
echo done
"#;

/// Serves `dir` over 9P to the first connection on a fresh 127.0.0.1
/// port. The receiver hears when the session ends. `on_conn` gets a
/// clone of the connection, to break it from the server side.
fn start_server(
    dir: &Path,
    on_conn: impl FnOnce(TcpStream) + Send + 'static,
) -> (SocketAddr, mpsc::Receiver<std::io::Result<()>>) {
    let export = LocalExport::new(dir, ExportOptions::default()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        on_conn(conn.try_clone().unwrap());
        let reader = conn.try_clone().unwrap();
        let config = ServeConfig {
            session: ServerConfig { max_msize: 1 << 20 },
            ..ServeConfig::default()
        };
        let _ = done_tx.send(p9server::serve(Arc::new(export), reader, conn, config));
    });
    (addr, done_rx)
}

/// Runs the helper; None when it says FUSE cannot be mounted here. The
/// helper is killed if it outlives `limit`.
fn run_helper(
    addr: SocketAddr,
    mnt: &Path,
    script: &str,
    envs: &[(&str, &Path)],
    limit: Duration,
) -> Option<Output> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fuse9p-test"));
    cmd.arg(addr.to_string())
        .arg(mnt)
        .arg(script)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = kill(pid, Signal::SIGKILL);
            let out = rx.recv().unwrap().unwrap();
            panic!(
                "helper hung; stdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };
    if out.status.code() == Some(77) {
        println!("{}", String::from_utf8_lossy(&out.stdout));
        // The helper may never have dialed: unblock the server's accept.
        drop(TcpStream::connect(addr));
        return None;
    }
    Some(out)
}

#[test]
fn files_through_fuse() {
    if !Path::new("/dev/fuse").exists() {
        println!("SKIP fuse9p: no /dev/fuse");
        return;
    }
    let export_dir = tempfile::tempdir().unwrap();
    let src_dir = tempfile::tempdir().unwrap();
    let mnt_dir = tempfile::tempdir().unwrap();

    let big = pattern(BIG);
    fs::write(src_dir.path().join("big"), &big).unwrap();
    let fromhost = pattern(3 << 20 | 123);
    fs::write(export_dir.path().join("fromhost"), &fromhost[7..]).unwrap();

    let (addr, done_rx) = start_server(export_dir.path(), drop);
    let Some(out) = run_helper(
        addr,
        mnt_dir.path(),
        SCRIPT,
        &[("SRC", src_dir.path())],
        Duration::from_secs(300),
    ) else {
        return;
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "helper failed: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    // The helper's exit closed the 9P connection: the server ends.
    done_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("9P server did not end after the client left")
        .unwrap();

    println!("{stdout}");
    let got: HashMap<&str, &str> = stdout.lines().filter_map(|l| l.split_once('=')).collect();
    let want = |k: &str| {
        *got.get(k)
            .unwrap_or_else(|| panic!("no {k} in:\n{stdout}\n{stderr}"))
    };
    assert_eq!(want("fromhost"), sha(&fromhost[7..]));
    assert_eq!(want("big"), sha(&big));
    assert_eq!(want("bigsize"), BIG.to_string());
    assert_eq!(want("ls").trim(), ". .. a sub");
    assert_eq!(want("noreplace"), "ok");
    assert_eq!(want("readlink"), "b");
    assert_eq!(want("viasym"), "hello");
    assert_eq!(want("nlink"), "2");
    assert_eq!(want("mode"), "640");
    assert_eq!(want("trunc"), "hel");
    assert_eq!(want("mtime"), "1000000000");
    assert_eq!(want("append"), "ab");
    assert_eq!(want("many"), "300");
    assert_eq!(want("df"), "ok");
    assert_eq!(want("enoent"), "ok");
    assert!(stdout.lines().any(|l| l == "done"));

    // The same, seen on the exported side.
    let e = export_dir.path();
    let on_host = fs::read(e.join("big")).unwrap();
    assert_eq!(sha(&on_host), sha(&big));
    assert_eq!(fs::read(e.join("d/b")).unwrap(), b"hel");
    let b = fs::metadata(e.join("d/b")).unwrap();
    assert_eq!(b.permissions().mode() & 0o7777, 0o640);
    assert_eq!(b.mtime(), 1_000_000_000);
    assert_eq!(b.nlink(), 2);
    assert_eq!(fs::metadata(e.join("d/hard")).unwrap().ino(), b.ino());
    assert_eq!(fs::read_link(e.join("d/sym")).unwrap(), Path::new("b"));
    assert!(fs::metadata(e.join("d/sub")).unwrap().is_dir());
    assert!(!e.join("d/a").exists());
    assert!(!e.join("gone").exists());
    assert!(!e.join("gone.txt").exists());
    assert_eq!(fs::read(e.join("app")).unwrap(), b"ab");
    assert_eq!(fs::read_dir(e.join("many")).unwrap().count(), 300);

    // Nothing mounted on the host side.
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    let mp = mnt_dir.path().to_string_lossy().into_owned();
    assert!(!mounts.contains(&mp), "mount leaked: {mounts}");
}

/// When the 9P stream breaks, operations fail with EIO, the mount is
/// detached and `serve` returns (the helper exits instead of hanging).
#[test]
fn broken_stream_ends_the_mount() {
    if !Path::new("/dev/fuse").exists() {
        println!("SKIP fuse9p: no /dev/fuse");
        return;
    }
    let export_dir = tempfile::tempdir().unwrap();
    let mnt_dir = tempfile::tempdir().unwrap();
    fs::write(export_dir.path().join("f"), b"data").unwrap();
    let trigger = export_dir.path().join("closenow");
    let (addr, done_rx) = start_server(export_dir.path(), move |conn| {
        // Break the connection once the script asks for it.
        std::thread::spawn(move || {
            while !trigger.exists() {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = conn.shutdown(std::net::Shutdown::Both);
        });
    });
    let script = r#"
set -u
echo "before=$(cat "$M/f")"
# The trigger may break the stream before this create's own replies
# arrive; `true` (not the special built-in `:`) keeps the shell alive.
true > "$M/closenow" 2>/dev/null || true
# Poll (bounded, 10 s) until the broken stream shows.
i=0
while cat "$M/f" >/dev/null 2>&1 && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if cat "$M/f" >/dev/null 2>&1; then echo "after=readable"; else echo "after=failed"; fi
if ls "$M" >/dev/null 2>&1; then echo "ls=ok"; else echo "ls=failed"; fi
"#;
    let Some(out) = run_helper(addr, mnt_dir.path(), script, &[], Duration::from_secs(60)) else {
        return;
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "helper failed: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(stdout.contains("before=data"), "{stdout}\n{stderr}");
    assert!(stdout.contains("after=failed"), "{stdout}\n{stderr}");
    done_rx.recv_timeout(Duration::from_secs(20)).unwrap().ok();
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(&*mnt_dir.path().to_string_lossy()));
}

/// Many readers at once through the mount (several FUSE workers, 9P
/// requests multiplexed on the one connection), and a directory listing
/// with attributes (readdirplus): every byte and size as on the host.
#[test]
fn concurrent_readers_see_the_right_bytes() {
    if !Path::new("/dev/fuse").exists() {
        println!("SKIP fuse9p: no /dev/fuse");
        return;
    }
    let export_dir = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let mnt_dir = tempfile::tempdir().unwrap();
    let e = export_dir.path();
    let files: Vec<Vec<u8>> = (0..8)
        .map(|i| {
            // Odd sizes: the last piece of each read is short.
            let mut d = pattern((3 << 20) + 4097 * i + 1);
            d.rotate_left(i * 13);
            d
        })
        .collect();
    for (i, d) in files.iter().enumerate() {
        fs::write(e.join(format!("f{i}")), d).unwrap();
    }
    fs::create_dir(e.join("many")).unwrap();
    for i in 0..500 {
        fs::write(e.join(format!("many/e{i}")), vec![b'x'; i % 7]).unwrap();
    }
    let (addr, _done_rx) = start_server(e, drop);
    let script = r#"
set -eu
for i in 0 1 2 3 4 5 6 7; do
    sha256sum < "$M/f$i" > "$OUT/h$i" &
    # The same file again at once, from the middle, in odd-sized blocks.
    dd if="$M/f$i" bs=300000 skip=3 2>/dev/null | sha256sum > "$OUT/t$i" &
done
wait
for i in 0 1 2 3 4 5 6 7; do
    echo "h$i=$(cut -d' ' -f1 < "$OUT/h$i")"
    echo "t$i=$(cut -d' ' -f1 < "$OUT/t$i")"
done
echo "entries=$(ls -l "$M/many" | grep -c '^-')"
echo "bytes=$(stat -c %s "$M"/many/* | awk '{ s += $1 } END { print s }')"
"#;
    let Some(out) = run_helper(
        addr,
        mnt_dir.path(),
        script,
        &[("OUT", out_dir.path())],
        Duration::from_secs(120),
    ) else {
        return;
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "helper failed: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let got: HashMap<&str, &str> = stdout.lines().filter_map(|l| l.split_once('=')).collect();
    for (i, d) in files.iter().enumerate() {
        assert_eq!(
            got.get(format!("h{i}").as_str()),
            Some(&sha(d).as_str()),
            "f{i}"
        );
        let tail = &d[(3 * 300_000).min(d.len())..];
        assert_eq!(
            got.get(format!("t{i}").as_str()),
            Some(&sha(tail).as_str()),
            "f{i} tail"
        );
    }
    assert_eq!(got.get("entries"), Some(&"500"));
    let bytes: usize = (0..500).map(|i| i % 7).sum();
    assert_eq!(got.get("bytes"), Some(&bytes.to_string().as_str()));
}

/// A peer that takes the connection and never answers Tversion: the
/// mount gives up after its setup limit (30 s) with an error, on either
/// runtime's client, instead of hanging the session.
#[test]
fn silent_server_fails_the_mount_in_bounded_time() {
    if !Path::new("/dev/fuse").exists() {
        println!("SKIP fuse9p: no /dev/fuse");
        return;
    }
    let mnt_dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Holds the accepted connection open, saying nothing.
    let held = std::thread::spawn(move || listener.accept().map(|(s, _)| s));
    let started = std::time::Instant::now();
    let Some(out) = run_helper(
        addr,
        mnt_dir.path(),
        "echo mounted",
        &[],
        Duration::from_secs(90),
    ) else {
        return;
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "mounted a silent server:\n{stdout}\n{stderr}"
    );
    assert!(!stdout.contains("mounted"), "{stdout}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    drop(held.join().unwrap());
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(&*mnt_dir.path().to_string_lossy()));
}
