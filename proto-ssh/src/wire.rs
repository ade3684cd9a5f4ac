//! The data types of RFC 4251 §5: byte, boolean, uint32, uint64, string,
//! mpint and name-list, read from a borrowed payload and appended to a
//! `Vec<u8>`.
//!
//! Every length read from the peer is checked against the bytes that are
//! left before anything is sliced, and nothing is allocated from a count
//! the peer chose: strings are borrowed, name-lists are iterated in place.

use alloc::vec::Vec;
use core::fmt;

/// A payload did not hold what the message layout says it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// The payload ended inside a field.
    Truncated,
    /// Bytes were left over after the last field.
    TrailingBytes,
    /// A field that must be UTF-8 (or US-ASCII) was not.
    BadUtf8,
    /// A value was outside what the field allows.
    BadValue,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Truncated => "message truncated",
            Self::TrailingBytes => "trailing bytes after message",
            Self::BadUtf8 => "text field is not UTF-8",
            Self::BadValue => "field value out of range",
        })
    }
}

/// Reads fields from the front of a payload.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Fails unless every byte was read: a message with trailing bytes is
    /// not the message it claims to be.
    pub fn finish(&self) -> Result<(), WireError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(WireError::TrailingBytes)
        }
    }

    /// The next `n` raw bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.buf.len() {
            return Err(WireError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// The next `N` raw bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }

    /// A `byte`.
    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }

    /// A `boolean`: any non-zero byte is true (RFC 4251 §5).
    pub fn bool(&mut self) -> Result<bool, WireError> {
        Ok(self.u8()? != 0)
    }

    /// A `uint32`.
    pub fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// A `uint64`.
    pub fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A `string`, borrowed.
    pub fn string(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.u32()?;
        self.bytes(usize::try_from(len).map_err(|_| WireError::Truncated)?)
    }

    /// A `string` that must be UTF-8.
    pub fn utf8(&mut self) -> Result<&'a str, WireError> {
        core::str::from_utf8(self.string()?).map_err(|_| WireError::BadUtf8)
    }

    /// A `name-list`: comma-separated US-ASCII names. Empty names and
    /// non-printable bytes are refused (RFC 4251 §5).
    pub fn name_list(&mut self) -> Result<NameList<'a>, WireError> {
        let raw = self.string()?;
        if !raw.iter().all(|b| (0x21..0x7f).contains(b)) {
            return Err(WireError::BadUtf8);
        }
        // Checked ASCII above, so this cannot fail.
        let s = core::str::from_utf8(raw).map_err(|_| WireError::BadUtf8)?;
        if !s.is_empty() && s.split(',').any(str::is_empty) {
            return Err(WireError::BadValue);
        }
        Ok(NameList(s))
    }

    /// An `mpint` that must be non-negative, returned as its big-endian
    /// magnitude without leading zeros.
    pub fn mpint_unsigned(&mut self) -> Result<&'a [u8], WireError> {
        let raw = self.string()?;
        match raw.first() {
            None => Ok(raw),
            Some(b) if b & 0x80 != 0 => Err(WireError::BadValue),
            Some(0) => {
                // A leading zero is allowed only to clear the sign bit.
                let rest = &raw[1..];
                match rest.first() {
                    Some(b) if b & 0x80 != 0 => Ok(rest),
                    _ => Err(WireError::BadValue),
                }
            }
            Some(_) => Ok(raw),
        }
    }
}

/// A borrowed, validated `name-list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameList<'a>(&'a str);

impl<'a> NameList<'a> {
    /// The names in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        let s = self.0;
        s.split(',').filter(|n| !n.is_empty())
    }

    /// Whether `name` is in the list.
    pub fn contains(&self, name: &str) -> bool {
        self.iter().any(|n| n == name)
    }

    /// The list as it was sent.
    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

