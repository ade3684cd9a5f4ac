//! Qids: a path unique per file across the whole export, a version that
//! changes with the file, and the type bits.
//!
//! The path scheme: a file on a device known by a small index `d` whose
//! inode number fits in 48 bits gets `d << 48 | ino`. The export root's
//! device is index 0 (so, on the common single-file-system export, the
//! path is the inode number, with no lookup at all); the next devices met
//! get 1, 2, ... from a small lock-free table. Distinct devices have
//! distinct indexes and inode numbers are unique on one device, so these
//! paths cannot collide. Everything else (a wider inode number, as
//! overlayfs with xino makes, or more devices than the table holds) gets a
//! counter from a map, with the top bit set so it cannot meet a prefixed
//! path (indexes stay below 2^15). That map is sharded by hash to avoid one
//! lock, and bounded: past [`WIDE_LIMIT`] files it refuses with EOVERFLOW
//! rather than hand out a path that might be shared.

use std::collections::hash_map::{DefaultHasher, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use proto_9p::consts::qid_type;
use proto_9p::Errno;

use super::fid::lock;

const INO_BITS: u32 = 48;
/// Devices other than the root's that get a prefix.
const DEV_SLOTS: usize = 255;
const WIDE_BIT: u64 = 1 << 63;
const WIDE_SHARDS: usize = 16;
/// The most files given a counter path; about 50 MiB of map at the limit.
pub(super) const WIDE_LIMIT: u64 = 1 << 20;

/// Hands out qid paths; shared by all threads.
#[derive(Debug)]
pub(super) struct QidPaths {
    root_dev: u64,
    /// `dev + 1` of each prefixed device, 0 for a free slot; slot `i` is
    /// index `i + 1`.
    devs: [AtomicU64; DEV_SLOTS],
    wide: [Mutex<HashMap<(u64, u64), u64>>; WIDE_SHARDS],
    wide_next: AtomicU64,
}

impl QidPaths {
    pub(super) fn new(root_dev: u64) -> Self {
        QidPaths {
            root_dev,
            devs: [const { AtomicU64::new(0) }; DEV_SLOTS],
            wide: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            wide_next: AtomicU64::new(0),
        }
    }

    /// The qid path of inode `ino` of device `dev`.
    pub(super) fn path(&self, dev: u64, ino: u64) -> Result<u64, Errno> {
        if ino < 1 << INO_BITS {
            if let Some(index) = self.dev_index(dev) {
                return Ok(index << INO_BITS | ino);
            }
        }
        self.wide_path(dev, ino)
    }

    fn dev_index(&self, dev: u64) -> Option<u64> {
        if dev == self.root_dev {
            return Some(0);
        }
        let key = dev.checked_add(1)?;
        for (i, slot) in self.devs.iter().enumerate() {
            let index = i as u64 + 1;
            match slot.load(Ordering::Acquire) {
                v if v == key => return Some(index),
                0 => match slot.compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => return Some(index),
                    // Another thread took the slot, maybe for this device.
                    Err(v) if v == key => return Some(index),
                    Err(_) => continue,
                },
                _ => continue,
            }
        }
        None
    }

    fn wide_path(&self, dev: u64, ino: u64) -> Result<u64, Errno> {
        let mut h = DefaultHasher::new();
        (dev, ino).hash(&mut h);
        let shard = (h.finish() % WIDE_SHARDS as u64) as usize;
        let mut map = lock(&self.wide[shard]);
        if let Some(&p) = map.get(&(dev, ino)) {
            return Ok(p);
        }
        let n = self.wide_next.fetch_add(1, Ordering::Relaxed);
        if n >= WIDE_LIMIT {
            self.wide_next.fetch_sub(1, Ordering::Relaxed);
            return Err(Errno::EOVERFLOW);
        }
        let p = WIDE_BIT | n;
        map.insert((dev, ino), p);
        Ok(p)
    }
}

/// The device number of a statx result, in the host's dev_t encoding.
pub(super) fn dev_of(st: &libc::statx) -> u64 {
    libc::makedev(st.stx_dev_major, st.stx_dev_minor)
}

/// A version that changes whenever the file's data or inode changes:
/// a mix of mtime, ctime and size, never 0 (which Linux >= 6.4 reads as
/// "do not cache").
pub(super) fn version(st: &libc::statx) -> u32 {
    let words = [
        st.stx_mtime.tv_sec as u64,
        u64::from(st.stx_mtime.tv_nsec),
        st.stx_ctime.tv_sec as u64,
        u64::from(st.stx_ctime.tv_nsec),
        st.stx_size,
    ];
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
    for w in words {
        h = mix(h ^ w);
    }
    match (h ^ (h >> 32)) as u32 {
        0 => 1,
        v => v,
    }
}

/// The splitmix64 finaliser: every input bit affects every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The qid type of an `st_mode`.
pub(super) fn type_of_mode(mode: u32) -> u8 {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => qid_type::DIR,
        libc::S_IFLNK => qid_type::SYMLINK,
        _ => qid_type::FILE,
    }
}

/// The qid type of a `d_type`.
pub(super) fn type_of_dtype(d_type: u8) -> u8 {
    match d_type {
        libc::DT_DIR => qid_type::DIR,
        libc::DT_LNK => qid_type::SYMLINK,
        _ => qid_type::FILE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_unique_across_devices() {
        let q = QidPaths::new(10);
        let a = q.path(10, 5).expect("root dev");
        let b = q.path(11, 5).expect("other dev");
        let c = q.path(10, 1 << 50).expect("wide");
        let d = q.path(12, 1 << 50).expect("wide");
        assert_eq!(a, 5);
        assert_ne!(a, b);
        assert_ne!(c, d);
        assert_eq!(q.path(11, 5).expect("again"), b);
        assert_eq!(q.path(12, 1 << 50).expect("again"), d);
        assert!(c & WIDE_BIT != 0 && b & WIDE_BIT == 0);
    }

    #[test]
    fn devices_beyond_the_table_use_the_map() {
        let q = QidPaths::new(0);
        let mut seen = std::collections::HashSet::new();
        for dev in 1..=(DEV_SLOTS as u64 + 10) {
            assert!(seen.insert(q.path(dev, 7).expect("path")));
        }
    }
}
