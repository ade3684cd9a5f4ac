//! Test support shared by both runtimes' 9P tests (included with
//! `#[path]`): the steps that do not depend on how the client waits.

use proto_9p::consts::NOFID;
use proto_9p::messages::{Message, Tattach};
use runtime_std::p9client::MuxClient;

/// Attaches `c` to the export's root as fid 0 (either runtime's client:
/// the smol one derefs to this one).
pub(crate) fn attach_root(c: &MuxClient) {
    let r = c
        .call(Tattach {
            fid: 0,
            afid: NOFID,
            uname: Vec::new(),
            aname: Vec::new(),
            n_uname: NOFID,
        })
        .unwrap();
    assert!(matches!(r, Message::Rattach(_)), "{r:?}");
}
