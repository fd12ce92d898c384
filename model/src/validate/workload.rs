//! Checks on where things run: a Node's address and a Workload's placement,
//! ports and selectors.

use super::{Problems, names, net};
use crate::spec::{NodeSpec, Selectors, WorkloadSpec};

const MAX_PROCESS_PATH_BYTES: usize = 4096;

pub(super) fn check_node(spec: &NodeSpec, p: &mut Problems) {
    if let Some(address) = &spec.address {
        p.check("spec.address", net::address(address));
    }
}

pub(super) fn check(spec: &WorkloadSpec, p: &mut Problems) {
    p.check("spec.service", names::label(&spec.service));
    p.check("spec.node", names::subdomain(&spec.node));
    if let Some(address) = &spec.address {
        p.check("spec.address", net::ip(address));
    }

    p.check("spec.appPort", net::port(spec.app_port));
    p.check("spec.inboundPort", net::port(spec.inbound_port));
    if spec.app_port == spec.inbound_port {
        let message = format!("must differ from appPort (both are {})", spec.app_port);
        p.add("spec.inboundPort", message);
    }

    check_selectors(&spec.selectors, p);
}

fn check_selectors(selectors: &Selectors, p: &mut Problems) {
    let Some(path) = &selectors.process_path else {
        return;
    };

    let absolute = path.starts_with('/') && !path.contains('\0');
    if !absolute || path.len() > MAX_PROCESS_PATH_BYTES {
        p.add(
            "spec.selectors.processPath",
            format!("{path:?} is not an absolute path"),
        );
    }
}
