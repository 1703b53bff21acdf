//! cleanroom-model-sdk
