//! ldapbind: a Cyrus SASL auxprop and canonuser plugin that authenticates users against an
//! LDAP directory with a configurable bind DN.
//!
//! Build with `cargo build --release`; install `target/release/libldapbind.so` into the
//! libsasl2 plugin directory (`/usr/lib/x86_64-linux-gnu/sasl2` on Debian). The crate is a
//! `cdylib` for libsasl2 and an `rlib` so that tests reach the same code. Build needs only
//! cargo; the tests need Debian's libsasl2-dev, slapd and friends (`scripts/deps.sh`).
//!
//! Layout: `ffi/` and `plugin/` are the only modules allowed `unsafe`; everything else is safe
//! Rust, generic over the [`host::Host`] and [`ldap::Directory`] traits so it is testable
//! without C or a server.
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::todo,
        clippy::unimplemented,
        clippy::unreachable
    )
)]

pub mod account;
pub mod ad;
pub mod authd;
pub mod config;
pub mod core;
pub mod doctor;
pub mod ds389;
pub mod error;
pub mod ffi;
pub mod filter;
pub mod host;
pub mod ldap;
pub mod level;
pub mod password;
mod plugin;
pub mod state;
pub mod tls;
pub mod uri;
