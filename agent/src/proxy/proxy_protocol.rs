//! The PROXY protocol v2 header that inbound listeners can send to the
//! application before the caller's bytes, when
//! [`Settings::proxy_protocol`](super::Settings::proxy_protocol) is set.
//!
//! The header is the binary v2 form: the 12-byte signature, version 2 with
//! the PROXY command, TCP over IPv4 (or IPv6 when either address is IPv6,
//! IPv4 ones then written IPv4-mapped), the length of what follows, the
//! source (the caller) and destination (the address the caller reached)
//! addresses and ports, and one TLV:
//!
//! | type | length | value |
//! | --- | --- | --- |
//! | `0xE0` ([`SPIFFE_ID_TLV`]) | 2 bytes, big endian | the caller's verified SPIFFE ID, UTF-8 |
//!
//! `0xE0` is the first type the specification leaves to applications
//! (`PP2_TYPE_MIN_CUSTOM`). An application that reads the header can trust
//! the TLV because only the agent can reach `127.0.0.1:<app port>` with a
//! caller's bytes, and the agent always sends the header first.

use std::net::{IpAddr, SocketAddr};

/// The TLV type that carries the caller's SPIFFE ID.
pub const SPIFFE_ID_TLV: u8 = 0xE0;

/// The v2 signature that opens every header.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Version 2, command PROXY.
const VERSION_PROXY: u8 = 0x21;
const TCP_OVER_IPV4: u8 = 0x11;
const TCP_OVER_IPV6: u8 = 0x21;

/// The header for a connection from `source` to `destination` by the
/// caller `spiffe_id`.
///
/// # Panics
///
/// When `spiffe_id` is longer than 65,000 bytes. SPIFFE IDs are at most
/// 2,048, and the proxy refuses peers with longer ones.
pub fn header(source: SocketAddr, destination: SocketAddr, spiffe_id: &str) -> Vec<u8> {
    let (family, addresses) = addresses(source, destination);
    let length = u16::try_from(addresses.len() + 3 + spiffe_id.len())
        .expect("a SPIFFE ID of at most 2048 bytes");
    let tlv_length = length - 3 - addresses.len() as u16;

    let mut header = Vec::with_capacity(16 + usize::from(length));
    header.extend_from_slice(&SIGNATURE);
    header.extend_from_slice(&[VERSION_PROXY, family]);
    header.extend_from_slice(&length.to_be_bytes());
    header.extend_from_slice(&addresses);

    header.push(SPIFFE_ID_TLV);
    header.extend_from_slice(&tlv_length.to_be_bytes());
    header.extend_from_slice(spiffe_id.as_bytes());
    header
}

/// The address family byte and the address block: source address,
/// destination address, source port, destination port.
fn addresses(source: SocketAddr, destination: SocketAddr) -> (u8, Vec<u8>) {
    let mut block = Vec::with_capacity(36);
    match (source.ip(), destination.ip()) {
        (IpAddr::V4(from), IpAddr::V4(to)) => {
            block.extend_from_slice(&from.octets());
            block.extend_from_slice(&to.octets());
        }
        (from, to) => {
            block.extend_from_slice(&v6(from));
            block.extend_from_slice(&v6(to));
        }
    }
    let family = match block.len() {
        8 => TCP_OVER_IPV4,
        _ => TCP_OVER_IPV6,
    };

    block.extend_from_slice(&source.port().to_be_bytes());
    block.extend_from_slice(&destination.port().to_be_bytes());
    (family, block)
}

fn v6(address: IpAddr) -> [u8; 16] {
    match address {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// A reader of the headers [`header`] writes, for tests.
#[cfg(test)]
pub mod parse {
    use std::net::{IpAddr, SocketAddr};

    use super::{SIGNATURE, SPIFFE_ID_TLV, VERSION_PROXY};

    /// What a header says.
    #[derive(Debug, PartialEq, Eq)]
    pub struct Parsed {
        pub source: SocketAddr,
        pub destination: SocketAddr,
        pub spiffe_id: Option<String>,
        /// The header's length in bytes.
        pub length: usize,
    }

    /// Reads the header at the start of `bytes`; `None` when it is not a
    /// complete v2 PROXY header over TCP.
    pub fn parse(bytes: &[u8]) -> Option<Parsed> {
        let rest = bytes.strip_prefix(&SIGNATURE[..])?;
        let [command, family, high, low] = *rest.first_chunk::<4>()?;
        let body = rest[4..].get(..usize::from(u16::from_be_bytes([high, low])))?;
        let width = match (command, family) {
            (VERSION_PROXY, 0x11) => 4,
            (VERSION_PROXY, 0x21) => 16,
            _ => return None,
        };

        let ports = 2 * width;
        Some(Parsed {
            source: socket(body.get(..width)?, body.get(ports..ports + 2)?)?,
            destination: socket(body.get(width..ports)?, body.get(ports + 2..ports + 4)?)?,
            spiffe_id: spiffe_id(body.get(ports + 4..)?)?,
            length: 16 + body.len(),
        })
    }

    fn socket(ip: &[u8], port: &[u8]) -> Option<SocketAddr> {
        let ip = match ip.len() {
            4 => IpAddr::from(<[u8; 4]>::try_from(ip).ok()?),
            _ => IpAddr::from(<[u8; 16]>::try_from(ip).ok()?),
        };
        Some(SocketAddr::new(
            ip,
            u16::from_be_bytes(port.try_into().ok()?),
        ))
    }

    /// The value of the SPIFFE ID TLV, if any; `None` when the TLVs do not
    /// parse.
    fn spiffe_id(mut tlvs: &[u8]) -> Option<Option<String>> {
        let mut found = None;
        while let [kind, high, low, rest @ ..] = tlvs {
            let value = rest.get(..usize::from(u16::from_be_bytes([*high, *low])))?;
            if *kind == SPIFFE_ID_TLV {
                found = Some(String::from_utf8(value.to_vec()).ok()?);
            }
            tlvs = &rest[value.len()..];
        }
        tlvs.is_empty().then_some(found)
    }
}

#[cfg(test)]
mod tests {
    use super::parse::parse;
    use super::*;

    const ID: &str = "spiffe://td/ns/shop/sa/web";

    #[test]
    fn an_ipv4_header_carries_addresses_and_the_spiffe_id() {
        let source: SocketAddr = "10.0.0.5:40000".parse().unwrap();
        let destination: SocketAddr = "10.0.0.9:15008".parse().unwrap();

        let header = header(source, destination, ID);
        let parsed = parse(&header).unwrap();

        assert_eq!(&header[..12], &SIGNATURE);
        assert_eq!(header[12..14], [0x21, 0x11]);
        assert_eq!(parsed.source, source);
        assert_eq!(parsed.destination, destination);
        assert_eq!(parsed.spiffe_id.as_deref(), Some(ID));
        assert_eq!(parsed.length, header.len());
        assert_eq!(header.len(), 16 + 12 + 3 + ID.len());
    }

    #[test]
    fn mixed_families_are_written_as_ipv6() {
        let source: SocketAddr = "[2001:db8::1]:1234".parse().unwrap();
        let destination: SocketAddr = "127.0.0.1:80".parse().unwrap();

        let parsed = parse(&header(source, destination, ID)).unwrap();

        assert_eq!(parsed.source, source);
        assert_eq!(
            parsed.destination,
            "[::ffff:127.0.0.1]:80".parse::<SocketAddr>().unwrap()
        );
    }
}
