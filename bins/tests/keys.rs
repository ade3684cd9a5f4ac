//! cpu's keys against real OpenSSH tools: keys held by an `ssh-agent`
//! (started here with `-D -a`, filled with `ssh-add`), and
//! passphrase-protected keys made by `ssh-keygen -N`, unlocked through
//! `SSH_ASKPASS` with `SSH_ASKPASS_REQUIRE=force`. The server is our own,
//! in this process, with a policy that records every key it is asked
//! about. Each run of `cpu` gets a temporary HOME.

#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use cpu_bins::agent::{self, Agent};
use proto_ssh::auth::AuthPolicy;
use proto_ssh::channel::{ChannelKind, ChannelRequest};
use proto_ssh::connection::{ClientConfig, ServerConfig};
use proto_ssh::sig::{self, SigAlg, Signer};
use proto_ssh::transport::AcceptAnyHostKey;
use runtime_std::ssh::{Handle, Incoming, SshConnection};
use ssh_key::private::Ed25519Keypair;
use ssh_key::public::KeyData;
use ssh_key::PrivateKey;
use tempfile::TempDir;

const CPU: &str = env!("CARGO_BIN_EXE_cpu");

/// Held while writing an executable and while spawning: a child forked by
/// another test between the write and the exec would keep the file open
/// for writing, and the exec would fail with ETXTBSY.
fn spawn_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn run(cmd: &mut Command) -> Output {
    let child = {
        let _g = spawn_lock();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    child.wait_with_output().unwrap()
}

fn write_script(path: &Path, text: &str) {
    let _g = spawn_lock();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `ssh-keygen -t kind -N pass -f dir/name`; returns the private key path.
fn keygen(dir: &Path, name: &str, kind: &str, pass: &str) -> PathBuf {
    let path = dir.join(name);
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", kind, "-N", pass, "-C", name, "-f"])
        .arg(&path);
    if kind == "rsa" {
        cmd.args(["-b", "2048"]);
    }
    let out = run(&mut cmd);
    assert!(out.status.success(), "{out:?}");
    path
}

fn public(path: &Path) -> KeyData {
    let text = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    ssh_key::PublicKey::from_openssh(&text)
        .unwrap()
        .key_data()
        .clone()
}

/// An `ssh-agent -D -a sock` child, killed when dropped.
struct SshAgent {
    child: Child,
    sock: PathBuf,
}

impl SshAgent {
    fn start(dir: &Path) -> Self {
        let sock = dir.join("agent.sock");
        let mut child = {
            let _g = spawn_lock();
            Command::new("ssh-agent")
                .arg("-D")
                .arg("-a")
                .arg(&sock)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        };
        // In -D mode the agent prints its SSH_AUTH_SOCK line once it
        // listens: reading that line is the readiness signal.
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        assert!(line.starts_with("SSH_AUTH_SOCK="), "{line:?}");
        Self { child, sock }
    }

    fn add(&self, key: &Path) {
        let out = run(Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.sock));
        assert!(out.status.success(), "{out:?}");
    }
}

impl Drop for SshAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the server was asked: each key, and whether it was allowed.
type Asked = Arc<Mutex<Vec<(KeyData, bool)>>>;

struct Recording {
    allowed: Vec<KeyData>,
    asked: Asked,
}

impl AuthPolicy for Recording {
    fn allow_key(&mut self, _user: &str, key: &KeyData) -> bool {
        let ok = self.allowed.contains(key);
        self.asked.lock().unwrap().push((key.clone(), ok));
        ok
    }
}

/// Our server on 127.0.0.1, allowing `allowed`; sessions run nothing and
/// exit 0 after an exec. Returns the port and the record.
fn server(allowed: Vec<KeyData>) -> (u16, Asked) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let asked: Asked = Arc::default();
    let record = asked.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let host = PrivateKey::from(Ed25519Keypair::from_seed(&[7; 32]));
            let policy = Recording {
                allowed: allowed.clone(),
                asked: record.clone(),
            };
            let config = ServerConfig::new(vec![host], Box::new(policy));
            let Ok(conn) = SshConnection::server_tcp(stream, config) else {
                continue;
            };
            thread::spawn(move || serve(conn));
        }
    });
    (port, asked)
}

fn serve(conn: SshConnection) {
    while let Some(inc) = conn.accept() {
        let Incoming::Channel(p) = inc else { continue };
        if !matches!(p.kind, ChannelKind::Session) {
            let _ = p.reject(1, "sessions only");
            continue;
        }
        let Ok(ch) = p.accept() else { return };
        thread::spawn(move || {
            while let Some((req, want)) = ch.next_request() {
                if let ChannelRequest::Exec(_) = req {
                    let _ = ch.reply(true);
                    let _ = ch.request(&ChannelRequest::ExitStatus(0), false);
                    let _ = ch.send_eof();
                    let _ = ch.close();
                    return;
                }
                if want {
                    let _ = ch.reply(false);
                }
            }
        });
    }
}

