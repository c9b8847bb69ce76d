//! Text framings: the vsn 1.0.0 JSON object and the vsn 2.0.0 JSON array.

use serde::Serialize;
use serde_json::{Map, Value};

use super::error::{DecodeError, Field};
use super::message::{Message, Payload};

/// Parses `{"topic","event","payload","ref","join_ref"?}`. `ref` must be
/// present (it may be null), as Phoenix's own decoder demands; extra keys
/// are ignored.
pub(super) fn decode_object(text: &str) -> Result<Message, DecodeError> {
    let Value::Object(mut map) = serde_json::from_str(text).map_err(DecodeError::Json)? else {
        return Err(DecodeError::NotAnObject);
    };
    let topic = string(take(&mut map, Field::Topic)?, Field::Topic)?;
    let event = string(take(&mut map, Field::Event)?, Field::Event)?;
    let payload = take(&mut map, Field::Payload)?;
    let msg_ref = reference(take(&mut map, Field::Ref)?, Field::Ref)?;
    let join_ref = match map.remove(Field::JoinRef.as_str()) {
        Some(value) => reference(value, Field::JoinRef)?,
        None => None,
    };
    Ok(Message {
        join_ref,
        msg_ref,
        topic,
        event,
        payload: Payload::Json(payload),
    })
}

/// Parses `[join_ref, ref, topic, event, payload, ..]`; elements after the
/// fifth are ignored, as the Realtime server does.
pub(super) fn decode_array(text: &str) -> Result<Message, DecodeError> {
    let Value::Array(items) = serde_json::from_str(text).map_err(DecodeError::Json)? else {
        return Err(DecodeError::NotAnArray);
    };
    let len = items.len();
    let mut items = items.into_iter();
    let (Some(join_ref), Some(msg_ref), Some(topic), Some(event), Some(payload)) = (
        items.next(),
        items.next(),
        items.next(),
        items.next(),
        items.next(),
    ) else {
        return Err(DecodeError::TooFewElements { len });
    };
    Ok(Message {
        join_ref: reference(join_ref, Field::JoinRef)?,
        msg_ref: reference(msg_ref, Field::Ref)?,
        topic: string(topic, Field::Topic)?,
        event: string(event, Field::Event)?,
        payload: Payload::Json(payload),
    })
}

/// The vsn 1.0.0 object. Server frames have no `join_ref` key at all
/// (Phoenix's V1 serializer drops it); client pushes carry it, null or not.
pub(super) fn encode_object(msg: &Message, payload: &Value, with_join_ref: bool) -> String {
    #[derive(Serialize)]
    struct Object<'a> {
        topic: &'a str,
        event: &'a str,
        payload: &'a Value,
        #[serde(rename = "ref")]
        msg_ref: Option<&'a str>,
        // Outer `None` leaves the key out; `Some(None)` writes null.
        #[serde(skip_serializing_if = "Option::is_none")]
        join_ref: Option<Option<&'a str>>,
    }
    json_string(&Object {
        topic: &msg.topic,
        event: &msg.event,
        payload,
        msg_ref: msg.msg_ref.as_deref(),
        join_ref: with_join_ref.then_some(msg.join_ref.as_deref()),
    })
}

/// The vsn 2.0.0 array; the same shape in both directions.
pub(super) fn encode_array(msg: &Message, payload: &Value) -> String {
    // A tuple serializes as a JSON array.
    json_string(&(
        msg.join_ref.as_deref(),
        msg.msg_ref.as_deref(),
        msg.topic.as_str(),
        msg.event.as_str(),
        payload,
    ))
}

fn json_string(frame: &impl Serialize) -> String {
    // Cannot fail: a frame is strings, options and a `Value`, and serde_json
    // only fails on non-string map keys or a `Serialize` impl that errors.
    serde_json::to_string(frame)
        .expect("serializing a frame of strings and JSON values cannot fail")
}

fn take(map: &mut Map<String, Value>, field: Field) -> Result<Value, DecodeError> {
    map.remove(field.as_str())
        .ok_or(DecodeError::MissingField(field))
}

fn string(value: Value, field: Field) -> Result<String, DecodeError> {
    match value {
        Value::String(s) => Ok(s),
        _ => Err(DecodeError::WrongType {
            field,
            expected: "a string",
        }),
    }
}

fn reference(value: Value, field: Field) -> Result<Option<String>, DecodeError> {
    match value {
        Value::String(s) => Ok(Some(s)),
        Value::Null => Ok(None),
        _ => Err(DecodeError::WrongType {
            field,
            expected: "a string or null",
        }),
    }
}
