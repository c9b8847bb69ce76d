//! Codec tables and session behaviours, one test per behaviour, in virtual
//! time (`ms(n)` since an arbitrary epoch).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::*;
use crate::Redacted;
use crate::privacy::{CandidateType, Violation};

const RELAY: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
const CALL: &str = "0123456789abcdef0123456789abcdef";

/// A clean offer as webrtc-rs 0.17 writes it (trimmed).
const SDP: &str = "v=0\r\no=- 4323520447036563347 618839458 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\n";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn session() -> Session {
    Session::new(Config::new(CALL, vec![RELAY])).expect("a valid call id")
}

fn relay(port: u16) -> CandidateInit {
    CandidateInit::new(
        format!(
            "candidate:1403463512 1 udp 16777215 203.0.113.7 {port} typ relay raddr 0.0.0.0 rport 43210"
        ),
        Some("0".into()),
        Some(0),
    )
}

fn offer() -> Body {
    Body::Offer {
        sdp: Redacted::new(SDP.into()),
    }
}

fn envelope(generation: u32, seq: u64, body: Body) -> Envelope {
    Envelope {
        call: CALL.into(),
        generation,
        seq,
        body,
    }
}

fn ack(seqs: &[u64]) -> Envelope {
    envelope(
        0,
        0,
        Body::Ack {
            seqs: seqs.to_vec(),
        },
    )
}

/// Everything `session` transmits at `now`.
fn drain(session: &mut Session, now: Duration) -> Vec<Envelope> {
    std::iter::from_fn(|| session.poll_transmit(now)).collect()
}

fn acked_seqs(envelopes: &[Envelope]) -> Vec<u64> {
    envelopes
        .iter()
        .flat_map(|e| match &e.body {
            Body::Ack { seqs } => seqs.clone(),
            _ => Vec::new(),
        })
        .collect()
}

// ---- codec ----

#[test]
fn every_kind_has_a_fixed_json_shape() {
    let cases: Vec<(Envelope, &str)> = vec![
        (
            envelope(
                2,
                1,
                Body::Offer {
                    sdp: Redacted::new("v=0\r\n".into()),
                },
            ),
            r#"{"v":1,"call":"m1","gen":2,"seq":1,"body":{"type":"offer","sdp":"v=0\r\n"}}"#,
        ),
        (
            envelope(
                0,
                7,
                Body::Answer {
                    sdp: Redacted::new("v=0".into()),
                },
            ),
            r#"{"v":1,"call":"m1","gen":0,"seq":7,"body":{"type":"answer","sdp":"v=0"}}"#,
        ),
        (
            envelope(
                0,
                3,
                Body::Candidates {
                    list: vec![relay(5), CandidateInit::new("candidate:x", None, None)],
                },
            ),
            r#"{"v":1,"call":"m1","gen":0,"seq":3,"body":{"type":"candidates","list":[{"candidate":"candidate:1403463512 1 udp 16777215 203.0.113.7 5 typ relay raddr 0.0.0.0 rport 43210","sdpMid":"0","sdpMLineIndex":0},{"candidate":"candidate:x","sdpMid":null,"sdpMLineIndex":null}]}}"#,
        ),
        (
            envelope(1, 4, Body::EndOfCandidates),
            r#"{"v":1,"call":"m1","gen":1,"seq":4,"body":{"type":"end_of_candidates"}}"#,
        ),
        (
            envelope(
                0,
                5,
                Body::Bye {
                    reason: "hangup".into(),
                },
            ),
            r#"{"v":1,"call":"m1","gen":0,"seq":5,"body":{"type":"bye","reason":"hangup"}}"#,
        ),
        (
            envelope(
                0,
                0,
                Body::Ack {
                    seqs: vec![1, 2, 9],
                },
            ),
            r#"{"v":1,"call":"m1","gen":0,"seq":0,"body":{"type":"ack","seqs":[1,2,9]}}"#,
        ),
    ];
    for (mut env, json) in cases {
        env.call = "m1".into();
        assert_eq!(encode(&env).as_deref(), Ok(json));
        assert_eq!(decode(json).expect(json), env);
        let value = encode_value(&env).expect("valid");
        assert_eq!(
            value,
            serde_json::from_str::<serde_json::Value>(json).expect("JSON")
        );
        assert_eq!(decode_value(&value).expect(json), env);
    }
}

