//! cleanroom
