//! Wire-shape tests: every layout, every error path. Text frames are compared
//! as parsed JSON because key order depends on serde_json's features.

use serde_json::{Value, json};

use super::*;

const MAX: usize = MAX_FRAME_BYTES;

/// Checks that a decode error is the expected one.
type Expect = fn(&DecodeError) -> bool;

fn text(frame: Frame) -> Value {
    match frame {
        Frame::Text(t) => serde_json::from_str(&t).expect("encoder writes JSON"),
        Frame::Binary(b) => panic!("expected a text frame, got {} bytes", b.len()),
    }
}

fn bytes(frame: Frame) -> Vec<u8> {
    match frame {
        Frame::Binary(b) => b,
        Frame::Text(t) => panic!("expected a binary frame, got {t}"),
    }
}

fn refs(join_ref: Option<&str>, msg_ref: Option<&str>) -> (Option<String>, Option<String>) {
    (join_ref.map(str::to_owned), msg_ref.map(str::to_owned))
}

/// The realtime-js serializer test vector (PROTOCOLS.md §1.4).
fn vector() -> Vec<u8> {
    [
        &[0x03, 0x02, 0x01, 0x03, 0x0a, 0x00, 0x01][..],
        b"10",
        b"1",
        b"top",
        b"user-event",
        br#"{"a":"b"}"#,
    ]
    .concat()
}

fn vector_message() -> Message {
    Message::broadcast("top", Broadcast::json("user-event", json!({"a": "b"})))
        .with_refs(Some("10".into()), Some("1".into()))
}

#[test]
fn kind3_test_vector_encodes() {
    assert_eq!(
        bytes(encode_push(Vsn::V2, &vector_message()).expect("encodes")),
        vector()
    );
}

#[test]
fn kind3_test_vector_decodes() {
    assert_eq!(
        decode_binary(Vsn::V2, &vector(), MAX).expect("decodes"),
        vector_message()
    );
}

#[test]
fn kind3_test_vector_matches_the_text_push_it_came_from() {
    let text = r#"["10","1","top","broadcast",{"type":"broadcast","event":"user-event","payload":{"a":"b"}}]"#;
    let msg = decode_text(Vsn::V2, text, MAX).expect("decodes");
    let broadcast = msg.as_broadcast().expect("is a broadcast");
    let frame = encode_user_broadcast_push(
        msg.join_ref.as_deref(),
        msg.msg_ref.as_deref(),
        &msg.topic,
        &broadcast,
    )
    .expect("encodes");
    assert_eq!(frame, vector());
}

#[test]
fn kind3_with_metadata_binary_body_and_null_refs() {
    let mut broadcast = Broadcast::binary("audio", vec![0, 159, 255]);
    broadcast.metadata = Some(json!({"k": 1}));
    let msg = Message::broadcast("realtime:r", broadcast);
    let frame = bytes(encode_push(Vsn::V2, &msg).expect("encodes"));
    let expected = [
        &[3, 0, 0, 10, 5, 7, 0][..],
        b"realtime:r",
        b"audio",
        br#"{"k":1}"#,
        &[0, 159, 255],
    ]
    .concat();
    assert_eq!(frame, expected);
    assert_eq!(decode_binary(Vsn::V2, &frame, MAX).expect("decodes"), msg);
}

#[test]
fn kind4_layout() {
    let mut broadcast = Broadcast::json("sdp", json!([1]));
    broadcast.metadata = Some(json!({"replayed": true}));
    let msg = Message::broadcast("realtime:room1", broadcast);
    let frame = bytes(encode(Vsn::V2, &msg).expect("encodes"));
    let expected = [
        &[4, 14, 3, 17, 1][..],
        b"realtime:room1",
        b"sdp",
        br#"{"replayed":true}"#,
        b"[1]",
    ]
    .concat();
    assert_eq!(frame, expected);
    assert_eq!(decode_binary(Vsn::V2, &frame, MAX).expect("decodes"), msg);
}

#[test]
fn kind4_binary_body_empty_metadata() {
    let frame = [&[4, 1, 1, 0, 0][..], b"t", b"e", &[1, 2, 3]].concat();
    let msg = decode_binary(Vsn::V2, &frame, MAX).expect("decodes");
    assert_eq!(
        msg,
        Message::broadcast("t", Broadcast::binary("e", vec![1, 2, 3]))
    );
    assert_eq!(bytes(encode(Vsn::V2, &msg).expect("encodes")), frame);
}

