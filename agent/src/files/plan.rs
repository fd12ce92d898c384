//! What the certificate directory should hold: for every workload with an
//! SVID and a valid name, its chain, key and bundle, who should own them,
//! and a version that changes when any of it does.

use std::collections::BTreeMap;

use aws_lc_rs::digest;
use palisade_model::is_dns1123_subdomain;

use crate::identity::svid::{KeyPem, WorkloadCertificates};
use crate::state::Snapshot;

/// Who the workload's processes run as, from its selectors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

impl Owner {
    /// Whether there is anyone to hand the files to.
    pub fn is_known(&self) -> bool {
        self.uid.is_some() || self.gid.is_some()
    }

    /// This owner, with `other`'s ids where it names none.
    pub fn or(self, other: Owner) -> Owner {
        Owner {
            uid: self.uid.or(other.uid),
            gid: self.gid.or(other.gid),
        }
    }
}

/// One workload's files. Debug prints nothing of the key.
#[derive(Clone, Debug)]
pub struct Contents {
    pub chain_pem: String,
    pub key_pem: KeyPem,
    pub bundle_pem: String,
    pub owner: Owner,
    /// A hash of all of the above, 16 hex digits.
    pub version: String,
}

/// The files every workload should have, by workload key. Workloads whose
/// name could not be a path component, and every workload while there is
/// no bundle, are left out.
pub fn desired(
    certificates: &WorkloadCertificates,
    snapshot: Option<&Snapshot>,
) -> BTreeMap<String, Contents> {
    if certificates.bundle_pem.is_empty() {
        return BTreeMap::new();
    }
    let mut desired = BTreeMap::new();

    for (key, svid) in &certificates.by_workload {
        if !is_safe_key(key) {
            tracing::warn!(workload = %key, "certificate files skipped: unusable workload name");
            continue;
        }
        let owner = owner_of(snapshot, key);
        let mut contents = Contents {
            chain_pem: svid.chain_pem.clone(),
            key_pem: svid.key_pem.clone(),
            bundle_pem: certificates.bundle_pem.clone(),
            owner,
            version: String::new(),
        };
        contents.version = version_of(&contents);
        desired.insert(key.clone(), contents);
    }
    desired
}

/// Whether `key` is `<namespace>/<name>`, each a DNS-1123 name: nothing
/// that could climb out of the certificate directory.
pub fn is_safe_key(key: &str) -> bool {
    key.split_once('/').is_some_and(|(namespace, name)| {
        is_dns1123_subdomain(namespace) && is_dns1123_subdomain(name)
    })
}

fn owner_of(snapshot: Option<&Snapshot>, key: &str) -> Owner {
    let selectors = snapshot
        .and_then(|s| s.workloads.get(key))
        .and_then(|w| w.selectors.as_ref());
    selectors.map_or_else(Owner::default, |s| Owner {
        uid: s.unix_uid,
        gid: s.unix_gid,
    })
}

fn version_of(contents: &Contents) -> String {
    let mut context = digest::Context::new(&digest::SHA256);
    for part in [
        contents.chain_pem.as_bytes(),
        contents.key_pem.expose().as_bytes(),
        contents.bundle_pem.as_bytes(),
    ] {
        context.update(&(part.len() as u64).to_be_bytes());
        context.update(part);
    }
    for id in [contents.owner.uid, contents.owner.gid] {
        context.update(&id.map_or(-1, i64::from).to_be_bytes());
    }
    hex::encode(&context.finish().as_ref()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_owner_fills_only_what_one_leaves_out() {
        let group = Owner {
            uid: None,
            gid: Some(7),
        };
        let agent = Owner {
            uid: Some(0),
            gid: Some(0),
        };

        assert_eq!(
            group.or(agent),
            Owner {
                uid: Some(0),
                gid: Some(7)
            }
        );
        assert_eq!(Owner::default().or(agent), agent);
        assert_eq!(agent.or(group), agent);
    }

    #[test]
    fn only_namespace_slash_name_is_a_safe_key() {
        assert!(is_safe_key("shop/orders-1"));
        for unsafe_key in [
            "../etc",
            "shop/..",
            "shop/a/b",
            "shop",
            "/orders",
            "shop/.hidden",
        ] {
            assert!(!is_safe_key(unsafe_key), "{unsafe_key}");
        }
    }
}
