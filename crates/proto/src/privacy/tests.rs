//! Table-driven checks with lines as webrtc-rs 0.17 (and browsers) write them.

use std::net::{IpAddr, Ipv4Addr};

use super::*;

/// The relay address of the TURN allocation in these tests (TEST-NET-3).
const RELAY: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
const ALLOWED: &[IpAddr] = &[RELAY];

/// What a case expects: pass, or fail with this rule (compared by variant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Pass,
    Malformed,
    NotRelay(CandidateType),
    Tcp,
    Mdns,
    Hostname,
    RelayNotAllowed,
    RelatedAddress,
    AddressLiteral,
    Connection,
    Origin,
    Rtcp,
    MalformedSdp,
}

fn rule_of(result: Result<(), &Violation>) -> Rule {
    let Err(violation) = result else {
        return Rule::Pass;
    };
    match violation.root() {
        Violation::Malformed { .. } => Rule::Malformed,
        Violation::NotRelay { kind } => Rule::NotRelay(*kind),
        Violation::Tcp => Rule::Tcp,
        Violation::MdnsAddress { .. } => Rule::Mdns,
        Violation::HostnameAddress { .. } => Rule::Hostname,
        Violation::RelayNotAllowed { .. } => Rule::RelayNotAllowed,
        Violation::RelatedAddress { .. } => Rule::RelatedAddress,
        Violation::AddressLiteral { .. } => Rule::AddressLiteral,
        Violation::ConnectionAddress { .. } => Rule::Connection,
        Violation::OriginAddress { .. } => Rule::Origin,
        Violation::RtcpAddress { .. } => Rule::Rtcp,
        Violation::MalformedSdp { .. } => Rule::MalformedSdp,
        Violation::InSdp { .. } => unreachable!("root() unwraps InSdp"),
    }
}

/// Neither rendering of a violation may show any of the addresses in `input`.
fn assert_redacted(violation: &Violation, secrets: &[&str]) {
    for shown in [format!("{violation}"), format!("{violation:?}")] {
        for secret in secrets {
            assert!(!shown.contains(secret), "{shown:?} shows {secret}");
        }
    }
}