#[test]
fn kind4_drops_refs_it_has_no_room_for() {
    let msg = vector_message();
    let frame = bytes(encode(Vsn::V2, &msg).expect("encodes"));
    let decoded = decode_binary(Vsn::V2, &frame, MAX).expect("decodes");
    assert_eq!(decoded, msg.with_refs(None, None));
}

#[test]
fn kind3_fans_out_per_subscriber_vsn() {
    let push = decode_binary(Vsn::V2, &vector(), MAX).expect("decodes");
    let out = Message::broadcast(push.topic.clone(), push.payload.clone());

    let v2 = bytes(encode(Vsn::V2, &out).expect("v2"));
    assert_eq!(
        v2,
        [
            &[4, 3, 10, 0, 1][..],
            b"top",
            b"user-event",
            br#"{"a":"b"}"#
        ]
        .concat()
    );

    assert_eq!(
        text(encode(Vsn::V1, &out).expect("v1")),
        json!({"topic": "top", "event": "broadcast", "ref": null,
               "payload": {"type": "broadcast", "event": "user-event", "payload": {"a": "b"}}})
    );

    let raw = Message::broadcast("top", Broadcast::binary("user-event", vec![1]));
    assert_eq!(encode(Vsn::V1, &raw), Err(EncodeError::BinaryBodyAsJson));
    assert!(matches!(encode(Vsn::V2, &raw), Ok(Frame::Binary(_))));
}

#[test]
fn text_broadcast_fans_out_as_text_in_both_vsns() {
    let payload =
        json!({"type": "broadcast", "event": "sdp", "payload": {"sdp": "v=0"}, "extra": 1});
    let push = decode_text(
        Vsn::V2,
        &json!(["1", "7", "realtime:room1", "broadcast", payload]).to_string(),
        MAX,
    )
    .expect("decodes");
    assert_eq!(push.payload, Payload::Json(payload.clone()));

    let out = Message::broadcast(push.topic.clone(), push.payload.clone());
    assert_eq!(
        text(encode(Vsn::V2, &out).expect("v2")),
        json!([null, null, "realtime:room1", "broadcast", payload])
    );
    assert_eq!(
        text(encode(Vsn::V1, &out).expect("v1")),
        json!({"topic": "realtime:room1", "event": "broadcast", "payload": payload, "ref": null})
    );
}

