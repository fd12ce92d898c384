//! Patterns as documents write them, classified for agents: text with `*`
//! becomes a [`pb::StringMatch`], an IP block becomes a [`pb::IpNetwork`].

use std::net::IpAddr;

use palisade_proto::xds as pb;
use pb::string_match::Pattern;

/// Classifies a text pattern: `*` matches anything, a trailing `*` makes a
/// prefix, a leading `*` a suffix, and anything else is exact. An identity
/// prefix such as `spiffe://td/ns/shop/*` keeps its `/`.
pub(super) fn string_match(pattern: &str) -> pb::StringMatch {
    let pattern = if pattern == "*" {
        Pattern::Any(true)
    } else if let Some(prefix) = pattern.strip_suffix('*') {
        Pattern::Prefix(prefix.to_owned())
    } else if let Some(suffix) = pattern.strip_prefix('*') {
        Pattern::Suffix(suffix.to_owned())
    } else {
        Pattern::Exact(pattern.to_owned())
    };
    pb::StringMatch {
        pattern: Some(pattern),
    }
}

/// Classifies every pattern of a list, in order.
pub(super) fn string_matches(patterns: &[String]) -> Vec<pb::StringMatch> {
    patterns.iter().map(|p| string_match(p)).collect()
}

/// Parses a CIDR block, or a single address as a /32 or /128, clearing the
/// host bits; `None` when it is neither.
pub(super) fn ip_network(block: &str) -> Option<pb::IpNetwork> {
    let (address, written_len) = match block.split_once('/') {
        Some((address, len)) => (
            address.parse::<IpAddr>().ok()?,
            Some(len.parse::<u32>().ok()?),
        ),
        None => (block.parse::<IpAddr>().ok()?, None),
    };

    let (address, prefix_len) = match address {
        IpAddr::V4(v4) => {
            let len = written_len.unwrap_or(32);
            let mask = u32::MAX.checked_shl(32u32.checked_sub(len)?).unwrap_or(0);
            ((u32::from(v4) & mask).to_be_bytes().to_vec(), len)
        }
        IpAddr::V6(v6) => {
            let len = written_len.unwrap_or(128);
            let mask = u128::MAX.checked_shl(128u32.checked_sub(len)?).unwrap_or(0);
            ((u128::from(v6) & mask).to_be_bytes().to_vec(), len)
        }
    };
    Some(pb::IpNetwork {
        address,
        prefix_len,
    })
}

/// Parses every block of a list, in order; `None` when any does not parse.
pub(super) fn ip_networks(blocks: &[String]) -> Option<Vec<pb::IpNetwork>> {
    blocks.iter().map(|b| ip_network(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(block: &str) -> (Vec<u8>, u32) {
        let network = ip_network(block).unwrap();
        (network.address, network.prefix_len)
    }

    #[test]
    fn text_patterns_are_classified_by_where_the_star_is() {
        let pattern = |s| string_match(s).pattern.unwrap();

        assert_eq!(pattern("*"), Pattern::Any(true));
        assert_eq!(pattern("/api/*"), Pattern::Prefix("/api/".into()));
        assert_eq!(pattern("*.png"), Pattern::Suffix(".png".into()));
        assert_eq!(pattern("/healthz"), Pattern::Exact("/healthz".into()));
        assert_eq!(
            pattern("spiffe://td/ns/shop/*"),
            Pattern::Prefix("spiffe://td/ns/shop/".into())
        );
    }

    #[test]
    fn ip_blocks_become_networks_with_host_bits_cleared() {
        assert_eq!(network("10.1.2.3/8"), (vec![10, 0, 0, 0], 8));
        assert_eq!(network("10.1.2.3"), (vec![10, 1, 2, 3], 32));
        assert_eq!(network("0.0.0.0/0"), (vec![0; 4], 0));

        let mut v6 = vec![0x20, 0x01, 0x0d, 0xb8];
        v6.extend([0; 12]);
        assert_eq!(network("2001:db8:ffff::1/32"), (v6, 32));
        let mut loopback = vec![0; 15];
        loopback.push(1);
        assert_eq!(network("::1"), (loopback, 128));
    }

    #[test]
    fn what_is_not_an_ip_block_is_refused() {
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0",
            "example.com",
            "10.0.0.0/",
            "",
        ] {
            assert_eq!(ip_network(bad), None, "{bad}");
        }
        assert_eq!(ip_networks(&["10.0.0.0/8".into(), "nope".into()]), None);
    }
}