#[test]
fn optional_candidate_fields_may_be_absent() {
    let json = r#"{"v":1,"call":"m1","gen":0,"seq":1,"body":{"type":"candidates","list":[{"candidate":"candidate:x"}]}}"#;
    let Body::Candidates { list } = decode(json).expect("valid").body else {
        panic!("candidates");
    };
    assert_eq!(list, [CandidateInit::new("candidate:x", None, None)]);
}

/// What a malformed payload must decode to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fails {
    TooLarge,
    Shape,
    Version,
    UnknownKind,
    Invalid(InvalidEnvelope),
}

fn fails(error: &DecodeError) -> Fails {
    match error {
        DecodeError::TooLarge => Fails::TooLarge,
        DecodeError::Shape { .. } => Fails::Shape,
        DecodeError::UnsupportedVersion => Fails::Version,
        DecodeError::UnknownKind => Fails::UnknownKind,
        DecodeError::Invalid(rule) => Fails::Invalid(*rule),
    }
}

#[test]
fn malformed_payloads_are_rejected() {
    let with_body = |body: &str| format!(r#"{{"v":1,"call":"m1","gen":0,"seq":1,"body":{body}}}"#);
    let candidates = |n: usize, line: &str| {
        let one = format!(r#"{{"candidate":"{line}","sdpMid":"0","sdpMLineIndex":0}}"#);
        with_body(&format!(
            r#"{{"type":"candidates","list":[{}]}}"#,
            vec![one; n].join(",")
        ))
    };
    let many_acks = (1..=65)
        .map(|n: u64| n.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let cases: Vec<(&str, String, Fails)> = vec![
        ("not JSON", "hello".into(), Fails::Shape),
        ("truncated", r#"{"v":1,"call""#.into(), Fails::Shape),
        ("array", "[1]".into(), Fails::Shape),
        (
            "no version",
            r#"{"call":"m1","gen":0,"seq":1,"body":{"type":"end_of_candidates"}}"#.into(),
            Fails::Version,
        ),
        (
            "version 2",
            r#"{"v":2,"call":"m1","gen":0,"seq":1,"body":{"type":"end_of_candidates"},"extra":1}"#
                .into(),
            Fails::Version,
        ),
        (
            "version as text",
            r#"{"v":"1","call":"m1","gen":0,"seq":1,"body":{"type":"end_of_candidates"}}"#.into(),
            Fails::Version,
        ),
        (
            "unknown kind",
            with_body(r#"{"type":"renegotiate","x":1}"#),
            Fails::UnknownKind,
        ),
        (
            "kind not a string",
            with_body(r#"{"type":7}"#),
            Fails::Shape,
        ),
        ("no kind", with_body(r#"{"sdp":"v=0"}"#), Fails::Shape),
        (
            "unknown envelope field",
            r#"{"v":1,"call":"m1","gen":0,"seq":1,"ttl":3,"body":{"type":"end_of_candidates"}}"#
                .into(),
            Fails::Shape,
        ),
        (
            "unknown body field",
            with_body(r#"{"type":"offer","sdp":"v=0","ice":true}"#),
            Fails::Shape,
        ),
        (
            "field on a unit kind",
            with_body(r#"{"type":"end_of_candidates","n":1}"#),
            Fails::Shape,
        ),
        (
            "unknown candidate field",
            with_body(r#"{"type":"candidates","list":[{"candidate":"c","usernameFragment":"u"}]}"#),
            Fails::Shape,
        ),
        (
            "missing seq",
            r#"{"v":1,"call":"m1","gen":0,"body":{"type":"end_of_candidates"}}"#.into(),
            Fails::Shape,
        ),
        (
            "negative gen",
            r#"{"v":1,"call":"m1","gen":-1,"seq":1,"body":{"type":"end_of_candidates"}}"#.into(),
            Fails::Shape,
        ),
        (
            "gen beyond u32",
            r#"{"v":1,"call":"m1","gen":4294967296,"seq":1,"body":{"type":"end_of_candidates"}}"#
                .into(),
            Fails::Shape,
        ),
        (
            "sdp not a string",
            with_body(r#"{"type":"offer","sdp":1}"#),
            Fails::Shape,
        ),
        (
            "empty call",
            r#"{"v":1,"call":"","gen":0,"seq":1,"body":{"type":"end_of_candidates"}}"#.into(),
            Fails::Invalid(InvalidEnvelope::CallId),
        ),
        (
            "call with a slash",
            r#"{"v":1,"call":"a/b","gen":0,"seq":1,"body":{"type":"end_of_candidates"}}"#.into(),
            Fails::Invalid(InvalidEnvelope::CallId),
        ),
        (
            "call too long",
            format!(
                r#"{{"v":1,"call":"{}","gen":0,"seq":1,"body":{{"type":"end_of_candidates"}}}}"#,
                "a".repeat(65)
            ),
            Fails::Invalid(InvalidEnvelope::CallId),
        ),
        (
            "seq 0 on an offer",
            r#"{"v":1,"call":"m1","gen":0,"seq":0,"body":{"type":"offer","sdp":"v=0"}}"#.into(),
            Fails::Invalid(InvalidEnvelope::Seq),
        ),
        (
            "ack with a seq",
            r#"{"v":1,"call":"m1","gen":0,"seq":3,"body":{"type":"ack","seqs":[1]}}"#.into(),
            Fails::Invalid(InvalidEnvelope::Seq),
        ),
        (
            "empty sdp",
            with_body(r#"{"type":"answer","sdp":""}"#),
            Fails::Invalid(InvalidEnvelope::EmptySdp),
        ),
        (
            "sdp too large",
            with_body(&format!(
                r#"{{"type":"offer","sdp":"{}"}}"#,
                "a".repeat(MAX_SDP_BYTES + 1)
            )),
            Fails::Invalid(InvalidEnvelope::SdpTooLarge),
        ),
        (
            "empty batch",
            with_body(r#"{"type":"candidates","list":[]}"#),
            Fails::Invalid(InvalidEnvelope::EmptyBatch),
        ),
        (
            "33 candidates",
            candidates(33, "candidate:x"),
            Fails::Invalid(InvalidEnvelope::TooManyCandidates),
        ),
        (
            "empty candidate",
            candidates(1, ""),
            Fails::Invalid(InvalidEnvelope::EmptyCandidate),
        ),
        (
            "candidate too long",
            candidates(1, &"c".repeat(MAX_CANDIDATE_BYTES + 1)),
            Fails::Invalid(InvalidEnvelope::CandidateTooLong),
        ),
        (
            "sdpMid too long",
            with_body(&format!(
                r#"{{"type":"candidates","list":[{{"candidate":"c","sdpMid":"{}"}}]}}"#,
                "m".repeat(33)
            )),
            Fails::Invalid(InvalidEnvelope::SdpMidTooLong),
        ),
        (
            "empty reason",
            with_body(r#"{"type":"bye","reason":""}"#),
            Fails::Invalid(InvalidEnvelope::Reason),
        ),
        (
            "reason with a newline",
            with_body(r#"{"type":"bye","reason":"a\nb"}"#),
            Fails::Invalid(InvalidEnvelope::Reason),
        ),
        (
            "reason too long",
            with_body(&format!(
                r#"{{"type":"bye","reason":"{}"}}"#,
                "r".repeat(65)
            )),
            Fails::Invalid(InvalidEnvelope::Reason),
        ),
        (
            "ack of nothing",
            r#"{"v":1,"call":"m1","gen":0,"seq":0,"body":{"type":"ack","seqs":[]}}"#.into(),
            Fails::Invalid(InvalidEnvelope::EmptyAck),
        ),
        (
            "ack of seq 0",
            r#"{"v":1,"call":"m1","gen":0,"seq":0,"body":{"type":"ack","seqs":[0]}}"#.into(),
            Fails::Invalid(InvalidEnvelope::EmptyAck),
        ),
        (
            "65 acks",
            format!(
                r#"{{"v":1,"call":"m1","gen":0,"seq":0,"body":{{"type":"ack","seqs":[{many_acks}]}}}}"#
            ),
            Fails::Invalid(InvalidEnvelope::TooManyAcks),
        ),
        (
            "too large",
            format!(r#"{{"pad":"{}"}}"#, " ".repeat(MAX_ENVELOPE_BYTES)),
            Fails::TooLarge,
        ),
    ];
    for (name, json, expected) in cases {
        let error = decode(&json).expect_err(name);
        assert_eq!(fails(&error), expected, "{name}");
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&json) {
            let error = decode_value(&value).expect_err(name);
            assert_eq!(fails(&error), expected, "{name} as a value");
        }
    }
}

#[test]
fn decode_errors_do_not_print_the_payload() {
    let json =
        r#"{"v":1,"call":"m1","gen":"192.168.1.20","seq":1,"body":{"type":"end_of_candidates"}}"#;
    let error = decode(json).expect_err("gen is not a number");
    for shown in [format!("{error}"), format!("{error:?}")] {
        assert!(!shown.contains("192.168"), "{shown}");
    }
}

#[test]
fn encode_refuses_what_decode_would_reject() {
    let mut env = envelope(0, 0, offer());
    assert_eq!(encode(&env), Err(InvalidEnvelope::Seq));
    env.seq = 1;
    env.call = "not a call id".into();
    assert_eq!(encode(&env), Err(InvalidEnvelope::CallId));
    // Within the SDP limit, but quotes double in JSON.
    let quotes = envelope(
        0,
        1,
        Body::Offer {
            sdp: Redacted::new("\"".repeat(MAX_SDP_BYTES)),
        },
    );
    assert_eq!(encode(&quotes), Err(InvalidEnvelope::TooLarge));
    assert_eq!(encode_value(&quotes), Err(InvalidEnvelope::TooLarge));
}

#[test]
fn debug_output_hides_sdp_and_candidates() {
    let env = envelope(
        0,
        1,
        Body::Candidates {
            list: vec![relay(5)],
        },
    );
    let shown = format!("{env:?} {:?}", envelope(0, 2, offer()));
    assert!(!shown.contains("203.0"), "{shown}");
    assert!(!shown.contains("IN IP4"), "{shown}");
}

// ---- reliability ----

#[test]
fn a_message_goes_out_once_and_stops_when_acked() {
    let mut a = session();
    assert_eq!(a.send(offer(), ms(0)), Ok(1));
    assert_eq!(a.poll_timeout(), Some(ms(0)));
    let sent = drain(&mut a, ms(0));
    assert_eq!(sent, [envelope(0, 1, offer())]);
    assert_eq!(a.poll_timeout(), Some(INITIAL_RTO));
    assert!(drain(&mut a, ms(199)).is_empty());
    assert_eq!(drain(&mut a, ms(200)), [envelope(0, 1, offer())]);
    assert_eq!(a.poll_timeout(), Some(ms(600)));

    assert_eq!(a.handle_incoming(ack(&[1]), ms(250)), None);
    assert_eq!(a.poll_timeout(), None);
    assert!(drain(&mut a, ms(5_000)).is_empty());
    assert!(a.is_idle());
    let stats = a.stats();
    assert_eq!((stats.sent, stats.retransmissions, stats.acked), (1, 1, 1));
}

#[test]
fn retransmissions_back_off_then_give_up() {
    let mut a = session();
    a.send(offer(), ms(0)).expect("a clean offer");
    let mut sent_at = Vec::new();
    let mut now = ms(0);
    while a.poll_event().is_none() {
        sent_at.extend(drain(&mut a, now).iter().map(|_| now.as_millis()));
        let Some(next) = a.poll_timeout() else {
            break;
        };
        now = next;
    }
    assert_eq!(
        sent_at,
        [0, 200, 600, 1_400, 3_000, 5_000, 7_000, 9_000, 11_000]
    );
    assert_eq!(now, ms(13_000));
    assert_eq!(a.stats().given_up, 1);
    assert_eq!(a.stats().retransmissions, u64::from(MAX_RETRANSMISSIONS));
    assert!(a.is_idle());
    assert_eq!(a.poll_timeout(), None);
}

#[test]
fn give_up_is_reported_per_message() {
    let mut a = session();
    a.send(offer(), ms(0)).expect("a clean offer");
    a.send(
        Body::Bye {
            reason: "hangup".into(),
        },
        ms(100),
    )
    .expect("a bye");
    let mut events = Vec::new();
    while let Some(now) = a.poll_timeout() {
        drain(&mut a, now);
        events.extend(std::iter::from_fn(|| a.poll_event()).map(|e| (now.as_millis(), e)));
    }
    assert_eq!(
        events,
        [
            (
                13_000,
                Output::GaveUp {
                    seq: 1,
                    kind: Kind::Offer
                }
            ),
            (
                13_100,
                Output::GaveUp {
                    seq: 2,
                    kind: Kind::Bye
                }
            ),
        ]
    );
}

#[test]
fn a_duplicate_is_acked_again_but_delivered_once() {
    let mut b = session();
    let delivered = b.handle_incoming(envelope(0, 1, offer()), ms(0));
    assert_eq!(
        delivered,
        Some(Delivered {
            seq: 1,
            generation: 0,
            body: offer()
        })
    );
    assert!(drain(&mut b, ms(9)).is_empty(), "acks wait ACK_DELAY");
    assert_eq!(acked_seqs(&drain(&mut b, ms(10))), [1]);

    assert_eq!(b.handle_incoming(envelope(0, 1, offer()), ms(300)), None);
    assert_eq!(b.poll_timeout(), Some(ms(310)));
    assert_eq!(acked_seqs(&drain(&mut b, ms(310))), [1]);
    let stats = b.stats();
    assert_eq!((stats.delivered, stats.duplicates), (1, 1));
}

#[test]
fn acks_are_batched_and_repeated() {
    let mut b = session();
    for seq in [1, 3, 2] {
        assert!(
            b.handle_incoming(envelope(0, seq, Body::EndOfCandidates), ms(seq))
                .is_some()
        );
    }
    let first = drain(&mut b, ms(11));
    assert_eq!(first.len(), 1, "one ack for the three");
    assert_eq!(acked_seqs(&first), [1, 2, 3]);
    // The next acks repeat recent seqs, so one lost ack costs nothing.
    b.handle_incoming(envelope(0, 4, Body::EndOfCandidates), ms(50));
    assert_eq!(acked_seqs(&drain(&mut b, ms(60))), [4, 1, 2, 3]);
    b.handle_incoming(envelope(0, 5, Body::EndOfCandidates), ms(70));
    assert_eq!(acked_seqs(&drain(&mut b, ms(80))), [5, 1, 2, 3, 4]);
    b.handle_incoming(envelope(0, 6, Body::EndOfCandidates), ms(90));
    assert_eq!(
        acked_seqs(&drain(&mut b, ms(100))),
        [6, 4, 5],
        "1..=3 went out three times"
    );
}

#[test]
fn many_pending_acks_split_across_envelopes() {
    let mut b = session();
    for seq in 1..=(MAX_ACK_SEQS as u64 + 6) {
        b.handle_incoming(envelope(0, seq, Body::EndOfCandidates), ms(0));
    }
    let acks = drain(&mut b, ms(0));
    assert_eq!(acks.len(), 2, "a full ack, and the rest at once");
    let mut seqs = acked_seqs(&acks);
    assert_eq!(
        seqs.len(),
        2 * MAX_ACK_SEQS,
        "the second one fills up with repeats"
    );
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs, (1..=MAX_ACK_SEQS as u64 + 6).collect::<Vec<_>>());
    for env in &acks {
        assert!(encode(env).is_ok());
    }
}

#[test]
fn another_calls_envelopes_are_dropped_unacked() {
    let mut b = session();
    let mut other = envelope(0, 1, offer());
    other.call = "fedcba9876543210fedcba9876543210".into();
    assert_eq!(b.handle_incoming(other, ms(0)), None);
    assert_eq!(b.stats().wrong_call, 1);
    assert_eq!(b.poll_timeout(), None);
    // Its seq is still free for this call's own message 1.
    assert!(b.handle_incoming(envelope(0, 1, offer()), ms(1)).is_some());
}

#[test]
fn malformed_input_is_counted_and_not_acked() {
    let mut b = session();
    let bad =
        serde_json::json!({"v": 1, "call": CALL, "gen": 0, "seq": 1, "body": {"type": "warp"}});
    assert!(matches!(
        b.handle_payload(&bad, ms(0)),
        Err(DecodeError::UnknownKind)
    ));
    assert!(b.handle_payload(&serde_json::json!("hi"), ms(0)).is_err());
    // Built by hand, bypassing decode: still validated.
    assert_eq!(b.handle_incoming(envelope(0, 0, offer()), ms(0)), None);
    // Far beyond anything in flight.
    assert_eq!(
        b.handle_incoming(envelope(0, MAX_SEQ_AHEAD + 1, offer()), ms(0)),
        None
    );
    assert_eq!(b.stats().malformed, 4);
    assert_eq!(b.poll_timeout(), None);
    let good = encode_value(&envelope(0, 1, offer())).expect("valid");
    assert!(matches!(b.handle_payload(&good, ms(0)), Ok(Some(_))));
}

#[test]
fn acks_for_unknown_seqs_are_ignored() {
    let mut a = session();
    a.send(offer(), ms(0)).expect("a clean offer");
    a.handle_incoming(ack(&[7, 8]), ms(1));
    assert_eq!(a.stats().acked, 0);
    assert!(!a.is_idle());
}

// ---- generations ----

#[test]
fn candidates_of_an_older_generation_are_dropped_after_a_restart() {
    let mut a = session();
    a.set_generation(1).expect("forward");
    assert_eq!(a.generation(), 1);
    let old = envelope(
        0,
        1,
        Body::Candidates {
            list: vec![relay(5)],
        },
    );
    assert_eq!(a.handle_incoming(old, ms(0)), None);
    assert_eq!(
        a.handle_incoming(envelope(0, 2, Body::EndOfCandidates), ms(0)),
        None
    );
    assert_eq!(a.stats().stale_gen, 2);
    assert_eq!(
        acked_seqs(&drain(&mut a, ms(10))),
        [1, 2],
        "stale messages are acked"
    );
    let current = envelope(
        1,
        3,
        Body::Candidates {
            list: vec![relay(6)],
        },
    );
    assert!(a.handle_incoming(current, ms(20)).is_some());
}

#[test]
fn a_newer_offer_moves_the_answerer() {
    let mut b = session();
    let restart = envelope(3, 1, offer());
    assert_eq!(
        b.handle_incoming(restart, ms(0)).map(|d| d.generation),
        Some(3)
    );
    assert_eq!(b.generation(), 3);
    // Its own messages now carry the new generation.
    b.send(
        Body::Answer {
            sdp: Redacted::new(SDP.into()),
        },
        ms(1),
    )
    .expect("clean");
    let sent = drain(&mut b, ms(10));
    assert!(sent.iter().all(|e| e.generation == 3), "{sent:?}");
    // An old offer or answer is stale.
    assert_eq!(b.handle_incoming(envelope(2, 2, offer()), ms(20)), None);
    assert_eq!(b.stats().stale_gen, 1);
}

#[test]
fn newer_candidates_that_overtake_their_offer_are_delivered_with_their_generation() {
    let mut b = session();
    let early = envelope(
        1,
        2,
        Body::Candidates {
            list: vec![relay(5)],
        },
    );
    assert_eq!(
        b.handle_incoming(early, ms(0)).map(|d| d.generation),
        Some(1)
    );
    assert_eq!(b.generation(), 0, "only an offer moves the generation");
    assert!(b.handle_incoming(envelope(1, 1, offer()), ms(5)).is_some());
    assert_eq!(b.generation(), 1);
}

#[test]
fn an_answer_from_a_future_generation_is_stale() {
    let mut a = session();
    let answer = Body::Answer {
        sdp: Redacted::new(SDP.into()),
    };
    assert_eq!(a.handle_incoming(envelope(1, 1, answer), ms(0)), None);
    assert_eq!(a.stats().stale_gen, 1);
}

#[test]
fn a_bye_is_delivered_whatever_its_generation() {
    let mut a = session();
    a.set_generation(5).expect("forward");
    let bye = envelope(
        0,
        9,
        Body::Bye {
            reason: "hangup".into(),
        },
    );
    assert!(a.handle_incoming(bye, ms(0)).is_some());
}

#[test]
fn a_restart_supersedes_unacked_messages_of_the_old_generation() {
    let mut a = session();
    a.send(offer(), ms(0)).expect("clean");
    a.queue_candidate(relay(1), ms(0)).expect("relay");
    a.end_of_candidates(ms(0));
    a.queue_candidate(relay(2), ms(1)).expect("relay");
    a.send(
        Body::Bye {
            reason: "hangup".into(),
        },
        ms(1),
    )
    .expect("bye");
    assert_eq!(a.set_generation(1), Ok(()));
    assert_eq!(
        a.stats().superseded,
        3,
        "offer, candidates, end of candidates"
    );
    let sent = drain(&mut a, ms(30));
    assert_eq!(sent.len(), 1);
    assert!(matches!(sent[0].body, Body::Bye { .. }), "{sent:?}");
    assert_eq!(sent[0].generation, 0);
    assert_eq!(
        a.set_generation(0),
        Err(GenerationError {
            current: 1,
            requested: 0
        })
    );
    assert_eq!(a.set_generation(1), Ok(()));
}

// ---- privacy at the boundary ----

#[test]
fn only_clean_relay_candidates_and_sdps_can_be_sent() {
    let mut a = session();
    let refused: Vec<(&str, Result<(), SendError>)> = vec![
        (
            "host",
            a.queue_candidate(CandidateInit::new("candidate:2435463141 1 udp 2130706431 192.168.1.20 54321 typ host", Some("0".into()), Some(0)), ms(0)),
        ),
        (
            "srflx",
            a.queue_candidate(CandidateInit::new("candidate:1 1 udp 1694498815 198.51.100.23 61234 typ srflx raddr 192.168.1.20 rport 61234", None, None), ms(0)),
        ),
        (
            "relay with a LAN raddr",
            a.queue_candidate(CandidateInit::new("candidate:1 1 udp 16777215 203.0.113.7 5 typ relay raddr 192.168.1.20 rport 6", None, None), ms(0)),
        ),
        (
            "someone else's relay",
            a.queue_candidate(CandidateInit::new("candidate:1 1 udp 16777215 198.51.100.9 5 typ relay", None, None), ms(0)),
        ),
        (
            "candidates sent directly",
            a.send(Body::Candidates { list: vec![relay(5), CandidateInit::new("candidate:1 1 udp 1 10.0.0.5 5 typ host", None, None)] }, ms(0)).map(drop),
        ),
        (
            "offer with a LAN c=",
            a.send(Body::Offer { sdp: Redacted::new(SDP.replace("c=IN IP4 0.0.0.0", "c=IN IP4 10.0.0.5")) }, ms(0)).map(drop),
        ),
        (
            "answer with a host candidate",
            a.send(Body::Answer { sdp: Redacted::new(format!("{SDP}a=candidate:1 1 udp 2130706431 10.0.0.5 5 typ host\r\n")) }, ms(0)).map(drop),
        ),
    ];
    for (name, result) in &refused {
        assert!(
            matches!(result, Err(SendError::Privacy(_))),
            "{name}: {result:?}"
        );
        let shown = format!(
            "{result:?} {}",
            result
                .as_ref()
                .err()
                .map(ToString::to_string)
                .unwrap_or_default()
        );
        for secret in ["192.168", "198.51", "10.0"] {
            assert!(!shown.contains(secret), "{name}: {shown}");
        }
    }
    assert!(matches!(
        &refused[0].1,
        Err(SendError::Privacy(Violation::NotRelay {
            kind: CandidateType::Host
        }))
    ));
    assert_eq!(a.stats().refused, refused.len() as u64);
    assert_eq!(a.poll_timeout(), None, "nothing was queued");
    assert!(drain(&mut a, ms(1_000)).is_empty());
}

#[test]
fn other_refusals() {
    let mut a = session();
    assert_eq!(
        a.send(Body::Ack { seqs: vec![1] }, ms(0)),
        Err(SendError::AckIsInternal)
    );
    let long = CandidateInit::new(
        format!(
            "candidate:1 1 udp 16777215 203.0.113.7 5 typ relay x {}",
            "y".repeat(MAX_CANDIDATE_BYTES)
        ),
        None,
        None,
    );
    assert_eq!(
        a.queue_candidate(long, ms(0)),
        Err(SendError::Invalid(InvalidEnvelope::CandidateTooLong))
    );
    assert_eq!(
        a.send(
            Body::Bye {
                reason: String::new()
            },
            ms(0)
        ),
        Err(SendError::Invalid(InvalidEnvelope::Reason))
    );
    assert_eq!(
        a.send(
            Body::Offer {
                sdp: Redacted::new(String::new())
            },
            ms(0)
        ),
        Err(SendError::Invalid(InvalidEnvelope::EmptySdp))
    );
    assert_eq!(a.stats().refused, 4);
    assert!(Session::new(Config::new("", vec![])).is_err());
}

// ---- batching ----

#[test]
fn candidates_linger_then_go_out_together() {
    let mut a = session();
    for (t, port) in [(0, 1), (5, 2), (19, 3)] {
        a.queue_candidate(relay(port), ms(t)).expect("relay");
        assert!(drain(&mut a, ms(t)).is_empty());
        assert_eq!(a.poll_timeout(), Some(CANDIDATE_LINGER));
    }
    let sent = drain(&mut a, ms(20));
    assert_eq!(sent.len(), 1);
    let Body::Candidates { list } = &sent[0].body else {
        panic!("a batch");
    };
    assert_eq!(*list, [relay(1), relay(2), relay(3)]);
}

#[test]
fn a_full_batch_goes_out_at_once() {
    let mut a = session();
    for port in 0..=MAX_CANDIDATES_PER_BATCH as u16 {
        a.queue_candidate(relay(port), ms(0)).expect("relay");
    }
    let sent = drain(&mut a, ms(0));
    assert_eq!(sent.len(), 1);
    let Body::Candidates { list } = &sent[0].body else {
        panic!("a batch");
    };
    assert_eq!(list.len(), MAX_CANDIDATES_PER_BATCH);
    let text = encode(&sent[0]).expect("a full batch encodes");
    assert!(text.len() < MAX_ENVELOPE_BYTES);
    // The 33rd lingers in the next batch.
    assert_eq!(a.poll_timeout(), Some(CANDIDATE_LINGER));
    let next = drain(&mut a, CANDIDATE_LINGER);
    assert!(matches!(&next[0].body, Body::Candidates { list } if list.len() == 1));
}

#[test]
fn the_largest_batch_fits_the_envelope() {
    let longest = |port: u16| {
        let base = format!(
            "candidate:1 1 udp 16777215 203.0.113.7 {port} typ relay raddr 0.0.0.0 rport 0 x "
        );
        let pad = "y".repeat(MAX_CANDIDATE_BYTES - base.len());
        CandidateInit::new(
            format!("{base}{pad}"),
            Some("m".repeat(MAX_SDP_MID_BYTES)),
            Some(u16::MAX),
        )
    };
    let mut a = session();
    for port in 10_000..10_000 + MAX_CANDIDATES_PER_BATCH as u16 {
        a.queue_candidate(longest(port), ms(0))
            .expect("a long but valid relay");
    }
    let sent = drain(&mut a, ms(0));
    assert!(encode(&sent[0]).is_ok());
}

#[test]
fn end_of_candidates_flushes_first_and_waits_for_their_ack() {
    let mut a = session();
    a.queue_candidate(relay(1), ms(0)).expect("relay");
    assert_eq!(a.end_of_candidates(ms(3)), 2);
    let sent = drain(&mut a, ms(3));
    assert_eq!(sent.len(), 1, "end of candidates waits: {sent:?}");
    assert_eq!((sent[0].seq, sent[0].body.kind()), (1, Kind::Candidates));
    assert_eq!(
        a.poll_timeout(),
        Some(ms(203)),
        "only the batch's RTO is pending"
    );
    a.handle_incoming(ack(&[1]), ms(50));
    let sent = drain(&mut a, ms(50));
    assert_eq!(sent, [envelope(0, 2, Body::EndOfCandidates)]);
}

#[test]
fn end_of_candidates_is_released_when_its_candidates_are_given_up() {
    let mut a = session();
    a.queue_candidate(relay(1), ms(0)).expect("relay");
    a.end_of_candidates(ms(0));
    let mut eoc_at = None;
    while let Some(now) = a.poll_timeout() {
        for env in drain(&mut a, now) {
            if env.body == Body::EndOfCandidates && eoc_at.is_none() {
                eoc_at = Some(now);
            }
        }
    }
    assert_eq!(eoc_at, Some(ms(13_000)));
    assert_eq!(a.stats().given_up, 2);
}
