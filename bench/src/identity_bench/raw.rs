//! The CA's raw rate in this process: the same library calls the control
//! plane makes for each workload certificate (check the CSR, sign the leaf),
//! on CSRs made beforehand, with no network, store or audit in the way.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use palisade_control_plane::ca::{CaError, CertificateAuthority};
use palisade_control_plane::identity::csr::{self, CsrError, Expectation};

use crate::cp::TRUST_DOMAIN;

/// Errors of the raw loop.
#[derive(Debug, thiserror::Error)]
pub enum RawError {
    #[error("a CSR was refused: {0}")]
    Csr(#[from] CsrError),
    #[error("signing failed: {0}")]
    Ca(#[from] CaError),
}

/// Signings per second from some threads.
#[derive(Clone, Copy, Debug)]
pub struct RawRate {
    pub threads: usize,
    pub signed: u64,
    pub elapsed: Duration,
}

impl RawRate {
    /// Certificates per second.
    pub fn rate(&self) -> f64 {
        self.signed as f64 / self.elapsed.as_secs_f64()
    }
}

/// What every signing thread shares.
struct Job<'a> {
    ca: CertificateAuthority,
    expected: Expectation<'a>,
    csrs: &'a [String],
    lifetime: Duration,
    deadline: Instant,
    signed: AtomicU64,
}

/// Checks and signs `csrs` round and round on `threads` threads for
/// `duration`, with a new root CA, and counts the certificates.
pub fn measure(
    csrs: &[String],
    spiffe_id: &str,
    threads: usize,
    duration: Duration,
    lifetime: Duration,
) -> Result<RawRate, RawError> {
    let (ca, _key) = CertificateAuthority::create_root(TRUST_DOMAIN)?;
    let started = Instant::now();
    let job = Job {
        ca,
        expected: Expectation {
            spiffe_id,
            dns_names: &[],
        },
        csrs,
        lifetime,
        deadline: started + duration,
        signed: AtomicU64::new(0),
    };

    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|thread| {
                let job = &job;
                scope.spawn(move || sign_until_deadline(job, thread))
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|worker| worker.join().expect("a signing thread panicked"))
    })?;

    Ok(RawRate {
        threads,
        signed: job.signed.into_inner(),
        elapsed: started.elapsed(),
    })
}

/// One thread's loop; `offset` spreads the threads over the CSRs.
fn sign_until_deadline(job: &Job<'_>, offset: usize) -> Result<(), RawError> {
    let mut n = offset;
    while Instant::now() < job.deadline {
        let input = job.csrs[n % job.csrs.len()].as_bytes();
        let checked = csr::check(input, &job.expected)?;
        let leaf = job.ca.sign_csr(&checked, job.lifetime)?;
        std::hint::black_box(leaf);

        job.signed.fetch_add(1, Ordering::Relaxed);
        n += 1;
    }
    Ok(())
}
