//! Passphrases for protected private keys, asked as OpenSSH asks them
//! (readpass.c): on the controlling terminal with echo off, or through
//! the `SSH_ASKPASS` program when `SSH_ASKPASS_REQUIRE` says so or when
//! there is no terminal but a display. The answer lives in a buffer that
//! is wiped when dropped.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::process::{Command, Stdio};

use nix::sys::termios::{self, LocalFlags, SetArg, SpecialCharacterIndices as Cc, Termios};
use zeroize::{Zeroize, Zeroizing};

/// A passphrase; wiped from memory when dropped.
pub type Secret = Zeroizing<Vec<u8>>;

/// Where OpenSSH looks for an askpass program when `SSH_ASKPASS` is unset
/// (Debian's path, where the `ssh-askpass` package puts it).
const DEFAULT_ASKPASS: &str = "/usr/bin/ssh-askpass";

/// How a passphrase is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asker {
    /// On `/dev/tty`.
    Tty,
    /// By running this program with the prompt as its argument.
    Askpass(OsString),
    /// Nowhere: no terminal, and askpass not allowed.
    Nowhere,
}

/// OpenSSH's choice (readpass.c `read_passphrase` for a key's passphrase):
/// `SSH_ASKPASS_REQUIRE=force` always runs askpass; `prefer` runs it when a
/// display is set; `never` never does; otherwise askpass is the fallback
/// when `/dev/tty` cannot be opened and a display is set. `env` reads the
/// environment; `tty` says whether `/dev/tty` opens.
pub fn choose(env: impl Fn(&str) -> Option<OsString>, tty: bool) -> Asker {
    let set = |name: &str| env(name).is_some_and(|v| !v.is_empty());
    let mut allow = set("DISPLAY") || set("WAYLAND_DISPLAY");
    let mut use_askpass = false;
    if let Some(require) = env("SSH_ASKPASS_REQUIRE") {
        let require = require.to_string_lossy().to_ascii_lowercase();
        match require.as_str() {
            "force" => {
                use_askpass = true;
                allow = true;
            }
            "prefer" => use_askpass = allow,
            "never" => allow = false,
            _ => {}
        }
    }
    if !tty {
        use_askpass = true;
    }
    if use_askpass && allow {
        let program = env("SSH_ASKPASS")
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| DEFAULT_ASKPASS.into());
        Asker::Askpass(program)
    } else if tty {
        Asker::Tty
    } else {
        Asker::Nowhere
    }
}

/// Whether the controlling terminal can be opened.
pub fn tty_available() -> bool {
    open_tty().is_ok()
}

fn open_tty() -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open("/dev/tty")
}

/// What came of one question.
#[derive(Debug)]
pub enum Answer {
    /// The passphrase (possibly empty: the user gave up on this key).
    Given(Secret),
    /// The user pressed the interrupt key at the prompt.
    Interrupted,
}

/// Asks once with `prompt`.
pub fn ask(asker: &Asker, prompt: &str) -> io::Result<Answer> {
    match asker {
        Asker::Tty => read_tty(prompt),
        Asker::Askpass(program) => askpass(program, prompt).map(Answer::Given),
        Asker::Nowhere => Err(io::Error::new(
            io::ErrorKind::NotFound,
            "no terminal to ask the passphrase on",
        )),
    }
}

/// Runs `program prompt` and takes its first output line; a failed or
/// cancelled askpass (non-zero exit) is an empty answer, as in OpenSSH.
/// Its stdin is /dev/null: stdin may be data meant for the remote
/// command, which a stray read must not eat.
fn askpass(program: &OsString, prompt: &str) -> io::Result<Secret> {
    let out = Command::new(program)
        .arg(prompt)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("askpass {}: {e}", program.to_string_lossy()),
            )
        })?;
    let stdout = Zeroizing::new(out.stdout);
    if !out.status.success() {
        return Ok(Zeroizing::new(Vec::new()));
    }
    let end = stdout
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .unwrap_or(stdout.len());
    Ok(Zeroizing::new(stdout[..end].to_vec()))
}

/// Puts the terminal settings back when dropped, whatever way the read
/// ends.
struct Restore<'a> {
    tty: &'a File,
    saved: Termios,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.tty, SetArg::TCSAFLUSH, &self.saved);
    }
}

