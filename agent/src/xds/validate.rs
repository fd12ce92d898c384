//! What a resource must satisfy before the agent enforces it. Each check
//! names the field at fault, so that a rejection tells the operator where
//! to look.

use palisade_proto::xds as pb;
use x509_parser::pem::Pem;

/// A field that breaks a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub problem: String,
}

/// The outcome of checking one resource.
pub type Checked = Result<(), Invalid>;

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        problem: problem.into(),
    }
}

/// The resource name of the trust bundle.
pub const TRUST_BUNDLE_NAME: &str = "bundle";
/// The resource name of the deny list.
pub const DENY_LIST_NAME: &str = "revoked";

/// A workload of this node.
pub fn workload(name: &str, workload: &pb::Workload) -> Checked {
    namespaced(name, &workload.namespace, "name", &workload.name)?;
    dns_name("service", &workload.service)?;
    spiffe_id("spiffe_id", &workload.spiffe_id)?;
    port("inbound_port", workload.inbound_port)?;
    port("app_port", workload.app_port)?;
    service_ports("ports", &workload.ports)
}

/// The authorization of a local service.
pub fn authorization(name: &str, authorization: &pb::Authorization) -> Checked {
    namespaced(
        name,
        &authorization.namespace,
        "service",
        &authorization.service,
    )?;
    let lists = [
        ("deny", &authorization.deny),
        ("allow", &authorization.allow),
        ("audit", &authorization.audit),
    ];
    for (list, rules) in lists {
        for (index, rule) in rules.iter().enumerate() {
            self::rule(&format!("{list}[{index}]"), rule)?;
        }
    }
    Ok(())
}

fn rule(at: &str, rule: &pb::AuthorizationRule) -> Checked {
    if pb::EnforcementMode::try_from(rule.mode).is_err() {
        return Err(invalid(
            format!("{at}.mode"),
            format!("unknown mode {}", rule.mode),
        ));
    }
    for (index, source) in rule.from.iter().enumerate() {
        let at = format!("{at}.from[{index}]");
        networks(&format!("{at}.ip_blocks"), &source.ip_blocks)?;
        networks(&format!("{at}.not_ip_blocks"), &source.not_ip_blocks)?;
    }
    for (index, operation) in rule.to.iter().enumerate() {
        let at = format!("{at}.to[{index}]");
        ports(&format!("{at}.ports"), &operation.ports)?;
        ports(&format!("{at}.not_ports"), &operation.not_ports)?;
    }
    Ok(())
}

/// Where a service the local workloads call can be reached.
pub fn endpoints(name: &str, endpoints: &pb::Endpoints) -> Checked {
    namespaced(name, &endpoints.namespace, "service", &endpoints.service)?;
    if endpoints.spiffe_id.is_empty() && !endpoints.endpoints.is_empty() {
        return Err(invalid("spiffe_id", "empty while endpoints are listed"));
    }
    if !endpoints.spiffe_id.is_empty() {
        spiffe_id("spiffe_id", &endpoints.spiffe_id)?;
    }
    service_ports("ports", &endpoints.ports)?;

    for (index, endpoint) in endpoints.endpoints.iter().enumerate() {
        if endpoint.address.is_empty() {
            return Err(invalid(format!("endpoints[{index}].address"), "empty"));
        }
        port(
            &format!("endpoints[{index}].inbound_port"),
            endpoint.inbound_port,
        )?;
    }
    Ok(())
}

