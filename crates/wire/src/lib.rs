//! `mynah-wire`: the messaging API's JSON contract, in all its dialects.
//!
//! Only this crate knows the external JSON. It holds the request bodies of every outbound message
//! type with their validation limits ([`message`]), the responses ([`response`]), the webhook
//! payloads ([`webhook`]), the one error table ([`error`]) and phone-number identity ([`phone`]).
//! It does no I/O.

pub mod error;
pub mod message;
pub mod phone;
pub mod reply;
pub mod response;
pub mod template;
pub mod user_id;
pub mod webhook;

pub use error::{ApiError, ErrorCode};
pub use phone::WaId;
pub use user_id::UserId;