/// Prompts on /dev/tty and reads a line with echo off.
///
/// The terminal is in non-canonical mode with signals off, and the line
/// is edited here (erase, kill, interrupt, end-of-file as the terminal
/// defines them): cpu blocks SIGINT on every thread once it runs, and a
/// signal arriving while echo is off would leave the terminal silent.
fn read_tty(prompt: &str) -> io::Result<Answer> {
    let mut tty = open_tty()?;
    let saved = termios::tcgetattr(&tty).map_err(io::Error::from)?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(
        LocalFlags::ECHO
            | LocalFlags::ECHOE
            | LocalFlags::ECHOK
            | LocalFlags::ECHONL
            | LocalFlags::ICANON
            | LocalFlags::ISIG,
    );
    quiet.control_chars[Cc::VMIN as usize] = 1;
    quiet.control_chars[Cc::VTIME as usize] = 0;
    let cc = |i: Cc| saved.control_chars[i as usize];
    let (erase, kill, intr, eof) = (cc(Cc::VERASE), cc(Cc::VKILL), cc(Cc::VINTR), cc(Cc::VEOF));

    // Echo off before the prompt shows (as readpassphrase(3)): keys typed
    // as soon as it appears are neither echoed nor flushed. TCSAFLUSH:
    // keys typed before the prompt are not the passphrase.
    termios::tcsetattr(&tty, SetArg::TCSAFLUSH, &quiet).map_err(io::Error::from)?;
    let restore = Restore { tty: &tty, saved };
    // A carriage return first, as OpenSSH does, so that the prompt starts
    // its own line after whatever was on it.
    (&tty).write_all(format!("\r{prompt}").as_bytes())?;
    (&tty).flush()?;
    let mut line = Zeroizing::new(Vec::new());
    let mut byte = [0u8; 1];
    let answer = loop {
        let n = match (&tty).read(&mut byte) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let b = byte[0];
        if n == 0 || (b == eof && line.is_empty()) {
            // Hang-up, or end-of-file on an empty line: no passphrase.
            line.clear();
            break Answer::Given(line);
        }
        match b {
            b'\n' | b'\r' => break Answer::Given(line),
            _ if b == intr => break Answer::Interrupted,
            _ if b == erase || b == 0x7f || b == 0x08 => {
                line.pop();
            }
            _ if b == kill => line.clear(),
            _ => line.push(b),
        }
    };
    byte.zeroize();
    drop(restore);
    let _ = tty.write_all(b"\n");
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn the_terminal_by_default() {
        assert_eq!(choose(env(&[]), true), Asker::Tty);
        // A display alone does not beat the terminal.
        assert_eq!(choose(env(&[("DISPLAY", ":0")]), true), Asker::Tty);
        assert_eq!(choose(env(&[("SSH_ASKPASS", "/x")]), true), Asker::Tty);
    }

    #[test]
    fn force_runs_askpass_even_with_a_terminal() {
        let vars = [("SSH_ASKPASS", "/bin/pw"), ("SSH_ASKPASS_REQUIRE", "force")];
        assert_eq!(choose(env(&vars), true), Asker::Askpass("/bin/pw".into()));
        assert_eq!(choose(env(&vars), false), Asker::Askpass("/bin/pw".into()));
        // Case does not matter, and without SSH_ASKPASS the default runs.
        let vars = [("SSH_ASKPASS_REQUIRE", "FORCE")];
        assert_eq!(
            choose(env(&vars), true),
            Asker::Askpass(DEFAULT_ASKPASS.into())
        );
    }

    #[test]
    fn prefer_needs_a_display() {
        let vars = [("SSH_ASKPASS", "/p"), ("SSH_ASKPASS_REQUIRE", "prefer")];
        assert_eq!(choose(env(&vars), true), Asker::Tty);
        let vars = [
            ("SSH_ASKPASS", "/p"),
            ("SSH_ASKPASS_REQUIRE", "prefer"),
            ("WAYLAND_DISPLAY", "w"),
        ];
        assert_eq!(choose(env(&vars), true), Asker::Askpass("/p".into()));
    }

    #[test]
    fn without_a_terminal_askpass_needs_a_display() {
        assert_eq!(choose(env(&[("SSH_ASKPASS", "/p")]), false), Asker::Nowhere);
        let vars = [("SSH_ASKPASS", "/p"), ("DISPLAY", ":1")];
        assert_eq!(choose(env(&vars), false), Asker::Askpass("/p".into()));
        let vars = [
            ("SSH_ASKPASS", "/p"),
            ("DISPLAY", ":1"),
            ("SSH_ASKPASS_REQUIRE", "never"),
        ];
        assert_eq!(choose(env(&vars), false), Asker::Nowhere);
        assert_eq!(choose(env(&vars), true), Asker::Tty);
    }

    #[test]
    fn askpass_output_is_its_first_line() {
        // echo prints its argument: the prompt stands in for the answer.
        let echo = OsString::from("/bin/echo");
        let got = askpass(&echo, "se cret\r\nmore").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.as_slice(), b"se cret");
        // A failed askpass is an empty answer; a missing one an error.
        let got = askpass(&"/bin/false".into(), "x").unwrap_or_else(|e| panic!("{e}"));
        assert!(got.is_empty());
        assert!(askpass(&"/nonexistent/askpass".into(), "x").is_err());
    }
}
