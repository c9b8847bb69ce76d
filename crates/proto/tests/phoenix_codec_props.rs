//! Properties of the Phoenix codec: decoders never panic on any input, and
//! every message that can be encoded decodes back to itself.

use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use serde_json::Value;
use voicemeet_proto::phoenix::{
    self, Broadcast, BroadcastBody, DecodeError, EncodeError, Frame, MAX_FRAME_BYTES, Message,
    Payload, Vsn,
};

/// Any JSON value whose strings come from `strings`. Floats are binary
/// fractions only: serde_json's default float parser may be one ULP off for
/// arbitrary ones, which is its behaviour, not the codec's.
fn json_with(strings: BoxedStrategy<String>, depth: u32) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1_000_000_i32..1_000_000).prop_map(|n| Value::from(f64::from(n) / 8.0)),
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

fn json() -> impl Strategy<Value = Value> {
    json_with(any::<String>().boxed(), 4)
}

/// At most 63 chars of at most 4 bytes each, so it fits a u8 length.
fn short() -> BoxedStrategy<String> {
    "(?s).{0,63}".boxed()
}

/// Binary frames write a null ref as an empty one, so only non-empty refs
/// survive the trip as `Some`.
fn binary_ref() -> impl Strategy<Value = Option<String>> {
    option::of("(?s).{1,63}")
}

fn metadata() -> impl Strategy<Value = Option<Value>> {
    option::of(
        json_with("(?s).{0,8}".boxed(), 2)
            .prop_filter("fits a u8 length", |v| v.to_string().len() <= 255),
    )
}

fn broadcast() -> impl Strategy<Value = Broadcast> {
    let body = prop_oneof![
        json().prop_map(BroadcastBody::Json),
        vec(any::<u8>(), 0..64).prop_map(BroadcastBody::Binary),
    ];
    (short(), metadata(), body).prop_map(|(event, metadata, body)| Broadcast {
        event,
        metadata,
        body,
    })
}

fn json_broadcast() -> impl Strategy<Value = Broadcast> {
    (short(), metadata(), json()).prop_map(|(event, metadata, body)| Broadcast {
        event,
        metadata,
        body: BroadcastBody::Json(body),
    })
}

/// A message in any text shape: arbitrary refs, topic, event and payload.
fn json_message() -> impl Strategy<Value = Message> {
    (
        option::of(any::<String>()),
        option::of(any::<String>()),
        any::<String>(),
        any::<String>(),
        json(),
    )
        .prop_map(|(join_ref, msg_ref, topic, event, payload)| Message {
            join_ref,
            msg_ref,
            topic,
            event,
            payload: Payload::Json(payload),
        })
}

/// A message that fits the kind-3 layout.
fn broadcast_message() -> impl Strategy<Value = Message> {
    (binary_ref(), binary_ref(), short(), broadcast()).prop_map(|(join_ref, msg_ref, topic, b)| {
        Message::broadcast(topic, b).with_refs(join_ref, msg_ref)
    })
}

fn decode(vsn: Vsn, frame: &Frame) -> Result<Message, DecodeError> {
    match frame {
        Frame::Text(text) => phoenix::decode_text(vsn, text, MAX_FRAME_BYTES),
        Frame::Binary(bytes) => phoenix::decode_binary(vsn, bytes, MAX_FRAME_BYTES),
    }
}