#[test]
fn v2_server_shapes() {
    let heartbeat =
        decode_text(Vsn::V2, r#"[null,"26","phoenix","heartbeat",{}]"#, MAX).expect("decodes");
    assert_eq!(
        heartbeat,
        Message::new(PHOENIX_TOPIC, event::HEARTBEAT, json!({})).with_refs(None, Some("26".into()))
    );
    assert_eq!(
        text(encode(Vsn::V2, &Message::reply_ok(&heartbeat, json!({}))).expect("encodes")),
        json!([null, "26", "phoenix", "phx_reply", {"status": "ok", "response": {}}])
    );
    assert_eq!(
        text(encode(Vsn::V2, &Message::close(Some("1".into()), "realtime:x")).expect("encodes")),
        json!(["1", "1", "realtime:x", "phx_close", {}])
    );
    assert_eq!(
        text(
            encode(
                Vsn::V2,
                &Message::presence_state(Some("4".into()), "realtime:lobby", json!({}))
            )
            .expect("encodes")
        ),
        json!(["4", null, "realtime:lobby", "presence_state", {}])
    );
}

#[test]
fn v1_server_frames_have_no_join_ref() {
    let join = Message::new("realtime:room1", event::JOIN, json!({}))
        .with_refs(Some("1".into()), Some("1".into()));
    let reply = Message::reply_ok(&join, json!({"postgres_changes": []}));
    let value = text(encode(Vsn::V1, &reply).expect("encodes"));
    assert_eq!(
        value,
        json!({"topic": "realtime:room1", "event": "phx_reply", "ref": "1",
               "payload": {"status": "ok", "response": {"postgres_changes": []}}})
    );
    let decoded = decode_text(Vsn::V1, &value.to_string(), MAX).expect("decodes");
    assert_eq!(decoded, reply.with_refs(None, Some("1".into())));
}

#[test]
fn v1_pushes_carry_join_ref() {
    let push = Message::new("realtime:room1", event::JOIN, json!({"config": {}}))
        .with_refs(Some("1".into()), Some("2".into()));
    let value = text(encode_push(Vsn::V1, &push).expect("encodes"));
    assert_eq!(
        value,
        json!({"topic": "realtime:room1", "event": "phx_join", "payload": {"config": {}}, "ref": "2", "join_ref": "1"})
    );
    assert_eq!(
        decode_text(Vsn::V1, &value.to_string(), MAX).expect("decodes"),
        push
    );

    let heartbeat = Message::new(PHOENIX_TOPIC, event::HEARTBEAT, json!({}));
    assert_eq!(
        text(encode_push(Vsn::V1, &heartbeat).expect("encodes"))["join_ref"],
        Value::Null
    );
}

#[test]
fn v2_pushes_are_arrays_and_binary_broadcasts_kind3() {
    let push = Message::new("realtime:x", event::LEAVE, json!({}))
        .with_refs(Some("1".into()), Some("3".into()));
    assert_eq!(
        text(encode_push(Vsn::V2, &push).expect("encodes")),
        json!(["1", "3", "realtime:x", "phx_leave", {}])
    );
    let frame = bytes(encode_push(Vsn::V2, &vector_message()).expect("encodes"));
    assert_eq!(frame.first(), Some(&3));
}

#[test]
fn v1_decodes_with_optional_join_ref() {
    let with =
        r#"{"topic":"realtime:room1","event":"phx_join","payload":{},"ref":"1","join_ref":"1"}"#;
    let msg = decode_text(Vsn::V1, with, MAX).expect("decodes");
    assert_eq!(
        (msg.join_ref.clone(), msg.msg_ref.clone()),
        refs(Some("1"), Some("1"))
    );
    let without = r#"{"topic":"t","event":"e","payload":[],"ref":null,"extra":0}"#;
    let msg = decode_text(Vsn::V1, without, MAX).expect("decodes");
    assert_eq!((msg.join_ref, msg.msg_ref), refs(None, None));
    let null_join = r#"{"topic":"t","event":"e","payload":1,"ref":"9","join_ref":null}"#;
    assert_eq!(
        decode_text(Vsn::V1, null_join, MAX)
            .expect("decodes")
            .join_ref,
        None
    );
}

#[test]
fn v1_rejects_malformed_objects() {
    let cases: &[(&str, Expect)] = &[
        ("not json", |e| matches!(e, DecodeError::Json(_))),
        ("", |e| matches!(e, DecodeError::Json(_))),
        (r#"["1","1","t","e",{}]"#, |e| {
            matches!(e, DecodeError::NotAnObject)
        }),
        (r#"{"event":"e","payload":{},"ref":null}"#, |e| {
            matches!(e, DecodeError::MissingField(Field::Topic))
        }),
        (r#"{"topic":"t","payload":{},"ref":null}"#, |e| {
            matches!(e, DecodeError::MissingField(Field::Event))
        }),
        (r#"{"topic":"t","event":"e","ref":null}"#, |e| {
            matches!(e, DecodeError::MissingField(Field::Payload))
        }),
        (r#"{"topic":"t","event":"e","payload":{}}"#, |e| {
            matches!(e, DecodeError::MissingField(Field::Ref))
        }),
        (r#"{"topic":1,"event":"e","payload":{},"ref":null}"#, |e| {
            matches!(
                e,
                DecodeError::WrongType {
                    field: Field::Topic,
                    ..
                }
            )
        }),
        (
            r#"{"topic":"t","event":null,"payload":{},"ref":null}"#,
            |e| {
                matches!(
                    e,
                    DecodeError::WrongType {
                        field: Field::Event,
                        ..
                    }
                )
            },
        ),
        (r#"{"topic":"t","event":"e","payload":{},"ref":1}"#, |e| {
            matches!(
                e,
                DecodeError::WrongType {
                    field: Field::Ref,
                    ..
                }
            )
        }),
        (
            r#"{"topic":"t","event":"e","payload":{},"ref":null,"join_ref":[]}"#,
            |e| {
                matches!(
                    e,
                    DecodeError::WrongType {
                        field: Field::JoinRef,
                        ..
                    }
                )
            },
        ),
    ];
    for (input, expected) in cases {
        let err = decode_text(Vsn::V1, input, MAX).expect_err(input);
        assert!(expected(&err), "{input}: {err:?}");
    }
}

