//! OpenSSH client configuration, read for the keys the reference
//! honours (spec §2.1): HostName, Port, User and IdentityFile; and ours:
//! IdentitiesOnly (agent keys or key files), ConnectTimeout,
//! ServerAliveInterval and ServerAliveCountMax, StrictHostKeyChecking and
//! UserKnownHostsFile.
//!
//! Parsing is pure: `Include` files and the directories their globs
//! list come through an [`IncludeLoader`]. Semantics follow OpenSSH's
//! readconf.c: case-insensitive keywords, `Key value` or `Key=value`,
//! quoted arguments, `#` comments, `Host` patterns with `*`, `?` and `!`,
//! the first value obtained wins (except IdentityFile, which
//! accumulates), an `Include` applies under the block it appears in, and
//! its globs expand in sorted order (glob(3): `*`, `?`, `[...]`, a
//! leading `.` only matched explicitly). `Match` takes `all`, `host`,
//! `originalhost`, `user` and `localuser`, each negatable with `!`.
//!
//! Left out: the other `Match` criteria (`exec`, `canonical`, `final`,
//! `localnetwork`, `tagged`, ...: the block is ignored, with a
//! [`Warning`]), `~user` expansion, and every other keyword (ignored).
//! Unlike the reference's library, nothing is filled in from OpenSSH
//! defaults: absent keys stay absent.

use std::fmt;
use std::time::Duration;

use crate::known_hosts::Strict;

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
    /// A value the keyword does not take (a time, a count, a choice).
    BadValue {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// The keyword.
        keyword: String,
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
            Self::BadValue {
                file,
                line,
                keyword,
                value,
            } => write!(f, "{file} line {line}: {keyword}: bad value {value:?}"),
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
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// Reads Include files for the parser, keeping the parser itself free of
/// I/O. `Ok(None)` means the file does not exist, which OpenSSH ignores.
pub trait IncludeLoader {
    /// The text of the file at `path` (already resolved and absolute).
    fn load(&mut self, path: &str) -> Result<Option<String>, String>;

    /// The names in directory `dir`, for Include globs; none when it
    /// cannot be read (glob(3) skips such directories too). A loader
    /// without directories lists nothing.
    fn list(&mut self, _dir: &str) -> Vec<String> {
        Vec::new()
    }
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
    ConnectTimeout,
    ServerAliveInterval,
    ServerAliveCountMax,
    StrictHostKeyChecking,
    UserKnownHostsFile,
}

impl Key {
    /// The key of a (lowercased) keyword, if it is one we honour.
    fn of(keyword: &str) -> Option<Self> {
        Some(match keyword {
            "hostname" => Key::HostName,
            "port" => Key::Port,
            "user" => Key::User,
            "identityfile" => Key::IdentityFile,
            "identitiesonly" => Key::IdentitiesOnly,
            "connecttimeout" => Key::ConnectTimeout,
            "serveraliveinterval" => Key::ServerAliveInterval,
            "serveralivecountmax" => Key::ServerAliveCountMax,
            "stricthostkeychecking" => Key::StrictHostKeyChecking,
            "userknownhostsfile" => Key::UserKnownHostsFile,
            _ => return None,
        })
    }

    /// Whether a value is one the key takes (checked when parsed, so
    /// that a bad one names its file and line, as ssh does).
    fn valid(self, value: &str) -> bool {
        match self {
            Key::Port => matches!(value.parse::<u16>(), Ok(p) if p != 0),
            Key::ConnectTimeout | Key::ServerAliveInterval => convtime(value).is_some(),
            Key::ServerAliveCountMax => value.parse::<u32>().is_ok(),
            Key::StrictHostKeyChecking => strict(value).is_some(),
            _ => true,
        }
    }
}

/// One test of a `Match` line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Criterion {
    All,
    /// The host to connect to (HostName as known so far, else the name
    /// given), against comma-separated patterns.
    Host(String),
    /// The name as given on the command line.
    OriginalHost(String),
    /// The remote user as known so far.
    User(String),
    /// The local user.
    LocalUser(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    /// `Host` patterns: starts a block.
    Host(Vec<String>),
    /// `Match`: starts a block that applies when every test holds (a
    /// test is `(negated, criterion)`); `None` for a block never applied
    /// (a criterion we do not support).
    Match(Option<Vec<(bool, Criterion)>>),
    /// A setting, its value validated.
    Set(Key, Vec<String>),
    /// An included file's items, applied under the current block.
    Include(Vec<Item>),
}

/// One parsed configuration file, includes spliced in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    items: Vec<Item>,
    /// What was skipped: Match blocks we cannot evaluate.
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
        let lower = keyword.to_ascii_lowercase();
        if let Some(key) = Key::of(&lower) {
            // UserKnownHostsFile takes a list; the others one value.
            match args.as_slice() {
                [] => return Err(missing()),
                [_, _, ..] if key != Key::UserKnownHostsFile => {
                    return Err(ConfigError::Garbage {
                        file: file.into(),
                        line,
                        keyword,
                    })
                }
                _ => {}
            }
            if let Some(bad) = args.iter().find(|v| !key.valid(v)) {
                let value = bad.clone();
                return Err(if key == Key::Port {
                    ConfigError::BadPort {
                        file: file.into(),
                        line,
                        value,
                    }
                } else {
                    ConfigError::BadValue {
                        file: file.into(),
                        line,
                        keyword,
                        value,
                    }
                });
            }
            items.push(Item::Set(key, args));
            continue;
        }
        match lower.as_str() {
            "host" => {
                if args.is_empty() {
                    return Err(missing());
                }
                items.push(Item::Host(args.clone()));
            }
            "match" => {
                let tests = match_criteria(&args).map_err(|message| Warning {
                    file: file.into(),
                    line,
                    message: format!("{message}; the block is ignored"),
                });
                items.push(Item::Match(tests.map_err(|w| warnings.push(w)).ok()));
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
                    let pattern = include_path(arg, env);
                    let paths = if has_glob(&pattern) {
                        glob(&pattern, loader)
                    } else {
                        vec![pattern]
                    };
                    for path in paths {
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
            }
            _ => {}
        }
    }
    Ok(items)
}

