//! End-to-end tests of the cpu-rs binaries; the tests live in `tests/`.
