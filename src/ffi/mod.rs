//! The unsafe layer: C mirrors, the panic boundary, and safe wrappers around the host's
//! `sasl_utils_t`. Nothing outside `ffi` and `plugin` dereferences a raw pointer.
#![allow(unsafe_code)]

//!
//! Only what the binaries and tests need is public: the C mirrors (`sasl`, checked against the
//! real headers by tests/layout.rs) and the daemon's safe process wrappers (`process`). The
//! rest, with its `unsafe fn`s, stays inside the crate.

pub(crate) mod boundary;
pub(crate) mod bytes;
pub(crate) mod exe;
pub(crate) mod hostlog;
pub mod process;
pub mod sasl;
pub(crate) mod utils;
pub(crate) mod version;
