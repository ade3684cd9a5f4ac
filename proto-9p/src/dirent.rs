//! Directory entries, the payload of Rreaddir:
//! `qid[13] offset[8] type[1] name[s]`, packed back to back.

use alloc::vec::Vec;
use bytes::{Buf, Bytes};

use crate::qid::Qid;
use crate::wire::{DecodeError, Wire};

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirent {
    /// The entry's qid.
    pub qid: Qid,
    /// The offset to pass to Treaddir to continue after this entry.
    pub offset: u64,
    /// The DT_* type (as in `struct dirent::d_type`).
    pub ty: u8,
    /// The name.
    pub name: Vec<u8>,
}

impl Dirent {
    /// The packed size.
    pub fn wire_len(&self) -> usize {
        13 + 8 + 1 + 2 + self.name.len()
    }

    /// Appends the packed form.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.qid.encode(out);
        self.offset.encode(out);
        self.ty.encode(out);
        self.name.encode(out);
    }

    /// Takes one entry from the front of `buf`.
    pub fn decode(buf: &mut Bytes) -> Result<Dirent, DecodeError> {
        Ok(Dirent {
            qid: Qid::decode(buf)?,
            offset: u64::decode(buf)?,
            ty: u8::decode(buf)?,
            name: Vec::<u8>::decode(buf)?,
        })
    }

    /// Decodes all entries of an Rreaddir payload.
    pub fn decode_all(mut data: Bytes) -> Result<Vec<Dirent>, DecodeError> {
        let mut out = Vec::new();
        while data.has_remaining() {
            out.push(Dirent::decode(&mut data)?);
        }
        Ok(out)
    }
}
