//! The unsafe layer: C mirrors, the panic boundary, and safe wrappers around the host's
//! `sasl_utils_t`. Nothing outside `ffi` and `plugin` dereferences a raw pointer.
#![allow(unsafe_code)]

pub mod boundary;
pub mod bytes;
pub mod hostlog;
pub mod process;
pub mod sasl;
pub mod utils;
pub mod version;