/// `cpu -ssh` to our server with a fresh HOME; `env` adds variables,
/// and SSH_AUTH_SOCK and the askpass variables are cleared unless given.
fn cpu(port: u16, home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let port = port.to_string();
    let mut cmd = Command::new("timeout");
    cmd.args([
        "-k",
        "5",
        "60",
        CPU,
        "-hostkeycheck=false",
        "-ssh",
        "-sp",
        &port,
    ]);
    cmd.args(args).args(["127.0.0.1", "true"]);
    for v in [
        "SSH_AUTH_SOCK",
        "SSH_ASKPASS",
        "SSH_ASKPASS_REQUIRE",
        "DISPLAY",
    ] {
        cmd.env_remove(v);
    }
    cmd.env("HOME", home).env("USER", "glenda");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A temporary folder with an empty home in it.
fn scratch() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    (dir, home)
}

/// An askpass that prints `answer` and logs each prompt it got.
fn askpass(dir: &Path, answer: &str) -> PathBuf {
    let path = dir.join(format!("askpass-{answer}"));
    let log = dir.join("askpass.log");
    write_script(
        &path,
        &format!(
            "#!/bin/sh\nprintf '%s\\n' \"$1\" >> '{}'\necho '{answer}'\n",
            log.display()
        ),
    );
    path
}

fn prompts(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("askpass.log"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn agent_rsa_signs_sha2_256_and_512_and_logs_in() {
    let (dir, _home) = scratch();
    let rsa = keygen(dir.path(), "rsa", "rsa", "");
    let other = keygen(dir.path(), "other", "ed25519", "");
    let agent = SshAgent::start(dir.path());
    agent.add(&rsa);
    agent.add(&other);

    let conn = Agent::connect(&agent.sock).unwrap();
    let keys = agent::keys(&conn).unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].key_data(), &public(&rsa));
    assert_eq!(keys[1].comment, "other");
    let blob = sig::public_key_blob(keys[0].key_data());
    for alg in [SigAlg::RsaSha256, SigAlg::RsaSha512] {
        let s = keys[0].sign_as(alg, b"session data").unwrap();
        sig::verify(&blob, alg, &s, b"session data").unwrap_or_else(|e| panic!("{alg:?}: {e}"));
    }

    // A login to our server with the agent's keys: the unauthorized
    // Ed25519 key is refused, then the RSA key signs through the agent.
    let (port, asked) = server(vec![public(&rsa)]);
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut keys = agent::keys(&conn).unwrap();
    keys.reverse();
    let signers: Vec<Box<dyn Signer + Send>> = keys
        .into_iter()
        .map(|k| Box::new(k) as Box<dyn Signer + Send>)
        .collect();
    let config = ClientConfig::with_signers("glenda", signers, Box::new(AcceptAnyHostKey));
    let logged_in = SshConnection::client_tcp(stream, config).unwrap();
    logged_in.disconnect("done");
    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked[0], (public(&other), false));
    // The query, then the signed request: both for the RSA key.
    assert_eq!(&asked[1..], [(public(&rsa), true), (public(&rsa), true)]);
}

