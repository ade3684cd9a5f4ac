//! The man pages in man/ and the `-h` texts describe the same flags.

// Test code: a failed expectation should stop the test with a message.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// The flags a `-h` text lists ("  -name value" lines).
fn help_flags(bin: &str) -> BTreeSet<String> {
    let out = Command::new(bin).arg("-h").output().unwrap();
    assert!(out.status.success(), "{bin} -h: {:?}", out.status);
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("  -"))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

/// The flags a man page documents (".B \-name" or ".BI \-name" lines of
/// its OPTIONS section).
fn man_flags(page: &str) -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../man")
        .join(page);
    let text = std::fs::read_to_string(&path).unwrap();
    let options = text
        .split(".SH OPTIONS")
        .nth(1)
        .and_then(|rest| rest.split("\n.SH ").next())
        .unwrap();
    options
        .lines()
        .filter_map(|l| {
            l.strip_prefix(".B \\-")
                .or_else(|| l.strip_prefix(".BI \\-"))
        })
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .filter(|f| f != "h")
        .collect()
}

#[test]
fn cpu_1_documents_every_flag_of_cpu_h() {
    assert_eq!(man_flags("cpu.1"), help_flags(env!("CARGO_BIN_EXE_cpu")));
}

#[test]
fn cpud_8_documents_every_flag_of_cpud_h() {
    assert_eq!(man_flags("cpud.8"), help_flags(env!("CARGO_BIN_EXE_cpud")));
}
