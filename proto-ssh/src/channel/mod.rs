//! The connection protocol (RFC 4254): channels, flow control, session and global requests.
