//! `-dbg9p`: a tap on the 9P stream that reports every message, one
//! line each, as requests arrive and replies leave. It sits between the
//! channel and the server, so what it shows is what crossed the wire.

use std::io::{self, Read, Write};

use bytes::Bytes;
use proto_9p::frame::{decode_frame, frame_len};

/// Longest line reported: payloads (Rread, Twrite) are cut.
const MAX_LINE: usize = 200;

/// A reader or writer that reports the 9P frames passing through it.
pub struct Tap<T, F: FnMut(&str)> {
    inner: T,
    /// "<-" for what the peer sent, "->" for what we send.
    dir: &'static str,
    report: F,
    /// Bytes of a frame not yet complete.
    pending: Vec<u8>,
    /// Set once the stream stops looking like 9P: tracing stops there.
    lost: bool,
}

impl<T, F: FnMut(&str)> std::fmt::Debug for Tap<T, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// The report of `-dbg9p`: one debug line per message.
fn report_9p(line: &str) {
    crate::log::line(format_args!("9p {line}"));
}

impl<T> Tap<T, fn(&str)> {
    /// `-dbg9p`'s tap on `inner` when `on`; else a plain pass-through
    /// (it looks at nothing), so that the stream has one type either way.
    pub fn dbg9p(inner: T, dir: &'static str, on: bool) -> Self {
        let mut tap = Self::new(inner, dir, report_9p as fn(&str));
        tap.lost = !on;
        tap
    }
}

impl<T, F: FnMut(&str)> Tap<T, F> {
    /// Reports the frames read from or written to `inner` through
    /// `report`, marked with `dir`.
    pub fn new(inner: T, dir: &'static str, report: F) -> Self {
        Self {
            inner,
            dir,
            report,
            pending: Vec::new(),
            lost: false,
        }
    }

    /// The stream tapped, for the async adapters of `crate::rt`.
    #[cfg_attr(not(feature = "runtime-smol"), allow(dead_code))]
    pub(crate) fn inner_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Takes in bytes that crossed, reporting each whole frame.
    pub(crate) fn see(&mut self, data: &[u8]) {
        if self.lost {
            return;
        }
        self.pending.extend_from_slice(data);
        loop {
            match frame_len(&self.pending, u32::MAX) {
                Ok(Some(n)) if self.pending.len() >= n => {
                    let frame = Bytes::copy_from_slice(&self.pending[..n]);
                    self.pending.drain(..n);
                    let line = match decode_frame(frame) {
                        Ok(f) => format!("{} tag {} {}", self.dir, f.tag, f.msg.trace()),
                        Err(bad) => format!(
                            "{} tag {} type {}: undecodable: {}",
                            self.dir, bad.tag, bad.msg_type, bad.error
                        ),
                    };
                    (self.report)(cut(&line));
                }
                Ok(_) => return,
                Err(e) => {
                    (self.report)(&format!("{} {e}; no more tracing", self.dir));
                    self.lost = true;
                    self.pending = Vec::new();
                    return;
                }
            }
        }
    }
}

/// `line`, cut at a character boundary near [`MAX_LINE`].
fn cut(line: &str) -> &str {
    if line.len() <= MAX_LINE {
        return line;
    }
    let mut end = MAX_LINE;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

impl<T: Read, F: FnMut(&str)> Read for Tap<T, F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.see(&buf[..n]);
        Ok(n)
    }
}

impl<T: Write, F: FnMut(&str)> Write for Tap<T, F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.see(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proto_9p::frame::encode_frame;
    use proto_9p::messages::{Message, Rread, Tclunk, Tlcreate, Tversion, Twalk};

    fn frame(tag: u16, msg: Message) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(tag, &msg, &mut out);
        out
    }

    #[test]
    fn reports_each_frame_once_however_the_bytes_are_split() {
        let mut bytes = frame(
            65535,
            Message::Tversion(Tversion {
                msize: 1 << 20,
                version: b"9P2000.L".to_vec(),
            }),
        );
        bytes.extend(frame(1, Message::Tclunk(Tclunk { fid: 7 })));
        for split in 0..bytes.len() {
            let mut lines = Vec::new();
            let mut tap = Tap::new(Vec::new(), "->", |l: &str| lines.push(l.to_string()));
            tap.write_all(&bytes[..split]).unwrap();
            tap.write_all(&bytes[split..]).unwrap();
            assert_eq!(tap.inner, bytes);
            drop(tap);
            assert_eq!(lines.len(), 2, "split at {split}: {lines:?}");
            assert!(
                lines[0].starts_with("-> tag 65535 Tversion"),
                "{}",
                lines[0]
            );
            assert_eq!(
                lines[0],
                "-> tag 65535 Tversion msize 1048576 version \"9P2000.L\""
            );
            assert_eq!(lines[1], "-> tag 1 Tclunk fid 7");
        }
    }

    #[test]
    fn names_show_as_text_and_data_as_its_length() {
        let walk = Message::Twalk(Twalk {
            fid: 1,
            newfid: 2,
            wnames: vec![b"usr".to_vec(), b"b\xffin".to_vec()],
        });
        let mut lines = Vec::new();
        let mut tap = Tap::new(Vec::new(), "->", |l: &str| lines.push(l.to_string()));
        tap.write_all(&frame(5, walk)).unwrap();
        let read = Message::Rread(Rread {
            data: vec![0u8; 10].into(),
        });
        tap.write_all(&frame(5, read)).unwrap();
        drop(tap);
        assert_eq!(
            lines,
            [
                "-> tag 5 Twalk fid 1 newfid 2 wnames [\"usr\", \"b\u{fffd}in\"]",
                "-> tag 5 Rread data (10 bytes)"
            ]
        );
    }

    #[test]
    fn reads_are_reported_and_garbage_stops_tracing() {
        let mut bytes = frame(3, Message::Tclunk(Tclunk { fid: 1 }));
        bytes.extend([1, 0, 0, 0, 0, 0, 0]); // size 1: not 9P
        bytes.extend(frame(4, Message::Tclunk(Tclunk { fid: 2 })));
        let mut lines = Vec::new();
        let mut tap = Tap::new(&bytes[..], "<-", |l: &str| lines.push(l.to_string()));
        let mut sink = Vec::new();
        tap.read_to_end(&mut sink).unwrap();
        drop(tap);
        assert_eq!(sink, bytes);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[1].contains("no more tracing"));
    }

    #[test]
    fn long_lines_are_cut() {
        let name = vec![b'x'; 60_000];
        let mut lines = Vec::new();
        let mut tap = Tap::new(Vec::new(), "->", |l: &str| lines.push(l.to_string()));
        let create = Message::Tlcreate(Tlcreate {
            name,
            ..Tlcreate::default()
        });
        tap.write_all(&frame(9, create)).unwrap();
        drop(tap);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].len() <= MAX_LINE);
    }
}
