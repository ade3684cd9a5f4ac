//! The smol / async-io runtime for the cpu-rs protocol crates.
//!
//! It drives `proto-ssh` on `smol`, with sockets and pty descriptors
//! wrapped in `Async<T>`. It shares every piece of protocol logic with
//! `runtime-std` (the connection state and its steps, session setup,
//! signal tables, exit status mapping, pty spawning); only the waiting
//! differs. `proto-9p` comes next.
pub mod ssh;
pub mod vsock;
