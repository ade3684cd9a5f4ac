//! Serves a 9P session over a byte stream with blocking threads.
//!
//! A reader thread feeds the sans-IO [`ServerSession`]; a pool of worker
//! threads runs the backend operations concurrently, so a slow read does
//! not stall a stat on another fid. Whichever thread produced output sends
//! it: there is no writer thread, which saves a context switch per request.
//! Output is taken from the session only by the holder of the writer lock
//! and written before that lock is released, so replies leave in the order
//! the session produced them (every Rflush after the reply it flushes).
//! The pool grows while every worker is busy, up to a limit, so a few
//! blocked reads (a fifo, a slow disk) cannot starve the connection.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
use std::thread;

use bytes::{Buf, Bytes};
use proto_9p::server::{execute, Event, Filesystem, Request, ServerConfig, ServerSession};

/// Tuning of a served connection.
#[derive(Debug, Clone, Copy)]
pub struct ServeConfig {
    /// Session limits (msize).
    pub session: ServerConfig,
    /// Workers started at once.
    pub min_workers: usize,
    /// Workers at most.
    pub max_workers: usize,
    /// Stop reading while this many requests are in flight.
    pub max_in_flight: usize,
    /// Stop reading while this many reply bytes wait to be sent.
    pub max_pending_output: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            session: ServerConfig::default(),
            min_workers: 4,
            max_workers: 64,
            max_in_flight: 256,
            max_pending_output: 8 << 20,
        }
    }
}

struct State<F> {
    session: ServerSession<F>,
    jobs: VecDeque<Request<F>>,
    idle_workers: usize,
    workers: usize,
    /// The reader waits for in-flight requests or output to shrink.
    reader_waiting: bool,
    /// The connection is over: workers drain the queue and leave.
    closed: bool,
}

struct Shared<B: Filesystem, W> {
    fs: Arc<B>,
    config: ServeConfig,
    state: Mutex<State<B::Fid>>,
    writer: Mutex<W>,
    /// Workers wait here for jobs.
    work: Condvar,
    /// The reader waits here for room (backpressure).
    room: Condvar,
}

/// Locks a mutex, ignoring poisoning: a panicking operation must not take
/// the connection's other requests with it, and the state stays
/// consistent between calls.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<B, W> Shared<B, W>
where
    B: Filesystem + Send + Sync + 'static,
    B::Fid: Send + 'static,
    W: Write + Send + 'static,
{
    fn state(&self) -> MutexGuard<'_, State<B::Fid>> {
        lock(&self.state)
    }

    /// Sends whatever output the session has, unless another thread is
    /// already sending: that thread takes ours too, because it only lets
    /// go of the writer after seeing the session's output empty, with the
    /// session locked.
    fn flush(&self) {
        let mut writer = match self.writer.try_lock() {
            Ok(w) => w,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        let mut chunks = VecDeque::new();
        loop {
            {
                let mut st = self.state();
                while let Some(c) = st.session.poll_transmit_chunk() {
                    chunks.push_back(c);
                }
                if chunks.is_empty() {
                    // Released under the state lock: see above.
                    drop(writer);
                    return;
                }
                if st.reader_waiting {
                    self.room.notify_one();
                }
            }
            if let Err(_gone) = write_chunks(&mut *writer, &mut chunks) {
                // The peer is gone; the reader sees it too.
                let mut st = self.state();
                st.closed = true;
                drop(st);
                self.work.notify_all();
                self.room.notify_all();
                while let Some(_c) = self.state().session.poll_transmit_chunk() {}
                return;
            }
        }
    }
}