#[test]
fn v2_ignores_extra_elements() {
    let msg =
        decode_text(Vsn::V2, r#"["1","2","t","e",{"a":1},"extra",null]"#, MAX).expect("decodes");
    assert_eq!(
        msg,
        Message::new("t", "e", json!({"a": 1})).with_refs(Some("1".into()), Some("2".into()))
    );
}

#[test]
fn v2_rejects_malformed_arrays() {
    let cases: &[(&str, Expect)] = &[
        ("[", |e| matches!(e, DecodeError::Json(_))),
        (r#"{"topic":"t"}"#, |e| matches!(e, DecodeError::NotAnArray)),
        ("\"str\"", |e| matches!(e, DecodeError::NotAnArray)),
        ("[]", |e| {
            matches!(e, DecodeError::TooFewElements { len: 0 })
        }),
        (r#"[null,null,"t","e"]"#, |e| {
            matches!(e, DecodeError::TooFewElements { len: 4 })
        }),
        (r#"[null,null,7,"e",{}]"#, |e| {
            matches!(
                e,
                DecodeError::WrongType {
                    field: Field::Topic,
                    ..
                }
            )
        }),
        (r#"[null,null,"t",{},{}]"#, |e| {
            matches!(
                e,
                DecodeError::WrongType {
                    field: Field::Event,
                    ..
                }
            )
        }),
        (r#"[1,null,"t","e",{}]"#, |e| {
            matches!(
                e,
                DecodeError::WrongType {
                    field: Field::JoinRef,
                    ..
                }
            )
        }),
        (r#"[null,true,"t","e",{}]"#, |e| {
            matches!(
                e,
                DecodeError::WrongType {
                    field: Field::Ref,
                    ..
                }
            )
        }),
    ];
    for (input, expected) in cases {
        let err = decode_text(Vsn::V2, input, MAX).expect_err(input);
        assert!(expected(&err), "{input}: {err:?}");
    }
}

#[test]
fn oversize_frames_are_rejected_before_parsing() {
    let frame = r#"[null,"1","phoenix","heartbeat",{}]"#;
    assert!(decode_text(Vsn::V2, frame, frame.len()).is_ok());
    assert!(matches!(
        decode_text(Vsn::V2, frame, frame.len() - 1),
        Err(DecodeError::FrameTooLarge { len, max }) if len == frame.len() && max == frame.len() - 1
    ));
    assert!(matches!(
        decode_text(Vsn::V1, "{", 0),
        Err(DecodeError::FrameTooLarge { .. })
    ));
    let binary = vector();
    assert!(decode_binary(Vsn::V2, &binary, binary.len()).is_ok());
    assert!(matches!(
        decode_binary(Vsn::V2, &binary, binary.len() - 1),
        Err(DecodeError::FrameTooLarge { .. })
    ));
}

#[test]
fn binary_kinds_and_vsn() {
    assert!(matches!(
        decode_binary(Vsn::V1, &vector(), MAX),
        Err(DecodeError::BinaryInV1)
    ));
    assert!(matches!(
        decode_binary(Vsn::V2, &[], MAX),
        Err(DecodeError::EmptyFrame)
    ));
    for kind in [0, 1, 2, 5, 255] {
        assert!(
            matches!(decode_binary(Vsn::V2, &[kind, 0, 0, 0, 0, 0, 0], MAX), Err(DecodeError::UnsupportedKind(k)) if k == kind),
            "kind {kind}"
        );
    }
}