const CANDIDATES: &[(&str, &str, &[IpAddr], Rule)] = &[
    (
        "webrtc-rs 0.17 relay",
        "candidate:1403463512 1 udp 16777215 203.0.113.7 50123 typ relay raddr 0.0.0.0 rport 43210",
        ALLOWED,
        Rule::Pass,
    ),
    (
        "relay without the prefix",
        "1403463512 1 udp 16777215 203.0.113.7 50123 typ relay raddr 0.0.0.0 rport 43210",
        ALLOWED,
        Rule::Pass,
    ),
    (
        "relay without raddr",
        "candidate:1 1 UDP 16777215 203.0.113.7 50123 typ relay",
        ALLOWED,
        Rule::Pass,
    ),
    (
        "browser relay with extensions",
        "candidate:842163049 1 udp 41885439 203.0.113.7 60001 typ relay raddr 0.0.0.0 rport 0 generation 0 ufrag EEtu network-id 1 network-cost 10",
        ALLOWED,
        Rule::Pass,
    ),
    (
        "relay with raddr ::",
        "candidate:1 1 udp 16777215 203.0.113.7 50123 typ relay raddr :: rport 0",
        ALLOWED,
        Rule::Pass,
    ),
    (
        "IPv4-mapped relay address",
        "candidate:1 1 udp 16777215 ::ffff:203.0.113.7 50123 typ relay raddr 0.0.0.0 rport 0",
        ALLOWED,
        Rule::Pass,
    ),
    (
        "any relay address when none is configured",
        "candidate:1 1 udp 16777215 198.51.100.9 50123 typ relay raddr 0.0.0.0 rport 0",
        &[],
        Rule::Pass,
    ),
    (
        "host",
        "candidate:2435463141 1 udp 2130706431 192.168.1.20 54321 typ host",
        ALLOWED,
        Rule::NotRelay(CandidateType::Host),
    ),
    (
        "host with the relay's address",
        "candidate:2435463141 1 udp 2130706431 203.0.113.7 54321 typ host",
        ALLOWED,
        Rule::NotRelay(CandidateType::Host),
    ),
    (
        "srflx",
        "candidate:3528925834 1 udp 1694498815 198.51.100.23 61234 typ srflx raddr 192.168.1.20 rport 61234",
        ALLOWED,
        Rule::NotRelay(CandidateType::Srflx),
    ),
    (
        "prflx",
        "candidate:1 1 udp 1862270975 198.51.100.23 61234 typ prflx raddr 0.0.0.0 rport 0",
        ALLOWED,
        Rule::NotRelay(CandidateType::Prflx),
    ),
    (
        "host mDNS",
        "candidate:1 1 udp 2113937151 1f4712db-ea17-4bcf-a596-105139dfd8bf.local 54321 typ host generation 0",
        ALLOWED,
        Rule::NotRelay(CandidateType::Host),
    ),
    (
        "relay with an mDNS name",
        "candidate:1 1 udp 16777215 1f4712db-ea17-4bcf-a596-105139dfd8bf.local 50123 typ relay",
        &[],
        Rule::Mdns,
    ),
    (
        "relay with an mDNS name, upper case and a root dot",
        "candidate:1 1 udp 16777215 abc.LOCAL. 50123 typ relay",
        &[],
        Rule::Mdns,
    ),
    (
        "relay with a host name",
        "candidate:1 1 udp 16777215 turn.example.com 50123 typ relay",
        &[],
        Rule::Hostname,
    ),
    (
        "relay with a LAN raddr (webrtc-rs 0.21)",
        "candidate:1403463512 1 udp 16777215 203.0.113.7 50123 typ relay raddr 192.168.1.20 rport 43210",
        ALLOWED,
        Rule::RelatedAddress,
    ),
    (
        "relay with a public raddr",
        "candidate:1 1 udp 16777215 203.0.113.7 50123 typ relay raddr 198.51.100.23 rport 4",
        ALLOWED,
        Rule::RelatedAddress,
    ),
    (
        "relay with an mDNS raddr",
        "candidate:1 1 udp 16777215 203.0.113.7 50123 typ relay raddr abc.local rport 4",
        ALLOWED,
        Rule::RelatedAddress,
    ),
    (
        "relay with the relay's own address as raddr",
        "candidate:1 1 udp 16777215 203.0.113.7 50123 typ relay raddr 203.0.113.7 rport 4",
        ALLOWED,
        Rule::RelatedAddress,
    ),
    (
        "relay that is not ours",
        "candidate:1 1 udp 16777215 198.51.100.9 50123 typ relay raddr 0.0.0.0 rport 0",
        ALLOWED,
        Rule::RelayNotAllowed,
    ),
    (
        "relay on a private address that is not ours",
        "candidate:1 1 udp 16777215 10.1.2.3 50123 typ relay",
        ALLOWED,
        Rule::RelayNotAllowed,
    ),
    (
        "tcp relay",
        "candidate:1 1 tcp 16777215 203.0.113.7 50123 typ relay",
        ALLOWED,
        Rule::Tcp,
    ),
    (
        "tcptype on udp",
        "candidate:1 1 udp 16777215 203.0.113.7 9 typ relay tcptype passive",
        ALLOWED,
        Rule::Tcp,
    ),
    (
        "tcp host",
        "candidate:1 1 tcp 1518280447 192.168.1.20 9 typ host tcptype active",
        ALLOWED,
        Rule::Tcp,
    ),
    (
        "address in an extension",
        "candidate:1 1 udp 16777215 203.0.113.7 50123 typ relay network-addr 192.168.1.20",
        ALLOWED,
        Rule::AddressLiteral,
    ),
    (
        "IPv6 address in an extension",
        "candidate:1 1 udp 16777215 203.0.113.7 50123 typ relay x fe80::1",
        ALLOWED,
        Rule::AddressLiteral,
    ),
    ("empty", "", ALLOWED, Rule::Malformed),
    ("prefix only", "candidate:", ALLOWED, Rule::Malformed),
    (
        "too few fields",
        "candidate:1 1 udp 16777215 203.0.113.7 50123 typ",
        ALLOWED,
        Rule::Malformed,
    ),
    (
        "unknown type",
        "candidate:1 1 udp 16777215 203.0.113.7 50123 typ relayed",
        ALLOWED,
        Rule::Malformed,
    ),
    (
        "no typ keyword",
        "candidate:1 1 udp 16777215 203.0.113.7 50123 type relay",
        ALLOWED,
        Rule::Malformed,
    ),
    (
        "dangling extension",
        "candidate:1 1 udp 16777215 203.0.113.7 50123 typ relay generation",
        ALLOWED,
        Rule::Malformed,
    ),
    (
        "raddr without rport",
        "candidate:1 1 udp 16777215 203.0.113.7 50123 typ relay raddr 0.0.0.0",
        ALLOWED,
        Rule::Malformed,
    ),
    (
        "raddr twice",
        "candidate:1 1 udp 16777215 203.0.113.7 1 typ relay raddr 0.0.0.0 rport 0 raddr 10.0.0.1 rport 1",
        ALLOWED,
        Rule::Malformed,
    ),
    (
        "port out of range",
        "candidate:1 1 udp 16777215 203.0.113.7 70000 typ relay",
        ALLOWED,
        Rule::Malformed,
    ),
    (
        "component zero",
        "candidate:1 0 udp 16777215 203.0.113.7 5000 typ relay",
        ALLOWED,
        Rule::Malformed,
    ),
    (
        "foundation with a dot",
        "candidate:10.0.0.1 1 udp 16777215 203.0.113.7 5000 typ relay",
        ALLOWED,
        Rule::Malformed,
    ),
    (
        "embedded newline",
        "candidate:1 1 udp 16777215 203.0.113.7 5000 typ relay\r\na=x 10.0.0.1",
        ALLOWED,
        Rule::Malformed,
    ),
    (
        "zone index",
        "candidate:1 1 udp 16777215 fe80::1%eth0 5000 typ relay",
        ALLOWED,
        Rule::Malformed,
    ),
];

