//! eif-build
