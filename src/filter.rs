//! TODO(filter)
