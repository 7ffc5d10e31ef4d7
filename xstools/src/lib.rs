//! Host tools around the xenstore engine: the socket daemon's server loop and shared helpers.

pub mod server;
pub mod xsclient;
