//! Waxwing FFI.
