//! Ports for the bed's listeners, chosen before the agents bind them.
//!
//! Each port is free on every address that will bind it at the moment it
//! is chosen, and is never handed out twice in one test process, so that
//! beds running side by side in one test binary do not collide. Agents'
//! connections to other nodes leave from the bed's addresses, on source
//! ports the kernel picks, but with SO_REUSEADDR on both sides such a
//! connection does not keep a listener from binding its port, so a port
//! chosen here stays usable until an agent takes it.

use std::collections::BTreeSet;
use std::net::{IpAddr, TcpListener};
use std::sync::Mutex;

static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A port free on each of `addresses`, not handed out before.
///
/// # Panics
///
/// When `addresses` is empty or the first one cannot be bound.
pub fn free_on(addresses: &[IpAddr]) -> u16 {
    let (first, rest) = addresses.split_first().expect("at least one address");
    loop {
        let probe = TcpListener::bind((*first, 0)).expect("binding a probe listener");
        let port = probe.local_addr().expect("the probe's address").port();
        let free_elsewhere = rest.iter().all(|ip| TcpListener::bind((*ip, port)).is_ok());

        if free_elsewhere && HANDED_OUT.lock().expect("port set").insert(port) {
            return port;
        }
    }
}