#[test]
fn binary_truncation_at_every_field() {
    // Kind 3 with every field non-empty: ref lengths 1, topic 1, event 1, metadata 2.
    let kind3 = [
        &[3, 1, 1, 1, 1, 2, 1][..],
        b"j",
        b"r",
        b"t",
        b"e",
        b"{}",
        b"0",
    ]
    .concat();
    assert!(decode_binary(Vsn::V2, &kind3, MAX).is_ok());
    let kind4 = [&[4, 1, 1, 2, 1][..], b"t", b"e", b"{}", b"0"].concat();
    assert!(decode_binary(Vsn::V2, &kind4, MAX).is_ok());

    let cut =
        |frame: &[u8], at: usize| decode_binary(Vsn::V2, &frame[..at], MAX).expect_err("truncated");
    let field_at = |err: DecodeError| match err {
        DecodeError::Truncated { field } => Some(field),
        _ => None,
    };
    for at in 1..7 {
        assert_eq!(
            field_at(cut(&kind3, at)),
            Some(Field::Header),
            "kind 3 cut at {at}"
        );
    }
    assert_eq!(field_at(cut(&kind3, 7)), Some(Field::JoinRef));
    assert_eq!(field_at(cut(&kind3, 8)), Some(Field::Ref));
    assert_eq!(field_at(cut(&kind3, 9)), Some(Field::Topic));
    assert_eq!(field_at(cut(&kind3, 10)), Some(Field::Event));
    assert_eq!(field_at(cut(&kind3, 11)), Some(Field::Metadata));
    assert_eq!(field_at(cut(&kind3, 12)), Some(Field::Metadata));
    // The payload is the rest of the frame; an empty rest is not JSON.
    assert!(matches!(
        cut(&kind3, 13),
        DecodeError::BinaryJson {
            field: Field::Payload,
            ..
        }
    ));

    for at in 1..5 {
        assert_eq!(
            field_at(cut(&kind4, at)),
            Some(Field::Header),
            "kind 4 cut at {at}"
        );
    }
    assert_eq!(field_at(cut(&kind4, 5)), Some(Field::Topic));
    assert_eq!(field_at(cut(&kind4, 6)), Some(Field::Event));
    assert_eq!(field_at(cut(&kind4, 7)), Some(Field::Metadata));
}

#[test]
fn binary_rejects_bad_utf8_encoding_and_json() {
    let bad = [0xff, 0xfe];
    let decode = |frame: Vec<u8>| decode_binary(Vsn::V2, &frame, MAX).expect_err("malformed");
    let utf8_field = |err: DecodeError| match err {
        DecodeError::InvalidUtf8 { field } => Some(field),
        _ => None,
    };
    assert_eq!(
        utf8_field(decode([&[3, 2, 0, 0, 0, 0, 0][..], &bad].concat())),
        Some(Field::JoinRef)
    );
    assert_eq!(
        utf8_field(decode([&[3, 0, 2, 0, 0, 0, 0][..], &bad].concat())),
        Some(Field::Ref)
    );
    assert_eq!(
        utf8_field(decode([&[3, 0, 0, 2, 0, 0, 0][..], &bad].concat())),
        Some(Field::Topic)
    );
    assert_eq!(
        utf8_field(decode([&[3, 0, 0, 0, 2, 0, 0][..], &bad].concat())),
        Some(Field::Event)
    );
    assert_eq!(
        utf8_field(decode([&[4, 2, 0, 0, 0][..], &bad].concat())),
        Some(Field::Topic)
    );
    assert_eq!(
        utf8_field(decode([&[4, 0, 2, 0, 0][..], &bad].concat())),
        Some(Field::Event)
    );

    assert!(matches!(
        decode(vec![3, 0, 0, 0, 0, 0, 2]),
        DecodeError::UnknownEncoding(2)
    ));
    assert!(matches!(
        decode(vec![4, 0, 0, 0, 9]),
        DecodeError::UnknownEncoding(9)
    ));

    assert!(matches!(
        decode([&[4, 0, 0, 3, 0][..], b"abc"].concat()),
        DecodeError::BinaryJson {
            field: Field::Metadata,
            ..
        }
    ));
    assert!(matches!(
        decode([&[4, 0, 0, 2, 0][..], &bad].concat()),
        DecodeError::BinaryJson {
            field: Field::Metadata,
            ..
        }
    ));
    assert!(matches!(
        decode([&[3, 0, 0, 0, 0, 0, 1][..], b"{nope"].concat()),
        DecodeError::BinaryJson {
            field: Field::Payload,
            ..
        }
    ));
    // With encoding 0 the same bytes are a valid raw body.
    assert!(
        decode_binary(
            Vsn::V2,
            &[&[3, 0, 0, 0, 0, 0, 0][..], b"{nope"].concat(),
            MAX
        )
        .is_ok()
    );
}

