//! The TrustBundle and DenyList resources: what every agent trusts, and the
//! certificates it must refuse although they chain to that trust.

use palisade_proto::xds as pb;

use super::{AgentResource, DENY_LIST_NAME, TRUST_BUNDLE_NAME, package};
use crate::xds::world::World;

/// Builds the trust bundle: the trust domain, the CA certificates and the
/// JWKS of Palisade's signing keys.
pub fn trust_bundle(world: &World) -> AgentResource {
    let message = pb::TrustBundle {
        revision: 0,
        trust_domain: world.trust_domain.clone(),
        x509_pem: world.bundle.x509_pem.clone(),
        jwks_json: world.bundle.jwks_json.clone(),
    };
    package(TRUST_BUNDLE_NAME.to_owned(), message, world.revision)
}

/// Builds the deny list: every serial of every revoked node, sorted by
/// serial.
///
/// Serials already past their `not_after` are kept, so that the list
/// depends on the world alone and not on the clock; agents may ignore them.
pub fn deny_list(world: &World) -> AgentResource {
    let mut certificates: Vec<pb::RevokedCertificate> = world
        .revocations
        .iter()
        .flat_map(|(node, record)| {
            record.serials.iter().map(|revoked| pb::RevokedCertificate {
                serial: revoked.serial.to_ascii_lowercase(),
                not_after_unix: revoked.not_after,
                node: node.clone(),
            })
        })
        .collect();

    certificates.sort_by(|a, b| {
        (&a.serial, &a.node, a.not_after_unix).cmp(&(&b.serial, &b.node, b.not_after_unix))
    });
    certificates.dedup();

    let message = pb::DenyList {
        revision: 0,
        certificates,
    };
    package(DENY_LIST_NAME.to_owned(), message, world.revision)
}
