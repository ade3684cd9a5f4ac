//! The qid: the server's unique identity of a file.

use crate::consts::qid_type;

/// A qid: type, version and path. `path` must be unique per file for the
/// life of the export; `version` must change when the file changes, since
/// the Linux client's cache trusts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Qid {
    /// `qid_type` bits.
    pub ty: u8,
    /// Changes whenever the file changes.
    pub version: u32,
    /// Unique per file.
    pub path: u64,
}

impl Qid {
    /// Whether the qid names a directory.
    pub fn is_dir(&self) -> bool {
        self.ty & qid_type::DIR != 0
    }
}