/// Writes every chunk with as few system calls as possible.
fn write_chunks<W: Write>(w: &mut W, chunks: &mut VecDeque<Bytes>) -> io::Result<()> {
    while !chunks.is_empty() {
        let mut slices = [IoSlice::new(&[]); 64];
        let mut used = 0;
        for (slot, chunk) in slices.iter_mut().zip(chunks.iter()) {
            *slot = IoSlice::new(chunk);
            used += 1;
        }
        let mut n = match w.write_vectored(&slices[..used]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        while n > 0 {
            let Some(front) = chunks.front_mut() else {
                break;
            };
            if n >= front.len() {
                n -= front.len();
                chunks.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }
    w.flush()
}

/// Serves one 9P session: reads requests from `reader`, writes replies to
/// `writer`, and returns when the peer closes the stream or breaks the
/// framing. Operations still running finish on their threads, and their
/// replies are still sent if the peer only half-closed.
pub fn serve<B, R, W>(fs: Arc<B>, reader: R, writer: W, config: ServeConfig) -> io::Result<()>
where
    B: Filesystem + Send + Sync + 'static,
    B::Fid: Send + 'static,
    R: Read,
    W: Write + Send + 'static,
{
    let shared = Arc::new(Shared {
        fs,
        config,
        state: Mutex::new(State {
            session: ServerSession::new(config.session),
            jobs: VecDeque::new(),
            idle_workers: 0,
            workers: 0,
            reader_waiting: false,
            closed: false,
        }),
        writer: Mutex::new(writer),
        work: Condvar::new(),
        room: Condvar::new(),
    });
    for _ in 0..config.min_workers.max(1) {
        spawn_worker(&shared)?;
    }
    let result = read_loop(&shared, reader);
    shared.state().closed = true;
    shared.work.notify_all();
    result
}

fn read_loop<B, R, W>(shared: &Arc<Shared<B, W>>, mut reader: R) -> io::Result<()>
where
    B: Filesystem + Send + Sync + 'static,
    B::Fid: Send + 'static,
    R: Read,
    W: Write + Send + 'static,
{
    // One copy from here into the session, which then hands Twrite
    // payloads to the backend as slices of its buffer. (Reading into the
    // session's buffer instead would need it zeroed first, which costs
    // as much as the copy.)
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let mut st = shared.state();
        if st.closed {
            return Ok(());
        }
        st.session
            .handle_input(&buf[..n])
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        let new_jobs = queue_requests(&mut st);
        let spawn = st.jobs.len() > st.idle_workers && st.workers < shared.config.max_workers;
        drop(st);
        for _ in 0..new_jobs {
            shared.work.notify_one();
        }
        if spawn {
            spawn_worker(shared)?;
        }
        // Errors, Rversion and Rflush are answered without the backend.
        shared.flush();
        // Backpressure: a client that pipelines without reading replies
        // gets no more of our memory than these limits.
        let mut st = shared.state();
        while !st.closed
            && (st.session.in_flight() >= shared.config.max_in_flight
                || st.session.pending_output() >= shared.config.max_pending_output)
        {
            st.reader_waiting = true;
            st = shared.room.wait(st).unwrap_or_else(|p| p.into_inner());
            st.reader_waiting = false;
        }
    }
}

/// Moves new requests to the job queue; returns how many.
fn queue_requests<F: Clone>(st: &mut State<F>) -> usize {
    let mut n = 0;
    while let Some(ev) = st.session.poll_event() {
        // Event::Flush is not acted on: blocking syscalls cannot be
        // interrupted from here, so the operation finishes and the session
        // sends the Rflush after its reply.
        if let Event::Request(r) = ev {
            st.jobs.push_back(r);
            n += 1;
        }
    }
    n
}

fn spawn_worker<B, W>(shared: &Arc<Shared<B, W>>) -> io::Result<()>
where
    B: Filesystem + Send + Sync + 'static,
    B::Fid: Send + 'static,
    W: Write + Send + 'static,
{
    shared.state().workers += 1;
    let s = shared.clone();
    let spawned = thread::Builder::new()
        .name("9p-worker".into())
        .spawn(move || worker_loop(&s));
    if let Err(e) = spawned {
        shared.state().workers -= 1;
        return Err(e);
    }
    Ok(())
}

fn worker_loop<B, W>(shared: &Arc<Shared<B, W>>)
where
    B: Filesystem + Send + Sync + 'static,
    B::Fid: Send + 'static,
    W: Write + Send + 'static,
{
    let mut st = shared.state();
    loop {
        let Some(req) = st.jobs.pop_front() else {
            if st.closed {
                break;
            }
            st.idle_workers += 1;
            st = shared.work.wait(st).unwrap_or_else(|p| p.into_inner());
            st.idle_workers -= 1;
            continue;
        };
        drop(st);
        let result = execute(&*shared.fs, req.op);
        {
            let mut st = shared.state();
            st.session.complete(req.id, result);
            if st.reader_waiting {
                shared.room.notify_one();
            }
        }
        shared.flush();
        st = shared.state();
    }
    st.workers -= 1;
}

/// Serves every connection of `listener` on its own threads, forever.
pub fn serve_tcp<B>(fs: Arc<B>, listener: TcpListener, config: ServeConfig) -> io::Result<()>
where
    B: Filesystem + Send + Sync + 'static,
    B::Fid: Send + 'static,
{
    for conn in listener.incoming() {
        let conn = match conn {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let fs = fs.clone();
        thread::Builder::new()
            .name("9p-conn".into())
            .spawn(move || serve_conn(fs, conn, config))?;
    }
    Ok(())
}

fn serve_conn<B>(fs: Arc<B>, conn: TcpStream, config: ServeConfig)
where
    B: Filesystem + Send + Sync + 'static,
    B::Fid: Send + 'static,
{
    let _ = conn.set_nodelay(true);
    let Ok(writer) = conn.try_clone() else {
        return;
    };
    let _ = serve(fs, &conn, writer, config);
}
