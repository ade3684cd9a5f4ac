//! Public-key signatures: host keys and user keys.
