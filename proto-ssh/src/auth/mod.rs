//! User authentication (RFC 4252): the client and server sides.