#[test]
fn candidates() {
    for &(name, line, allowed, expected) in CANDIDATES {
        let result = check_candidate(line, allowed);
        assert_eq!(
            rule_of(result.as_ref().map(drop)),
            expected,
            "{name}: {line}"
        );
        match result {
            Ok(safe) => assert_eq!(safe.as_str(), line, "{name}"),
            Err(violation) => assert_redacted(
                &violation,
                &[
                    "192.168", "198.51", "203.0", "10.1", "fe80", "1f4712db", "abc", "example",
                ],
            ),
        }
    }
}

#[test]
fn a_parsed_candidate_has_every_field() {
    let line = "candidate:842163049 1 udp 41885439 203.0.113.7 60001 typ relay raddr 0.0.0.0 rport 52345 generation 0 ufrag EEtu";
    let candidate = parse_candidate(line).expect("a valid line");
    assert_eq!(candidate.foundation, "842163049");
    assert_eq!(candidate.component, 1);
    assert_eq!(candidate.transport, Transport::Udp);
    assert_eq!(candidate.priority, 41_885_439);
    assert_eq!(candidate.address.expose(), &Address::Ip(RELAY));
    assert_eq!(candidate.port, 60001);
    assert_eq!(candidate.kind, CandidateType::Relay);
    assert_eq!(
        candidate
            .related_address
            .as_ref()
            .map(|a| a.expose().clone()),
        Some(Address::Ip(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))
    );
    assert_eq!(candidate.related_port, Some(52345));
    assert_eq!(candidate.tcp_type, None);
    let extensions: Vec<(&str, &str)> = candidate
        .extensions
        .iter()
        .map(|(n, v)| (n.as_str(), v.expose().as_str()))
        .collect();
    assert_eq!(extensions, [("generation", "0"), ("ufrag", "EEtu")]);
    let shown = format!("{candidate:?}");
    assert!(!shown.contains("203.0"), "{shown}");
}

