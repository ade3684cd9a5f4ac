//! The state of a served 9P connection, shared by the runtimes' drivers:
//! the sans-IO [`ServerSession`], the queue of requests waiting for a
//! worker, the worker counts, and the backpressure decision.
//!
//! It knows nothing of threads or tasks: a driver (this crate's threads,
//! runtime-smol's tasks and blocking pool) keeps a [`Core`] behind a
//! mutex, feeds it what it reads, runs the jobs it hands out wherever
//! blocking calls may run, and sends what it gives back, in that order.
//! The drivers differ only in how they wait.

use std::collections::VecDeque;
use std::io::{self, IoSlice};

use bytes::{Buf, Bytes};
use proto_9p::server::{Event, Reply, Request, RequestId, ServerSession};
use proto_9p::Errno;

use super::ServeConfig;

/// Slices handed to one vectored write at the most.
pub const MAX_SLICES: usize = 64;

/// One connection's session and work queue.
#[derive(Debug)]
pub struct Core<F> {
    session: ServerSession<F>,
    config: ServeConfig,
    jobs: VecDeque<Request<F>>,
    /// Workers running, and how many of them look for a job.
    workers: usize,
    idle_workers: usize,
    /// The reader waits for in-flight requests or output to shrink.
    reader_waiting: bool,
    /// The connection is over: workers drain the queue and leave.
    closed: bool,
}

impl<F: Clone> Core<F> {
    /// A new connection's state.
    pub fn new(config: ServeConfig) -> Self {
        Core {
            session: ServerSession::new(config.session),
            config,
            jobs: VecDeque::new(),
            workers: 0,
            idle_workers: 0,
            reader_waiting: false,
            closed: false,
        }
    }

    /// Takes one read of the peer's stream, whose bytes are `buf[..n]`,
    /// and queues the requests they complete. Returns how many, or `None`
    /// when the session is over: the end of the stream, or closed. An
    /// interrupted read queues nothing; a framing error ends the session.
    pub fn read_done(&mut self, read: io::Result<usize>, buf: &[u8]) -> io::Result<Option<usize>> {
        let n = match read {
            Ok(0) => return Ok(None),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Some(0)),
            Err(e) => return Err(e),
        };
        if self.closed {
            return Ok(None);
        }
        let data = buf
            .get(..n)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "read past the buffer"))?;
        self.session
            .handle_input(data)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        let mut queued = 0;
        while let Some(ev) = self.session.poll_event() {
            // Event::Flush is not acted on: blocking syscalls cannot be
            // interrupted from here, so the operation finishes and the
            // session sends the Rflush after its reply.
            if let Event::Request(r) = ev {
                self.jobs.push_back(r);
                queued += 1;
            }
        }
        Ok(Some(queued))
    }

    /// Whether another worker should start: more jobs wait than workers
    /// look for one, and the limit is not reached.
    pub fn want_worker(&self) -> bool {
        self.jobs.len() > self.idle_workers && self.workers < self.config.max_workers
    }

    /// Counts a new worker, idle until it takes a job.
    pub fn start_worker(&mut self) {
        self.workers += 1;
        self.idle_workers += 1;
    }

    /// Uncounts an idle worker that leaves (or never started).
    pub fn stop_worker(&mut self) {
        self.workers -= 1;
        self.idle_workers -= 1;
    }

    /// The oldest queued request, for an idle worker to run.
    pub fn next_job(&mut self) -> Option<Request<F>> {
        let job = self.jobs.pop_front()?;
        self.idle_workers -= 1;
        Some(job)
    }

    /// A worker's request is done: the session queues its reply and the
    /// worker is idle again. Returns whether the reader waits for room.
    pub fn job_done(&mut self, id: RequestId, result: Result<Reply<F>, Errno>) -> bool {
        self.session.complete(id, result);
        self.idle_workers += 1;
        self.reader_waiting
    }

    /// Moves the session's output to `out`; returns whether the reader
    /// waits for room (taking output makes some).
    pub fn take_output(&mut self, out: &mut Outgoing) -> bool {
        while let Some(c) = self.session.poll_transmit_chunk() {
            out.chunks.push_back(c);
        }
        self.reader_waiting
    }

    /// Backpressure: whether the reader must wait before reading more. A
    /// client that pipelines without reading replies gets no more of our
    /// memory than the configured limits.
    pub fn must_wait(&self) -> bool {
        !self.closed
            && (self.session.in_flight() >= self.config.max_in_flight
                || self.session.pending_output() >= self.config.max_pending_output)
    }

    /// Records whether the reader waits for room.
    pub fn set_reader_waiting(&mut self, waiting: bool) {
        self.reader_waiting = waiting;
    }

    /// Ends the connection: nothing more is read, workers drain the queue.
    pub fn close(&mut self) {
        self.closed = true;
    }

    /// Whether the connection is over.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The peer stopped taking replies: ends the connection and drops
    /// what was to be sent.
    pub fn broken(&mut self) {
        self.closed = true;
        while let Some(_c) = self.session.poll_transmit_chunk() {}
    }

    /// Whether nothing is left to do: closed, no worker running, nothing
    /// to send.
    pub fn finished(&self) -> bool {
        self.closed && self.workers == 0 && self.session.pending_output() == 0
    }
}

