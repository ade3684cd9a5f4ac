//! The smol / async-io runtime for the cpu-rs protocol crates.
//!
//! It drives `proto-ssh` and `proto-9p` on `smol`, with sockets and pty
//! descriptors wrapped in `Async<T>`. It shares every piece of protocol
//! logic with `runtime-std` (the SSH connection state and its steps,
//! session setup, signal tables, exit status mapping, pty spawning; the
//! 9P server's session, job queue and backpressure; the 9P client's tag
//! table and dispatch); only the waiting differs. 9P backend operations,
//! blocking system calls, run on smol's blocking pool.
pub mod p9client;
pub mod p9server;
pub mod ssh;
pub mod stream;
pub mod vsock;
