//! Typed answers of the matchmaking RPCs and the inbox broadcasts that go
//! with them (the contract in `voicemeet_server::matchmaking`, which the
//! hosted backend mirrors in SQL).

use serde_json::Value;
use voicemeet_proto::matchmaking::{MatchId, Role};

use crate::error::Error;

/// Event of the inbox broadcast announcing a match.
pub const EVENT_MATCHED: &str = "matched";
/// Event of the inbox broadcast announcing that the partner left.
pub const EVENT_MATCH_ENDED: &str = "match_ended";
/// Event of the inbox broadcast announcing that the search gave up.
pub const EVENT_SEARCH_EXPIRED: &str = "search_expired";

/// The private topic (without `realtime:`) on which `user_id` hears about
/// matches. It must be joined, with `private: true` and the user's access
/// token, before `join_queue`.
pub fn inbox_topic(user_id: &str) -> String {
    format!("inbox:{user_id}")
}

/// A match: who the partner is stays unknown; the room is all we get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchInfo {
    /// The match's id, for `end_match` and `report_stranger`.
    pub match_id: MatchId,
    /// The pair's private room topic (without `realtime:`), e.g.
    /// `room:<match id>`. Debug-printing it would print the match id whole,
    /// which lets anyone join the room, so `Debug` shows only `match_id`'s
    /// short form.
    pub topic: RoomTopic,
    /// Whether this side makes the offer.
    pub role: Role,
}

/// A room topic name; `Debug` hides it (it is as good as a room key).
#[derive(Clone, PartialEq, Eq)]
pub struct RoomTopic(pub String);

impl std::fmt::Debug for RoomTopic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RoomTopic({REDACTED})")
    }
}

/// The answer to `join_queue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueStatus {
    /// Queued (or already queued); the match will arrive on the inbox.
    Waiting,
    /// Matched at once with someone who was waiting.
    Matched(MatchInfo),
}

/// The answer to `leave_queue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeftQueue {
    /// Whether the user was waiting (otherwise the call changed nothing).
    pub was_waiting: bool,
}

/// A broadcast on the user's inbox topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboxEvent {
    /// `matched`: a partner was found.
    Matched(MatchInfo),
    /// `match_ended`: the partner hung up, skipped or disconnected.
    MatchEnded {
        /// The match that ended.
        match_id: MatchId,
        /// `hangup`, `skipped` or `disconnected`, as the server says it.
        reason: String,
    },
    /// `search_expired`: nobody was found in time; search again if wanted.
    SearchExpired {
        /// How long the search lasted, milliseconds.
        waited_ms: u64,
    },
}

impl InboxEvent {
    /// Reads an inbox broadcast; `None` for events this version does not
    /// know, so newer servers can add some.
    ///
    /// # Errors
    /// [`Error::Protocol`] if a known event has the wrong payload.
    pub fn parse(event: &str, payload: &Value) -> Result<Option<Self>, Error> {
        match event {
            EVENT_MATCHED => match_info(payload).map(|m| Some(Self::Matched(m))),
            EVENT_MATCH_ENDED => Ok(Some(Self::MatchEnded {
                match_id: match_id(payload)?,
                reason: payload
                    .get("reason")
                    .and_then(Value::as_str)
                    .ok_or_else(|| protocol("`match_ended` without a reason"))?
                    .to_owned(),
            })),
            EVENT_SEARCH_EXPIRED => Ok(Some(Self::SearchExpired {
                waited_ms: payload
                    .get("waited_ms")
                    .and_then(Value::as_u64)
                    .unwrap_or_default(),
            })),
            _ => Ok(None),
        }
    }
}

pub(super) fn queue_status(answer: &Value) -> Result<QueueStatus, Error> {
    match answer.get("status").and_then(Value::as_str) {
        Some("waiting") => Ok(QueueStatus::Waiting),
        Some("matched") => match_info(answer).map(QueueStatus::Matched),
        _ => Err(protocol("`join_queue` answered with an unknown status")),
    }
}

pub(super) fn left_queue(answer: &Value) -> Result<LeftQueue, Error> {
    let was_waiting = answer
        .get("was_waiting")
        .and_then(Value::as_bool)
        .ok_or_else(|| protocol("`leave_queue` answer without `was_waiting`"))?;
    Ok(LeftQueue { was_waiting })
}

pub(super) fn expect_status(answer: &Value, expected: &str, rpc: &str) -> Result<(), Error> {
    if answer.get("status").and_then(Value::as_str) == Some(expected) {
        Ok(())
    } else {
        Err(protocol(&format!("`{rpc}` did not answer `{expected}`")))
    }
}

fn match_info(value: &Value) -> Result<MatchInfo, Error> {
    let topic = value
        .get("topic")
        .and_then(Value::as_str)
        .ok_or_else(|| protocol("match without a topic"))?;
    let role = match value.get("role").and_then(Value::as_str) {
        Some("offerer") => Role::Offerer,
        Some("answerer") => Role::Answerer,
        _ => return Err(protocol("match without a known role")),
    };
    Ok(MatchInfo {
        match_id: match_id(value)?,
        topic: RoomTopic(topic.to_owned()),
        role,
    })
}

fn match_id(value: &Value) -> Result<MatchId, Error> {
    value
        .get("match_id")
        .and_then(Value::as_str)
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| protocol("missing or malformed `match_id`"))
}

fn protocol(detail: &str) -> Error {
    Error::Protocol {
        service: "backend",
        detail: format!("matchmaking: {detail}"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn queue_answers() -> Result<(), Error> {
        assert_eq!(
            queue_status(&json!({"status": "waiting"}))?,
            QueueStatus::Waiting
        );
        let matched = queue_status(&json!({
            "status": "matched", "match_id": ID, "topic": format!("room:{ID}"), "role": "answerer"
        }))?;
        let QueueStatus::Matched(m) = matched else {
            panic!("expected a match");
        };
        assert_eq!(m.match_id.to_string(), ID);
        assert_eq!(m.role, Role::Answerer);
        assert_eq!(m.topic.0, format!("room:{ID}"));
        assert!(!format!("{m:?}").contains(ID), "Debug leaks the room");
        assert!(queue_status(&json!({"status": "idle"})).is_err());
        assert!(
            queue_status(
                &json!({"status": "matched", "match_id": "x", "topic": "t", "role": "offerer"})
            )
            .is_err()
        );
        assert_eq!(
            left_queue(&json!({"status": "idle", "was_waiting": true}))?,
            LeftQueue { was_waiting: true }
        );
        Ok(())
    }

    #[test]
    fn inbox_events() -> Result<(), Error> {
        let ended = InboxEvent::parse(
            EVENT_MATCH_ENDED,
            &json!({"match_id": ID, "reason": "hangup"}),
        )?;
        assert!(matches!(ended, Some(InboxEvent::MatchEnded { reason, .. }) if reason == "hangup"));
        assert_eq!(
            InboxEvent::parse(EVENT_SEARCH_EXPIRED, &json!({"waited_ms": 600000}))?,
            Some(InboxEvent::SearchExpired { waited_ms: 600_000 })
        );
        assert_eq!(InboxEvent::parse("something_new", &json!({}))?, None);
        assert!(InboxEvent::parse(EVENT_MATCHED, &json!({})).is_err());
        Ok(())
    }
}
