//! Key exchange: algorithm negotiation (KEXINIT), the exchange methods'
//! arithmetic, and the exchange hash with the keys derived from it. The
//! message flow that uses them is in [`crate::transport`].

pub mod budget;
pub mod keys;
pub mod method;
pub mod negotiate;
