//! OpenSSH client configuration, read for the four keys the reference
//! honours (spec §2.1): HostName, Port, User and IdentityFile; and
//! IdentitiesOnly, for the choice between agent keys and key files.
//!
//! Parsing is pure: `Include` files come through an [`IncludeLoader`].
//! Semantics follow OpenSSH's readconf.c: case-insensitive keywords,
//! `Key value` or `Key=value`, quoted arguments, `#` comments, `Host`
//! patterns with `*`, `?` and `!`, the first value obtained wins (except
//! IdentityFile, which accumulates), and an `Include` applies under the
//! block it appears in.
//!
//! Left out: `Match` blocks (skipped with a [`Warning`], never applied),
//! glob patterns in `Include` (skipped with a warning), `~user` expansion,
//! and every other keyword (ignored). Unlike the reference's library,
//! nothing is filled in from OpenSSH defaults: absent keys stay absent.

use std::fmt;

/// OpenSSH's limit on nested Include files.
const MAX_INCLUDE_DEPTH: usize = 16;

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A line that does not tokenize (an unterminated quote).
    Syntax {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        what: &'static str,
    },
    /// A keyword we honour without its argument.
    MissingArgument {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// The keyword.
        keyword: String,
    },
    /// Extra arguments after a single-valued keyword.
    Garbage {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// The keyword.
        keyword: String,
    },
    /// A Port that is not 1-65535.
    BadPort {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// The value given.
        value: String,
    },
    /// The loader failed to read an Include file.
    Include {
        /// The file holding the Include line.
        file: String,
        /// 1-based line number.
        line: usize,
        /// The resolved path.
        path: String,
        /// The loader's message.
        err: String,
    },
    /// Include files nested too deeply (likely a loop).
    IncludeDepth {
        /// The file holding the Include line.
        file: String,
        /// 1-based line number.
        line: usize,
    },
    /// An unknown or unsupported `%` token during expansion.
    BadToken {
        /// The keyword whose value was expanded.
        keyword: &'static str,
        /// The value.
        value: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax { file, line, what } => write!(f, "{file} line {line}: {what}"),
            Self::MissingArgument {
                file,
                line,
                keyword,
            } => write!(f, "{file} line {line}: {keyword}: missing argument"),
            Self::Garbage {
                file,
                line,
                keyword,
            } => write!(f, "{file} line {line}: {keyword}: garbage at end of line"),
            Self::BadPort { file, line, value } => {
                write!(f, "{file} line {line}: bad port {value:?}")
            }
            Self::Include {
                file,
                line,
                path,
                err,
            } => write!(f, "{file} line {line}: include {path}: {err}"),
            Self::IncludeDepth { file, line } => {
                write!(f, "{file} line {line}: includes nested too deeply")
            }
            Self::BadToken { keyword, value } => {
                write!(f, "{keyword} {value:?}: unknown % token")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Something skipped that the user may want to hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The file.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// What was skipped and why.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} line {}: {}", self.file, self.line, self.message)
    }
}

/// Reads Include files for the parser, keeping the parser itself free of
/// I/O. `Ok(None)` means the file does not exist, which OpenSSH ignores.
pub trait IncludeLoader {
    /// The text of the file at `path` (already resolved and absolute).
    fn load(&mut self, path: &str) -> Result<Option<String>, String>;
}

impl<F> IncludeLoader for F
where
    F: FnMut(&str) -> Result<Option<String>, String>,
{
    fn load(&mut self, path: &str) -> Result<Option<String>, String> {
        self(path)
    }
}

/// A loader for configurations without includes: every file is absent.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoIncludes;

impl IncludeLoader for NoIncludes {
    fn load(&mut self, _path: &str) -> Result<Option<String>, String> {
        Ok(None)
    }
}

/// The keys that matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    HostName,
    Port,
    User,
    IdentityFile,
    IdentitiesOnly,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    /// `Host` patterns: starts a block.
    Host(Vec<String>),
    /// `Match`: starts a block that never applies.
    Match,
    /// A setting, with Port already validated.
    Set(Key, String),
    /// An included file's items, applied under the current block.
    Include(Vec<Item>),
}

/// One parsed configuration file, includes spliced in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    items: Vec<Item>,
    /// What was skipped: Match blocks, Include globs.
    pub warnings: Vec<Warning>,
}

/// Where the parser resolves `~` and relative Include paths.
#[derive(Debug, Clone, Copy)]
pub struct ParseEnv<'a> {
    /// The local user's home, for `~/`.
    pub home: &'a str,
    /// The directory relative Include paths are under: `~/.ssh` for the
    /// user's file, `/etc/ssh` for the system's.
    pub include_dir: &'a str,
}

