//! The Palisade control plane: the source of truth for identity, policy and
//! secrets, served to admins over a gRPC API.
//!
//! The crate is organised by concern: [`store`] keeps resources durably,
//! [`barrier`] encrypts what is secret, [`audit`] chains the audit log, [`ca`]
//! issues certificates, [`authz`] decides what admins may do, [`admin`] serves
//! the admin API, and [`server`] wires them into a running process.

pub mod admin;
pub mod audit;
pub mod authz;
pub mod barrier;
pub mod ca;
pub mod cli;
pub mod config;
pub mod data_dir;
pub mod dev;
pub mod identity;
pub mod init;
pub mod limits;
pub mod serve;
pub mod server;
pub mod signals;
pub mod store;
pub mod tasks;
pub mod telemetry;
pub mod tls;
pub mod xds;

mod fsutil;