/// The tests of a `Match` line, or why the block cannot be evaluated.
fn match_criteria(args: &[String]) -> Result<Vec<(bool, Criterion)>, String> {
    if args.is_empty() {
        return Err("Match without criteria".into());
    }
    let mut tests = Vec::new();
    let mut it = args.iter();
    while let Some(word) = it.next() {
        let (negated, name) = match word.strip_prefix('!') {
            Some(n) => (true, n),
            None => (false, word.as_str()),
        };
        let lower = name.to_ascii_lowercase();
        let make: fn(String) -> Criterion = match lower.as_str() {
            "all" => {
                tests.push((negated, Criterion::All));
                continue;
            }
            "host" => Criterion::Host,
            "originalhost" => Criterion::OriginalHost,
            "user" => Criterion::User,
            "localuser" => Criterion::LocalUser,
            _ => return Err(format!("Match {lower} is not supported")),
        };
        let patterns = it
            .next()
            .ok_or_else(|| format!("Match {lower}: missing argument"))?;
        tests.push((negated, make(patterns.clone())));
    }
    Ok(tests)
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

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The paths that the absolute `pattern` names, sorted bytewise as
/// glob(3) in the C locale sorts them; none when nothing matches.
fn glob(pattern: &str, loader: &mut dyn IncludeLoader) -> Vec<String> {
    let mut found = vec![String::new()];
    for part in pattern.split('/').filter(|p| !p.is_empty()) {
        if !has_glob(part) {
            for f in &mut found {
                f.push('/');
                f.push_str(part);
            }
            continue;
        }
        let mut next = Vec::new();
        for dir in &found {
            let listed = loader.list(if dir.is_empty() { "/" } else { dir });
            for name in listed {
                // A leading dot is matched only by a leading dot.
                if (name.starts_with('.') && !part.starts_with('.'))
                    || !wildcard(part, &name, false, true)
                {
                    continue;
                }
                next.push(format!("{dir}/{name}"));
            }
        }
        found = next;
    }
    found.sort();
    found
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
    wildcard(pattern, s, true, false)
}

/// The one wildcard matcher: `*` any run, `?` one character, and with
/// `classes` glob(3)'s `[abc]`, `[a-z]`, `[!x]` (or `[^x]`); `fold`
/// compares ASCII case-insensitively.
fn wildcard(pattern: &str, s: &str, fold: bool, classes: bool) -> bool {
    let low = |c: char| if fold { c.to_ascii_lowercase() } else { c };
    let p: Vec<char> = pattern.chars().map(low).collect();
    let s: Vec<char> = s.chars().map(low).collect();
    let (mut pi, mut si) = (0, 0);
    // The last `*` seen and the text position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, si));
                pi += 1;
                continue;
            }
            Some('[') if classes => match class(&p[pi..], s[si]) {
                Some((hit, n)) => hit.then_some(n),
                None => (s[si] == '[').then_some(1),
            },
            Some(&c) if c == '?' || c == s[si] => Some(1),
            _ => None,
        };
        match (step, star) {
            (Some(n), _) => {
                pi += n;
                si += 1;
            }
            (None, Some((sp, ss))) => {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            (None, None) => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Matches `c` against the class `p` starts with (`p[0]` is `[`):
/// whether `c` is in it, and the class's length; `None` when the class
/// is unterminated (then `[` is a plain character, as in glob(3)).
fn class(p: &[char], c: char) -> Option<(bool, usize)> {
    let negated = matches!(p.get(1), Some('!' | '^'));
    let start = if negated { 2 } else { 1 };
    // A `]` right after the opening is a member, not the end.
    let end = start + 1 + p.get(start + 1..)?.iter().position(|&x| x == ']')?;
    let body = &p[start..end];
    let mut hit = false;
    let mut i = 0;
    while i < body.len() {
        if body.get(i + 1) == Some(&'-') && i + 2 < body.len() {
            hit |= (body[i]..=body[i + 2]).contains(&c);
            i += 3;
        } else {
            hit |= body[i] == c;
            i += 1;
        }
    }
    Some((hit != negated, end + 1))
}

/// Whether a `Host` line applies to `host`: some plain pattern matches and
/// no negated one does.
pub fn host_matches(patterns: &[String], host: &str) -> bool {
    list_matches(patterns.iter().map(String::as_str), host, true)
}

/// OpenSSH's match_pattern_list: some plain pattern matches `s` and no
/// negated (`!`) one does.
fn list_matches<'a>(patterns: impl IntoIterator<Item = &'a str>, s: &str, fold: bool) -> bool {
    let mut hit = false;
    for p in patterns {
        match p.strip_prefix('!') {
            Some(neg) if wildcard(neg, s, fold, false) => return false,
            Some(_) => {}
            None => hit |= wildcard(p, s, fold, false),
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
    connect_timeout: Option<String>,
    alive_interval: Option<String>,
    alive_count: Option<String>,
    strict: Option<String>,
    known_hosts: Option<Vec<String>>,
}

/// What `Match` tests against besides what was obtained so far.
struct Facts<'a> {
    /// The host as given.
    host: &'a str,
    /// The local user.
    local_user: &'a str,
}

impl Obtained {
    fn set(&mut self, key: Key, values: &[String]) {
        let value = values.first().map_or("", String::as_str);
        let first = |slot: &mut Option<String>| {
            slot.get_or_insert_with(|| value.to_string());
        };
        match key {
            Key::HostName => first(&mut self.hostname),
            Key::Port => first(&mut self.port),
            Key::User => first(&mut self.user),
            Key::IdentityFile => self.identity_files.push(value.into()),
            Key::IdentitiesOnly => first(&mut self.identities_only),
            Key::ConnectTimeout => first(&mut self.connect_timeout),
            Key::ServerAliveInterval => first(&mut self.alive_interval),
            Key::ServerAliveCountMax => first(&mut self.alive_count),
            Key::StrictHostKeyChecking => first(&mut self.strict),
            Key::UserKnownHostsFile => {
                self.known_hosts.get_or_insert_with(|| values.to_vec());
            }
        }
    }

    /// Whether a `Match` test holds now: `host` is HostName as obtained
    /// so far (`%h` expanded), else the host given; `user` the remote
    /// user so far, else the local one (readconf.c's match_cfg_line).
    fn holds(&self, c: &Criterion, facts: &Facts<'_>) -> bool {
        let list = |patterns: &str, s: &str, fold| list_matches(patterns.split(','), s, fold);
        match c {
            Criterion::All => true,
            Criterion::Host(p) => {
                let host = match &self.hostname {
                    Some(h) => {
                        expand("HostName", h, &[('h', facts.host)]).unwrap_or_else(|_| h.clone())
                    }
                    None => facts.host.to_string(),
                };
                list(p, &host, true)
            }
            Criterion::OriginalHost(p) => list(p, facts.host, true),
            Criterion::User(p) => list(p, self.user.as_deref().unwrap_or(facts.local_user), false),
            Criterion::LocalUser(p) => list(p, facts.local_user, false),
        }
    }

    fn walk(&mut self, items: &[Item], facts: &Facts<'_>, active: &mut bool) {
        for item in items {
            match item {
                Item::Host(p) => *active = host_matches(p, facts.host),
                Item::Match(None) => *active = false,
                Item::Match(Some(tests)) => {
                    *active = tests.iter().all(|(neg, c)| self.holds(c, facts) != *neg)
                }
                Item::Set(key, values) if *active => self.set(*key, values),
                Item::Set(..) => {}
                Item::Include(sub) => {
                    // The included file starts under the current block and
                    // cannot change which block follows it.
                    let saved = *active;
                    self.walk(sub, facts, active);
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    /// `ConnectTimeout`; None (also for 0) means the caller's default.
    pub connect_timeout: Option<Duration>,
    /// `ServerAliveInterval` (None for 0: no keepalives) and
    /// `ServerAliveCountMax` (default 3).
    pub keepalive: Option<(Duration, u32)>,
    /// `StrictHostKeyChecking`; None means the caller's default.
    pub strict: Option<Strict>,
    /// `UserKnownHostsFile`, expanded; empty means the default.
    pub known_hosts_files: Vec<String>,
}

/// The port `%p` stands for when no Port applied (OpenSSH's default).
const DEFAULT_SSH_PORT: u16 = 22;

/// OpenSSH's default ServerAliveCountMax.
const DEFAULT_ALIVE_COUNT: u32 = 3;

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
    // As ssh: the user given wins over any User, and Match user sees it.
    let mut got = Obtained {
        user: cli_user,
        ..Obtained::default()
    };
    let facts = Facts {
        host,
        local_user: local.user,
    };
    for c in configs {
        let mut active = true;
        got.walk(&c.items, &facts, &mut active);
    }
    let hostname = match &got.hostname {
        Some(h) => expand("HostName", h, &[('h', host)])?,
        None => host.to_string(),
    };
    // Parse-time validation makes these infallible; stay total anyway.
    let port = got.port.as_deref().and_then(|p| p.parse::<u16>().ok());
    let user = got.user;
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
    let path = |keyword, f: &String| expand(keyword, &tilde(f, local.home), &tokens);
    let identity_files = got
        .identity_files
        .iter()
        .map(|f| path("IdentityFile", f))
        .collect::<Result<_, _>>()?;
    let known_hosts_files = got
        .known_hosts
        .iter()
        .flatten()
        .map(|f| path("UserKnownHostsFile", f))
        .collect::<Result<_, _>>()?;
    let identities_only = got
        .identities_only
        .is_some_and(|v| v.eq_ignore_ascii_case("yes") || v.eq_ignore_ascii_case("true"));
    let seconds = |v: &Option<String>| {
        v.as_deref()
            .and_then(convtime)
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
    };
    let count = got.alive_count.as_deref().and_then(|c| c.parse().ok());
    Ok(Resolved {
        user,
        host: hostname,
        port,
        identity_files,
        identities_only,
        connect_timeout: seconds(&got.connect_timeout),
        keepalive: seconds(&got.alive_interval).map(|i| (i, count.unwrap_or(DEFAULT_ALIVE_COUNT))),
        strict: got.strict.as_deref().and_then(strict),
        known_hosts_files,
    })
}

/// OpenSSH's convtime: seconds from `90`, `1m30s`, `2h` (units s, m, h,
/// d, w, either case); None when malformed.
fn convtime(v: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut num: Option<u64> = None;
    for c in v.chars() {
        if let Some(d) = c.to_digit(10) {
            num = Some(num.unwrap_or(0).checked_mul(10)?.checked_add(d.into())?);
            continue;
        }
        let unit: u64 = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            'w' => 604800,
            _ => return None,
        };
        total = total.checked_add(num.take()?.checked_mul(unit)?)?;
    }
    if v.is_empty() {
        return None;
    }
    total.checked_add(num.unwrap_or(0))
}

/// A StrictHostKeyChecking value. `ask` is taken as `accept-new`: cpu
/// never asks, it learns a new key and says so.
fn strict(v: &str) -> Option<Strict> {
    Some(match v.to_ascii_lowercase().as_str() {
        "yes" | "true" => Strict::Yes,
        "no" | "false" | "off" => Strict::No,
        "accept-new" | "ask" => Strict::AcceptNew,
        _ => return None,
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
                ..Resolved::default()
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
                ..Resolved::default()
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
                ..Resolved::default()
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
    fn match_criteria_apply() {
        let c = cfg("Match host x,y.lan !user root\nPort 1\n\
             Match originalhost al*\nHostName y.lan\n\
             Match host y.lan\nUser fromhost\n\
             Match localuser me user other\nPort 3\n\
             Match !all\nPort 4\n\
             Match all\nPort 5\nConnectTimeout 7\n");
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(res("x", &[&c]).port, Some(1));
        assert_eq!(res("root@x", &[&c]).port, Some(5));
        // HostName from an earlier block: a later Match host sees y.lan,
        // an earlier one did not (one pass, as ssh without `final`).
        let r = res("alias", &[&c]);
        assert_eq!((r.host.as_str(), r.port), ("y.lan", Some(5)));
        assert_eq!(r.user.as_deref(), Some("fromhost"));
        assert_eq!(res("other@z", &[&c]).port, Some(3));
        assert_eq!(res("z", &[&c]).port, Some(5));
        assert_eq!(
            res("z", &[&c]).connect_timeout,
            Some(Duration::from_secs(7))
        );
        // Users match case-sensitively, hosts not.
        assert_eq!(res("Other@z", &[&c]).port, Some(5));
        assert_eq!(res("X", &[&c]).port, Some(1));
    }

    #[test]
    fn unsupported_match_is_ignored_with_one_line() {
        let c = cfg("Match exec \"true\" host x\nPort 1\nMatch host\nPort 2\n\
             Match\nPort 3\nMatch canonical\nPort 4\nHost *\nPort 9\n");
        let lines: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            lines,
            [
                "config:1: Match exec is not supported; the block is ignored",
                "config:3: Match host: missing argument; the block is ignored",
                "config:5: Match without criteria; the block is ignored",
                "config:7: Match canonical is not supported; the block is ignored",
            ]
        );
        assert_eq!(res("x", &[&c]).port, Some(9));
    }

    #[test]
    fn connection_settings() {
        let c = cfg("Host a\nConnectTimeout 1m30\nServerAliveInterval 2\n\
             StrictHostKeyChecking accept-new\nUserKnownHostsFile ~/kh %d/kh2 /dev/null\n\
             Host b\nServerAliveInterval 5s\nServerAliveCountMax 1\nStrictHostKeyChecking no\n\
             ConnectTimeout 0\nUserKnownHostsFile /x/%h\n\
             Host *\nStrictHostKeyChecking=yes\nServerAliveInterval 0\nUserKnownHostsFile none\n");
        let r = res("a", &[&c]);
        assert_eq!(r.connect_timeout, Some(Duration::from_secs(90)));
        assert_eq!(r.keepalive, Some((Duration::from_secs(2), 3)));
        assert_eq!(r.strict, Some(Strict::AcceptNew));
        assert_eq!(
            r.known_hosts_files,
            ["/home/me/kh", "/home/me/kh2", "/dev/null"]
        );
        let r = res("b", &[&c]);
        assert_eq!(r.connect_timeout, None);
        assert_eq!(r.keepalive, Some((Duration::from_secs(5), 1)));
        assert_eq!(r.strict, Some(Strict::No));
        assert_eq!(r.known_hosts_files, ["/x/b"]);
        let r = res("c", &[&c]);
        assert_eq!((r.keepalive, r.strict), (None, Some(Strict::Yes)));
        assert_eq!(
            res("c", &[&cfg("StrictHostKeyChecking ask\n")]).strict,
            Some(Strict::AcceptNew)
        );
        for bad in [
            "ConnectTimeout x",
            "ConnectTimeout 5q",
            "ConnectTimeout ''",
            "ServerAliveInterval m",
            "ServerAliveCountMax -1",
            "StrictHostKeyChecking maybe",
            "ConnectTimeout 1 2",
        ] {
            let e = parse("f", bad, &ENV, &mut NoIncludes);
            assert!(
                matches!(
                    e,
                    Err(ConfigError::BadValue { line: 1, .. }
                        | ConfigError::Garbage { line: 1, .. })
                ),
                "{bad}: {e:?}"
            );
        }
    }

    #[test]
    fn times() {
        assert_eq!(convtime("0"), Some(0));
        assert_eq!(convtime("90"), Some(90));
        assert_eq!(convtime("1h2M3s"), Some(3723));
        assert_eq!(convtime("1w1d"), Some(8 * 86400));
        for bad in ["", "s", "1x", "-1", "1 s", "99999999999999999999"] {
            assert_eq!(convtime(bad), None, "{bad}");
        }
    }

    #[test]
    fn glob_patterns() {
        let g = |p: &str, s: &str| wildcard(p, s, false, true);
        assert!(g("*.conf", "a.conf"));
        assert!(!g("*.conf", "a.CONF"));
        assert!(g("[ab]?", "bx"));
        assert!(!g("[ab]?", "cx"));
        assert!(g("[!a-c]", "d"));
        assert!(!g("[^a-c]", "b"));
        assert!(g("[]]", "]"));
        assert!(g("a[", "a["));
        assert!(g("[0-9][0-9]-*", "50-cloud-init.conf"));
        // Host patterns take no classes.
        assert!(pattern_match("[ab]", "[AB]"));
    }

    /// A directory tree for Include globs: paths to their text.
    struct Tree(HashMap<&'static str, &'static str>);

    impl IncludeLoader for Tree {
        fn load(&mut self, path: &str) -> Result<Option<String>, String> {
            Ok(self.0.get(path).map(|s| s.to_string()))
        }
        fn list(&mut self, dir: &str) -> Vec<String> {
            let prefix = format!("{}/", dir.trim_end_matches('/'));
            let mut names: Vec<String> = self
                .0
                .keys()
                .filter_map(|p| p.strip_prefix(prefix.as_str()))
                .map(|rest| rest.split('/').next().unwrap_or_default().to_string())
                .collect();
            names.dedup();
            // Directory order is no order: the glob sorts.
            names.reverse();
            names
        }
    }

    #[test]
    fn glob_includes() {
        let mut tree = Tree(
            [
                ("/home/me/.ssh/config.d/20-b", "Host b\nPort 20\n"),
                (
                    "/home/me/.ssh/config.d/10-a",
                    "Host a b\nPort 10\nUser ten\n",
                ),
                ("/home/me/.ssh/config.d/.hidden", "Port 99\n"),
                ("/etc/ssh/ssh_config.d/50-x.conf", "Host *\nUser sys\n"),
                ("/etc/ssh/ssh_config.d/x.conf.bak", "Port 98\n"),
                ("/home/me/.ssh/d1/config", "Host c\nPort 31\n"),
                ("/home/me/.ssh/d2/config", "Host c\nPort 32\n"),
                ("/home/me/.ssh/d2/other", "Port 97\n"),
            ]
            .into_iter()
            .collect(),
        );
        let user = parse(
            "config",
            "Include config.d/* d?/config nothing/*\n",
            &ENV,
            &mut tree,
        )
        .expect("parses");
        let sys_env = ParseEnv {
            home: "/home/me",
            include_dir: "/etc/ssh",
        };
        let sys = parse(
            "/etc/ssh/ssh_config",
            "Include /etc/ssh/ssh_config.d/*.conf\n",
            &sys_env,
            &mut tree,
        )
        .expect("parses");
        assert!(user.warnings.is_empty() && sys.warnings.is_empty());
        let r = res("b", &[&user, &sys]);
        assert_eq!((r.port, r.user.as_deref()), (Some(10), Some("ten")));
        assert_eq!(res("c", &[&user, &sys]).port, Some(31));
        let r = res("z", &[&user, &sys]);
        assert_eq!((r.port, r.user.as_deref()), (None, Some("sys")));
        // Relative to /etc/ssh for the system file.
        let sys = parse("s", "Include ssh_config.d/*.conf\n", &sys_env, &mut tree).expect("parses");
        assert_eq!(res("z", &[&sys]).user.as_deref(), Some("sys"));
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
        assert!(c.warnings.is_empty());
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
        fn globs_never_panic(p in "[a-c*?!^\\[\\]-]{0,10}", t in "[a-c\\[\\]-]{0,8}") {
            let _ = wildcard(&p, &t, false, true);
            // A literal name matches itself, and a class of its letters.
            let lit: String = t.chars().filter(|c| c.is_ascii_lowercase()).collect();
            prop_assert!(wildcard(&lit, &lit, false, true));
            let cls: String = lit.chars().map(|c| format!("[{c}x-z]")).collect();
            prop_assert!(wildcard(&cls, &lit, false, true));
        }

        #[test]
        fn never_panics(text in "\\PC{0,200}", host in "\\PC{0,10}") {
            if let Ok(c) = parse("f", &text, &ENV, &mut NoIncludes) {
                let _ = resolve(&host, &[&c], &LOCAL);
            }
        }
    }
}
