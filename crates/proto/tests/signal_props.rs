//! Properties of the signalling codec and the privacy checks: nothing
//! panics on any input, valid envelopes survive the trip, and no string
//! holding a foreign IPv4 literal ever passes as safe to signal.

use std::net::{IpAddr, Ipv4Addr};

use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use serde_json::Value;
use std::time::Duration;
use voicemeet_proto::Redacted;
use voicemeet_proto::privacy::{
    check_candidate, check_sdp, parse_candidate, scrub_related_address,
};

use voicemeet_proto::signal::{
    self, Body, CandidateInit, Config, Envelope, MAX_ACK_SEQS, MAX_CANDIDATES_PER_BATCH, Session,
};

/// Any JSON value whose strings come from `strings`.
fn json_with(strings: BoxedStrategy<String>, depth: u32) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1_000_i32..1_000).prop_map(|n| Value::from(f64::from(n) / 8.0)),
        strings.clone().prop_map(Value::String),
    ];
    leaf.prop_recursive(depth, 32, 5, move |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            btree_map(strings.clone(), inner, 0..5)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Strings that are often the envelope's own keys and kinds, so that random
/// objects get past the first checks.
fn words() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "v", "call", "gen", "seq", "body", "type", "offer", "answer", "candidates",
            "end_of_candidates", "bye", "ack", "sdp", "list", "candidate", "sdpMid",
            "sdpMLineIndex", "reason", "seqs", "m1",
        ])
        .prop_map(String::from),
        1 => any::<String>(),
    ]
    .boxed()
}

/// Objects shaped like envelopes with random parts.
fn envelope_like() -> impl Strategy<Value = Value> {
    let part = || json_with(words(), 2);
    (
        prop_oneof![Just(Value::from(1)), part()],
        prop_oneof![Just(Value::from("m1")), part()],
        prop_oneof![any::<u32>().prop_map(Value::from), part()],
        prop_oneof![any::<u64>().prop_map(Value::from), part()],
        words(),
        btree_map(words(), part(), 0..4),
    )
        .prop_map(|(v, call, generation, seq, kind, mut body)| {
            body.insert("type".into(), Value::String(kind));
            serde_json::json!({"v": v, "call": call, "gen": generation, "seq": seq, "body": body.into_iter().collect::<serde_json::Map<_, _>>()})
        })
}

fn candidate_init() -> impl Strategy<Value = CandidateInit> {
    (
        "[ -!#-\\[\\]-~]{1,512}",
        option::of("[a-z0-9]{0,32}"),
        option::of(any::<u16>()),
    )
        .prop_map(|(line, mid, index)| CandidateInit::new(line, mid, index))
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        "(?s).{1,2000}".prop_map(|sdp| Body::Offer {
            sdp: Redacted::new(sdp)
        }),
        "(?s).{1,2000}".prop_map(|sdp| Body::Answer {
            sdp: Redacted::new(sdp)
        }),
        vec(candidate_init(), 1..=MAX_CANDIDATES_PER_BATCH)
            .prop_map(|list| Body::Candidates { list }),
        Just(Body::EndOfCandidates),
        "[ -~]{1,64}".prop_map(|reason| Body::Bye { reason }),
        vec(1..u64::MAX, 1..=MAX_ACK_SEQS).prop_map(|seqs| Body::Ack { seqs }),
    ]
}

fn envelope() -> impl Strategy<Value = Envelope> {
    ("[A-Za-z0-9_-]{1,64}", any::<u32>(), 1..u64::MAX, body()).prop_map(
        |(call, generation, seq, body)| {
            let seq = if matches!(body, Body::Ack { .. }) {
                0
            } else {
                seq
            };
            Envelope {
                call,
                generation,
                seq,
                body,
            }
        },
    )
}

