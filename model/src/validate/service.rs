//! Checks on a Service: its ports, service account and DNS names.

use std::collections::HashMap;

use super::{Problems, names, net};
use crate::spec::{ServicePort, ServiceSpec};

pub(super) fn check(spec: &ServiceSpec, p: &mut Problems) {
    p.required("spec.ports", &spec.ports, "port");
    if p.length("spec.ports", &spec.ports) {
        check_ports(&spec.ports, p);
    }

    if let Some(account) = &spec.service_account {
        p.check("spec.serviceAccount", names::label(account));
    }
    p.each("spec.dnsNames", &spec.dns_names, |name| {
        names::dns_name(name)
    });
}

fn check_ports(ports: &[ServicePort], p: &mut Problems) {
    let mut numbers = HashMap::new();
    let mut port_names = HashMap::new();

    for (i, port) in ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        p.check(&format!("{path}.port"), net::port(port.port));
        if let Some(first) = numbers.insert(port.port, i) {
            let message = format!("port {} is already used by spec.ports[{first}]", port.port);
            p.add(format!("{path}.port"), message);
        }

        let Some(name) = &port.name else { continue };
        p.check(&format!("{path}.name"), names::label(name));
        if let Some(first) = port_names.insert(name.as_str(), i) {
            let message = format!("name {name:?} is already used by spec.ports[{first}]");
            p.add(format!("{path}.name"), message);
        }
    }
}
