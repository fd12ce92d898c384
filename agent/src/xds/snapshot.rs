//! Decoding and checking every held resource into the [`Snapshot`] that
//! the data path enforces. A snapshot is built whole or not at all: the
//! first resource that does not decode or breaks a rule rejects it.

use palisade_proto::prost::Message;
use palisade_proto::xds as pb;

use super::resources::{RawResource, Resources};
use super::validate::{self, Checked};
use super::{Rejection, kind_of};
use crate::state::{Snapshot, types};

/// The snapshot of `resources`, or why they cannot be enforced.
pub fn build(resources: &Resources) -> Result<Snapshot, Rejection> {
    let mut snapshot = Snapshot::default();
    for (type_url, by_name) in resources.iter() {
        for (name, raw) in by_name {
            add(&mut snapshot, type_url, name, raw)?;
            snapshot
                .versions
                .entry(type_url.clone())
                .or_default()
                .insert(name.clone(), raw.version.clone());
        }
    }
    Ok(snapshot)
}

fn add(
    snapshot: &mut Snapshot,
    type_url: &str,
    name: &str,
    raw: &RawResource,
) -> Result<(), Rejection> {
    let bytes = raw.value.as_slice();
    match type_url {
        types::WORKLOAD => {
            let workload = decode(type_url, name, bytes, validate::workload)?;
            note_revision(snapshot, workload.revision);
            snapshot.workloads.insert(name.to_owned(), workload);
        }
        types::AUTHORIZATION => {
            let authorization = decode(type_url, name, bytes, validate::authorization)?;
            note_revision(snapshot, authorization.revision);
            snapshot
                .authorizations
                .insert(name.to_owned(), authorization);
        }
        types::ENDPOINTS => {
            let endpoints = decode(type_url, name, bytes, validate::endpoints)?;
            note_revision(snapshot, endpoints.revision);
            snapshot.endpoints.insert(name.to_owned(), endpoints);
        }
        types::JWT_RULES => {
            let rules = decode(type_url, name, bytes, validate::jwt_rules)?;
            note_revision(snapshot, rules.revision);
            snapshot.jwt_rules.insert(name.to_owned(), rules);
        }
        types::TRUST_BUNDLE => {
            let bundle = decode(type_url, name, bytes, validate::trust_bundle)?;
            note_revision(snapshot, bundle.revision);
            snapshot.bundle = Some(bundle);
        }
        types::DENY_LIST => {
            let list: pb::DenyList = decode(type_url, name, bytes, validate::deny_list)?;
            note_revision(snapshot, list.revision);
            let serials = list.certificates.into_iter().map(|c| c.serial);
            snapshot.denied_serials.extend(serials);
        }
        other => return Err(Rejection::UnknownType(other.to_owned())),
    }
    Ok(())
}

/// Decodes one resource and checks it with `check`.
fn decode<M: Message + Default>(
    type_url: &str,
    name: &str,
    bytes: &[u8],
    check: fn(&str, &M) -> Checked,
) -> Result<M, Rejection> {
    let kind = kind_of(type_url);
    let message = M::decode(bytes).map_err(|e| Rejection::Resource {
        kind,
        name: name.to_owned(),
        problem: format!("does not decode: {e}"),
    })?;

    check(name, &message).map_err(|invalid| Rejection::Field {
        kind,
        name: name.to_owned(),
        field: invalid.field,
        problem: invalid.problem,
    })?;
    Ok(message)
}

fn note_revision(snapshot: &mut Snapshot, revision: u64) {
    snapshot.revision = snapshot.revision.max(revision);
}

#[cfg(test)]
mod tests;