/// Parses the text of configuration file `file` (the name is only used in
/// messages).
pub fn parse(
    file: &str,
    text: &str,
    env: &ParseEnv<'_>,
    loader: &mut dyn IncludeLoader,
) -> Result<Config, ConfigError> {
    let mut warnings = Vec::new();
    let items = parse_depth(file, text, env, loader, &mut warnings, 0)?;
    Ok(Config { items, warnings })
}

fn parse_depth(
    file: &str,
    text: &str,
    env: &ParseEnv<'_>,
    loader: &mut dyn IncludeLoader,
    warnings: &mut Vec<Warning>,
    depth: usize,
) -> Result<Vec<Item>, ConfigError> {
    let mut items = Vec::new();
    for (idx, raw) in text.lines().enumerate() {
        let line = idx + 1;
        let (keyword, args) = match split_line(raw) {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(what) => {
                return Err(ConfigError::Syntax {
                    file: file.into(),
                    line,
                    what,
                })
            }
        };
        let missing = || ConfigError::MissingArgument {
            file: file.into(),
            line,
            keyword: keyword.clone(),
        };
        let single = |key: Key| -> Result<Item, ConfigError> {
            match args.as_slice() {
                [] => Err(missing()),
                [v] => Ok(Item::Set(key, v.clone())),
                _ => Err(ConfigError::Garbage {
                    file: file.into(),
                    line,
                    keyword: keyword.clone(),
                }),
            }
        };
        match keyword.to_ascii_lowercase().as_str() {
            "host" => {
                if args.is_empty() {
                    return Err(missing());
                }
                items.push(Item::Host(args.clone()));
            }
            "match" => {
                warnings.push(Warning {
                    file: file.into(),
                    line,
                    message: "Match is not supported; its block is skipped".into(),
                });
                items.push(Item::Match);
            }
            "hostname" => items.push(single(Key::HostName)?),
            "user" => items.push(single(Key::User)?),
            "identityfile" => items.push(single(Key::IdentityFile)?),
            "identitiesonly" => items.push(single(Key::IdentitiesOnly)?),
            "port" => {
                let item = single(Key::Port)?;
                if let Item::Set(_, v) = &item {
                    if !matches!(v.parse::<u16>(), Ok(p) if p != 0) {
                        return Err(ConfigError::BadPort {
                            file: file.into(),
                            line,
                            value: v.clone(),
                        });
                    }
                }
                items.push(item);
            }
            "include" => {
                if args.is_empty() {
                    return Err(missing());
                }
                if depth >= MAX_INCLUDE_DEPTH {
                    return Err(ConfigError::IncludeDepth {
                        file: file.into(),
                        line,
                    });
                }
                for arg in &args {
                    if arg.contains(['*', '?', '[']) {
                        warnings.push(Warning {
                            file: file.into(),
                            line,
                            message: format!("Include {arg}: glob patterns are not supported"),
                        });
                        continue;
                    }
                    let path = include_path(arg, env);
                    let text = loader.load(&path).map_err(|err| ConfigError::Include {
                        file: file.into(),
                        line,
                        path: path.clone(),
                        err,
                    })?;
                    if let Some(text) = text {
                        let sub = parse_depth(&path, &text, env, loader, warnings, depth + 1)?;
                        items.push(Item::Include(sub));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(items)
}

fn include_path(arg: &str, env: &ParseEnv<'_>) -> String {
    if let Some(rest) = arg.strip_prefix("~/") {
        format!("{}/{rest}", env.home.trim_end_matches('/'))
    } else if arg.starts_with('/') {
        arg.into()
    } else {
        format!("{}/{arg}", env.include_dir.trim_end_matches('/'))
    }
}

/// Splits one line into its keyword and arguments; `None` for blank and
/// comment lines. The keyword ends at whitespace or `=`, and one `=` may
/// separate it from the arguments (readconf.c).
fn split_line(raw: &str) -> Result<Option<(String, Vec<String>)>, &'static str> {
    let line = raw.trim_matches(|c: char| c.is_ascii_whitespace());
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let end = line
        .find(|c: char| c.is_ascii_whitespace() || c == '=')
        .unwrap_or(line.len());
    let (keyword, rest) = line.split_at(end);
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let rest = rest.strip_prefix('=').unwrap_or(rest);
    Ok(Some((keyword.into(), split_args(rest)?)))
}

/// OpenSSH's argv_split: whitespace separates, `'` and `"` quote, a
/// backslash escapes `\`, `'`, `"` (and a space outside quotes), and a
/// word starting with an unquoted `#` ends the line.
fn split_args(s: &str) -> Result<Vec<String>, &'static str> {
    let mut args = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
        match chars.peek() {
            None | Some('#') => break,
            Some(_) => {}
        }
        let mut arg = String::new();
        let mut quote: Option<char> = None;
        while let Some(c) = chars.next() {
            if quote.is_none() && c.is_ascii_whitespace() {
                break;
            }
            if c == '\\' {
                let escapes =
                    |n: &char| matches!(n, '\\' | '\'' | '"') || (quote.is_none() && *n == ' ');
                if let Some(n) = chars.next_if(escapes) {
                    arg.push(n);
                    continue;
                }
            }
            match quote {
                None if c == '\'' || c == '"' => quote = Some(c),
                Some(q) if c == q => quote = None,
                _ => arg.push(c),
            }
        }
        if quote.is_some() {
            return Err("unterminated quote");
        }
        args.push(arg);
    }
    Ok(args)
}

/// Shell-style wildcard match (`*` any run, `?` one character), ASCII
/// case-insensitive as host names are.
pub fn pattern_match(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().map(|c| c.to_ascii_lowercase()).collect();
    let s: Vec<char> = s.chars().map(|c| c.to_ascii_lowercase()).collect();
    let (mut pi, mut si) = (0, 0);
    // The last `*` seen and the text position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == '?' || c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Whether a `Host` line applies to `host`: some plain pattern matches and
/// no negated one does.
pub fn host_matches(patterns: &[String], host: &str) -> bool {
    let mut hit = false;
    for p in patterns {
        match p.strip_prefix('!') {
            Some(neg) if pattern_match(neg, host) => return false,
            Some(_) => {}
            None => hit |= pattern_match(p, host),
        }
    }
    hit
}

/// The settings that applied to one host, before expansion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Obtained {
    hostname: Option<String>,
    port: Option<String>,
    user: Option<String>,
    identity_files: Vec<String>,
    identities_only: Option<String>,
}

impl Obtained {
    fn set(&mut self, key: Key, value: &str) {
        let first = |slot: &mut Option<String>| {
            slot.get_or_insert_with(|| value.to_string());
        };
        match key {
            Key::HostName => first(&mut self.hostname),
            Key::Port => first(&mut self.port),
            Key::User => first(&mut self.user),
            Key::IdentityFile => self.identity_files.push(value.into()),
            Key::IdentitiesOnly => first(&mut self.identities_only),
        }
    }

    fn walk(&mut self, items: &[Item], host: &str, active: &mut bool) {
        for item in items {
            match item {
                Item::Host(p) => *active = host_matches(p, host),
                Item::Match => *active = false,
                Item::Set(key, value) if *active => self.set(*key, value),
                Item::Set(..) => {}
                Item::Include(sub) => {
                    // The included file starts under the current block and
                    // cannot change which block follows it.
                    let saved = *active;
                    self.walk(sub, host, active);
                    *active = saved;
                }
            }
        }
    }
}

/// The local facts expansion needs.
#[derive(Debug, Clone, Copy)]
pub struct LocalEnv<'a> {
    /// $HOME: `~` and `%d`.
    pub home: &'a str,
    /// The local user name: `%u`, and `%r` when no remote user is known.
    pub user: &'a str,
}

/// Where to connect, after ssh_config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// From `user@host`, else the first `User`; None means the caller's
    /// default ($USER in the reference).
    pub user: Option<String>,
    /// `HostName` (with `%h` expanded) or the host argument.
    pub host: String,
    /// The first `Port`; None means the caller's default.
    pub port: Option<u16>,
    /// Every `IdentityFile` that applied, in order, expanded.
    pub identity_files: Vec<String>,
    /// The first `IdentitiesOnly` is `yes` (or `true`): agent keys that
    /// are not also key files are not offered.
    pub identities_only: bool,
}

