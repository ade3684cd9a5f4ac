//! The server side: a session state machine and the backend seam.

mod filesystem;

pub use filesystem::{execute, Filesystem, Op, Reply};
