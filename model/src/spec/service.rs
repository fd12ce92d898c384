//! The Service spec: a named destination, its ports and its identity.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A named destination. Its workloads' SPIFFE ID is
/// `spiffe://<td>/ns/<namespace>/sa/<serviceAccount or name>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSpec {
    /// The ports the service listens on; at least one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,

    /// The service account in the SPIFFE ID; the service's name when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,

    /// DNS names clients use for the service; `*.` is allowed as the leftmost label.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
}

impl ServiceSpec {
    /// The service account that names the service's identity: the
    /// `serviceAccount` when set, otherwise `service_name`.
    pub fn service_account_or<'a>(&'a self, service_name: &'a str) -> &'a str {
        match self.service_account.as_deref() {
            Some(account) if !account.is_empty() => account,
            _ => service_name,
        }
    }
}

/// One port of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePort {
    /// An optional name, unique within the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    /// The port number, 1 to 65535, unique within the service.
    pub port: u16,

    /// The protocol spoken on the port; `tcp` when unset.
    #[serde(default)]
    pub protocol: Protocol,
}

/// The protocol a service port speaks; lowercase in documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Opaque TCP: authorization by identity, address and port only.
    #[default]
    Tcp,
    /// HTTP/1.1 or HTTP/2: methods, paths and headers are visible to policy.
    Http,
    /// gRPC over HTTP/2.
    Grpc,
}

impl Protocol {
    /// The name used in documents: `tcp`, `http` or `grpc`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Http => "http",
            Protocol::Grpc => "grpc",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_account_falls_back_to_the_service_name() {
        let mut spec = ServiceSpec::default();
        assert_eq!(spec.service_account_or("orders"), "orders");
        spec.service_account = Some("billing".into());
        assert_eq!(spec.service_account_or("orders"), "billing");
    }

    #[test]
    fn protocol_defaults_to_tcp_and_reads_lowercase() {
        let port: ServicePort = serde_json::from_str(r#"{"port": 80}"#).unwrap();
        assert_eq!(port.protocol, Protocol::Tcp);
        let port: ServicePort =
            serde_json::from_str(r#"{"port": 80, "protocol": "grpc"}"#).unwrap();
        assert_eq!(port.protocol, Protocol::Grpc);
        assert!(
            serde_json::from_str::<ServicePort>(r#"{"port": 80, "protocol": "HTTP"}"#).is_err()
        );
    }
}