#[test]
fn scrubbing_fixes_a_lan_raddr_and_nothing_else() {
    const CASES: &[(&str, &str, Rule)] = &[
        (
            "candidate:1403463512 1 udp 16777215 203.0.113.7 50123 typ relay raddr 192.168.1.20 rport 43210",
            "candidate:1403463512 1 udp 16777215 203.0.113.7 50123 typ relay raddr 0.0.0.0 rport 0",
            Rule::Pass,
        ),
        (
            "1 1 udp 16777215 203.0.113.7 50123 typ relay raddr fe80::1 rport 9 generation 0",
            "1 1 udp 16777215 203.0.113.7 50123 typ relay raddr 0.0.0.0 rport 0 generation 0",
            Rule::Pass,
        ),
        (
            "candidate:1 1 udp 16777215 203.0.113.7 50123 typ relay",
            "candidate:1 1 udp 16777215 203.0.113.7 50123 typ relay",
            Rule::Pass,
        ),
        (
            "candidate:3528925834 1 udp 1694498815 198.51.100.23 61234 typ srflx raddr 192.168.1.20 rport 61234",
            "candidate:3528925834 1 udp 1694498815 198.51.100.23 61234 typ srflx raddr 0.0.0.0 rport 0",
            Rule::NotRelay(CandidateType::Srflx),
        ),
        ("too short raddr 1", "too short raddr 1", Rule::Malformed),
        // A foundation that happens to be "raddr" is not a related address.
        (
            "raddr 1 udp 16777215 203.0.113.7 50123 typ relay",
            "raddr 1 udp 16777215 203.0.113.7 50123 typ relay",
            Rule::Pass,
        ),
    ];
    for &(line, scrubbed, after) in CASES {
        let out = scrub_related_address(line);
        assert_eq!(out, scrubbed, "{line}");
        assert_eq!(
            rule_of(check_candidate(&out, ALLOWED).as_ref().map(drop)),
            after,
            "{line}"
        );
    }
}

/// An audio-only offer as webrtc-rs 0.17 writes it, with one relay
/// candidate inline. `%C%` is replaced by the `c=` address under test.
const OFFER: &str = "v=0\r
o=- 4323520447036563347 618839458 IN IP4 0.0.0.0\r
s=-\r
t=0 0\r
a=fingerprint:sha-256 9C:2B:4E:11:83:0F:6A:D2:7B:C1:5E:90:AA:31:04:F7:62:8D:BE:19:C3:57:0A:E4:2F:96:D8:7C:13:B5:48:E0\r
a=extmap-allow-mixed\r
a=group:BUNDLE 0\r
m=audio 9 UDP/TLS/RTP/SAVPF 111 9 0 8\r
c=IN IP4 %C%\r
a=setup:actpass\r
a=mid:0\r
a=ice-ufrag:QbVdSwBXeGTvYxVf\r
a=ice-pwd:tQzUEKxNcYwMpBqRsEtAHXnDfLjvOGiW\r
a=rtcp-mux\r
a=rtcp-rsize\r
a=rtpmap:111 opus/48000/2\r
a=fmtp:111 minptime=10;useinbandfec=1\r
a=rtcp-fb:111 transport-cc \r
a=rtpmap:9 G722/8000\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=extmap:1 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r
a=extmap:2 urn:ietf:params:rtp-hdrext:sdes:mid\r
a=ssrc:2951278331 cname:gNXVYAaWKJqZpQbe\r
a=ssrc:2951278331 msid:gNXVYAaWKJqZpQbe audio\r
a=msid:gNXVYAaWKJqZpQbe audio\r
a=sendrecv\r
a=candidate:1403463512 1 udp 16777215 203.0.113.7 50123 typ relay raddr 0.0.0.0 rport 43210\r
a=end-of-candidates\r
";

fn offer_with(c: &str) -> String {
    OFFER.replace("%C%", c)
}