#[test]
fn binary_field_limits() {
    let long = "x".repeat(256);
    let max = "x".repeat(255);
    let b = Broadcast::json("e", json!(1));
    let too_long = |r: Result<Vec<u8>, EncodeError>| match r {
        Err(EncodeError::FieldTooLong { field, len: 256 }) => Some(field),
        _ => None,
    };
    assert_eq!(
        too_long(encode_user_broadcast_push(Some(&long), None, "t", &b)),
        Some(Field::JoinRef)
    );
    assert_eq!(
        too_long(encode_user_broadcast_push(None, Some(&long), "t", &b)),
        Some(Field::Ref)
    );
    assert_eq!(
        too_long(encode_user_broadcast_push(None, None, &long, &b)),
        Some(Field::Topic)
    );
    assert_eq!(
        too_long(encode_user_broadcast_push(
            None,
            None,
            "t",
            &Broadcast::json(long.clone(), json!(1))
        )),
        Some(Field::Event)
    );
    let mut meta = b.clone();
    meta.metadata = Some(Value::String("x".repeat(254))); // 256 bytes with quotes
    assert_eq!(
        too_long(encode_user_broadcast_push(None, None, "t", &meta)),
        Some(Field::Metadata)
    );

    let frame = encode_user_broadcast_push(
        Some(&max),
        Some(&max),
        &max,
        &Broadcast::json(max.clone(), json!(1)),
    )
    .expect("255 bytes fit");
    let msg = decode_binary(Vsn::V2, &frame, MAX).expect("decodes");
    assert_eq!(msg.topic, max);

    // Lengths count UTF-8 bytes, not chars: 128 two-byte chars are 256 bytes.
    let wide = "é".repeat(128);
    assert!(matches!(
        encode(Vsn::V2, &Message::broadcast(wide, b.clone())),
        Err(EncodeError::FieldTooLong {
            field: Field::Topic,
            len: 256
        })
    ));
}

#[test]
fn broadcast_payload_needs_broadcast_event() {
    let mut msg = vector_message();
    msg.event = "sdp".into();
    let expected = Err(EncodeError::NotBroadcastEvent("sdp".into()));
    assert_eq!(encode(Vsn::V1, &msg), expected);
    assert_eq!(encode(Vsn::V2, &msg), expected);
    assert_eq!(encode_push(Vsn::V1, &msg), expected);
    assert_eq!(encode_push(Vsn::V2, &msg), expected);
}

#[test]
fn binary_bodies_never_reach_v1() {
    let msg = Message::broadcast("t", Broadcast::binary("e", vec![1, 2]));
    assert_eq!(encode(Vsn::V1, &msg), Err(EncodeError::BinaryBodyAsJson));
    assert_eq!(
        encode_push(Vsn::V1, &msg),
        Err(EncodeError::BinaryBodyAsJson)
    );
}

#[test]
fn v1_push_of_a_binary_framed_broadcast_reads_back_as_the_same_broadcast() {
    let msg = vector_message();
    let value = text(encode_push(Vsn::V1, &msg).expect("JSON body"));
    let decoded = decode_text(Vsn::V1, &value.to_string(), MAX).expect("decodes");
    assert_eq!(decoded.as_broadcast(), msg.as_broadcast());
    assert_eq!(
        (decoded.join_ref, decoded.msg_ref),
        refs(Some("10"), Some("1"))
    );
}

#[test]
fn vsn_from_query() {
    assert_eq!(Vsn::from_query(None), Ok(Vsn::V1));
    assert_eq!(Vsn::from_query(Some("1.0.0")), Ok(Vsn::V1));
    assert_eq!(Vsn::from_query(Some("2.0.0")), Ok(Vsn::V2));
    for bad in ["", "2", "2.0", "2.0.1", "3.0.0", " 2.0.0"] {
        assert_eq!(
            Vsn::from_query(Some(bad)),
            Err(UnsupportedVsn(bad.into())),
            "{bad:?}"
        );
    }
    assert_eq!(Vsn::V2.to_string(), "2.0.0");
    assert_eq!(Vsn::V1.as_str().parse(), Ok(Vsn::V1));
}

#[test]
fn errors_render_without_payload_contents() {
    let err = decode_text(Vsn::V2, r#"["secret-token"#, MAX).expect_err("truncated JSON");
    assert!(!err.to_string().contains("secret"), "{err}");
    let err = decode_binary(Vsn::V2, &[3, 9, 0, 0, 0, 0, 0, b's'], MAX).expect_err("truncated");
    assert_eq!(err.to_string(), "binary frame ends inside `join_ref`");
}
