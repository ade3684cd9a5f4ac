//! Command-line flags the way Go's `flag` package reads them, so `cpu` and
//! `cpud` accept the reference's command lines unchanged: `-name value`,
//! `-name=value`, the same with `--`, booleans as `-name` or `-name=false`,
//! and parsing stops at the first argument that is not a flag or at `--`.

use std::collections::HashMap;
use std::fmt;

/// One flag's definition.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    /// The name, without dashes.
    pub name: &'static str,
    /// The default value ("false" for booleans).
    pub default: &'static str,
    /// A boolean takes no separate value.
    pub boolean: bool,
    /// One line of help.
    pub help: &'static str,
}

/// Why the command line was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagError {
    /// `-h` or `-help`: print the usage and exit 0.
    Help,
    /// `-version`: print [`version`] and exit 0.
    Version,
    /// A flag that does not exist.
    Unknown(String),
    /// A flag that needs a value got none.
    MissingValue(String),
    /// A value that does not parse.
    BadValue {
        /// The flag.
        name: String,
        /// The value given.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
}

impl fmt::Display for FlagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Help => f.write_str("help requested"),
            Self::Version => f.write_str("version requested"),
            Self::Unknown(n) => write!(f, "flag provided but not defined: -{n}"),
            Self::MissingValue(n) => write!(f, "flag needs an argument: -{n}"),
            Self::BadValue {
                name,
                value,
                expected,
            } => write!(f, "invalid value {value:?} for flag -{name}: {expected}"),
        }
    }
}

/// Parsed flags plus the remaining arguments.
#[derive(Debug, Clone)]
pub struct Parsed {
    values: HashMap<&'static str, String>,
    /// Arguments after the flags.
    pub rest: Vec<String>,
}

impl Parsed {
    /// The value of flag `name` (its default when not given).
    pub fn get(&self, name: &str) -> &str {
        self.values.get(name).map(String::as_str).unwrap_or("")
    }

    /// A boolean flag.
    pub fn bool(&self, name: &'static str) -> Result<bool, FlagError> {
        parse_bool(self.get(name)).ok_or_else(|| FlagError::BadValue {
            name: name.into(),
            value: self.get(name).into(),
            expected: "true or false",
        })
    }

    /// A number.
    pub fn u64(&self, name: &'static str) -> Result<u64, FlagError> {
        self.get(name).parse().map_err(|_| FlagError::BadValue {
            name: name.into(),
            value: self.get(name).into(),
            expected: "a non-negative integer",
        })
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    // The spellings Go's strconv.ParseBool accepts.
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Parses `args` (without the program name) against `flags`.
pub fn parse(flags: &[Flag], args: &[String]) -> Result<Parsed, FlagError> {
    let mut values: HashMap<&'static str, String> = flags
        .iter()
        .map(|f| (f.name, f.default.to_string()))
        .collect();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == "--" {
            i += 1;
            break;
        }
        let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            break;
        };
        if body.is_empty() {
            // A lone "-" is an argument, as in Go.
            break;
        }
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        if name == "h" || name == "help" {
            return Err(FlagError::Help);
        }
        if name == "version" && inline.is_none() {
            return Err(FlagError::Version);
        }
        let Some(flag) = flags.iter().find(|f| f.name == name) else {
            return Err(FlagError::Unknown(name.into()));
        };
        let value = match (inline, flag.boolean) {
            (Some(v), true) => {
                if parse_bool(&v).is_none() {
                    return Err(FlagError::BadValue {
                        name: name.into(),
                        value: v,
                        expected: "true or false",
                    });
                }
                v
            }
            (Some(v), false) => v,
            (None, true) => "true".into(),
            (None, false) => {
                i += 1;
                args.get(i)
                    .cloned()
                    .ok_or_else(|| FlagError::MissingValue(name.into()))?
            }
        };
        values.insert(flag.name, value);
        i += 1;
    }
    Ok(Parsed {
        values,
        rest: args[i..].to_vec(),
    })
}

/// The usage text: a synopsis line, then one line per flag with its
/// default unless it is empty or false (as Go shows `(default true)`),
/// then `-version`.
pub fn usage(synopsis: &str, flags: &[Flag]) -> String {
    let mut s = format!("usage: {synopsis}\n");
    for f in flags {
        let dflt = match (f.boolean, f.default) {
            (_, "") | (true, "false") => String::new(),
            (true, d) => format!(" (default {d})"),
            (false, d) => format!(" (default {d:?})"),
        };
        let arg = if f.boolean { "" } else { " value" };
        s.push_str(&format!("  -{}{arg}\n    \t{}{dflt}\n", f.name, f.help));
    }
    s.push_str("  -version\n    \tprint the version and the runtime it was built with, and exit\n");
    s
}

/// What `-version` prints: the program (the synopsis' first word), the
/// version, and the runtime it was built with.
pub fn version(synopsis: &str) -> String {
    let name = synopsis.split(' ').next().unwrap_or(synopsis);
    let rt = if cfg!(feature = "runtime-smol") {
        "smol"
    } else {
        "std"
    };
    format!("{name} {} (runtime {rt})\n", env!("CARGO_PKG_VERSION"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAGS: &[Flag] = &[
        Flag {
            name: "addr",
            default: ":1",
            boolean: false,
            help: "address",
        },
        Flag {
            name: "d",
            default: "false",
            boolean: true,
            help: "debug",
        },
    ];

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn go_forms() {
        let p = parse(FLAGS, &args(&["-addr", "x", "--d", "host", "-d"])).expect("parses");
        assert_eq!(p.get("addr"), "x");
        assert_eq!(p.bool("d"), Ok(true));
        assert_eq!(p.rest, args(&["host", "-d"]));
        let p = parse(FLAGS, &args(&["--addr=y", "-d=false", "--", "-x"])).expect("parses");
        assert_eq!(p.get("addr"), "y");
        assert_eq!(p.bool("d"), Ok(false));
        assert_eq!(p.rest, args(&["-x"]));
        let p = parse(FLAGS, &args(&[])).expect("parses");
        assert_eq!(p.get("addr"), ":1");
    }

    #[test]
    fn errors() {
        assert_eq!(parse(FLAGS, &args(&["-h"])).err(), Some(FlagError::Help));
        assert_eq!(
            parse(FLAGS, &args(&["-nope"])).err(),
            Some(FlagError::Unknown("nope".into()))
        );
        assert_eq!(
            parse(FLAGS, &args(&["-addr"])).err(),
            Some(FlagError::MissingValue("addr".into()))
        );
        assert!(parse(FLAGS, &args(&["-d=maybe"])).is_err());
        assert_eq!(
            parse(FLAGS, &args(&["--version"])).err(),
            Some(FlagError::Version)
        );
    }

    #[test]
    fn usage_shows_defaults_and_version() {
        let mut flags = FLAGS.to_vec();
        flags.push(Flag {
            name: "on",
            default: "true",
            boolean: true,
            help: "on",
        });
        let u = usage("x [flags]", &flags);
        assert!(u.contains("address (default \":1\")\n"), "{u}");
        assert!(u.contains("\tdebug\n"), "{u}");
        assert!(u.contains("\ton (default true)\n"), "{u}");
        assert!(u.contains("  -version\n"), "{u}");
        assert!(version("x [flags]").starts_with(concat!(
            "x ",
            env!("CARGO_PKG_VERSION"),
            " (runtime "
        )));
    }
}