/// Replaces the first line starting with `prefix` by `line`.
fn offer_with_line(prefix: &str, line: &str) -> String {
    offer_with("0.0.0.0")
        .split("\r\n")
        .map(|l| if l.starts_with(prefix) { line } else { l })
        .collect::<Vec<_>>()
        .join("\r\n")
}

#[test]
fn sdps() {
    let cases: Vec<(&str, String, &[IpAddr], Rule)> = vec![
        (
            "clean webrtc-rs offer",
            offer_with("0.0.0.0"),
            ALLOWED,
            Rule::Pass,
        ),
        (
            "same with \\n only",
            offer_with("0.0.0.0").replace("\r\n", "\n"),
            ALLOWED,
            Rule::Pass,
        ),
        (
            "c= with the relay address",
            offer_with("203.0.113.7"),
            ALLOWED,
            Rule::Pass,
        ),
        (
            "c= with IPv6 ::",
            offer_with_line("c=", "c=IN IP6 ::"),
            ALLOWED,
            Rule::Pass,
        ),
        (
            "a=rtcp port only",
            offer_with_line("a=rtcp-mux", "a=rtcp:9"),
            ALLOWED,
            Rule::Pass,
        ),
        (
            "a=rtcp unspecified",
            offer_with_line("a=rtcp-mux", "a=rtcp:9 IN IP4 0.0.0.0"),
            ALLOWED,
            Rule::Pass,
        ),
        ("empty SDP", String::new(), ALLOWED, Rule::Pass),
        (
            "any relay candidate when none is configured",
            offer_with_line(
                "a=candidate",
                "a=candidate:1 1 udp 16777215 198.51.100.9 5 typ relay",
            ),
            &[],
            Rule::Pass,
        ),
        (
            "private IPv4 in c=",
            offer_with("192.168.1.20"),
            ALLOWED,
            Rule::Connection,
        ),
        (
            "public IPv4 in c=",
            offer_with("198.51.100.23"),
            ALLOWED,
            Rule::Connection,
        ),
        (
            "c= with a TTL",
            offer_with("10.0.0.1/127"),
            ALLOWED,
            Rule::Connection,
        ),
        (
            "c= with a host name",
            offer_with("host.example.com"),
            ALLOWED,
            Rule::Connection,
        ),
        (
            "relay c= without configured relays",
            offer_with("203.0.113.7"),
            &[],
            Rule::Connection,
        ),
        (
            "truncated c=",
            offer_with_line("c=", "c=IN IP4"),
            ALLOWED,
            Rule::MalformedSdp,
        ),
        (
            "browser o= with a LAN address",
            offer_with_line("o=", "o=- 1 2 IN IP4 192.168.1.20"),
            ALLOWED,
            Rule::Origin,
        ),
        (
            "o= with loopback",
            offer_with_line("o=", "o=- 1 2 IN IP4 127.0.0.1"),
            ALLOWED,
            Rule::Origin,
        ),
        (
            "truncated o=",
            offer_with_line("o=", "o=- 1 2"),
            ALLOWED,
            Rule::MalformedSdp,
        ),
        (
            "a=rtcp with a LAN address",
            offer_with_line("a=rtcp-mux", "a=rtcp:9 IN IP4 10.0.0.5"),
            ALLOWED,
            Rule::Rtcp,
        ),
        (
            "a=rtcp with two fields",
            offer_with_line("a=rtcp-mux", "a=rtcp:9 IN"),
            ALLOWED,
            Rule::MalformedSdp,
        ),
        (
            "host candidate",
            offer_with_line(
                "a=candidate",
                "a=candidate:2435463141 1 udp 2130706431 192.168.1.20 54321 typ host",
            ),
            ALLOWED,
            Rule::NotRelay(CandidateType::Host),
        ),
        (
            "srflx candidate",
            offer_with_line(
                "a=candidate",
                "a=candidate:1 1 udp 1694498815 198.51.100.23 6 typ srflx raddr 10.0.0.5 rport 6",
            ),
            ALLOWED,
            Rule::NotRelay(CandidateType::Srflx),
        ),
        (
            "relay candidate with a LAN raddr",
            offer_with_line(
                "a=candidate",
                "a=candidate:1 1 udp 16777215 203.0.113.7 5 typ relay raddr 10.0.0.5 rport 6",
            ),
            ALLOWED,
            Rule::RelatedAddress,
        ),
        (
            "address in an unknown attribute",
            offer_with_line("a=sendrecv", "a=x-local-address:10.0.0.5"),
            ALLOWED,
            Rule::AddressLiteral,
        ),
        (
            "address with a port",
            offer_with_line("a=sendrecv", "a=x:192.168.1.20:5000"),
            ALLOWED,
            Rule::AddressLiteral,
        ),
        (
            "address glued to digits",
            offer_with_line("a=sendrecv", "a=x:9192.168.1.20"),
            ALLOWED,
            Rule::AddressLiteral,
        ),
        (
            "remote-candidates",
            offer_with_line("a=sendrecv", "a=remote-candidates:1 192.168.1.20 5000"),
            ALLOWED,
            Rule::AddressLiteral,
        ),
        (
            "link-local IPv6",
            offer_with_line("a=sendrecv", "a=x fe80::1c2d:3eff:fe4f:5a6b"),
            ALLOWED,
            Rule::AddressLiteral,
        ),
        (
            "IPv4-mapped IPv6",
            offer_with_line("a=sendrecv", "a=x ::ffff:c0a8:114"),
            ALLOWED,
            Rule::AddressLiteral,
        ),
        (
            "IPv6 in c=",
            offer_with_line("c=", "c=IN IP6 2001:db8::5"),
            ALLOWED,
            Rule::Connection,
        ),
        (
            "a fingerprint line that is not a hash is scanned",
            offer_with_line("a=fingerprint", "a=fingerprint:sha-256 fe80::1"),
            ALLOWED,
            Rule::AddressLiteral,
        ),
        (
            "address in the session name",
            offer_with_line("s=", "s=192.168.1.20"),
            ALLOWED,
            Rule::AddressLiteral,
        ),
    ];
    for (name, sdp, allowed, expected) in cases {
        let result = check_sdp(&sdp, allowed);
        assert_eq!(rule_of(result.as_ref().copied()), expected, "{name}");
        if let Err(violation) = &result {
            assert!(matches!(violation, Violation::InSdp { .. }), "{name}");
            assert_redacted(
                violation,
                &["192.168", "198.51", "10.0", "fe80", "2001", "c0a8", "127.0"],
            );
        }
    }
}

