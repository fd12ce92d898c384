//! The secrets of one workload, as Envoy `Secret` resources: its SVID as
//! [`SVID_SECRET`] and the trust bundle as [`BUNDLE_SECRET`], each with a
//! version that is a hash of its encoded content.

use std::collections::BTreeSet;
use std::fmt;

use aws_lc_rs::digest;
use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, Secret, TlsCertificate, secret,
};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;
use prost::Name as _;

use crate::identity::svid::{Svid, WorkloadCertificates};

/// The name of the workload's certificate chain and key.
pub const SVID_SECRET: &str = "default";
/// The name of the trust bundle.
pub const BUNDLE_SECRET: &str = "ROOTCA";

/// The name that subscribes to everything, besides an empty list.
const WILDCARD: &str = "*";

/// The type URL of every SDS resource.
pub fn type_url() -> String {
    Secret::type_url()
}

/// Which secrets a stream asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    /// Every secret the caller may have.
    pub wildcard: bool,
    /// These, besides.
    pub names: BTreeSet<String>,
}

impl Names {
    /// The names of a state-of-the-world request: none, or `*`, is all.
    pub fn of_request(names: &[String]) -> Self {
        Self {
            wildcard: names.is_empty() || names.iter().any(|n| n == WILDCARD),
            names: names.iter().filter(|n| *n != WILDCARD).cloned().collect(),
        }
    }

    /// Whether `name` is asked for.
    pub fn includes(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }
}

/// One secret, packed, with its version. Debug prints only its name and
/// version: the packed bytes hold a private key.
#[derive(Clone, PartialEq, Eq)]
pub struct Packed {
    pub name: String,
    pub version: String,
    pub resource: Any,
}

impl fmt::Debug for Packed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Packed")
            .field("name", &self.name)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// The secrets of `workload` that `names` asks for and that exist, by name.
pub fn of_workload(
    workload: &str,
    certificates: &WorkloadCertificates,
    names: &Names,
) -> Vec<Packed> {
    let mut packed = Vec::new();
    if names.includes(BUNDLE_SECRET) && !certificates.bundle_pem.is_empty() {
        packed.push(pack(bundle(&certificates.bundle_pem)));
    }
    if names.includes(SVID_SECRET)
        && let Some(svid) = certificates.by_workload.get(workload)
    {
        packed.push(pack(certificate(svid)));
    }

    packed.sort_by(|a, b| a.name.cmp(&b.name));
    packed
}

/// The version of a whole set: a hash of its names and versions; empty for
/// an empty set.
pub fn version_of(secrets: &[Packed]) -> String {
    if secrets.is_empty() {
        return String::new();
    }
    let mut context = digest::Context::new(&digest::SHA256);
    for secret in secrets {
        context.update(secret.name.as_bytes());
        context.update(&[0]);
        context.update(secret.version.as_bytes());
        context.update(&[0]);
    }
    short_hex(context.finish())
}

fn pack(secret: Secret) -> Packed {
    let name = secret.name.clone();
    let resource = pack_any(secret);
    let version = short_hex(digest::digest(&digest::SHA256, &resource.value));
    Packed {
        name,
        version,
        resource,
    }
}

/// The first 16 hex digits of a digest: enough to tell versions apart.
fn short_hex(digest: digest::Digest) -> String {
    hex::encode(&digest.as_ref()[..8])
}

fn certificate(svid: &Svid) -> Secret {
    let certificate = TlsCertificate {
        certificate_chain: Some(inline(&svid.chain_pem)),
        private_key: Some(inline(svid.key_pem.expose())),
        ..Default::default()
    };
    Secret {
        name: SVID_SECRET.into(),
        r#type: Some(secret::Type::TlsCertificate(certificate)),
    }
}

fn bundle(bundle_pem: &str) -> Secret {
    let context = CertificateValidationContext {
        trusted_ca: Some(inline(bundle_pem)),
        ..Default::default()
    };
    Secret {
        name: BUNDLE_SECRET.into(),
        r#type: Some(secret::Type::ValidationContext(context)),
    }
}

fn inline(pem: &str) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::InlineString(pem.to_owned())),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use prost::Message as _;

    use super::*;
    use crate::identity::testing::svid;

    fn certificates() -> WorkloadCertificates {
        let svid = svid("spiffe://example.org/ns/shop/sa/orders", 0, 4_000_000_000);
        WorkloadCertificates {
            by_workload: [("shop/orders-1".to_owned(), Arc::new(svid))].into(),
            bundle_pem: "bundle".into(),
        }
    }

    #[test]
    fn default_is_the_svid_and_rootca_the_bundle() {
        let certificates = certificates();

        let packed = of_workload("shop/orders-1", &certificates, &Names::of_request(&[]));

        let names: Vec<&str> = packed.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, [BUNDLE_SECRET, SVID_SECRET]);
        let secret = Secret::decode(packed[1].resource.value.as_slice()).unwrap();
        let Some(secret::Type::TlsCertificate(tls)) = secret.r#type else {
            panic!("not a certificate");
        };
        let key = tls.private_key.unwrap().specifier.unwrap();
        let expected = certificates.by_workload["shop/orders-1"]
            .key_pem
            .expose()
            .to_owned();
        assert_eq!(key, data_source::Specifier::InlineString(expected));
    }

    #[test]
    fn unknown_names_and_other_workloads_get_nothing() {
        let certificates = certificates();
        let names = Names::of_request(&["other".into(), SVID_SECRET.into()]);

        assert!(of_workload("shop/billing-1", &certificates, &names).is_empty());
        assert_eq!(of_workload("shop/orders-1", &certificates, &names).len(), 1);
    }

    #[test]
    fn the_version_follows_the_content() {
        let before = certificates();
        let mut after = before.clone();
        after.bundle_pem = "another bundle".into();
        let all = Names::of_request(&[]);

        let first = version_of(&of_workload("shop/orders-1", &before, &all));
        let again = version_of(&of_workload("shop/orders-1", &before, &all));
        let changed = version_of(&of_workload("shop/orders-1", &after, &all));

        assert_eq!(first, again);
        assert_ne!(first, changed);
        assert_eq!(version_of(&[]), "");
    }

    #[test]
    fn debug_shows_no_key() {
        let packed = of_workload("shop/orders-1", &certificates(), &Names::of_request(&[]));

        let printed = format!("{packed:?}");

        assert!(!printed.contains("PRIVATE KEY"));
        assert!(printed.contains(SVID_SECRET));
    }
}
