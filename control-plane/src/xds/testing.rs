//! Worlds and change events written as YAML documents, for the xDS tests.

use crate::store::{ChangeAction, ChangeEvent, StoredResource};
use crate::xds::world::{Named, World};

/// The documents of `yaml` as the store would hold them at `revision`.
pub fn stored(yaml: &str, revision: u64) -> Vec<StoredResource> {
    palisade_model::parse_and_validate(yaml)
        .unwrap()
        .into_iter()
        .map(|document| StoredResource {
            key: document.key().store_key(),
            revision,
            create_revision: revision,
            document: document.to_json(),
        })
        .collect()
}

/// One change event of `action` per document of `yaml`.
pub fn events(yaml: &str, revision: u64, action: ChangeAction) -> Vec<ChangeEvent> {
    stored(yaml, revision)
        .into_iter()
        .map(|resource| ChangeEvent { action, resource })
        .collect()
}

/// A world in trust domain `td` holding the documents of `yaml`, at
/// `revision`.
pub fn world_at(yaml: &str, revision: u64) -> World {
    let mut world = World::new("td");
    world.revision = revision;
    for resource in stored(yaml, revision) {
        world.insert(&resource);
    }
    world
}

/// A namespaced name.
pub fn named(namespace: &str, name: &str) -> Named {
    (namespace.to_owned(), name.to_owned())
}
