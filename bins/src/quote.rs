//! The remote command string (spec §2.5). The client quotes every argument
//! in single quotes after an optional `-port9p=<port>`; the server splits
//! the string back with POSIX shell-like rules (gliderlabs' shlex.Split
//! with posix=true) before it re-executes itself as `cpud -remote ...`.

use std::fmt;

/// The client side: byte-exact with the reference's Start/quoteArg.
/// Without a 9P port the string begins with a space, as the reference's.
pub fn remote_command(port9p: Option<u16>, args: &[String]) -> String {
    let mut s = match port9p {
        Some(p) => format!("-port9p={p}"),
        None => String::new(),
    };
    s.push(' ');
    let quoted: Vec<String> = args.iter().map(|a| quote_arg(a)).collect();
    s.push_str(&quoted.join(" "));
    s
}

/// Single-quotes one argument; an embedded `'` becomes `'"'"'`.
pub fn quote_arg(a: &str) -> String {
    format!("'{}'", a.replace('\'', "'\"'\"'"))
}

/// Why a command string could not be split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuoteError {
    /// A `'` or `"` was never closed.
    UnterminatedQuote(char),
    /// The string ended with a lone backslash.
    TrailingBackslash,
}

impl fmt::Display for QuoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnterminatedQuote(q) => write!(f, "no closing quotation ({q})"),
            Self::TrailingBackslash => f.write_str("no escaped character"),
        }
    }
}

impl std::error::Error for QuoteError {}

/// The separators of Python's shlex.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Splits `s` into words, POSIX mode: single quotes are literal, double
/// quotes honour `\\ \" \$ \`` (any other backslash stays), a backslash
/// outside quotes takes the next character literally, unquoted whitespace
/// separates, and `''` is an empty word.
pub fn shlex_split(s: &str) -> Result<Vec<String>, QuoteError> {
    let mut words = Vec::new();
    let mut word = String::new();
    // A quoted empty string must still yield a word.
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if is_space(c) => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\\' => {
                word.push(chars.next().ok_or(QuoteError::TrailingBackslash)?);
                in_word = true;
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(QuoteError::UnterminatedQuote('\'')),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('\\' | '"' | '$' | '`')) => word.push(e),
                            Some(e) => {
                                word.push('\\');
                                word.push(e);
                            }
                            None => return Err(QuoteError::UnterminatedQuote('"')),
                        },
                        Some(c) => word.push(c),
                        None => return Err(QuoteError::UnterminatedQuote('"')),
                    }
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn reference_strings() {
        assert_eq!(
            remote_command(Some(40123), &v(&["/bin/bash"])),
            "-port9p=40123 '/bin/bash'"
        );
        assert_eq!(remote_command(None, &v(&["ls", "-l"])), " 'ls' '-l'");
        assert_eq!(remote_command(None, &[]), " ");
        assert_eq!(remote_command(Some(1), &[]), "-port9p=1 ");
        assert_eq!(quote_arg("it's"), r#"'it'"'"'s'"#);
        assert_eq!(quote_arg(""), "''");
    }

    #[test]
    fn split() {
        assert_eq!(
            shlex_split(r#"cp -Rdp "file name" 'file name2' dir\ name"#),
            Ok(v(&["cp", "-Rdp", "file name", "file name2", "dir name"]))
        );
        assert_eq!(shlex_split("  a\t\nb  "), Ok(v(&["a", "b"])));
        assert_eq!(shlex_split("'' \"\" x''"), Ok(v(&["", "", "x"])));
        assert_eq!(
            shlex_split(r#""a\"b\\c\$d\`e\nf""#),
            Ok(v(&["a\"b\\c$d`e\\nf"]))
        );
        assert_eq!(shlex_split(r"'a\b'"), Ok(v(&[r"a\b"])));
        assert_eq!(shlex_split("a'b'\"c\"d"), Ok(v(&["abcd"])));
        assert_eq!(shlex_split(""), Ok(vec![]));
        assert_eq!(shlex_split("'ab"), Err(QuoteError::UnterminatedQuote('\'')));
        assert_eq!(shlex_split("\"ab"), Err(QuoteError::UnterminatedQuote('"')));
        assert_eq!(
            shlex_split("\"ab\\"),
            Err(QuoteError::UnterminatedQuote('"'))
        );
        assert_eq!(shlex_split("ab\\"), Err(QuoteError::TrailingBackslash));
    }

    fn arg() -> impl Strategy<Value = String> {
        // Bias toward the characters that matter, plus any unicode.
        prop_oneof!["[ '\"\\\\$`\t\na-z]{0,12}", "\\PC{0,12}", any::<String>(),]
    }

    proptest! {
        #[test]
        fn round_trip(args in prop::collection::vec(arg(), 0..8), port in any::<u16>()) {
            prop_assert_eq!(shlex_split(&remote_command(None, &args)), Ok(args.clone()));
            let mut want = vec![format!("-port9p={port}")];
            want.extend(args.iter().cloned());
            prop_assert_eq!(shlex_split(&remote_command(Some(port), &args)), Ok(want));
        }

        #[test]
        fn never_panics(s in any::<String>()) {
            let _ = shlex_split(&s);
        }
    }
}
