//! cleanroom-sandbox
