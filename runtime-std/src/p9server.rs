//! Serves a 9P session over a byte stream with blocking threads.
//!
//! One reader thread feeds the sans-IO [`ServerSession`]; a pool of worker
//! threads runs the backend operations concurrently, so a slow read does
//! not stall a stat on another fid; one writer thread sends the replies in
//! the order the session produced them (which keeps every Rflush after the
//! reply it flushes). The pool grows while every worker is busy, up to a
//! limit, so a few blocked reads (a fifo, a slow disk) cannot starve the
//! connection.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;

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
    /// The reader is done: workers and writer finish what is queued.
    closed: bool,
}

struct Shared<B: Filesystem> {
    fs: Arc<B>,
    config: ServeConfig,
    state: Mutex<State<B::Fid>>,
    /// Workers wait here for jobs.
    work: Condvar,
    /// The writer waits here for output; the reader for room.
    progress: Condvar,
}

impl<B: Filesystem> Shared<B> {
    fn lock(&self) -> MutexGuard<'_, State<B::Fid>> {
        // A panicking worker must not take the connection's other requests
        // with it; the state itself stays consistent between calls.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Serves one 9P session: reads requests from `reader`, writes replies to
/// `writer`, and returns when the peer closes the stream or breaks the
/// framing. Outstanding operations finish on their threads.
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
            closed: false,
        }),
        work: Condvar::new(),
        progress: Condvar::new(),
    });
    for _ in 0..config.min_workers.max(1) {
        spawn_worker(&shared)?;
    }
    let writer_thread = {
        let shared = shared.clone();
        thread::Builder::new()
            .name("9p-writer".into())
            .spawn(move || write_loop(&shared, writer))?
    };
    let result = read_loop(&shared, reader);
    {
        let mut st = shared.lock();
        st.closed = true;
    }
    shared.work.notify_all();
    shared.progress.notify_all();
    // The writer ends once the peer stops reading or the output is sent.
    let _ = writer_thread.join();
    result
}

fn read_loop<B, R>(shared: &Arc<Shared<B>>, mut reader: R) -> io::Result<()>
where
    B: Filesystem + Send + Sync + 'static,
    B::Fid: Send + 'static,
    R: Read,
{
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let mut st = shared.lock();
        if st.closed {
            return Ok(());
        }
        st.session
            .handle_input(&buf[..n])
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        let queued = drain_events(&mut st);
        if queued > st.idle_workers && st.workers < shared.config.max_workers {
            drop(st);
            spawn_worker(shared)?;
            st = shared.lock();
        }
        shared.work.notify_all();
        shared.progress.notify_all();
        // Backpressure: a client that pipelines without reading replies
        // gets no more of our memory than these limits.
        while !st.closed
            && (st.session.in_flight() >= shared.config.max_in_flight
                || st.session.pending_output() >= shared.config.max_pending_output)
        {
            st = shared.progress.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Moves new requests to the job queue; returns how many are queued.
fn drain_events<F: Clone>(st: &mut State<F>) -> usize {
    while let Some(ev) = st.session.poll_event() {
        // Event::Flush is not acted on: blocking syscalls cannot be
        // interrupted from here, so the operation finishes and the session
        // sends the Rflush after its reply.
        if let Event::Request(r) = ev {
            st.jobs.push_back(r);
        }
    }
    st.jobs.len()
}

fn spawn_worker<B>(shared: &Arc<Shared<B>>) -> io::Result<()>
where
    B: Filesystem + Send + Sync + 'static,
    B::Fid: Send + 'static,
{
    shared.lock().workers += 1;
    let s = shared.clone();
    let spawned = thread::Builder::new()
        .name("9p-worker".into())
        .spawn(move || worker_loop(&s));
    if let Err(e) = spawned {
        shared.lock().workers -= 1;
        return Err(e);
    }
    Ok(())
}

fn worker_loop<B>(shared: &Arc<Shared<B>>)
where
    B: Filesystem + Send + Sync + 'static,
    B::Fid: Send + 'static,
{
    let mut st = shared.lock();
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
        st = shared.lock();
        st.session.complete(req.id, result);
        shared.progress.notify_all();
    }
    st.workers -= 1;
    drop(st);
    // The writer waits for the last worker before it ends.
    shared.progress.notify_all();
}

fn write_loop<B, W>(shared: &Arc<Shared<B>>, mut writer: W)
where
    B: Filesystem,
    W: Write,
{
    let mut out = Vec::new();
    loop {
        {
            let mut st = shared.lock();
            loop {
                if st.session.poll_transmit(&mut out) {
                    break;
                }
                if st.closed && st.jobs.is_empty() && st.workers == st.idle_workers {
                    return;
                }
                st = shared.progress.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        }
        // The reader may be waiting for the output to drain.
        shared.progress.notify_all();
        if writer
            .write_all(&out)
            .and_then(|()| writer.flush())
            .is_err()
        {
            // The peer is gone; the reader sees it too.
            let mut st = shared.lock();
            st.closed = true;
            drop(st);
            shared.work.notify_all();
            shared.progress.notify_all();
            return;
        }
        out.clear();
    }
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
    let _ = conn.shutdown(std::net::Shutdown::Both);
}
