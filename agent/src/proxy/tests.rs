//! In-process tests of the data path over real TCP on 127.0.0.1, with
//! certificates minted by a test CA: [`support`] holds the CA, the test
//! applications and clients, and a harness that runs [`run_counted`].

mod inbound;
mod outbound;
pub(crate) mod support;
mod tables;
