// Shared by the corpus-replay tests of the protocol crates
// (`proto-*/tests/fuzz_corpus.rs` include it), so that both replay the
// committed seeds the same way.

/// `fuzz/<kind>/<target>` of this repository.
fn fuzz_dir(kind: &str, target: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(kind)
        .join(target)
}

/// Runs `f` on every file of the target's corpus and regressions; the
/// corpus must not be empty, or the test would pass by checking nothing.
fn replay(target: &str, f: fn(&[u8])) {
    let mut seen = 0;
    for kind in ["corpus", "regressions"] {
        let Ok(dir) = std::fs::read_dir(fuzz_dir(kind, target)) else {
            continue;
        };
        let mut paths: Vec<std::path::PathBuf> = dir.map(|e| e.unwrap().path()).collect();
        paths.sort();
        for path in paths {
            let data = std::fs::read(&path).unwrap();
            eprintln!("{}", path.display());
            f(&data);
            seen += 1;
        }
    }
    assert!(seen > 0, "no seeds for {target}");
}