fn vsn() -> impl Strategy<Value = Vsn> {
    prop_oneof![Just(Vsn::V1), Just(Vsn::V2)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn decode_text_never_panics(vsn in vsn(), text in any::<String>()) {
        let _ = phoenix::decode_text(vsn, &text, MAX_FRAME_BYTES);
    }

    #[test]
    fn decode_text_never_panics_on_json(vsn in vsn(), value in json()) {
        let _ = phoenix::decode_text(vsn, &value.to_string(), MAX_FRAME_BYTES);
    }

    #[test]
    fn decode_text_never_panics_on_short_arrays(vsn in vsn(), items in vec(json(), 0..8)) {
        let _ = phoenix::decode_text(vsn, &Value::Array(items).to_string(), MAX_FRAME_BYTES);
    }

    #[test]
    fn decode_binary_never_panics(vsn in vsn(), bytes in vec(any::<u8>(), 0..512)) {
        let _ = phoenix::decode_binary(vsn, &bytes, MAX_FRAME_BYTES);
    }

    /// Random bytes rarely get past the kind byte; these headers have small
    /// lengths, so the field reads and the JSON parsing get exercised.
    #[test]
    fn decode_binary_never_panics_on_plausible_frames(
        kind in 3_u8..=4,
        header in vec(0_u8..8, 6),
        rest in vec(any::<u8>(), 0..48),
    ) {
        let frame = [&[kind][..], &header, &rest].concat();
        let _ = phoenix::decode_binary(Vsn::V2, &frame, MAX_FRAME_BYTES);
    }

    #[test]
    fn every_prefix_of_a_binary_frame_decodes_or_errors(msg in broadcast_message(), server in any::<bool>()) {
        let encoded = if server { phoenix::encode(Vsn::V2, &msg) } else { phoenix::encode_push(Vsn::V2, &msg) };
        let Ok(Frame::Binary(frame)) = encoded else {
            return Err(TestCaseError::fail("a broadcast encodes to binary in vsn 2.0.0"));
        };
        for end in 0..frame.len() {
            let _ = phoenix::decode_binary(Vsn::V2, &frame[..end], MAX_FRAME_BYTES);
        }
        prop_assert!(phoenix::decode_binary(Vsn::V2, &frame, MAX_FRAME_BYTES).is_ok());
    }

    #[test]
    fn frames_over_the_limit_are_rejected(text in ".{1,64}", bytes in vec(any::<u8>(), 1..64)) {
        prop_assert!(
            matches!(phoenix::decode_text(Vsn::V2, &text, text.len() - 1), Err(DecodeError::FrameTooLarge { .. })),
            "text over the limit was not rejected"
        );
        prop_assert!(
            matches!(phoenix::decode_binary(Vsn::V2, &bytes, bytes.len() - 1), Err(DecodeError::FrameTooLarge { .. })),
            "binary over the limit was not rejected"
        );
    }
}

proptest! {
    #[test]
    fn v2_text_round_trips_both_directions(msg in json_message()) {
        for encoded in [phoenix::encode(Vsn::V2, &msg), phoenix::encode_push(Vsn::V2, &msg)] {
            let frame = encoded.map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(matches!(frame, Frame::Text(_)));
            prop_assert_eq!(decode(Vsn::V2, &frame).ok(), Some(msg.clone()));
        }
    }

    #[test]
    fn v1_server_frames_round_trip_without_join_ref(msg in json_message()) {
        let frame = phoenix::encode(Vsn::V1, &msg).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let expected = msg.clone().with_refs(None, msg.msg_ref.clone());
        prop_assert_eq!(decode(Vsn::V1, &frame).ok(), Some(expected));
    }

    #[test]
    fn v1_pushes_round_trip(msg in json_message()) {
        let frame = phoenix::encode_push(Vsn::V1, &msg).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decode(Vsn::V1, &frame).ok(), Some(msg));
    }

    #[test]
    fn kind3_round_trips(msg in broadcast_message()) {
        let frame = phoenix::encode_push(Vsn::V2, &msg).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(matches!(&frame, Frame::Binary(b) if b.first() == Some(&3)));
        prop_assert_eq!(decode(Vsn::V2, &frame).ok(), Some(msg));
    }

    #[test]
    fn kind4_round_trips(msg in broadcast_message()) {
        let frame = phoenix::encode(Vsn::V2, &msg).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(matches!(&frame, Frame::Binary(b) if b.first() == Some(&4)));
        prop_assert_eq!(decode(Vsn::V2, &frame).ok(), Some(msg.with_refs(None, None)));
    }

    /// A binary-framed broadcast sent to a vsn 1.0.0 socket arrives as text
    /// but reads as the same broadcast; a raw-bytes one is refused.
    #[test]
    fn broadcasts_reach_v1_as_json_or_not_at_all(topic in short(), b in broadcast()) {
        let msg = Message::broadcast(topic, b.clone());
        match (&b.body, phoenix::encode(Vsn::V1, &msg)) {
            (BroadcastBody::Json(_), Ok(frame)) => {
                let decoded = decode(Vsn::V1, &frame).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(decoded.as_broadcast().map(|c| c.into_owned()), Some(b));
            }
            (BroadcastBody::Binary(_), Err(EncodeError::BinaryBodyAsJson)) => {}
            (_, other) => return Err(TestCaseError::fail(format!("unexpected {other:?}"))),
        }
    }

    /// Text and binary framings of the same broadcast read the same.
    #[test]
    fn text_and_binary_broadcasts_read_alike(topic in short(), b in json_broadcast()) {
        let json = b.to_json().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let text = Message::broadcast(topic.clone(), json);
        let binary = Message::broadcast(topic, b);
        prop_assert_eq!(text.as_broadcast(), binary.as_broadcast());
    }
}