/// The port `%p` stands for when no Port applied (OpenSSH's default).
const DEFAULT_SSH_PORT: u16 = 22;

/// Resolves `host_arg` (`host` or `user@host`) against `configs`, given in
/// precedence order: `~/.ssh/config` first, then `/etc/ssh/ssh_config`.
pub fn resolve(
    host_arg: &str,
    configs: &[&Config],
    local: &LocalEnv<'_>,
) -> Result<Resolved, ConfigError> {
    let (cli_user, host) = match host_arg.rsplit_once('@') {
        Some((u, h)) => (Some(u.to_string()), h),
        None => (None, host_arg),
    };
    let mut got = Obtained::default();
    for c in configs {
        let mut active = true;
        got.walk(&c.items, host, &mut active);
    }
    let hostname = match &got.hostname {
        Some(h) => expand("HostName", h, &[('h', host)])?,
        None => host.to_string(),
    };
    // Parse-time validation makes this infallible; stay total anyway.
    let port = got.port.as_deref().and_then(|p| p.parse::<u16>().ok());
    let user = cli_user.or(got.user);
    let port_s = port.unwrap_or(DEFAULT_SSH_PORT).to_string();
    let remote_user = user.as_deref().unwrap_or(local.user);
    let tokens = [
        ('h', hostname.as_str()),
        ('n', host),
        ('p', port_s.as_str()),
        ('r', remote_user),
        ('u', local.user),
        ('d', local.home),
    ];
    let identity_files = got
        .identity_files
        .iter()
        .map(|f| expand("IdentityFile", &tilde(f, local.home), &tokens))
        .collect::<Result<_, _>>()?;
    let identities_only = got
        .identities_only
        .is_some_and(|v| v.eq_ignore_ascii_case("yes") || v.eq_ignore_ascii_case("true"));
    Ok(Resolved {
        user,
        host: hostname,
        port,
        identity_files,
        identities_only,
    })
}

