//! The options of an authorized_keys line, as sshd(8) reads them
//! (`restrict,command="..." ssh-ed25519 AAAA...`): the ones that restrict
//! are honoured; a line with any other is refused, naming the option.

use std::net::IpAddr;

/// What a key line allows, from its options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyOptions {
    /// `command=`: the forced command.
    pub command: Option<String>,
    /// `from=`: patterns the client's address must match.
    pub from: Option<String>,
    /// `no-pty` (or `restrict` without `pty`).
    pub no_pty: bool,
    /// `no-port-forwarding` (or `restrict` without `port-forwarding`).
    pub no_port_forwarding: bool,
    /// `expiry-time=`: seconds since the epoch after which the key is refused.
    pub expiry: Option<u64>,
    /// `environment=NAME=value`, in order.
    pub environment: Vec<(String, String)>,
}

/// Splits `line` into its options and the key text after them. A line
/// that starts with a key type has no options.
pub fn split_line(line: &str) -> Result<(&str, &str), String> {
    let first = line.split_ascii_whitespace().next().unwrap_or("");
    if is_key_type(first) {
        return Ok(("", line));
    }
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ' ' | '\t' if !quoted => return Ok((&line[..i], line[i..].trim_start())),
            _ => {}
        }
    }
    Err(if quoted {
        "unterminated quote in the options".into()
    } else {
        "no key after the options".into()
    })
}

/// Key types as the first word of a line without options (sshd knows
/// more, and skips the options only when the first word is not a type).
fn is_key_type(word: &str) -> bool {
    word.starts_with("ssh-")
        || word.starts_with("ecdsa-sha2-")
        || word.starts_with("sk-")
        || word.starts_with("rsa-sha2-")
}

/// Parses the options field (`opt,opt="value",...`). An option cpud does
/// not implement is an error naming it.
pub fn parse(field: &str) -> Result<KeyOptions, String> {
    let mut o = KeyOptions::default();
    let (mut pty, mut forwarding) = (None, None);
    let mut rest = field;
    while !rest.is_empty() {
        let (name, value, after) =
            one_option(rest).map_err(|(n, why)| format!("option {n}: {why}"))?;
        rest = after;
        apply(&mut o, (&mut pty, &mut forwarding), name, value)
            .map_err(|why| format!("option {name}: {why}"))?;
    }
    o.no_pty = pty == Some(false);
    o.no_port_forwarding = forwarding == Some(false);
    Ok(o)
}

/// Takes in one option; `flags` are the pty and port-forwarding words
/// seen last (the last on each wins, as in sshd: `restrict,pty` gives a
/// pty, `pty,restrict` does not).
fn apply(
    o: &mut KeyOptions,
    flags: (&mut Option<bool>, &mut Option<bool>),
    name: &str,
    value: Option<String>,
) -> Result<(), &'static str> {
    let (pty, forwarding) = flags;
    let need = |v: Option<String>| v.ok_or("needs a value");
    match name.to_ascii_lowercase().as_str() {
        "restrict" => {
            *pty = Some(false);
            *forwarding = Some(false);
        }
        "no-pty" => *pty = Some(false),
        "pty" => *pty = Some(true),
        "no-port-forwarding" => *forwarding = Some(false),
        "port-forwarding" => *forwarding = Some(true),
        // Features cpud does not have: nothing to restrict or enable.
        "no-agent-forwarding"
        | "no-x11-forwarding"
        | "no-user-rc"
        | "agent-forwarding"
        | "x11-forwarding"
        | "user-rc" => {}
        "command" => o.command = Some(need(value)?),
        "from" => {
            let v = need(value)?;
            check_patterns(&v)?;
            o.from = Some(v);
        }
        "expiry-time" => o.expiry = Some(parse_time(&need(value)?)?),
        "environment" => {
            let v = need(value)?;
            match v.split_once('=') {
                Some((k, val)) if !k.is_empty() && !k.contains([' ', '\t']) => {
                    o.environment.push((k.into(), val.into()))
                }
                _ => return Err("not NAME=value"),
            }
        }
        _ => return Err("not supported by cpud"),
    }
    Ok(())
}

/// One option at the start of `s`: its name, its unquoted value, and the
/// text after it (past the comma); an error names the option.
fn one_option(s: &str) -> Result<(&str, Option<String>, &str), (&str, &'static str)> {
    let end = s.find([',', '=']).unwrap_or(s.len());
    let name = &s[..end];
    if name.is_empty() {
        return Err(("\"\"", "empty"));
    }
    if !s[end..].starts_with('=') {
        return Ok((name, None, s.get(end + 1..).unwrap_or("")));
    }
    let v = &s[end + 1..];
    let Some(body) = v.strip_prefix('"') else {
        return Err((name, "value not in double quotes"));
    };
    // Only \" is an escape, as in sshd; other backslashes stay.
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if body[i + 1..].starts_with('"') => {
                value.push('"');
                chars.next();
            }
            '"' => {
                let after = &body[i + 1..];
                return match after.strip_prefix(',') {
                    Some(more) => Ok((name, Some(value), more)),
                    None if after.is_empty() => Ok((name, Some(value), "")),
                    None => Err((name, "text after the closing quote")),
                };
            }
            c => value.push(c),
        }
    }
    Err((name, "unterminated quote"))
}

