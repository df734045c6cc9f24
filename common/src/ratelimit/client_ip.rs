//! The address a request came from, seen through trusted proxies.

use std::net::{IpAddr, SocketAddr};

use actix_web::HttpRequest;
use ipnet::IpNet;

/// The networks whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses a comma-separated list of CIDRs or plain addresses.
    pub fn parse(text: &str) -> Result<Self, String> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("TRUSTED_PROXIES: {s:?} is not a CIDR or an address"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the peer, unless the peer is a trusted proxy;
    /// then the right-most `X-Forwarded-For` hop that is not itself a
    /// trusted proxy. Hops to the left of that one were written by the
    /// client and prove nothing, so they are never used.
    pub fn client_ip(&self, req: &HttpRequest) -> Option<IpAddr> {
        let peer = req.peer_addr()?.ip().to_canonical();
        if !self.trusts(peer) {
            return Some(peer);
        }
        let mut client = peer;
        let hops = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect::<Vec<_>>();
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                // Garbage from whoever is left of the last trusted proxy.
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        Some(client)
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn request(peer: &str, forwarded: &[&str]) -> HttpRequest {
        let mut req = TestRequest::default().peer_addr(peer.parse().expect("socket address"));
        for value in forwarded {
            req = req.append_header(("X-Forwarded-For", *value));
        }
        req.to_http_request()
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("address"))
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").expect("cidrs");
        let req = request("203.0.113.7:5000", &["198.51.100.1"]);
        assert_eq!(proxies.client_ip(&req), ip("203.0.113.7"));
        let none = TrustedProxies::default();
        assert_eq!(none.client_ip(&req), ip("203.0.113.7"));
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.168.1.1").expect("cidrs");
        // The client forged the first entry; the ingress appended the real one.
        let req = request("10.1.2.3:443", &["1.2.3.4, 203.0.113.7"]);
        assert_eq!(proxies.client_ip(&req), ip("203.0.113.7"));
        // Two trusted proxies in a row, over two header lines.
        let req = request("10.1.2.3:443", &["6.6.6.6, 203.0.113.7", "192.168.1.1"]);
        assert_eq!(proxies.client_ip(&req), ip("203.0.113.7"));
        // With a port, and IPv4-mapped IPv6.
        let req = request("[::ffff:10.0.0.1]:443", &["203.0.113.9:1234"]);
        assert_eq!(proxies.client_ip(&req), ip("203.0.113.9"));
        // No header: the proxy itself.
        let req = request("10.1.2.3:443", &[]);
        assert_eq!(proxies.client_ip(&req), ip("10.1.2.3"));
        // Garbage stops the walk at the last address a trusted hop vouched for.
        let req = request("10.1.2.3:443", &["not-an-ip, 10.9.9.9"]);
        assert_eq!(proxies.client_ip(&req), ip("10.9.9.9"));
    }

    #[test]
    fn malformed_networks_are_refused() {
        assert!(TrustedProxies::parse("").is_ok());
        assert!(TrustedProxies::parse("10.0.0.0/8,::1/128").is_ok());
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.local").is_err());
    }
}