/// Reply chunks taken from the session and not yet written.
#[derive(Debug, Default)]
pub struct Outgoing {
    chunks: VecDeque<Bytes>,
}

impl Outgoing {
    /// Whether everything was written.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Fills `slots` with the chunks to write next; returns how many.
    pub fn slices<'a>(&'a self, slots: &mut [IoSlice<'a>; MAX_SLICES]) -> usize {
        let mut used = 0;
        for (slot, chunk) in slots.iter_mut().zip(self.chunks.iter()) {
            *slot = IoSlice::new(chunk);
            used += 1;
        }
        used
    }

    /// Takes a vectored write's result: drops what was written. A write
    /// of nothing is an error; an interrupted one is retried.
    pub fn wrote(&mut self, result: io::Result<usize>) -> io::Result<()> {
        let mut n = match result {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        };
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            if n >= front.len() {
                n -= front.len();
                self.chunks.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(out: &Outgoing) -> Vec<u8> {
        let mut slots = [IoSlice::new(&[]); MAX_SLICES];
        let used = out.slices(&mut slots);
        slots[..used]
            .iter()
            .flat_map(|s| s.iter().copied())
            .collect()
    }

    #[test]
    fn partial_writes_leave_exactly_the_rest() {
        let mut out = Outgoing::default();
        for c in [&b"abc"[..], b"de", b"fghij"] {
            out.chunks.push_back(Bytes::copy_from_slice(c));
        }
        // Within the first chunk, then across the second into the third.
        assert!(out.wrote(Ok(1)).is_ok());
        assert_eq!(pending(&out), b"bcdefghij");
        assert!(out.wrote(Ok(5)).is_ok());
        assert_eq!(pending(&out), b"ghij");
        assert!(out.wrote(Err(io::ErrorKind::Interrupted.into())).is_ok());
        assert_eq!(pending(&out), b"ghij");
        let zero = out.wrote(Ok(0)).map_err(|e| e.kind());
        assert_eq!(zero, Err(io::ErrorKind::WriteZero));
        assert!(out.wrote(Ok(4)).is_ok());
        assert!(out.is_empty());
    }

    #[test]
    fn at_most_max_slices_go_to_one_write() {
        let mut out = Outgoing::default();
        for _ in 0..MAX_SLICES + 3 {
            out.chunks.push_back(Bytes::from_static(b"x"));
        }
        let mut slots = [IoSlice::new(&[]); MAX_SLICES];
        assert_eq!(out.slices(&mut slots), MAX_SLICES);
        assert!(out.wrote(Ok(MAX_SLICES)).is_ok());
        assert_eq!(pending(&out), b"xxx");
    }
}
