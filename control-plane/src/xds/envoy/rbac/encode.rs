//! Deterministic encoding of RBAC rules.
//!
//! `RBAC.policies` is a protobuf map, which the generated type holds in a
//! HashMap: encoding it directly gives the entries in a different order from
//! one process to the next, and so different bytes and versions for the
//! same rules. Here the RBAC message is encoded with an empty map, and the
//! entries are appended by hand in name order. Protobuf encodes a map as
//! repeated entry messages (key = field 1, value = field 2) of the map's
//! field, and parsers accept fields in any order, so the result decodes to
//! the same message.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::rbac::v3::{Policy, Rbac, rbac::Action};
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, message, string};

/// `RBAC.policies`.
const POLICIES_FIELD: u32 = 2;

/// The `rules` field of the RBAC HTTP and network filter configs.
const RULES_FIELD: u32 = 1;

/// An `envoy.config.rbac.v3.RBAC` with `action` and `policies`, encoded.
pub fn rules(action: Action, policies: &BTreeMap<String, Policy>) -> Vec<u8> {
    let rbac = Rbac {
        action: action.into(),
        ..Rbac::default()
    };
    let mut buf = rbac.encode_to_vec();

    for (name, policy) in policies {
        let entry_len = string::encoded_len(1, name) + message::encoded_len(2, policy);
        encode_key(POLICIES_FIELD, WireType::LengthDelimited, &mut buf);
        encode_varint(entry_len as u64, &mut buf);
        string::encode(1, name, &mut buf);
        message::encode(2, policy, &mut buf);
    }
    buf
}

/// A filter config, encoded without its rules, followed by the encoded
/// `rules`. The field is written even when the rules are empty: a present,
/// empty ALLOW RBAC refuses everything, while an absent one enforces
/// nothing.
pub fn with_rules(mut config: Vec<u8>, rules: &[u8]) -> Vec<u8> {
    encode_key(RULES_FIELD, WireType::LengthDelimited, &mut config);
    encode_varint(rules.len() as u64, &mut config);
    config.extend_from_slice(rules);
    config
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::rbac::v3::{Permission, Principal};
    use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;

    use super::super::term::Matcher;
    use super::*;

    fn policies(names: &[&str]) -> BTreeMap<String, Policy> {
        let policy = |i: usize| Policy {
            permissions: vec![Permission::everything()],
            principals: vec![Principal::everything(); i + 1],
            ..Policy::default()
        };
        names
            .iter()
            .enumerate()
            .map(|(i, name)| (name.to_string(), policy(i)))
            .collect()
    }

    #[test]
    fn hand_encoded_map_decodes_to_the_same_rules() {
        let policies = policies(&["b", "a", "c"]);

        let decoded = Rbac::decode(&rules(Action::Deny, &policies)[..]).unwrap();

        assert_eq!(decoded.action, i32::from(Action::Deny));
        assert_eq!(decoded.policies.len(), 3);
        for (name, policy) in &policies {
            assert_eq!(&decoded.policies[name], policy);
        }
    }

    #[test]
    fn one_entry_encodes_as_prost_would() {
        let policies = policies(&["only"]);
        let rbac = Rbac {
            action: Action::Deny.into(),
            policies: policies.clone().into_iter().collect(),
            ..Rbac::default()
        };

        assert_eq!(rules(Action::Deny, &policies), rbac.encode_to_vec());
    }

    #[test]
    fn empty_rules_are_still_present_in_the_filter() {
        let config = with_rules(Vec::new(), &rules(Action::Allow, &BTreeMap::new()));

        let decoded = HttpRbac::decode(&config[..]).unwrap();

        assert_eq!(decoded.rules, Some(Rbac::default()));
    }
}
