//! The one place in the commands where the runtime shows: how cpud's
//! connections and sessions, cpu's session and 9P service, cpu9p's
//! listener and the FUSE bridge's 9P client wait. Everything they decide
//! (flags, namespaces, mounts, exec, what to ask for and what an answer
//! means) is written once in the other modules; each runtime module only
//! strings those steps together with its own kind of waiting.
//!
//! `runtime-std` (blocking threads) is the default; the cargo feature
//! `runtime-smol` picks smol / async-io instead.

#[cfg(not(feature = "runtime-smol"))]
mod threads;
#[cfg(not(feature = "runtime-smol"))]
pub use self::threads::*;

#[cfg(feature = "runtime-smol")]
mod smol;
#[cfg(feature = "runtime-smol")]
pub use self::smol::*;

/// The 9P client's error, the same for both runtimes.
pub use runtime_std::p9client::CallError;
