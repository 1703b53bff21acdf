//! cleanroom-e2e