/// Appends fields to a payload.
pub trait Put {
    /// A `byte`.
    fn put_u8(&mut self, v: u8);
    /// A `boolean`.
    fn put_bool(&mut self, v: bool);
    /// A `uint32`.
    fn put_u32(&mut self, v: u32);
    /// A `uint64`.
    fn put_u64(&mut self, v: u64);
    /// Raw bytes, with no length.
    fn put_raw(&mut self, v: &[u8]);
    /// A `string`. Panics if `v` is 4 GiB or longer, which no caller
    /// builds: packets are capped far below that.
    fn put_string(&mut self, v: &[u8]);
    /// A `name-list` from its names.
    fn put_name_list(&mut self, names: &[&str]);
    /// A non-negative `mpint` from a big-endian magnitude.
    fn put_mpint_unsigned(&mut self, magnitude: &[u8]);
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }

    fn put_bool(&mut self, v: bool) {
        self.push(u8::from(v));
    }

    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_be_bytes());
    }

    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_be_bytes());
    }

    fn put_raw(&mut self, v: &[u8]) {
        self.extend_from_slice(v);
    }

    fn put_string(&mut self, v: &[u8]) {
        #[allow(clippy::expect_used)]
        let len = u32::try_from(v.len()).expect("string of 4 GiB or more");
        self.put_u32(len);
        self.extend_from_slice(v);
    }

    fn put_name_list(&mut self, names: &[&str]) {
        let len: usize =
            names.iter().map(|n| n.len()).sum::<usize>() + names.len().saturating_sub(1);
        #[allow(clippy::expect_used)]
        self.put_u32(u32::try_from(len).expect("name-list of 4 GiB or more"));
        for (i, n) in names.iter().enumerate() {
            if i > 0 {
                self.push(b',');
            }
            self.extend_from_slice(n.as_bytes());
        }
    }

    fn put_mpint_unsigned(&mut self, magnitude: &[u8]) {
        let start = magnitude
            .iter()
            .position(|&b| b != 0)
            .unwrap_or(magnitude.len());
        let m = &magnitude[start..];
        let pad = m.first().is_some_and(|b| b & 0x80 != 0);
        #[allow(clippy::expect_used)]
        let len = u32::try_from(m.len() + usize::from(pad)).expect("mpint of 4 GiB or more");
        self.put_u32(len);
        if pad {
            self.push(0);
        }
        self.extend_from_slice(m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn mpint_examples_from_rfc4251() {
        let cases: &[(&[u8], &[u8])] = &[
            (&[], &[0, 0, 0, 0]),
            (
                &[0x09, 0xa3, 0x78, 0xf9, 0xb2, 0xe3, 0x32, 0xa7],
                &[0, 0, 0, 8, 0x09, 0xa3, 0x78, 0xf9, 0xb2, 0xe3, 0x32, 0xa7],
            ),
            (&[0x80], &[0, 0, 0, 2, 0, 0x80]),
            (&[0, 0, 0x01], &[0, 0, 0, 1, 1]),
        ];
        for (m, wire) in cases {
            let mut v = vec![];
            v.put_mpint_unsigned(m);
            assert_eq!(&v[..], *wire);
            let mut r = Reader::new(&v);
            let back = r.mpint_unsigned().expect("decodes");
            let start = m.iter().position(|&b| b != 0).unwrap_or(m.len());
            assert_eq!(back, &m[start..]);
        }
    }

    #[test]
    fn mpint_rejects_negative_and_padding() {
        assert_eq!(
            Reader::new(&[0, 0, 0, 1, 0x80]).mpint_unsigned(),
            Err(WireError::BadValue)
        );
        assert_eq!(
            Reader::new(&[0, 0, 0, 2, 0, 1]).mpint_unsigned(),
            Err(WireError::BadValue)
        );
    }

    #[test]
    fn huge_string_length_is_truncated_not_allocated() {
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 1, 2]);
        assert_eq!(r.string(), Err(WireError::Truncated));
    }

    #[test]
    fn name_list_rules() {
        let mut v = vec![];
        v.put_name_list(&["a", "b-c@d"]);
        let l = Reader::new(&v).name_list().expect("valid");
        assert!(l.contains("b-c@d"));
        assert_eq!(l.iter().count(), 2);
        let mut v = vec![];
        v.put_string(b"a,,b");
        assert_eq!(Reader::new(&v).name_list(), Err(WireError::BadValue));
        let mut v = vec![];
        v.put_string(b"a b");
        assert_eq!(Reader::new(&v).name_list(), Err(WireError::BadUtf8));
        let mut v = vec![];
        v.put_name_list(&[]);
        assert_eq!(
            Reader::new(&v).name_list().expect("empty").iter().count(),
            0
        );
    }
}
