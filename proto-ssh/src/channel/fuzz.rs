//! Fuzz entry point (filled below).
