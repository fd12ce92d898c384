//! Identity: the certificates and tokens that name nodes and workloads.
//!
//! Nodes attest with a one-time join token and receive a node certificate;
//! with it they renew themselves and ask for their workloads' X.509-SVIDs
//! and JWT-SVIDs. Only certificate signing requests travel: private keys
//! stay on the hosts that made them.

pub mod authorities;
pub mod authority;
pub mod clock;
pub mod csr;
pub mod error;
pub mod issue;
pub mod join_token;
pub mod jwks_http;
pub mod jwt;
pub mod keyset;
pub mod material;
pub mod nodes;
pub mod records;
pub mod revocation;
pub mod rotation;
pub mod schedule;
pub mod server_certificate;
pub mod service;
pub mod signing_keys;

#[cfg(test)]
pub(crate) mod testing;
