//! The smol / async-io runtime for the cpu-rs protocol crates.
//!
//! It will drive `proto-ssh` and `proto-9p` on `smol`, with sockets and pty
//! descriptors wrapped in `Async<T>` and the blocking file-system calls of
//! the local export on smol's blocking pool. It shares every piece of
//! protocol logic with `runtime-std`; only the adapters differ. Filled in by
//! the runtime-smol issue.
