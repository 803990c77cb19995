//! TODO(uri)
