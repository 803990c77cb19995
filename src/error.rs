//! TODO(error)