proptest! {
    #[test]
    fn decode_never_panics_on_strings(text in any::<String>()) {
        let _ = signal::decode(&text);
    }

    #[test]
    fn decode_never_panics_on_json(value in json_with(words(), 4)) {
        let _ = signal::decode_value(&value);
        let _ = signal::decode(&value.to_string());
    }

    #[test]
    fn decode_never_panics_on_envelope_like_json(value in envelope_like()) {
        let from_value = signal::decode_value(&value).ok();
        let from_text = signal::decode(&value.to_string()).ok();
        prop_assert_eq!(from_value, from_text);
    }

    #[test]
    fn valid_envelopes_round_trip(envelope in envelope()) {
        match signal::encode(&envelope) {
            Ok(text) => {
                prop_assert!(text.len() <= signal::MAX_ENVELOPE_BYTES);
                prop_assert_eq!(signal::decode(&text).ok(), Some(envelope.clone()));
                let value = signal::encode_value(&envelope).expect("encodes as text");
                prop_assert_eq!(signal::decode_value(&value).ok(), Some(envelope));
            }
            // Only the total size can fail for generated envelopes.
            Err(error) => prop_assert_eq!(error, signal::InvalidEnvelope::TooLarge),
        }
    }

    #[test]
    fn privacy_checks_never_panic(text in any::<String>(), ip in any::<Ipv4Addr>()) {
        let allowed = [IpAddr::V4(ip)];
        let _ = check_candidate(&text, &allowed);
        let _ = check_candidate(&text, &[]);
        let _ = parse_candidate(&text);
        let _ = check_sdp(&text, &allowed);
        let _ = scrub_related_address(&text);
    }

    #[test]
    fn privacy_checks_never_panic_on_candidate_like_lines(
        fields in vec(prop_oneof![
            prop::sample::select(vec!["candidate:1", "1", "udp", "tcp", "typ", "relay", "host", "raddr", "rport", "0.0.0.0", "::", "tcptype", "a.local"]).prop_map(String::from),
            any::<Ipv4Addr>().prop_map(|ip| ip.to_string()),
            "[0-9a-f:.]{0,12}",
            any::<String>(),
        ], 0..14),
    ) {
        let line = fields.join(" ");
        let _ = check_candidate(&line, &[IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7))]);
        let scrubbed = scrub_related_address(&line);
        let _ = check_candidate(&scrubbed, &[]);
        let _ = check_sdp(&format!("a={line}\r\nc=IN IP4 {line}"), &[]);
    }

    /// Whatever surrounds it, an SDP holding an IPv4 literal that is neither
    /// unspecified nor allowed fails. (The literal must not run into digits
    /// or dots of its surroundings: `1` + `10.0.0.1` is `110.0.0.1`, a
    /// different address.)
    #[test]
    fn a_foreign_ipv4_literal_never_passes_check_sdp(
        prefix in any::<String>(),
        suffix in any::<String>(),
        template in 0..8_usize,
        literal in any::<Ipv4Addr>(),
        allowed in vec(any::<Ipv4Addr>(), 1..4),
        relay_index in any::<prop::sample::Index>(),
    ) {
        let allowed: Vec<IpAddr> = allowed.into_iter().map(IpAddr::V4).collect();
        prop_assume!(!literal.is_unspecified() && !allowed.contains(&IpAddr::V4(literal)));
        let relay = relay_index.get(&allowed);
        let templates = [
            format!("{literal}"),
            format!("c=IN IP4 {literal}"),
            format!("o=- 1 2 IN IP4 {literal}"),
            format!("a=rtcp:9 IN IP4 {literal}"),
            format!("a=candidate:1 1 udp 16777215 {literal} 5000 typ relay raddr 0.0.0.0 rport 0"),
            format!("a=candidate:1 1 udp 16777215 {relay} 5000 typ relay raddr {literal} rport 0"),
            format!("a=candidate:1 1 udp 16777215 {relay} 5000 typ relay network {literal}"),
            format!("a=remote-candidates:1 {literal} 5000"),
        ];
        let middle = &templates[template];
        let glue = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit() || c == '.');
        let before = if glue(prefix.chars().next_back()) { " " } else { "" };
        let after = if glue(suffix.chars().next()) { " " } else { "" };
        for sdp in [
            format!("{prefix}{before}{middle}{after}{suffix}"),
            format!("{prefix}\r\n{middle}\r\n{suffix}"),
        ] {
            prop_assert!(check_sdp(&sdp, &allowed).is_err(), "{:?} passed", sdp);
        }
    }

    /// The same for a single candidate line.
    #[test]
    fn a_foreign_ipv4_literal_never_passes_check_candidate(
        position in 0..10_usize,
        literal in any::<Ipv4Addr>(),
        relay in any::<Ipv4Addr>(),
    ) {
        prop_assume!(!literal.is_unspecified() && literal != relay);
        let mut fields: Vec<String> = "candidate:1 1 udp 16777215 R 5000 typ relay raddr 0.0.0.0 rport 0"
            .split(' ')
            .map(|f| if f == "R" { relay.to_string() } else { f.to_owned() })
            .collect();
        if position < fields.len() {
            fields[position] = literal.to_string();
        } else {
            fields.extend(["x".to_owned(), literal.to_string()]);
        }
        let line = fields.join(" ");
        prop_assert!(check_candidate(&line, &[IpAddr::V4(relay)]).is_err(), "{} passed", line);
    }

    /// Scrubbing any related address of a real relay candidate makes it pass.
    #[test]
    fn scrubbing_makes_any_relay_related_address_pass(raddr in any::<IpAddr>(), rport in any::<u16>()) {
        let line = format!("candidate:1 1 udp 16777215 203.0.113.7 5000 typ relay raddr {raddr} rport {rport}");
        let relay = [IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7))];
        prop_assert!(check_candidate(&scrub_related_address(&line), &relay).is_ok());
    }

    /// Whatever the call engine asks it to send, a session never puts a
    /// candidate or SDP on the wire that fails the privacy checks.
    #[test]
    fn a_session_never_emits_a_leak(
        steps in vec((
            0..4_usize,
            prop::sample::select(vec!["host", "srflx", "prflx", "relay", "relay", "relay"]),
            prop::sample::select(vec!["udp", "udp", "tcp"]),
            prop_oneof![
                Just(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7))),
                Just(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                any::<IpAddr>(),
            ],
            prop_oneof![Just(None), Just(Some("0.0.0.0".to_owned())), any::<IpAddr>().prop_map(|ip| Some(ip.to_string()))],
            1..50_u64,
        ), 1..40),
    ) {
        let allowed = vec![IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7))];
        let mut session = Session::new(Config::new("m1", allowed.clone())).expect("valid call id");
        let mut now = Duration::ZERO;
        let mut emitted = Vec::new();
        for (action, kind, transport, address, raddr, wait) in steps {
            let related = raddr.map(|r| format!(" raddr {r} rport 9")).unwrap_or_default();
            let line = format!("candidate:1 1 {transport} 16777215 {address} 5000 typ {kind}{related}");
            let sdp = format!("v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 {address}\r\na={line}\r\n");
            let _ = match action {
                0 => session.queue_candidate(CandidateInit::new(line, Some("0".into()), Some(0)), now),
                1 => session.send(Body::Candidates { list: vec![CandidateInit::new(line, None, None)] }, now).map(drop),
                2 => session.send(Body::Offer { sdp: Redacted::new(sdp) }, now).map(drop),
                _ => session.send(Body::Answer { sdp: Redacted::new(sdp) }, now).map(drop),
            };
            now += Duration::from_millis(wait);
            emitted.extend(std::iter::from_fn(|| session.poll_transmit(now)));
        }
        while let Some(deadline) = session.poll_timeout() {
            now = now.max(deadline);
            emitted.extend(std::iter::from_fn(|| session.poll_transmit(now)));
        }
        for envelope in emitted {
            prop_assert!(signal::encode(&envelope).is_ok());
            match &envelope.body {
                Body::Offer { sdp } | Body::Answer { sdp } => {
                    prop_assert!(check_sdp(sdp.expose(), &allowed).is_ok());
                }
                Body::Candidates { list } => {
                    for candidate in list {
                        prop_assert!(check_candidate(candidate.candidate.expose(), &allowed).is_ok());
                    }
                }
                Body::EndOfCandidates | Body::Bye { .. } | Body::Ack { .. } => {}
            }
        }
    }
}
