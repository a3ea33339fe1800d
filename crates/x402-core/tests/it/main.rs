//! Integration tests of `x402-core`'s public API: the spec's wire vectors and whole
//! client-to-server flows for every scheme.

#![allow(clippy::unwrap_used)]

mod flows;
mod spec_vectors;
