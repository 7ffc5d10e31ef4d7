//! The xenstore engine: a pure state machine with no I/O.
//!
//! Connections feed it bytes ([`Engine::receive`]) or whole messages; it queues replies and
//! watch events per connection and reports [`Effect`]s (map a ring, bind a port, a domain
//! released, a live-update request) for the shell to carry out. It knows nothing of Xen
//! memory: the unikernel and the host daemon are thin shells around it.
#![no_std]
#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

extern crate alloc;

pub mod budget;
pub mod compat;
pub mod conn;
pub mod control;
pub mod engine;
pub mod error;
mod events;
pub mod handover;
pub mod ids;
pub mod image;
pub mod le;
pub mod memory;
mod ops_domain;
mod ops_node;
mod ops_session;
pub mod options;
pub mod oracle;
pub mod path;
pub mod perms;
pub mod pvh;
pub mod quota;
pub mod ratelimit;
mod report;
pub mod ring;
pub mod snapshot;
pub mod store;
pub mod txn;
pub mod util;
mod view;
pub mod watch;
pub mod wire;

pub use engine::{DomainState, Effect, Engine, EngineConfig};
pub use error::{Fault, XsError};
pub use ids::{ConnId, DomId, EvtchnPort, TxId};
pub use wire::{Message, MsgType};