/// `from=` patterns must be well formed: a bad CIDR is an error in sshd.
fn check_patterns(list: &str) -> Result<(), &'static str> {
    for p in list.split(',') {
        let p = p.strip_prefix('!').unwrap_or(p);
        if p.is_empty() {
            return Err("empty pattern");
        }
        if p.contains('/') && parse_cidr(p).is_none() {
            return Err("bad network");
        }
    }
    Ok(())
}

/// Whether `addr` passes the `from=` list, as sshd's match_host_and_ip
/// without DNS (the address is the host name, as with `UseDNS no`): a
/// negated pattern that matches refuses, else one plain match admits.
/// A pattern is a CIDR network or an address with `*` and `?`.
pub fn from_matches(list: &str, addr: Option<IpAddr>) -> bool {
    let Some(addr) = addr.map(|a| a.to_canonical()) else {
        return false;
    };
    let text = addr.to_string();
    let mut found = false;
    for p in list.split(',') {
        let (neg, p) = match p.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, p),
        };
        let hit = match parse_cidr(p) {
            Some((net, bits)) => in_network(addr, net, bits),
            None => wildcard(&text, &p.to_ascii_lowercase()),
        };
        if hit && neg {
            return false;
        }
        found |= hit;
    }
    found
}

/// `addr/bits` or a plain address (all its bits).
fn parse_cidr(p: &str) -> Option<(IpAddr, u32)> {
    let (a, bits) = match p.split_once('/') {
        Some((a, b)) => (a, Some(b.parse::<u32>().ok()?)),
        None => (p, None),
    };
    let net: IpAddr = a.parse().ok()?;
    let max = if net.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    // sshd refuses host bits set beyond the mask.
    (bits <= max && mask(net, bits) == net).then_some((net, bits))
}

fn mask(a: IpAddr, bits: u32) -> IpAddr {
    match a {
        IpAddr::V4(v) => {
            let m = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            IpAddr::V4((u32::from(v) & m).into())
        }
        IpAddr::V6(v) => {
            let m = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            IpAddr::V6((u128::from(v) & m).into())
        }
    }
}

fn in_network(addr: IpAddr, net: IpAddr, bits: u32) -> bool {
    addr.is_ipv4() == net.is_ipv4() && mask(addr, bits) == net
}

