//! host-proxy
