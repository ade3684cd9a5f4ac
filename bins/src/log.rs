//! cpu's debug lines: on stderr, or with `-dump` in a file of their own
//! (the reference's temp file), so the command's stderr stays clean.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

static FILE: Mutex<Option<File>> = Mutex::new(None);

/// Sends the debug lines to a new file (mode 0600) in the temp folder,
/// named after `prefix`; returns its path.
pub fn to_temp_file(prefix: &str) -> io::Result<PathBuf> {
    let dir = std::env::temp_dir();
    // Bounded: a name is only taken by an earlier run with our pid.
    for i in 0..100u32 {
        let path = dir.join(format!("{prefix}{}-{i}", std::process::id()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => {
                *FILE.lock().unwrap_or_else(PoisonError::into_inner) = Some(f);
                return Ok(path);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free file name in the temp folder",
    ))
}

/// Writes one debug line, prefixed "cpu: ".
pub fn line(args: fmt::Arguments<'_>) {
    let mut file = FILE.lock().unwrap_or_else(PoisonError::into_inner);
    match file.as_mut() {
        Some(f) => {
            let _ = writeln!(f, "cpu: {args}");
        }
        None => eprintln!("cpu: {args}"),
    }
}

/// A debug line when `$on`: `debug!(on, "fmt", args...)`.
#[macro_export]
macro_rules! debug {
    ($on:expr, $($arg:tt)*) => {
        if $on {
            $crate::log::line(format_args!($($arg)*));
        }
    };
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lines_go_to_the_file_once_set() {
        let path = to_temp_file("cpu-log-test-").unwrap();
        line(format_args!("one {}", 1));
        debug!(true, "two {}", 2);
        debug!(false, "never");
        *FILE.lock().unwrap() = None;
        let text = std::fs::read_to_string(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(text, "cpu: one 1\ncpu: two 2\n");
        assert_eq!(mode & 0o777, 0o600);
    }
}
