//! vpg's IPsec ESP (RFC 4303) with AES-GCM (RFC 4106).

pub mod crypto;
pub mod packet;
pub mod replay;
