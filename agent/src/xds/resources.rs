//! The resources the agent holds, as the control plane sent them: the raw
//! bytes and the version of each, by type URL and name. A stream resumes
//! from their versions, the last known good keeps them, and the
//! [`Snapshot`](crate::state::Snapshot) is decoded from them.

use std::collections::{BTreeMap, HashMap};

use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryResponse;
use serde::{Deserialize, Serialize};

use super::{Rejection, kind_of};
use crate::state::types;

/// One resource as received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawResource {
    /// The control plane's version: a hash of the content.
    pub version: String,
    /// The encoded message.
    #[serde(with = "base64_bytes")]
    pub value: Vec<u8>,
}

/// Every resource held, by type URL, then name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Resources {
    by_type: BTreeMap<String, BTreeMap<String, RawResource>>,
}

impl Resources {
    /// Every type held, with its resources by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &BTreeMap<String, RawResource>)> {
        self.by_type.iter()
    }

    /// The version of every resource of `type_url`, to resume a stream with.
    pub fn versions(&self, type_url: &str) -> HashMap<String, String> {
        self.by_type
            .get(type_url)
            .into_iter()
            .flatten()
            .map(|(name, raw)| (name.clone(), raw.version.clone()))
            .collect()
    }

    /// How many resources of each type are held.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.by_type
            .iter()
            .map(|(type_url, by_name)| (kind_of(type_url).to_owned(), by_name.len()))
            .collect()
    }

    /// Adds or replaces `name` of `type_url`.
    pub fn insert(&mut self, type_url: &str, name: &str, resource: RawResource) {
        self.by_type
            .entry(type_url.to_owned())
            .or_default()
            .insert(name.to_owned(), resource);
    }

    /// Applies one delta response: adds or replaces what it carries and
    /// removes what it names as removed. Refuses a type the agent does not
    /// subscribe to, and resources without a name, a body, or of another
    /// type than the response's.
    pub fn apply_delta(&mut self, response: &DeltaDiscoveryResponse) -> Result<(), Rejection> {
        let type_url = response.type_url.as_str();
        if !types::ALL.contains(&type_url) {
            return Err(Rejection::UnknownType(type_url.to_owned()));
        }
        let kind = kind_of(type_url);

        for resource in &response.resources {
            let rejected = |problem: String| Rejection::Resource {
                kind,
                name: resource.name.clone(),
                problem,
            };
            if resource.name.is_empty() {
                return Err(rejected("the resource has no name".into()));
            }
            let any = resource
                .resource
                .as_ref()
                .ok_or_else(|| rejected("the resource has no body".into()))?;
            if any.type_url != type_url {
                return Err(rejected(format!("its type is {}", any.type_url)));
            }
            let raw = RawResource {
                version: resource.version.clone(),
                value: any.value.clone(),
            };
            self.insert(type_url, &resource.name, raw);
        }

        let by_name = self.by_type.entry(type_url.to_owned()).or_default();
        for name in &response.removed_resources {
            by_name.remove(name);
        }
        self.by_type.retain(|_, by_name| !by_name.is_empty());
        Ok(())
    }
}

/// Bytes as base64 text in JSON.
mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}
