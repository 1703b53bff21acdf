//! credit-lr