/// `~` and `~/...` become the home directory; `~user` is left alone.
fn tilde(path: &str, home: &str) -> String {
    if path == "~" {
        home.into()
    } else if let Some(rest) = path.strip_prefix("~/") {
        format!("{}/{rest}", home.trim_end_matches('/'))
    } else {
        path.into()
    }
}

/// OpenSSH percent_expand: `%%` and the given one-letter tokens.
pub fn expand(
    keyword: &'static str,
    value: &str,
    tokens: &[(char, &str)],
) -> Result<String, ConfigError> {
    let bad = || ConfigError::BadToken {
        keyword,
        value: value.into(),
    };
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(t) => {
                let (_, v) = tokens.iter().find(|(k, _)| *k == t).ok_or_else(bad)?;
                out.push_str(v);
            }
            None => return Err(bad()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const ENV: ParseEnv<'static> = ParseEnv {
        home: "/home/me",
        include_dir: "/home/me/.ssh",
    };
    const LOCAL: LocalEnv<'static> = LocalEnv {
        home: "/home/me",
        user: "me",
    };

    fn cfg(text: &str) -> Config {
        parse("config", text, &ENV, &mut NoIncludes).expect("parses")
    }

    fn res(host: &str, configs: &[&Config]) -> Resolved {
        resolve(host, configs, &LOCAL).expect("resolves")
    }

    #[test]
    fn syntax() {
        assert_eq!(split_line("  # c"), Ok(None));
        assert_eq!(split_line(" \t\r"), Ok(None));
        let s = |l: &str| split_line(l).ok().flatten().expect("a line");
        assert_eq!(s("Port 22"), ("Port".into(), vec!["22".into()]));
        assert_eq!(s("Port=22"), ("Port".into(), vec!["22".into()]));
        assert_eq!(s("Port = 22 "), ("Port".into(), vec!["22".into()]));
        assert_eq!(s("\tPort\t22\r"), ("Port".into(), vec!["22".into()]));
        assert_eq!(
            s(r#"IdentityFile "/a b/c" 'd e' f\ g h\"i # tail"#),
            (
                "IdentityFile".into(),
                vec!["/a b/c".into(), "d e".into(), "f g".into(), "h\"i".into()]
            )
        );
        assert_eq!(s("Host a#b"), ("Host".into(), vec!["a#b".into()]));
        assert_eq!(s(r#"X "" y"#), ("X".into(), vec!["".into(), "y".into()]));
        assert_eq!(split_line(r#"User "me"#), Err("unterminated quote"));
    }

    #[test]
    fn patterns() {
        assert!(pattern_match("*", ""));
        assert!(pattern_match("*.example.com", "a.b.EXAMPLE.com"));
        assert!(!pattern_match("*.example.com", "example.com"));
        assert!(pattern_match("h?st", "host"));
        assert!(!pattern_match("h?st", "hst"));
        assert!(pattern_match("a*b*c", "axxbyyc"));
        assert!(!pattern_match("a*b*c", "axxbyy"));
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(host_matches(&v(&["*", "!bad"]), "good"));
        assert!(!host_matches(&v(&["*", "!bad"]), "bad"));
        assert!(!host_matches(&v(&["!bad"]), "good"));
        assert!(host_matches(&v(&["x", "y"]), "y"));
    }

    #[test]
    fn first_value_wins() {
        let c = cfg("User top\n\
             Host apu2\n  HostName apu2.lan\n  Port 2222\n  IdentityFile ~/.ssh/apu2\n\
             Host *\n  HostName ignored\n  Port 1\n  User last\n  IdentityFile %d/%u-%r@%h:%p%%\n");
        assert_eq!(
            res("apu2", &[&c]),
            Resolved {
                user: Some("top".into()),
                host: "apu2.lan".into(),
                port: Some(2222),
                identity_files: vec![
                    "/home/me/.ssh/apu2".into(),
                    "/home/me/me-top@apu2.lan:2222%".into()
                ],
                identities_only: false,
            }
        );
        assert_eq!(
            res("ra@other", &[&c]),
            Resolved {
                user: Some("ra".into()),
                host: "ignored".into(),
                port: Some(1),
                identity_files: vec!["/home/me/me-ra@ignored:1%".into()],
                identities_only: false,
            }
        );
    }

    #[test]
    fn nothing_applies() {
        let c = cfg("Host x\nPort 5\n");
        assert_eq!(
            res("y", &[&c]),
            Resolved {
                user: None,
                host: "y".into(),
                port: None,
                identity_files: vec![],
                identities_only: false,
            }
        );
        assert_eq!(res("y", &[]).host, "y");
    }

    #[test]
    fn user_then_system() {
        let user = cfg("Host h\nPort 7\nIdentityFile a\n");
        let system = cfg("Host *\nPort 8\nUser sys\nHostName %h.sys\nIdentityFile b\n");
        let r = res("h", &[&user, &system]);
        assert_eq!(r.port, Some(7));
        assert_eq!(r.user.as_deref(), Some("sys"));
        assert_eq!(r.host, "h.sys");
        assert_eq!(r.identity_files, vec!["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn keywords_case_insensitive_and_unknown_ignored() {
        let c = cfg("HOST h\nhostname H1\nPORT 9\nuser U\nIDENTITYFILE ~\nCompression yes\n");
        let r = res("h", &[&c]);
        assert_eq!(
            (r.host.as_str(), r.port, r.user.as_deref()),
            ("H1", Some(9), Some("U"))
        );
        assert_eq!(r.identity_files, vec!["/home/me".to_string()]);
    }

    #[test]
    fn identities_only_first_value_wins() {
        let c = cfg("Host h
IdentitiesOnly yes
Host *
IdentitiesOnly no
");
        assert!(res("h", &[&c]).identities_only);
        assert!(!res("other", &[&c]).identities_only);
        let c = cfg("identitiesonly=True
");
        assert!(res("x", &[&c]).identities_only);
    }

    #[test]
    fn negation_excludes_block() {
        let c = cfg("Host * !secret\nPort 11\nHost *\nPort 12\n");
        assert_eq!(res("open", &[&c]).port, Some(11));
        assert_eq!(res("secret", &[&c]).port, Some(12));
    }

    #[test]
    fn match_is_skipped_with_warning() {
        let c = cfg("Match host x\nPort 1\nHost *\nPort 2\n");
        assert_eq!(c.warnings.len(), 1);
        assert_eq!(c.warnings[0].line, 1);
        assert!(c.warnings[0].to_string().contains("Match"));
        assert_eq!(res("x", &[&c]).port, Some(2));
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = parse(
            "/etc/ssh/ssh_config",
            "Host a\n Port 0x16\n",
            &ENV,
            &mut NoIncludes,
        );
        assert_eq!(
            e,
            Err(ConfigError::BadPort {
                file: "/etc/ssh/ssh_config".into(),
                line: 2,
                value: "0x16".into()
            })
        );
        let msg = e.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("/etc/ssh/ssh_config line 2"), "{msg}");
        for bad in ["Port 0", "Port 65536", "Port", "Port 1 2", "Port -1"] {
            assert!(parse("f", bad, &ENV, &mut NoIncludes).is_err(), "{bad}");
        }
        assert!(matches!(
            parse("f", "\nUser", &ENV, &mut NoIncludes),
            Err(ConfigError::MissingArgument { line: 2, .. })
        ));
        assert!(matches!(
            parse("f", "User 'x", &ENV, &mut NoIncludes),
            Err(ConfigError::Syntax { line: 1, .. })
        ));
        let c = cfg("HostName %x\n");
        assert!(matches!(
            resolve("h", &[&c], &LOCAL),
            Err(ConfigError::BadToken {
                keyword: "HostName",
                ..
            })
        ));
        let c = cfg("IdentityFile a%\n");
        assert!(resolve("h", &[&c], &LOCAL).is_err());
    }

    #[test]
    fn hostname_only_expands_h() {
        let c = cfg("HostName %h.%%\n");
        assert_eq!(res("u@box", &[&c]).host, "box.%");
        let c = cfg("HostName %p\n");
        assert!(resolve("box", &[&c], &LOCAL).is_err());
    }

    #[test]
    fn includes() {
        let files: HashMap<&str, &str> = [
            ("/home/me/.ssh/inc", "Port 3\nHost other\nPort 4\n"),
            ("/abs/inc", "User absolute\n"),
            ("/home/me/tilde", "IdentityFile t\n"),
            ("/home/me/.ssh/loop", "Include loop\n"),
        ]
        .into_iter()
        .collect();
        let loaded = std::cell::RefCell::new(Vec::new());
        let mut loader = |p: &str| -> Result<Option<String>, String> {
            loaded.borrow_mut().push(p.to_string());
            if p == "/home/me/.ssh/broken" {
                return Err("permission denied".into());
            }
            Ok(files.get(p).map(|s| s.to_string()))
        };
        let text = "Host h\nInclude inc /abs/inc ~/tilde missing conf.d/*\nUser after\nPort 5\n";
        let c = parse("config", text, &ENV, &mut loader).expect("parses");
        assert_eq!(
            *loaded.borrow(),
            vec![
                "/home/me/.ssh/inc",
                "/abs/inc",
                "/home/me/tilde",
                "/home/me/.ssh/missing"
            ]
        );
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].message.contains("glob"));
        let r = res("h", &[&c]);
        // Port 3 from the include (under Host h); the include's "Host other"
        // does not end the h block after the include; its Port 4 is not h's.
        assert_eq!(r.port, Some(3));
        assert_eq!(r.user.as_deref(), Some("absolute"));
        assert_eq!(r.identity_files, vec!["t".to_string()]);
        // Only the include's own "Host other" block applies to other.
        assert_eq!(res("other", &[&c]).port, Some(4));
        assert_eq!(res("x", &[&c]).port, None);

        let e = parse("config", "Include loop\n", &ENV, &mut loader);
        assert!(matches!(e, Err(ConfigError::IncludeDepth { .. })));
        let e = parse("config", "Include broken\n", &ENV, &mut loader);
        assert!(matches!(e, Err(ConfigError::Include { line: 1, .. })));
    }

    proptest! {
        #[test]
        fn literal_pattern_matches_itself(s in "[a-z0-9.-]{0,12}") {
            prop_assert!(pattern_match(&s, &s));
            prop_assert!(pattern_match("*", &s));
            let q: String = s.chars().map(|_| '?').collect();
            prop_assert!(pattern_match(&q, &s));
            prop_assert!(host_matches(&["*".into()], &s));
            let negated = vec!["*".to_string(), format!("!{s}")];
            prop_assert!(!host_matches(&negated, &s));
        }

        #[test]
        fn star_splits(a in "[a-z]{0,5}", b in "[a-z]{0,5}", c in "[a-z]{0,5}") {
            let text = format!("{a}{b}{c}");
            let pat = format!("{a}*{c}");
            prop_assert!(pattern_match(&pat, &text));
        }

        #[test]
        fn quoted_values_round_trip(v in "[^\"\\\\\r\n]{1,20}", port in 1u16..) {
            let text = format!("Host *\n  hostname = \"{v}\"\n  PORT={port}\n  User \"{v}\"\n");
            let c = parse("f", &text, &ENV, &mut NoIncludes).expect("parses");
            let r = resolve("h", &[&c], &LOCAL);
            if v.contains('%') {
                return Ok(());
            }
            let r = r.expect("resolves");
            prop_assert_eq!(&r.host, &v);
            prop_assert_eq!(r.user.as_deref(), Some(v.as_str()));
            prop_assert_eq!(r.port, Some(port));
        }

        #[test]
        fn never_panics(text in "\\PC{0,200}", host in "\\PC{0,10}") {
            if let Ok(c) = parse("f", &text, &ENV, &mut NoIncludes) {
                let _ = resolve(&host, &[&c], &LOCAL);
            }
        }
    }
}