#[test]
fn cpu_uses_agent_keys_first_then_key_files() {
    let (dir, home) = scratch();
    let in_agent = keygen(dir.path(), "in_agent", "ecdsa", "");
    let file = keygen(dir.path(), "file", "ed25519", "");
    let agent = SshAgent::start(dir.path());
    agent.add(&in_agent);
    let sock = agent.sock.to_str().unwrap();

    // The agent's key alone (no key file at all) logs in.
    let (port, asked) = server(vec![public(&in_agent)]);
    let out = cpu(port, &home, &[], &[("SSH_AUTH_SOCK", sock)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(asked
        .lock()
        .unwrap()
        .iter()
        .all(|(k, _)| *k == public(&in_agent)));

    // The agent's key is tried first; refused, the -key file follows.
    let (port, asked) = server(vec![public(&file)]);
    let key = file.to_str().unwrap();
    let out = cpu(port, &home, &["-key", key], &[("SSH_AUTH_SOCK", sock)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let asked: Vec<KeyData> = asked.lock().unwrap().iter().map(|a| a.0.clone()).collect();
    assert_eq!(asked, [public(&in_agent), public(&file), public(&file)]);

    // With IdentitiesOnly, the agent key that is no key file is left out.
    std::fs::write(
        home.join(".ssh/config"),
        format!("Host *\n  IdentitiesOnly yes\n  IdentityFile {key}\n"),
    )
    .unwrap();
    let (port, asked) = server(vec![public(&file)]);
    let out = cpu(port, &home, &[], &[("SSH_AUTH_SOCK", sock)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(asked
        .lock()
        .unwrap()
        .iter()
        .all(|(k, _)| *k == public(&file)));

    // A key the server does not authorize, agent or file: 253.
    let (port, _) = server(vec![]);
    let out = cpu(port, &home, &[], &[("SSH_AUTH_SOCK", sock)]);
    assert_eq!(out.status.code(), Some(253), "{}", stderr(&out));
}

#[test]
fn a_protected_key_in_the_agent_needs_no_passphrase() {
    let (dir, home) = scratch();
    let key = keygen(dir.path(), "locked", "ed25519", "pass");
    let agent = SshAgent::start(dir.path());
    // ssh-add asks through the same askpass.
    let out = run(Command::new("ssh-add")
        .arg(&key)
        .env("SSH_AUTH_SOCK", &agent.sock)
        .env("SSH_ASKPASS", askpass(dir.path(), "pass"))
        .env("SSH_ASKPASS_REQUIRE", "force"));
    assert!(out.status.success(), "{out:?}");
    let before = prompts(dir.path()).len();

    let (port, _) = server(vec![public(&key)]);
    let out = cpu(
        port,
        &home,
        &["-key", key.to_str().unwrap()],
        &[
            ("SSH_AUTH_SOCK", agent.sock.to_str().unwrap()),
            (
                "SSH_ASKPASS",
                askpass(dir.path(), "wrong").to_str().unwrap(),
            ),
            ("SSH_ASKPASS_REQUIRE", "force"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        prompts(dir.path()).len(),
        before,
        "cpu asked for a passphrase"
    );
}

#[test]
fn protected_ed25519_and_rsa_keys_unlock_through_askpass() {
    let (dir, home) = scratch();
    for (name, kind) in [("ed", "ed25519"), ("rsa", "rsa")] {
        let key = keygen(dir.path(), name, kind, "pass");
        let (port, asked) = server(vec![public(&key)]);
        let path = key.to_str().unwrap();
        let good = askpass(dir.path(), "pass");
        let out = cpu(
            port,
            &home,
            &["-key", path],
            &[
                ("SSH_ASKPASS", good.to_str().unwrap()),
                ("SSH_ASKPASS_REQUIRE", "force"),
            ],
        );
        assert!(out.status.success(), "{kind}: {}", stderr(&out));
        assert_eq!(asked.lock().unwrap().last(), Some(&(public(&key), true)));
        assert_eq!(
            prompts(dir.path()).last().map(String::as_str),
            Some(format!("Enter passphrase for key '{path}': ").as_str())
        );
    }
}

#[test]
fn a_wrong_passphrase_is_one_clear_line_and_exit_253() {
    let (dir, home) = scratch();
    let key = keygen(dir.path(), "ed", "ed25519", "pass");
    let path = key.to_str().unwrap();
    let (port, asked) = server(vec![public(&key)]);
    let bad = askpass(dir.path(), "nope");
    let out = cpu(
        port,
        &home,
        &["-key", path],
        &[
            ("SSH_ASKPASS", bad.to_str().unwrap()),
            ("SSH_ASKPASS_REQUIRE", "force"),
        ],
    );
    assert_eq!(out.status.code(), Some(253), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!("cpu: key {path}: wrong passphrase (3 attempts)\n")
    );
    assert_eq!(prompts(dir.path()).len(), 3);
    // It failed before connecting.
    assert!(asked.lock().unwrap().is_empty());
}

#[test]
fn no_terminal_and_no_askpass_is_one_clear_line_and_exit_253() {
    let (dir, home) = scratch();
    let key = keygen(dir.path(), "ed", "ed25519", "pass");
    let path = key.to_str().unwrap();
    // setsid: a new session has no controlling terminal to open.
    let out = run(Command::new("timeout")
        .args([
            "-k",
            "5",
            "60",
            "setsid",
            "-w",
            CPU,
            "-hostkeycheck=false",
            "-ssh",
        ])
        .args(["-sp", "1", "-key", path, "127.0.0.1", "true"])
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("SSH_ASKPASS")
        .env_remove("SSH_ASKPASS_REQUIRE")
        .env_remove("DISPLAY")
        .env("HOME", &home));
    assert_eq!(out.status.code(), Some(253), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "cpu: key {path}: passphrase-protected, and there is no terminal"
        )),
        "{err}"
    );
}
