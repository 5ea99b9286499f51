//! Which resolved addresses a marketer-typed webhook URL may reach. Private, loopback, link-local,
//! carrier-grade NAT, multicast, documentation and cloud-metadata ranges are refused unless an
//! operator allowlists them; checks run on resolved addresses, never on the URL's text.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Why an address was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0} is a loopback address")]
    Loopback(IpAddr),
    #[error("{0} is a private-network address")]
    Private(IpAddr),
    #[error("{0} is a link-local or cloud-metadata address")]
    LinkLocal(IpAddr),
    #[error("{0} is not a routable unicast address")]
    NotRoutable(IpAddr),
}

/// The operator's policy: internal ranges are refused except those listed.
#[derive(Clone, Debug, Default)]
pub struct AddressPolicy {
    allowed_private: Vec<IpNet>,
}

impl AddressPolicy {
    pub fn new(allowed_private: Vec<IpNet>) -> Self {
        Self { allowed_private }
    }

    /// Whether the operator allowlisted this address explicitly.
    pub fn is_allowlisted(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.allowed_private.iter().any(|net| net.contains(&ip))
    }

    /// Checks one resolved address.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refusal> {
        if self.is_allowlisted(ip) {
            return Ok(());
        }
        match canonical(ip) {
            IpAddr::V4(v4) => check_v4(v4),
            IpAddr::V6(v6) => check_v6(v6),
        }
    }
}

/// IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn check_v4(ip: Ipv4Addr) -> Result<(), Refusal> {
    let [a, b, ..] = ip.octets();
    let addr = IpAddr::V4(ip);
    if ip.is_loopback() {
        Err(Refusal::Loopback(addr))
    } else if ip.is_private()
        || (a == 100 && (64..128).contains(&b))
        || (a == 198 && (b == 18 || b == 19))
    {
        // RFC 1918, carrier-grade NAT (100.64/10) and benchmarking (198.18/15).
        Err(Refusal::Private(addr))
    } else if ip.is_link_local() {
        // 169.254/16 holds the cloud metadata endpoint 169.254.169.254.
        Err(Refusal::LinkLocal(addr))
    } else if ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || a >= 240
    {
        Err(Refusal::NotRoutable(addr))
    } else {
        Ok(())
    }
}

fn check_v6(ip: Ipv6Addr) -> Result<(), Refusal> {
    let addr = IpAddr::V6(ip);
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Err(Refusal::Loopback(addr))
    } else if first & 0xfe00 == 0xfc00 {
        // Unique local fc00::/7, including AWS's metadata fd00:ec2::254.
        Err(Refusal::Private(addr))
    } else if first & 0xffc0 == 0xfe80 {
        Err(Refusal::LinkLocal(addr))
    } else if ip.is_unspecified()
        || ip.is_multicast()
        || first == 0x2001 && ip.segments()[1] == 0x0db8
    {
        Err(Refusal::NotRoutable(addr))
    } else if ip.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || first == 0x2002 {
        // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address a gateway will reach.
        let octets = ip.octets();
        let v4 = if first == 0x2002 {
            Ipv4Addr::new(octets[2], octets[3], octets[4], octets[5])
        } else {
            Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15])
        };
        check_v4(v4)
    } else if (first == 0x0064 && ip.segments()[1] == 0xff9b) || first & 0xffc0 == 0xfec0 {
        // Local-use NAT64 (64:ff9b:1::/48) and deprecated site-local (fec0::/10) addresses.
        Err(Refusal::Private(addr))
    } else if first == 0x2001 && ip.segments()[1] == 0 {
        // Teredo tunnels (2001::/32) can lead anywhere.
        Err(Refusal::NotRoutable(addr))
    } else if let Some(v4) = ip.to_ipv4() {
        // NAT64 and the deprecated IPv4-compatible forms can reach IPv4 internals too.
        check_v4(v4)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_refused_by_default() {
        let policy = AddressPolicy::default();
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::",
        ] {
            assert!(policy.check(ip(bad)).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        let policy = AddressPolicy::default();
        for good in [
            "93.184.215.14",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(policy.check(ip(good)).is_ok(), "{good} should pass");
        }
    }

    #[test]
    fn operators_can_allowlist_internal_ranges() {
        let policy = AddressPolicy::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "10.0.0.0/16".parse().unwrap(),
        ]);
        assert!(policy.check(ip("127.0.0.1")).is_ok());
        assert!(policy.check(ip("::ffff:127.0.0.1")).is_ok());
        assert!(policy.check(ip("10.0.5.5")).is_ok());
        assert_eq!(
            policy.check(ip("10.1.0.1")),
            Err(Refusal::Private(ip("10.1.0.1")))
        );
    }
}
