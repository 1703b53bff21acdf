//! cleanroom-dp
