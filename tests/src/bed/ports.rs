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
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use super::network::Site;

static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A port free on each of `addresses` of the test's own namespace, not
/// handed out before.
///
/// # Panics
///
/// When `addresses` is empty or the first one cannot be bound.
pub fn free_on(addresses: &[IpAddr]) -> u16 {
    let here = Site::here();
    let places: Vec<(&Site, IpAddr)> = addresses.iter().map(|ip| (&here, *ip)).collect();
    free_at(&places)
}

/// A port free on each address of `places`, each in its site, not handed
/// out before.
///
/// # Panics
///
/// When `places` is empty or the first one cannot be bound.
pub fn free_at(places: &[(&Site, IpAddr)]) -> u16 {
    let ((site, first), rest) = places.split_first().expect("at least one address");
    loop {
        let port = site
            .probe(SocketAddr::new(*first, 0))
            .expect("binding a probe socket");
        let free_elsewhere = rest
            .iter()
            .all(|(site, ip)| site.probe(SocketAddr::new(*ip, port)).is_ok());

        if free_elsewhere && HANDED_OUT.lock().expect("port set").insert(port) {
            return port;
        }
    }
}
