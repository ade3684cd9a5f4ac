//! The FUSE bridge against the repository's own 9P server: the server
//! exports a temporary directory on 127.0.0.1; the `fuse9p-test` helper
//! mounts it through FUSE inside a private mount namespace and runs a
//! shell script against the mount; then the exported directory is checked
//! from the host side. Skips (passing) where FUSE cannot be mounted.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::sync::{mpsc, Arc};
use std::time::Duration;

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

    let export = LocalExport::new(export_dir.path(), ExportOptions::default()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    let server = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let reader = conn.try_clone().unwrap();
        let config = ServeConfig {
            session: ServerConfig { max_msize: 1 << 20 },
            ..ServeConfig::default()
        };
        let r = p9server::serve(Arc::new(export), reader, conn, config);
        let _ = done_tx.send(());
        r
    });

    let out = Command::new(env!("CARGO_BIN_EXE_fuse9p-test"))
        .arg(addr.to_string())
        .arg(mnt_dir.path())
        .arg(SCRIPT)
        .env("SRC", src_dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(77) {
        println!("{stdout}");
        // The helper never dialed in, or dialed and left: unblock accept.
        drop(std::net::TcpStream::connect(addr));
        let _ = done_rx.recv_timeout(Duration::from_secs(10));
        return;
    }
    assert!(
        out.status.success(),
        "helper failed: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    // The helper's exit closed the 9P connection: the server ends.
    done_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("9P server did not end after the client left");
    server.join().unwrap().unwrap();

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
