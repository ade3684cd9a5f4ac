//! [`MuxClient`] over blocking streams: the caller connects, callers
//! write their own frames, and one reader thread feeds the answers to
//! the shared client (see [`super::shared`] for how requests and answers
//! meet).
//!
//! The reader thread ends when the stream's read side does (EOF or
//! error), so whoever owns the stream should shut it down when done with
//! the client.

use std::io::{Read, Write};
use std::thread;

use super::shared::{Dispatch, MuxClient};
use super::CallError;

impl MuxClient {
    /// Negotiates the version (at most `msize`) over `reader`/`writer`,
    /// the two directions of one stream, then starts the reader thread.
    /// At most `max_in_flight` requests (1 to 65535) are out at once.
    pub fn connect<R, W>(
        mut reader: R,
        mut writer: W,
        msize: u32,
        max_in_flight: usize,
    ) -> Result<Self, CallError>
    where
        R: Read + Send + 'static,
        W: Write + Send + 'static,
    {
        let send = Box::new(move |frame: &[u8]| {
            writer.write_all(frame)?;
            writer.flush()
        });
        let (client, dispatch, buf) =
            MuxClient::negotiate(msize, max_in_flight, send, |buf| reader.read(buf))?;
        thread::Builder::new()
            .name("9p-reader".into())
            .spawn(move || read_loop(&dispatch, reader, buf))?;
        Ok(client)
    }
}

/// The reader thread: feeds the answers in until the stream ends or the
/// session fails.
fn read_loop(dispatch: &Dispatch, mut reader: impl Read, mut buf: Vec<u8>) {
    loop {
        let read = reader.read(&mut buf);
        if dispatch.input(read, &buf).is_break() {
            return;
        }
    }
}
