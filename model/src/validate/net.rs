//! Network vocabulary: ports, IP addresses and blocks, host names and URLs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::names::is_dns1123_subdomain;

/// A port number, 1 to 65535.
pub(crate) fn port(port: u16) -> Result<(), String> {
    if port == 0 {
        return Err("0 is not a port (1-65535)".to_owned());
    }
    Ok(())
}

/// A port number written as text, as in a condition's values.
pub(crate) fn port_text(s: &str) -> Result<(), String> {
    match s.parse::<u16>() {
        Ok(number) if number > 0 => Ok(()),
        _ => Err(format!("{s:?} is not a port (1-65535)")),
    }
}

/// An IP address, v4 or v6.
pub(crate) fn ip(s: &str) -> Result<(), String> {
    s.parse::<IpAddr>()
        .map(drop)
        .map_err(|_| format!("{s:?} is not an IP address"))
}

/// A CIDR block or a single address, v4 or v6.
pub(crate) fn ip_block(s: &str) -> Result<(), String> {
    if s.parse::<IpNet>().is_ok() || s.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    Err(format!("{s:?} is not a CIDR"))
}

/// Where a host can be reached: an IP address or a DNS name.
pub(crate) fn address(s: &str) -> Result<(), String> {
    if s.parse::<IpAddr>().is_ok() || is_dns1123_subdomain(s) {
        return Ok(());
    }
    Err(format!("{s:?} is not an IP address or DNS name"))
}

/// An https URL.
pub(crate) fn https_url(s: &str) -> Result<(), String> {
    let url = Url::parse(s).map_err(|problem| format!("{s:?} is not a URL: {problem}"))?;
    if url.scheme != "https" {
        return Err(format!("{s:?} is not an https URL"));
    }
    Ok(())
}

/// A token issuer: an https URL, or for development an http URL on localhost,
/// with no query or fragment.
pub(crate) fn issuer_url(s: &str) -> Result<(), String> {
    let url = Url::parse(s).map_err(|problem| format!("{s:?} is not a URL: {problem}"))?;
    let local = matches!(url.host.as_str(), "localhost" | "127.0.0.1");

    if url.scheme != "https" && !(url.scheme == "http" && local) {
        return Err(format!(
            "{s:?} is not an https URL (plain http is allowed only for localhost and 127.0.0.1)"
        ));
    }
    if url.has_query_or_fragment {
        return Err(format!(
            "{s:?} is not an issuer: an issuer URL takes no query or fragment"
        ));
    }
    Ok(())
}

/// The parts of an absolute URL that Palisade checks.
struct Url<'a> {
    scheme: &'a str,
    host: String,
    has_query_or_fragment: bool,
}

impl<'a> Url<'a> {
    fn parse(s: &'a str) -> Result<Url<'a>, &'static str> {
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("whitespace is not allowed");
        }
        let (scheme, rest) = s.split_once("://").ok_or("it has no scheme")?;

        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.contains('@') {
            return Err("user info is not allowed");
        }

        let host = host(authority)?.to_ascii_lowercase();
        let has_query_or_fragment = tail.contains(['?', '#']);
        Ok(Url {
            scheme,
            host,
            has_query_or_fragment,
        })
    }
}

/// The host of `host[:port]` or `[v6]:port`, checked.
fn host(authority: &str) -> Result<&str, &'static str> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (v6, after) = bracketed
                .split_once(']')
                .ok_or("an IPv6 host lacks its ']'")?;
            v6.parse::<Ipv6Addr>()
                .map_err(|_| "the IPv6 host is not an address")?;
            (
                v6,
                after
                    .strip_prefix(':')
                    .or_else(|| (!after.is_empty()).then_some("")),
            )
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };

    if port.is_some_and(|port| port_text(port).is_err()) {
        return Err("the port is not a number from 1 to 65535");
    }
    let bracketed = authority.starts_with('[');
    let lower = host.to_ascii_lowercase();
    if !bracketed && lower.parse::<Ipv4Addr>().is_err() && !is_dns1123_subdomain(&lower) {
        return Err("the host is not a DNS name or IP address");
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_is_refused() {
        assert_eq!(port(0).unwrap_err(), "0 is not a port (1-65535)");
        assert_eq!(port(65535), Ok(()));
        assert!(port_text("65536").is_err());
        assert_eq!(port_text("443"), Ok(()));
    }

    #[test]
    fn ip_blocks_take_cidrs_and_single_addresses() {
        for good in [
            "10.0.0.0/8",
            "10.1.2.3",
            "10.1.2.3/32",
            "::1",
            "2001:db8::/32",
            "0.0.0.0/0",
        ] {
            assert_eq!(ip_block(good), Ok(()), "{good}");
        }
        assert_eq!(
            ip_block("10.0.0.0/33").unwrap_err(),
            "\"10.0.0.0/33\" is not a CIDR"
        );
        for bad in ["10.0.0", "2001:db8::/129", "example.com", "10.0.0.0/", ""] {
            assert!(ip_block(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses_are_ips_or_dns_names() {
        for good in ["10.0.0.1", "fe80::1", "web-1.example.com"] {
            assert_eq!(address(good), Ok(()), "{good}");
        }
        for bad in ["", "web_1", "10.0.0.1:80", "Web.example.com"] {
            assert!(address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn https_urls_are_checked_for_scheme_and_host() {
        for good in [
            "https://id.example.com/.well-known/jwks.json",
            "https://id.example.com:8443/keys?kid=1",
            "https://[2001:db8::1]:443/keys",
            "https://10.0.0.1/keys",
        ] {
            assert_eq!(https_url(good), Ok(()), "{good}");
        }
        assert_eq!(
            https_url("http://id.example.com").unwrap_err(),
            "\"http://id.example.com\" is not an https URL"
        );
        for bad in [
            "id.example.com",
            "https://",
            "https://a@b.com",
            "https://a.com:0",
            "https://a b.com",
            "https://[::1",
        ] {
            assert!(https_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn issuers_allow_plain_http_only_on_localhost() {
        for good in [
            "https://id.example.com",
            "http://localhost:8080",
            "http://127.0.0.1/realms/dev",
        ] {
            assert_eq!(issuer_url(good), Ok(()), "{good}");
        }
        assert!(
            issuer_url("http://id.example.com")
                .unwrap_err()
                .contains("plain http is allowed only")
        );
        assert!(
            issuer_url("https://id.example.com/?tenant=1")
                .unwrap_err()
                .contains("no query")
        );
        assert!(issuer_url("").is_err());
    }
}