/// The token checks of a local service.
pub fn jwt_rules(name: &str, rules: &pb::JwtRules) -> Checked {
    namespaced(name, &rules.namespace, "service", &rules.service)?;
    for (index, issuer) in rules.issuers.iter().enumerate() {
        let at = format!("issuers[{index}]");
        match &issuer.keys {
            Some(pb::jwt_issuer::Keys::JwksJson(json)) => jwks(&format!("{at}.jwks_json"), json)?,
            Some(pb::jwt_issuer::Keys::JwksUri(uri)) if !uri.starts_with("https://") => {
                return Err(invalid(format!("{at}.jwks_uri"), "must be an https URL"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// What this node trusts.
pub fn trust_bundle(name: &str, bundle: &pb::TrustBundle) -> Checked {
    fixed_name(name, TRUST_BUNDLE_NAME)?;
    if bundle.trust_domain.is_empty() {
        return Err(invalid("trust_domain", "empty"));
    }
    certificates("x509_pem", &bundle.x509_pem)?;
    if !bundle.jwks_json.is_empty() {
        jwks("jwks_json", &bundle.jwks_json)?;
    }
    Ok(())
}

/// The revoked certificates.
pub fn deny_list(name: &str, list: &pb::DenyList) -> Checked {
    fixed_name(name, DENY_LIST_NAME)?;
    for (index, revoked) in list.certificates.iter().enumerate() {
        let serial = &revoked.serial;
        let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
        if serial.is_empty() || !serial.chars().all(hex) {
            return Err(invalid(
                format!("certificates[{index}].serial"),
                format!("{serial:?} is not lowercase hex"),
            ));
        }
    }
    Ok(())
}

/// A resource named `<namespace>/<own>` whose message says the same.
fn namespaced(name: &str, namespace: &str, field: &str, own: &str) -> Checked {
    if !palisade_model::is_dns1123_label(namespace) {
        return Err(invalid(
            "namespace",
            format!("{namespace:?} is not a DNS-1123 label"),
        ));
    }
    dns_name(field, own)?;
    if name != format!("{namespace}/{own}") {
        return Err(invalid(
            field,
            format!("the message names {namespace}/{own}, not the resource's name"),
        ));
    }
    Ok(())
}

fn fixed_name(name: &str, expected: &str) -> Checked {
    if name == expected {
        return Ok(());
    }
    Err(invalid(
        "name",
        format!("the only resource of its type is named {expected:?}"),
    ))
}

fn dns_name(field: &str, value: &str) -> Checked {
    if palisade_model::is_dns1123_subdomain(value) {
        return Ok(());
    }
    Err(invalid(field, format!("{value:?} is not a DNS-1123 name")))
}

fn spiffe_id(field: &str, id: &str) -> Checked {
    palisade_model::validate_spiffe_id(id)
        .map_err(|reason| invalid(field, format!("{id:?} is not a SPIFFE ID: {reason}")))
}

fn port(field: &str, port: u32) -> Checked {
    if (1..=65535).contains(&port) {
        return Ok(());
    }
    Err(invalid(field, format!("must be 1 to 65535, not {port}")))
}

fn ports(field: &str, ports: &[u32]) -> Checked {
    for (index, value) in ports.iter().enumerate() {
        port(&format!("{field}[{index}]"), *value)?;
    }
    Ok(())
}

fn service_ports(field: &str, ports: &[pb::ServicePort]) -> Checked {
    for (index, service_port) in ports.iter().enumerate() {
        let at = format!("{field}[{index}]");
        port(&format!("{at}.port"), service_port.port)?;
        if pb::Protocol::try_from(service_port.protocol).is_err() {
            return Err(invalid(
                format!("{at}.protocol"),
                format!("unknown protocol {}", service_port.protocol),
            ));
        }
    }
    Ok(())
}

fn networks(field: &str, networks: &[pb::IpNetwork]) -> Checked {
    for (index, network) in networks.iter().enumerate() {
        let longest = match network.address.len() {
            4 => 32,
            16 => 128,
            other => {
                return Err(invalid(
                    format!("{field}[{index}].address"),
                    format!("{other} bytes; an address has 4 or 16"),
                ));
            }
        };
        if network.prefix_len > longest {
            return Err(invalid(
                format!("{field}[{index}].prefix_len"),
                format!("{} is longer than {longest}", network.prefix_len),
            ));
        }
    }
    Ok(())
}

fn jwks(field: &str, json: &str) -> Checked {
    let parsed: serde_json::Value =
        serde_json::from_str(json).map_err(|e| invalid(field, format!("not JSON: {e}")))?;
    if !parsed.get("keys").is_some_and(serde_json::Value::is_array) {
        return Err(invalid(field, "has no \"keys\" array"));
    }
    Ok(())
}

/// PEM text holding at least one certificate, every one of which parses.
fn certificates(field: &str, pem: &str) -> Checked {
    let mut count = 0;
    for (index, block) in Pem::iter_from_buffer(pem.as_bytes()).enumerate() {
        let at = || format!("{field}: certificate {}", index + 1);
        let block = block.map_err(|e| invalid(at(), format!("not PEM: {e}")))?;
        if block.label != "CERTIFICATE" {
            return Err(invalid(at(), format!("a {:?} block", block.label)));
        }
        block
            .parse_x509()
            .map_err(|e| invalid(at(), format!("not X.509: {e}")))?;
        count += 1;
    }
    if count == 0 {
        return Err(invalid(field, "holds no certificate"));
    }
    Ok(())
}
