//! The `-namespace` bind list and the fstab text it becomes (spec §2.9):
//! the client turns `T` / `T=S` elements into bind lines under /tmp/cpu,
//! joins them after the user's `-fstab`, and the remote parses the result
//! back into mount(2) arguments.
//!
//! A `remote=local` element (serving some other local tree at a remote
//! path) is the same `T=S` form: T is the path on the cpud host, S the
//! path on the client.

use std::fmt;

/// Where the client's 9P export is mounted on the remote; the reference
/// hard-codes it into the fstab lines (fns.go:ParseBinds).
pub const CPU_MOUNT: &str = "/tmp/cpu";

/// Why a `-namespace` value was refused. The index is 0-based, as in the
/// reference's messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceError {
    /// Two adjacent `:` (or a leading/trailing one).
    EmptyElement(usize),
    /// `=S`: no target.
    EmptyTarget(usize, String),
    /// `T=`: no source.
    EmptySource(usize, String),
}

impl fmt::Display for NamespaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyElement(i) => write!(f, "bind: element {i} is zero length"),
            Self::EmptyTarget(i, e) => write!(f, "bind: element {i}({e:?}): local is 0 length"),
            Self::EmptySource(i, e) => write!(f, "bind: element {i}({e:?}): remote is 0 length"),
        }
    }
}

impl std::error::Error for NamespaceError {}

/// One `-namespace` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// The mount target on the cpud host, exactly as written.
    pub target: String,
    /// The path on the client, relative to the 9P root.
    pub source: String,
}

impl Bind {
    /// The fstab line for this bind, newline included.
    pub fn fstab_line(&self) -> String {
        let src = clean(&format!("{CPU_MOUNT}/{}", self.source));
        format!("{src} {} none defaults,bind 0 0\n", self.target)
    }
}

/// Splits a `-namespace` value into binds. The empty string means no binds.
pub fn parse_namespace(s: &str) -> Result<Vec<Bind>, NamespaceError> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    s.split(':')
        .enumerate()
        .map(|(i, elem)| {
            if elem.is_empty() {
                return Err(NamespaceError::EmptyElement(i));
            }
            // The first '=' splits: file names may contain '='.
            let (target, source) = elem.split_once('=').unwrap_or((elem, elem));
            if target.is_empty() {
                return Err(NamespaceError::EmptyTarget(i, elem.into()));
            }
            if source.is_empty() {
                return Err(NamespaceError::EmptySource(i, elem.into()));
            }
            Ok(Bind {
                target: target.into(),
                source: source.into(),
            })
        })
        .collect()
}

/// The fstab text for a `-namespace` value (ParseBinds): one bind line
/// per element, "" for an empty namespace.
pub fn parse_binds(s: &str) -> Result<String, NamespaceError> {
    Ok(parse_namespace(s)?.iter().map(Bind::fstab_line).collect())
}

/// JoinFSTab: each non-empty table loses its leading and trailing
/// newlines, the tables are joined with "\n", and one "\n" ends the
/// result. Like the reference, ("", "") gives "\n\n".
pub fn join_fstab(user_fstab: &str, binds: &str) -> String {
    let trim = |t: &str| t.trim_matches('\n').to_string();
    format!("{}\n{}\n", trim(user_fstab), trim(binds))
}

/// Lexical path cleaning as Go's path.Clean, so the source paths match
/// the reference byte for byte (`/tmp/cpu/a/../b` → `/tmp/cpu/b`).
pub fn clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            _ => out.push(part),
        }
    }
    let body = out.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