/// Shell-style `*` and `?` matching, as sshd's match_pattern.
fn wildcard(s: &str, p: &str) -> bool {
    let (s, p) = (s.as_bytes(), p.as_bytes());
    let (mut si, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == s[si] => {
                si += 1;
                pi += 1;
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
    p[pi..].iter().all(|&c| c == b'*')
}

/// `expiry-time=` as sshd takes it: YYYYMMDD, YYYYMMDDHHMM or
/// YYYYMMDDHHMMSS, optionally ending in `Z`. cpud reads it as UTC either
/// way (it has no time zone database); seconds since the epoch.
pub fn parse_time(s: &str) -> Result<u64, &'static str> {
    const BAD: &str = "not YYYYMMDD[HHMM[SS]][Z]";
    let digits = s.strip_suffix(['Z', 'z']).unwrap_or(s).as_bytes();
    if !matches!(digits.len(), 8 | 12 | 14) || !digits.iter().all(u8::is_ascii_digit) {
        return Err(BAD);
    }
    // Fields of 2 digits from byte `at` (0 past the end: HHMMSS optional).
    let two = |at: usize| match digits.get(at..at + 2) {
        Some(&[a, b]) => u64::from(a - b'0') * 10 + u64::from(b - b'0'),
        _ => 0,
    };
    let (y, mo, d) = (two(0) * 100 + two(2), two(4), two(6));
    let (h, mi, sec) = (two(8), two(10), two(12));
    if y < 1970
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
        || h > 23
        || mi > 59
        || sec > 60
    {
        return Err(BAD);
    }
    Ok(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec)
}

/// Days from 1970-01-01 to the date (proleptic Gregorian, y >= 1970).
pub(crate) fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOZ8 c";

    #[test]
    fn lines_split_at_the_first_unquoted_blank() {
        assert_eq!(split_line(KEY).unwrap(), ("", KEY));
        let line = format!("restrict,command=\"echo \\\"a b\\\"\" {KEY}");
        let (opts, key) = split_line(&line).unwrap();
        assert_eq!(opts, "restrict,command=\"echo \\\"a b\\\"\"");
        assert_eq!(key, KEY);
        assert!(split_line("command=\"x y").is_err());
    }

    #[test]
    fn restrict_and_its_re_enablers() {
        let o = parse("restrict").unwrap();
        assert!(o.no_pty && o.no_port_forwarding);
        let o = parse("restrict,pty").unwrap();
        assert!(!o.no_pty && o.no_port_forwarding);
        let o = parse("restrict,port-forwarding").unwrap();
        assert!(o.no_pty && !o.no_port_forwarding);
        let o = parse("pty,restrict").unwrap();
        assert!(o.no_pty);
        let o = parse("No-Pty").unwrap();
        assert!(o.no_pty && !o.no_port_forwarding);
        assert_eq!(parse("no-agent-forwarding").unwrap(), KeyOptions::default());
    }

    #[test]
    fn values_are_unquoted() {
        let o = parse(r#"command="echo \"hi\" \n",environment="A=b=c",from="10.*""#).unwrap();
        assert_eq!(o.command.as_deref(), Some(r#"echo "hi" \n"#));
        assert_eq!(o.environment, [("A".into(), "b=c".into())]);
        assert_eq!(o.from.as_deref(), Some("10.*"));
        assert!(parse("command=echo").is_err());
        assert!(parse("command").is_err());
        assert!(parse("environment=\"=x\"").is_err());
        assert!(parse("command=\"a\"x").is_err());
    }

    #[test]
    fn unknown_options_are_named() {
        let e = parse("restrict,permitopen=\"h:1\"").unwrap_err();
        assert!(e.contains("permitopen"), "{e}");
        assert!(parse("cert-authority")
            .unwrap_err()
            .contains("cert-authority"));
    }

    #[test]
    fn from_patterns_as_sshd() {
        let lo = Some(IpAddr::from([127, 0, 0, 1]));
        assert!(from_matches("127.0.0.1", lo));
        assert!(from_matches("127.0.0.0/8", lo));
        assert!(from_matches("10.0.0.1,127.0.0.*", lo));
        assert!(!from_matches("10.0.0.0/8", lo));
        assert!(!from_matches("*,!127.0.0.1", lo));
        assert!(!from_matches("!127.0.0.1", lo));
        assert!(from_matches("*,!10.0.0.1", lo));
        assert!(!from_matches("127.0.0.1", None));
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(from_matches("127.0.0.1", Some(mapped)));
        assert!(from_matches("::1", Some("::1".parse().unwrap())));
        assert!(from_matches("::/0", Some("::1".parse().unwrap())));
        assert!(parse("from=\"127.0.0.1/33\"").is_err());
        assert!(parse("from=\"127.0.0.1/8\"").is_err());
    }

    #[test]
    fn times_are_utc() {
        assert_eq!(parse_time("19700101").unwrap(), 0);
        assert_eq!(parse_time("20000301").unwrap(), 951_868_800);
        assert_eq!(parse_time("202612072253Z").unwrap(), 1_796_683_980);
        assert_eq!(parse_time("20261207225308").unwrap(), 1_796_683_988);
        assert!(parse_time("2026120").is_err());
        assert!(parse_time("20261301").is_err());
        assert!(parse_time("2026120722").is_err());
    }

    proptest! {
        /// A quoted value of any text comes back as it was.
        #[test]
        fn quoted_values_round_trip(v in "[^\"\\\\]{0,20}(\"[^\"\\\\]{0,5}){0,3}") {
            let quoted = v.replace('"', "\\\"");
            let field = format!("command=\"{quoted}\",no-pty");
            let line = format!("{field} {KEY}");
            let (opts, key) = split_line(&line).unwrap();
            prop_assert_eq!(opts, field.as_str());
            prop_assert_eq!(key, KEY);
            let o = parse(opts).unwrap();
            prop_assert_eq!(o.command.as_deref(), Some(v.as_str()));
            prop_assert!(o.no_pty);
        }

        /// An address is in every network of its own prefix, and no
        /// other address of a /32 is.
        #[test]
        fn cidr_contains_its_prefixes(a in any::<u32>(), b in any::<u32>(), bits in 0u32..=32) {
            let addr = IpAddr::V4(a.into());
            let net = mask(addr, bits);
            let list = format!("{net}/{bits}");
            prop_assert!(from_matches(&list, Some(addr)));
            prop_assert_eq!(from_matches(&format!("{addr}/32"), Some(IpAddr::V4(b.into()))), a == b);
        }

        /// Days count up by one from the epoch.
        #[test]
        fn days_are_consecutive(n in 0u64..3_000_000) {
            let (y, m, d, ..) = crate::oplog::utc(n * 86400);
            prop_assert_eq!(days_from_civil(y, m, d), n);
        }
    }
}
