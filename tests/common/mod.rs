//! Shared fixtures for the integration tests: a throwaway slapd and a real libsasl2 host.
#![allow(dead_code)]
pub mod authd;
pub mod ds389;
pub mod fakeldap;
pub mod imapd;
pub mod process;
pub mod samba;
pub mod sasl;
pub mod sasl2127;
pub mod slapd;
