//! The server side: a session state machine and the backend seam.

mod filesystem;
mod session;

pub use filesystem::{execute, Filesystem, Op, Reply};
pub use session::{Event, Request, RequestId, ServerConfig, ServerSession};
