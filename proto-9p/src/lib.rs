//! Sans-IO 9P2000.L: the codec, a server session and a client session.
//!
//! Nothing here does I/O. Bytes go in through `handle_input`, requests for
//! the file-system backend and encoded replies come out through `poll_*`
//! methods, in the style of quinn-proto. The runtimes (`runtime-std`,
//! `runtime-smol`) own the sockets, threads and the backend that touches
//! the disk.
//!
//! * [`messages`]: every T and R message of 9P2000.L, and [`frame`]: the
//!   framing, checked against msize before anything is buffered.
//! * [`Dirent`]: the packed entries of Rreaddir.
#![no_std]

extern crate alloc;

pub mod client;
pub mod consts;
mod dirent;
mod errno;
pub mod frame;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod messages;
mod qid;
pub mod server;
pub mod wire;

pub use dirent::Dirent;
pub use errno::Errno;
pub use frame::{decode_frame, encode_frame, frame_len, BadMessage, Fcall, FramingError};
pub use messages::Message;
pub use qid::Qid;
pub use wire::DecodeError;