#[test]
fn sdp_violations_name_the_line() {
    let sdp = offer_with("192.168.1.20");
    let Err(Violation::InSdp { line, cause }) = check_sdp(&sdp, ALLOWED) else {
        panic!("a LAN c= must fail");
    };
    assert_eq!(line, 9);
    assert!(matches!(*cause, Violation::ConnectionAddress { .. }));
    assert_eq!(
        format!("{}", Violation::InSdp { line, cause }),
        "SDP line 9: c= connection address is neither unspecified nor an allowed relay address"
    );
}

#[test]
fn literal_scanner() {
    use super::literal::find_foreign;
    const CASES: &[(&str, Option<&str>)] = &[
        ("nothing here", None),
        ("opus/48000/2 minptime=10", None),
        ("version 1.2.3", None),
        ("0.0.0.0 and :: and 203.0.113.7", None),
        ("10.0.0.1", Some("10.0.0.1")),
        ("x10.0.0.1y", Some("10.0.0.1")),
        ("1.2.3.4.5", Some("1.2.3.4.5")),
        ("203.0.113.7.", None),
        ("[2001:db8::1]:443", Some("2001:db8::1")),
        ("::ffff:203.0.113.7", None),
        ("::ffff:10.0.0.1", Some("10.0.0.1")),
        ("cname:abc msid:def", None),
        ("ab:cd:ef", Some("ab:cd:ef")),
    ];
    for &(text, expected) in CASES {
        assert_eq!(find_foreign(text, ALLOWED), expected, "{text}");
    }
}