/// MS_* mount flags, Linux values, declared here so parsing stays portable
/// and free of libc.
pub mod ms {
    pub const RDONLY: u64 = 1;
    pub const NOSUID: u64 = 2;
    pub const NODEV: u64 = 4;
    pub const NOEXEC: u64 = 8;
    pub const SYNCHRONOUS: u64 = 16;
    pub const REMOUNT: u64 = 32;
    pub const MANDLOCK: u64 = 64;
    pub const DIRSYNC: u64 = 128;
    pub const NOSYMFOLLOW: u64 = 256;
    pub const NOATIME: u64 = 1024;
    pub const NODIRATIME: u64 = 2048;
    pub const BIND: u64 = 4096;
    pub const MOVE: u64 = 8192;
    pub const REC: u64 = 16384;
    pub const SILENT: u64 = 32768;
    pub const POSIXACL: u64 = 1 << 16;
    pub const UNBINDABLE: u64 = 1 << 17;
    pub const PRIVATE: u64 = 1 << 18;
    pub const SLAVE: u64 = 1 << 19;
    pub const SHARED: u64 = 1 << 20;
    pub const RELATIME: u64 = 1 << 21;
    pub const KERNMOUNT: u64 = 1 << 22;
    pub const I_VERSION: u64 = 1 << 23;
    pub const STRICTATIME: u64 = 1 << 24;
    pub const LAZYTIME: u64 = 1 << 25;
    pub const SUBMOUNT: u64 = 1 << 26;
    pub const NOREMOTELOCK: u64 = 1 << 27;
    pub const NOSEC: u64 = 1 << 28;
    pub const BORN: u64 = 1 << 29;
    pub const ACTIVE: u64 = 1 << 30;
}

/// Option words that become flags (mount_linux.go:convert). Deliberate
/// deviation: the reference maps `sync`/`async` to the msync(2) constants
/// MS_SYNC (4, = MS_NODEV) and MS_ASYNC (1, = MS_RDONLY); here `sync` is
/// MS_SYNCHRONOUS and `async` (the default) is no flag.
const OPTION_FLAGS: &[(&str, u64)] = &[
    ("active", ms::ACTIVE),
    ("async", 0),
    ("bind", ms::BIND),
    ("born", ms::BORN),
    ("dirsync", ms::DIRSYNC),
    ("i_version", ms::I_VERSION),
    ("kernmount", ms::KERNMOUNT),
    ("lazytime", ms::LAZYTIME),
    ("mandlock", ms::MANDLOCK),
    ("move", ms::MOVE),
    ("noatime", ms::NOATIME),
    ("nodev", ms::NODEV),
    ("nodiratime", ms::NODIRATIME),
    ("noexec", ms::NOEXEC),
    ("noremotelock", ms::NOREMOTELOCK),
    ("nosec", ms::NOSEC),
    ("nosuid", ms::NOSUID),
    ("nosymfollow", ms::NOSYMFOLLOW),
    ("posixacl", ms::POSIXACL),
    ("private", ms::PRIVATE),
    ("rdonly", ms::RDONLY),
    ("rec", ms::REC),
    ("relatime", ms::RELATIME),
    ("remount", ms::REMOUNT),
    ("ro", ms::RDONLY),
    ("rw", 0),
    ("shared", ms::SHARED),
    ("silent", ms::SILENT),
    ("slave", ms::SLAVE),
    ("strictatime", ms::STRICTATIME),
    ("submount", ms::SUBMOUNT),
    ("sync", ms::SYNCHRONOUS),
    ("synchronous", ms::SYNCHRONOUS),
    ("unbindable", ms::UNBINDABLE),
    ("verbose", ms::SILENT),
];

/// Option words that are consumed without effect (mount.go:ignore).
const IGNORED: &[&str] = &["defaults", "blkio", "nouser"];

/// One fstab line, ready for mount(2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// What to mount (field 1).
    pub source: String,
    /// Where (field 2).
    pub target: String,
    /// Filesystem type (field 3).
    pub fstype: String,
    /// MS_* bits from the option words.
    pub flags: u64,
    /// The option words that are not flags, comma-joined.
    pub data: String,
}

