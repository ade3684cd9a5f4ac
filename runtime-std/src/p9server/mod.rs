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
//!
//! The session, the queue, the worker counts and the backpressure are
//! [`state`]'s, shared with runtime-smol; this module only waits.
//!
//! [`ServerSession`]: proto_9p::server::ServerSession

pub mod state;

use std::io::{self, IoSlice, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
use std::thread;

use proto_9p::server::{execute, Filesystem, ServerConfig};

use self::state::{Core, Outgoing, MAX_SLICES};

/// Tuning of a served connection.
#[derive(Debug, Clone, Copy)]
pub struct ServeConfig {
    /// Session limits (msize).
    pub session: ServerConfig,
    /// Workers started at once (threads of the blocking runtime; the
    /// smol runtime's blocking pool keeps threads of its own).
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

struct Shared<B: Filesystem, W> {
    fs: Arc<B>,
    state: Mutex<Core<B::Fid>>,
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
    fn state(&self) -> MutexGuard<'_, Core<B::Fid>> {
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
        let mut out = Outgoing::default();
        loop {
            {
                let mut st = self.state();
                let reader_waiting = st.take_output(&mut out);
                if out.is_empty() {
                    // Released under the state lock: see above.
                    drop(writer);
                    return;
                }
                if reader_waiting {
                    self.room.notify_one();
                }
            }
            if let Err(_gone) = write_chunks(&mut *writer, &mut out) {
                // The peer is gone; the reader sees it too.
                self.state().broken();
                self.work.notify_all();
                self.room.notify_all();
                return;
            }
        }
    }
}

/// Writes every chunk with as few system calls as possible.
fn write_chunks<W: Write>(w: &mut W, out: &mut Outgoing) -> io::Result<()> {
    while !out.is_empty() {
        let mut slots = [IoSlice::new(&[]); MAX_SLICES];
        let used = out.slices(&mut slots);
        let result = w.write_vectored(&slots[..used]);
        out.wrote(result)?;
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
        state: Mutex::new(Core::new(config)),
        writer: Mutex::new(writer),
        work: Condvar::new(),
        room: Condvar::new(),
    });
    for _ in 0..config.min_workers.max(1) {
        spawn_worker(&shared)?;
    }
    let result = read_loop(&shared, reader);
    shared.state().close();
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
        let read = reader.read(&mut buf);
        let mut st = shared.state();
        let Some(new_jobs) = st.read_done(read, &buf)? else {
            return Ok(());
        };
        let spawn = st.want_worker();
        drop(st);
        for _ in 0..new_jobs {
            shared.work.notify_one();
        }
        if spawn {
            spawn_worker(shared)?;
        }
        // Errors, Rversion and Rflush are answered without the backend.
        shared.flush();
        let mut st = shared.state();
        while st.must_wait() {
            st.set_reader_waiting(true);
            st = shared.room.wait(st).unwrap_or_else(|p| p.into_inner());
            st.set_reader_waiting(false);
        }
    }
}

fn spawn_worker<B, W>(shared: &Arc<Shared<B, W>>) -> io::Result<()>
where
    B: Filesystem + Send + Sync + 'static,
    B::Fid: Send + 'static,
    W: Write + Send + 'static,
{
    shared.state().start_worker();
    let s = shared.clone();
    let spawned = thread::Builder::new()
        .name("9p-worker".into())
        .spawn(move || worker_loop(&s));
    if let Err(e) = spawned {
        shared.state().stop_worker();
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
        let Some(req) = st.next_job() else {
            if st.is_closed() {
                break;
            }
            st = shared.work.wait(st).unwrap_or_else(|p| p.into_inner());
            continue;
        };
        drop(st);
        let result = execute(&*shared.fs, req.op);
        if shared.state().job_done(req.id, result) {
            shared.room.notify_one();
        }
        shared.flush();
        st = shared.state();
    }
    st.stop_worker();
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
