//! Key exchange: algorithm negotiation (KEXINIT) and the exchange methods.

pub mod negotiate;
