//! The Palisade node agent: attests its node, keeps its node and workload
//! certificates fresh, follows the control plane's xDS view of its node,
//! and enforces it: mTLS on every connection, and an authorization decision
//! on every one. It keeps enforcing its last known good configuration when
//! the control plane is away, and refuses everything when it has none.
//!
//! Modules by concern: [`identity`] (keys, attestation, renewal), [`control`]
//! (the connection to the control plane), [`xds`] (the ADS client),
//! [`state`] (the configuration enforced), [`cache`] (the last known good),
//! [`status`] (the status file and counters), [`authz`] (decisions),
//! [`proxy`] (inbound and outbound listeners), [`sds`] and [`files`]
//! (certificates for a co-located Envoy or gRPC), [`run`] (wiring and
//! shutdown).

pub mod authz;
pub mod cache;
pub mod check;
pub mod cli;
pub mod config;
pub mod control;
pub mod files;
pub mod identity;
pub mod proxy;
pub mod run;
pub mod sds;
pub mod signals;
pub mod state;
pub mod status;
pub mod xds;
