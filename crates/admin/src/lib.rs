//! Lifecycle governance: every client is a non-human identity with an owner, a purpose, a tier,
//! an expiry and a last-used time, and access ends by itself when the purpose ends.
//!
//! `service` holds the logic (used by both the admin API and the `tessera` command line);
//! `http` is the admin API, reachable only with an administrator's client certificate.
//! Depends on `tessera-core`, the `tessera-store` traits and `tessera-http`; never on a store
//! implementation.

pub mod http;
pub mod service;

pub use http::{AdminAuth, configure};
pub use service::{Admin, AdminError, ClientFilter, LifecyclePolicy, SweepAction};
