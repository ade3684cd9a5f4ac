//! The 9P client that many threads share, read by a smol task.
//!
//! Everything but the transport is `runtime_std::p9client`'s shared
//! client (tags, the in-flight bound, failures, answers; see
//! `runtime_std::p9client::shared`): [`MuxClient`] derefs to it, so the
//! calls (`start`, [`Pending::wait`], `call`, `read`, `write`, `lopen`,
//! `getattr`, `clunk`, `msize`, `iounit`, `is_failed`) are the same.
//! Here the reading side is a task on smol's global executor, which runs
//! its own thread, so the caller drives no executor.
//!
//! The callers are blocking threads (FUSE workers): each writes its own
//! frame with `async_io::block_on` on the async writer, and
//! [`Pending::wait`] blocks. Do not call them from an async task.
//!
//! The reader task ends when the stream's read side does (EOF or error),
//! so whoever owns the stream should shut it down when done with the
//! client.

use std::ops::Deref;

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use runtime_std::p9client::shared::{self, Dispatch};

pub use runtime_std::p9client::{CallError, Pending};

/// A 9P2000.L client for many threads; see the module documentation.
#[derive(Debug)]
pub struct MuxClient(shared::MuxClient);

impl Deref for MuxClient {
    type Target = shared::MuxClient;

    fn deref(&self) -> &shared::MuxClient {
        &self.0
    }
}

impl MuxClient {
    /// Negotiates the version (at most `msize`) over `reader`/`writer`,
    /// the two directions of one stream, then starts the reader task. At
    /// most `max_in_flight` requests (1 to 65535) are out at once. Blocks,
    /// as every call does.
    ///
    /// For a socket, give each direction its own handle: e.g.
    /// `Async::new(stream.try_clone()?)` for one of them, or the halves
    /// of `futures_lite::io::split`.
    pub fn connect<R, W>(
        mut reader: R,
        mut writer: W,
        msize: u32,
        max_in_flight: usize,
    ) -> Result<Self, CallError>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        // Callers are blocking threads: each waits for its own write.
        let send = Box::new(move |frame: &[u8]| {
            async_io::block_on(async {
                writer.write_all(frame).await?;
                writer.flush().await
            })
        });
        let read = |buf: &mut [u8]| async_io::block_on(reader.read(buf));
        let (client, dispatch, buf) =
            shared::MuxClient::negotiate(msize, max_in_flight, send, read)?;
        smol::spawn(read_loop(dispatch, reader, buf)).detach();
        Ok(Self(client))
    }
}

/// The reader task: feeds the answers in until the stream ends or the
/// session fails.
async fn read_loop(dispatch: Dispatch, mut reader: impl AsyncRead + Unpin, mut buf: Vec<u8>) {
    loop {
        let read = reader.read(&mut buf).await;
        if dispatch.input(read, &buf).is_break() {
            return;
        }
    }
}
