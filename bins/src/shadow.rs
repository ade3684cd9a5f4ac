//! A mount point where the board has none, without writing to the
//! board: the directory that lacks it is shadowed, in the session's
//! private mount namespace, by a tmpfs that holds a bind of each of its
//! entries (a symlink as a symlink) plus the new directories. Nothing of
//! it outlives the session, and the board's own tree is never written.
//!
//! For the root directory the shadow becomes the session's root
//! (chroot): a mount over / is invisible to path lookup.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// Where the shadow is built, in the session's own /tmp.
const STAGE: &str = "/tmp/.cpu-shadow";

/// A directory with more entries than this is not shadowed: a bind per
/// entry would make the session slow to start.
const MAX_ENTRIES: usize = 1024;

/// Makes the directory `base/rest` (base exists, rest's first component
/// does not) by shadowing `base`. On failure nothing is left mounted.
pub fn add_dirs(base: &Path, rest: &Path, debug: bool) -> Result<(), String> {
    let meta = std::fs::metadata(base).map_err(|e| format!("{}: {e}", base.display()))?;
    std::fs::create_dir(STAGE).map_err(|e| format!("making {STAGE}: {e}"))?;
    let opts = format!(
        "mode={:o},uid={},gid={}",
        meta.mode() & 0o7777,
        meta.uid(),
        meta.gid()
    );
    let built = mount(
        Some("cpu-shadow"),
        STAGE,
        Some("tmpfs"),
        MsFlags::empty(),
        Some(opts.as_str()),
    )
    .map_err(|e| format!("tmpfs on {STAGE}: {e}"))
    .and_then(|()| fill(base, rest));
    if let Err(e) = built {
        let _ = umount2(STAGE, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(STAGE);
        return Err(e);
    }
    if base == Path::new("/") {
        enter_as_root(debug)
    } else {
        let moved = mount(
            Some(STAGE),
            base,
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        );
        if let Err(e) = moved {
            let _ = umount2(STAGE, MntFlags::MNT_DETACH);
            let _ = std::fs::remove_dir(STAGE);
            return Err(format!("moving the shadow onto {}: {e}", base.display()));
        }
        let _ = std::fs::remove_dir(STAGE);
        if debug {
            eprintln!(
                "cpud -remote: {} shadowed by a tmpfs to add {}",
                base.display(),
                rest.display()
            );
        }
        Ok(())
    }
}

/// Binds each entry of `base` into the stage, then makes `rest` there.
fn fill(base: &Path, rest: &Path) -> Result<(), String> {
    let stage = Path::new(STAGE);
    let entries: Vec<_> = std::fs::read_dir(base)
        .map_err(|e| format!("reading {}: {e}", base.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("reading {}: {e}", base.display()))?;
    if entries.len() > MAX_ENTRIES {
        return Err(format!(
            "{} has {} entries (more than {MAX_ENTRIES})",
            base.display(),
            entries.len()
        ));
    }
    for entry in entries {
        let name = entry.file_name();
        let (from, to) = (base.join(&name), stage.join(&name));
        let kind = entry
            .file_type()
            .map_err(|e| format!("{}: {e}", from.display()))?;
        let made = if kind.is_symlink() {
            std::fs::read_link(&from).and_then(|t| std::os::unix::fs::symlink(t, &to))
        } else if kind.is_dir() {
            std::fs::create_dir(&to)
        } else {
            std::fs::File::create(&to).map(drop)
        };
        made.map_err(|e| format!("{}: {e}", to.display()))?;
        if kind.is_symlink() {
            continue;
        }
        // Recursive: what is mounted below the entry comes along.
        let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
        mount(Some(&from), &to, None::<&str>, flags, None::<&str>)
            .map_err(|e| format!("binding {}: {e}", from.display()))?;
    }
    std::fs::create_dir_all(stage.join(rest)).map_err(|e| format!("making {}: {e}", rest.display()))
}

/// Makes the stage the session's root. Its copy of /tmp holds a copy of
/// the stage as it was when /tmp was bound: that one goes (its empty
/// directory stays, the mount point of the new root in the old tree).
fn enter_as_root(debug: bool) -> Result<(), String> {
    nix::unistd::chroot(STAGE).map_err(|e| format!("chroot {STAGE}: {e}"))?;
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))?;
    let copy = PathBuf::from(STAGE);
    if copy.exists() {
        let _ = umount2(&copy, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&copy);
    }
    if debug {
        eprintln!("cpud -remote: / shadowed by a tmpfs (the session's root)");
    }
    Ok(())
}
