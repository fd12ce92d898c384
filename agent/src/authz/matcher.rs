//! The building blocks of compiled rules: text patterns, IP networks, and
//! lists of either that must (or must not) match.

use std::net::IpAddr;

use palisade_proto::xds as pb;
use pb::string_match::Pattern as Kind;

/// A compiled [`pb::StringMatch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// Any value, present or not.
    Any,
    Exact(String),
    Prefix(String),
    Suffix(String),
}

impl Pattern {
    /// `None` when the pattern has no kind (a newer control plane's, or a
    /// damaged one).
    pub fn compile(pattern: &pb::StringMatch) -> Option<Self> {
        let compiled = match pattern.pattern.as_ref()? {
            Kind::Any(_) => Pattern::Any,
            Kind::Exact(text) => Pattern::Exact(text.clone()),
            Kind::Prefix(text) => Pattern::Prefix(text.clone()),
            Kind::Suffix(text) => Pattern::Suffix(text.clone()),
        };
        Some(compiled)
    }

    /// Whether `value` matches; only [`Pattern::Any`] matches a missing one.
    pub fn matches(&self, value: Option<&str>) -> bool {
        match (self, value) {
            (Pattern::Any, _) => true,
            (_, None) => false,
            (Pattern::Exact(text), Some(value)) => value == text,
            (Pattern::Prefix(text), Some(value)) => value.starts_with(text.as_str()),
            (Pattern::Suffix(text), Some(value)) => value.ends_with(text.as_str()),
        }
    }
}

/// A compiled [`pb::IpNetwork`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix_len: u32,
}

impl Network {
    /// `None` when the address is neither 4 nor 16 bytes or the prefix is
    /// longer than the address.
    pub fn compile(network: &pb::IpNetwork) -> Option<Self> {
        let address = match network.address.len() {
            4 => IpAddr::from(<[u8; 4]>::try_from(&network.address[..]).ok()?),
            16 => IpAddr::from(<[u8; 16]>::try_from(&network.address[..]).ok()?),
            _ => return None,
        };
        let bits = if address.is_ipv4() { 32 } else { 128 };

        (network.prefix_len <= bits).then_some(Self {
            address,
            prefix_len: network.prefix_len,
        })
    }

    /// Whether `address` is in the network; IPv4 addresses are only in IPv4
    /// networks, and IPv6 in IPv6 ones.
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.address, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix_len).unwrap_or(0);
                (u32::from(network) ^ u32::from(address)) & mask == 0
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix_len).unwrap_or(0);
                (u128::from(network) ^ u128::from(address)) & mask == 0
            }
            _ => false,
        }
    }
}

/// One list of a rule: any of its entries must match, or none of them.
/// A list that is empty, or that the agent cannot read, is a constant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Test<T> {
    Known(bool),
    AnyOf(Vec<T>),
    NoneOf(Vec<T>),
}

impl<T> Test<T> {
    /// Holds when any entry of `entries` matches; always when there are
    /// none; `unreadable` when an entry does not compile.
    pub fn listed<M>(entries: &[M], compile: impl Fn(&M) -> Option<T>, unreadable: bool) -> Self {
        Self::compiled(entries, compile, unreadable).map_or_else(|known| known, Test::AnyOf)
    }

    /// Holds when no entry of `entries` matches; always when there are
    /// none; `unreadable` when an entry does not compile.
    pub fn unlisted<M>(entries: &[M], compile: impl Fn(&M) -> Option<T>, unreadable: bool) -> Self {
        Self::compiled(entries, compile, unreadable).map_or_else(|known| known, Test::NoneOf)
    }

    /// The compiled entries, or the constant the list stands for.
    fn compiled<M>(
        entries: &[M],
        compile: impl Fn(&M) -> Option<T>,
        unreadable: bool,
    ) -> Result<Vec<T>, Self> {
        if entries.is_empty() {
            return Err(Test::Known(true));
        }
        entries
            .iter()
            .map(compile)
            .collect::<Option<Vec<_>>>()
            .ok_or(Test::Known(unreadable))
    }

    /// Whether the list holds, given how one entry matches.
    pub fn holds(&self, matches: impl Fn(&T) -> bool) -> bool {
        match self {
            Test::Known(value) => *value,
            Test::AnyOf(entries) => entries.iter().any(matches),
            Test::NoneOf(entries) => !entries.iter().any(matches),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(address: &[u8], prefix_len: u32) -> Option<Network> {
        Network::compile(&pb::IpNetwork {
            address: address.to_vec(),
            prefix_len,
        })
    }

    #[test]
    fn patterns_match_by_kind() {
        let value = Some("spiffe://td/ns/shop/sa/web");

        assert!(Pattern::Exact("spiffe://td/ns/shop/sa/web".into()).matches(value));
        assert!(!Pattern::Exact("spiffe://td/ns/shop".into()).matches(value));
        assert!(Pattern::Prefix("spiffe://td/ns/shop/".into()).matches(value));
        assert!(Pattern::Suffix("/sa/web".into()).matches(value));
        assert!(!Pattern::Suffix("/sa/api".into()).matches(value));
        assert!(Pattern::Any.matches(None));
        assert!(!Pattern::Prefix(String::new()).matches(None));
    }

    #[test]
    fn a_pattern_without_a_kind_does_not_compile() {
        assert_eq!(Pattern::compile(&pb::StringMatch { pattern: None }), None);
    }

    #[test]
    fn networks_contain_their_addresses_only() {
        let ten = network(&[10, 0, 0, 0], 8).unwrap();
        let one = network(&[192, 0, 2, 7], 32).unwrap();
        let all = network(&[0, 0, 0, 0], 0).unwrap();
        let mut v6 = vec![0x20, 0x01, 0x0d, 0xb8];
        v6.extend([0; 12]);
        let doc = network(&v6, 32).unwrap();

        assert!(ten.contains("10.200.1.2".parse().unwrap()));
        assert!(!ten.contains("11.0.0.1".parse().unwrap()));
        assert!(one.contains("192.0.2.7".parse().unwrap()));
        assert!(!one.contains("192.0.2.8".parse().unwrap()));
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        assert!(!all.contains("::1".parse().unwrap()));
        assert!(doc.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!doc.contains("2001:db9::5".parse().unwrap()));
    }

    #[test]
    fn malformed_networks_do_not_compile() {
        assert_eq!(network(&[10, 0, 0], 8), None);
        assert_eq!(network(&[10, 0, 0, 0], 33), None);
        assert_eq!(network(&[0; 16], 129), None);
    }

    #[test]
    fn lists_hold_as_any_of_or_none_of() {
        let compile = |n: &u32| Some(*n);
        let odd = |n: &u32| n % 2 == 1;

        assert!(Test::listed(&[2, 3], compile, false).holds(odd));
        assert!(!Test::listed(&[2, 4], compile, false).holds(odd));
        assert!(Test::unlisted(&[2, 4], compile, false).holds(odd));
        assert!(!Test::unlisted(&[2, 3], compile, false).holds(odd));
        assert_eq!(Test::listed(&[], compile, false), Test::Known(true));
        assert_eq!(Test::unlisted(&[], compile, false), Test::Known(true));
    }

    #[test]
    fn an_unreadable_entry_makes_the_list_a_constant() {
        let compile = |n: &u32| (*n != 0).then_some(*n);

        assert_eq!(Test::listed(&[1, 0], compile, false), Test::Known(false));
        assert_eq!(Test::unlisted(&[1, 0], compile, true), Test::Known(true));
    }
}