/// Turns an fstab option field into flags and data (mount.go:parse).
pub fn parse_options(opts: &str) -> (u64, String) {
    let mut flags = 0;
    let mut data: Vec<&str> = Vec::new();
    for word in opts.trim().split(',') {
        if IGNORED.contains(&word) {
            continue;
        }
        match OPTION_FLAGS.iter().find(|(w, _)| *w == word) {
            Some((_, bit)) => flags |= bit,
            None => data.push(word),
        }
    }
    (flags, data.join(","))
}

/// Parses fstab text: lines starting with `#` and lines with fewer than 6
/// whitespace-separated fields are skipped, as the reference does.
pub fn parse_fstab(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [source, target, fstype, opts, _, _, ..] = f.as_slice() else {
                return None;
            };
            let (flags, data) = parse_options(opts);
            Some(MountEntry {
                source: (*source).into(),
                target: (*target).into(),
                fstype: (*fstype).into(),
                flags,
                data,
            })
        })
        .collect()
}

/// Whether the absolute path `path` is `dir` or lies below it, both
/// cleaned first (lexically: the board's symlinks are not followed).
pub fn covers(dir: &str, path: &str) -> bool {
    let (dir, path) = (clean(dir), clean(path));
    if dir == "/" {
        return path.starts_with('/');
    }
    path == dir || path.strip_prefix(&dir).is_some_and(|r| r.starts_with('/'))
}

/// Whether a mounted fstab entry already serves `pwd` from the client: a
/// bind whose source is the 9P mount or lies below it, and whose target
/// covers `pwd`. Its target then shows the client's files, as the user
/// chose (for `T=S`, the client's S). A target of `/` does not count: a
/// mount over the root is invisible to path lookup, so it serves
/// nothing.
pub fn serves_from_client(e: &MountEntry, pwd: &str) -> bool {
    e.flags & ms::BIND != 0
        && covers(CPU_MOUNT, &e.source)
        && clean(&e.target) != "/"
        && covers(&e.target, pwd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reference_table() {
        assert_eq!(parse_binds(""), Ok(String::new()));
        assert_eq!(
            parse_binds("/lib"),
            Ok("/tmp/cpu/lib /lib none defaults,bind 0 0\n".into())
        );
        assert_eq!(
            parse_binds("/lib=/arm/lib"),
            Ok("/tmp/cpu/arm/lib /lib none defaults,bind 0 0\n".into())
        );
        assert_eq!(
            parse_binds("/lib:/bin=/b/bin"),
            Ok("/tmp/cpu/lib /lib none defaults,bind 0 0\n\
                /tmp/cpu/b/bin /bin none defaults,bind 0 0\n"
                .into())
        );
        assert_eq!(
            parse_binds("/bin==/b/bin"),
            Ok("/tmp/cpu/=/b/bin /bin none defaults,bind 0 0\n".into())
        );
        assert_eq!(
            parse_binds("/home/rob=/Users/rob"),
            Ok("/tmp/cpu/Users/rob /home/rob none defaults,bind 0 0\n".into())
        );
        assert_eq!(
            parse_binds("/"),
            Ok("/tmp/cpu / none defaults,bind 0 0\n".into())
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            parse_binds("/lib=:/bin"),
            Err(NamespaceError::EmptySource(0, "/lib=".into()))
        );
        assert_eq!(
            parse_binds("=/lib:/bin"),
            Err(NamespaceError::EmptyTarget(0, "=/lib".into()))
        );
        assert_eq!(
            parse_binds("/a::/bin"),
            Err(NamespaceError::EmptyElement(1))
        );
        assert_eq!(parse_binds(":"), Err(NamespaceError::EmptyElement(0)));
        assert!(NamespaceError::EmptyElement(3).to_string().contains('3'));
    }

    #[test]
    fn dotdot() {
        // As in the reference, a client path may climb out of /tmp/cpu.
        assert_eq!(
            parse_binds("/x=/../etc"),
            Ok("/tmp/etc /x none defaults,bind 0 0\n".into())
        );
    }

    #[test]
    fn join() {
        assert_eq!(join_fstab("", ""), "\n\n");
        assert_eq!(join_fstab("a\n\n", "\nb\n"), "a\nb\n");
        assert_eq!(join_fstab("a", ""), "a\n\n");
    }

    #[test]
    fn go_clean() {
        for (i, o) in [
            ("", "."),
            ("/", "/"),
            ("/tmp/cpu/", "/tmp/cpu"),
            ("/tmp/cpu/../../..", "/"),
            ("a/../..", ".."),
            ("a//b/./c/", "a/b/c"),
            ("../a", "../a"),
        ] {
            assert_eq!(clean(i), o, "{i}");
        }
    }

    #[test]
    fn fstab() {
        let text = "# comment\n\
            /tmp/cpu/lib /lib none defaults,bind 0 0\n\
            short line 1 2 3\n\
            \n\
            tmpfs /t tmpfs ro,nosuid,size=1m,blkio,nouser,mode=755 0 0 extra\n\
            x y z rec,bind,ro 0 0";
        let e = parse_fstab(text);
        assert_eq!(
            e,
            vec![
                MountEntry {
                    source: "/tmp/cpu/lib".into(),
                    target: "/lib".into(),
                    fstype: "none".into(),
                    flags: ms::BIND,
                    data: String::new(),
                },
                MountEntry {
                    source: "tmpfs".into(),
                    target: "/t".into(),
                    fstype: "tmpfs".into(),
                    flags: ms::RDONLY | ms::NOSUID,
                    data: "size=1m,mode=755".into(),
                },
                MountEntry {
                    source: "x".into(),
                    target: "y".into(),
                    fstype: "z".into(),
                    flags: ms::REC | ms::BIND | ms::RDONLY,
                    data: String::new(),
                },
            ]
        );
        // The reference's 0x1000 for "defaults,bind".
        assert_eq!(parse_options("defaults,bind"), (0x1000, String::new()));
    }

    #[test]
    fn covering() {
        assert!(covers("/home", "/home"));
        assert!(covers("/home", "/home/rob/src"));
        assert!(covers("/home/", "/home//rob"));
        assert!(!covers("/home", "/homework"));
        assert!(!covers("/home/rob", "/home"));
        assert!(covers("/", "/tmp"));
        assert!(!covers("/", "tmp"));
        assert!(covers("/a/../home", "/home/x"));
    }

    #[test]
    fn serving() {
        let entry = |line: &str| parse_fstab(line).remove(0);
        let home = entry("/tmp/cpu/home /home none defaults,bind 0 0");
        assert!(serves_from_client(&home, "/home/rob/src"));
        assert!(serves_from_client(&home, "/home"));
        assert!(!serves_from_client(&home, "/tmp/x"));
        // T=S: the user chose what T is; it serves T's subtree.
        let mapped = entry("/tmp/cpu/Users/rob /home/rob none defaults,bind 0 0");
        assert!(serves_from_client(&mapped, "/home/rob/src"));
        assert!(!serves_from_client(&mapped, "/Users/rob"));
        // The whole client over / is invisible to lookup: serves nothing.
        let root = entry("/tmp/cpu / none defaults,bind 0 0");
        assert!(!serves_from_client(&root, "/home/rob"));
        // Not from the client: the board's own tree, or no bind at all.
        let board = entry("/tmp/etc /x none defaults,bind 0 0");
        assert!(!serves_from_client(&board, "/x"));
        let tmpfs = entry("tmpfs /home tmpfs size=1m 0 0");
        assert!(!serves_from_client(&tmpfs, "/home/rob"));
        let climb = entry("/tmp/cpu/../etc /etc none bind 0 0");
        assert!(!serves_from_client(&climb, "/etc"));
    }

    fn path_part() -> impl Strategy<Value = String> {
        // No ':' (separator), '=' (split), whitespace (fstab fields), '/',
        // nor a leading '.', so ".." cannot climb out of /tmp/cpu here
        // (the `dotdot` test covers that).
        "[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,7}"
    }

    fn abs_path() -> impl Strategy<Value = String> {
        prop::collection::vec(path_part(), 1..4).prop_map(|v| format!("/{}", v.join("/")))
    }

    proptest! {
        #[test]
        fn round_trip(elems in prop::collection::vec(
            (abs_path(), prop::option::of(abs_path())), 1..6)) {
            let ns: Vec<String> = elems
                .iter()
                .map(|(t, s)| match s {
                    Some(s) => format!("{t}={s}"),
                    None => t.clone(),
                })
                .collect();
            let text = parse_binds(&ns.join(":")).expect("valid namespace");
            let want: String = elems
                .iter()
                .map(|(t, s)| {
                    let s = s.as_deref().unwrap_or(t);
                    format!("{} {t} none defaults,bind 0 0\n", clean(&format!("/tmp/cpu{s}")))
                })
                .collect();
            prop_assert_eq!(&text, &want);
            // The remote reads back the same pairs as bind mounts.
            let entries = parse_fstab(&join_fstab("", &text));
            prop_assert_eq!(entries.len(), elems.len());
            for (e, (t, _)) in entries.iter().zip(&elems) {
                prop_assert_eq!(&e.target, t);
                prop_assert_eq!(e.flags, ms::BIND);
                prop_assert!(e.source.starts_with("/tmp/cpu"));
            }
        }

        #[test]
        fn join_props(a in "[a-z \n]{0,20}", b in "[a-z \n]{0,20}") {
            let j = join_fstab(&a, &b);
            prop_assert!(j.ends_with('\n'));
            prop_assert!(!j.ends_with("\n\n\n"));
            let ta = a.trim_matches('\n');
            let tb = b.trim_matches('\n');
            prop_assert_eq!(j.len(), ta.len() + tb.len() + 2);
            prop_assert!(j.starts_with(ta));
            // Idempotent on its own output's halves.
            prop_assert_eq!(join_fstab(ta, tb), j.clone());
        }

        #[test]
        fn covers_is_the_prefix_rule(
            dir in prop::collection::vec(path_part(), 0..4),
            rest in prop::collection::vec(path_part(), 0..3),
            other in path_part(),
        ) {
            let d = format!("/{}", dir.join("/"));
            let mut below = dir.clone();
            below.extend(rest.iter().cloned());
            let p = format!("/{}", below.join("/"));
            prop_assert!(covers(&d, &p));
            // A sibling that only shares a name prefix is not below.
            if let Some(last) = dir.last() {
                let mut sib = dir.clone();
                let name = format!("{last}{other}");
                *sib.last_mut().expect("non-empty") = name;
                let sibling = format!("/{}", sib.join("/"));
                prop_assert!(!covers(&d, &sibling));
            }
            // Only the root is covered by a path and its own descendants.
            prop_assert_eq!(covers(&p, &d), rest.is_empty());
        }

        #[test]
        fn served_only_by_client_binds_over_an_ancestor(
            target in abs_path(),
            src in abs_path(),
            pwd in abs_path(),
        ) {
            let line = format!("{} {target} none defaults,bind 0 0", clean(&format!("/tmp/cpu{src}")));
            let e = parse_fstab(&line).remove(0);
            prop_assert_eq!(serves_from_client(&e, &pwd), covers(&target, &pwd));
            let not_bind = MountEntry { flags: 0, ..e.clone() };
            prop_assert!(!serves_from_client(&not_bind, &pwd));
            let root = MountEntry { target: "/".into(), ..e };
            prop_assert!(!serves_from_client(&root, &pwd));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = parse_binds(&s);
            let _ = parse_fstab(&s);
        }
    }
}
