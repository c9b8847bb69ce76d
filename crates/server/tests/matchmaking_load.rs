//! 1,000 simulated users storm the matchmaker: each has a real websocket on
//! its private inbox (vsn 2.0.0, notices as kind-4 binary), and concurrently
//! joins and leaves the queue, hangs up, skips, reports, and drops its socket
//! without a word (then maybe comes back). Everything each user is told, by
//! RPC answer or inbox notice, is logged in the order the user saw it.
//!
//! Checked while it runs (a sampler holding the queue lock, and a lookup
//! after every RPC match) and afterwards (the logs and the final state):
//! - no double match: the matchmaker's invariants hold at every sample, and
//!   no user is ever told of two matches from one search;
//! - no ghost match: nobody is waiting or matched while the test knows they
//!   are idle (left, hung up, told their match ended) or gone (the server
//!   has processed their disconnect), and no match was made while one of its
//!   users was known not to be waiting; a disconnect counts from when the
//!   server has noticed it, since before that it cannot know;
//! - both users of a match hear of it with complementary roles, unless one
//!   of them dropped its socket (then the other hears the match ended, or
//!   ended it first);
//! - reported pairs are never matched again;
//! - nobody waits forever: after the storm every connected user searches
//!   once more, and then no two waiting users could be matched.
//!
//! Users' choices come from one seeded RNG each; the interleaving is up to
//! the scheduler, and every check holds for any interleaving.

mod common;
mod realtime_client;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use common::{TestServer, test_config};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use realtime_client::{Client, RECV_TIMEOUT, Ws, assert_heartbeat_reply, join_payload};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use voicemeet_server::SharedState;
use voicemeet_server::proto::matchmaking::{Matchmaker, UserId};
use voicemeet_server::proto::phoenix::{self, BroadcastBody, MAX_FRAME_BYTES, Message, Vsn};

/// Simulated users, each with its own websocket.
const USERS: usize = 1_000;
/// Choices each user makes during the storm (waiting counts as one).
const OPS_PER_USER: usize = 15;
/// Seeds every user's RNG (user `i` uses `SEED + i`) and the final order.
const SEED: u64 = 0x766d_2026;
/// Sign-ups and connects in flight at once while setting up; enough to
/// overlap round trips, few enough not to swamp two cores.
const SETUP_CONCURRENCY: usize = 32;
/// Longest the server may take to notice a dropped socket, or to answer
/// anything. It takes milliseconds; this only turns a hang into a failure.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);
/// How often the disconnect poll and the sampler look at the server.
const POLL_INTERVAL: Duration = Duration::from_millis(2);
/// The longest a user waits for a notice before choosing again.
const MAX_WAIT_MS: u64 = 20;
/// Refs the load client gives its heartbeats start here, clear of the join.
const FIRST_HEARTBEAT_REF: u64 = 100;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a user knows about itself, kept current by its own RPC answers and
/// its inbox notices. Each variant says what the server may hold for the
/// user at the same moment; the sampler checks exactly that.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Connected, not searching: neither waiting nor in a match.
    Idle,
    /// A `join_queue` was sent: waiting or matched, either may be true.
    Searching,
    /// Told of this match: in it, or idle if it ended since; never waiting.
    Matched(String),
    /// The socket is being dropped; the server may not know yet.
    Dropping,
    /// The server has processed the disconnect: no inbox listener, neither
    /// waiting nor matched, until the user reconnects.
    Gone,
}

/// A `matched` notice or answer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MatchInfo {
    id: String,
    role: String,
    topic: String,
}

/// One thing a user did or was told, in the order the user saw it.
#[derive(Debug, Clone)]
enum What {
    /// About to send `join_queue`.
    JoinReq,
    /// `join_queue` answered `waiting`.
    JoinWaiting,
    /// `join_queue` answered `matched`.
    JoinMatched(MatchInfo),
    /// `join_queue` refused: not listening on the inbox.
    JoinRefused,
    /// `leave_queue` answered.
    Left { was_waiting: bool },
    /// `end_match` answered `ended`.
    EndedOwn(String),
    /// `report_stranger` answered `reported`.
    Reported(String),
    /// Inbox notice `matched`.
    NoticeMatched(MatchInfo),
    /// Inbox notice `match_ended`.
    NoticeEnded { id: String, reason: String },
    /// The socket was dropped without a leave.
    Dropped,
    /// The server has processed the disconnect.
    Gone,
    /// Connected again and joined the inbox.
    Reconnected,
}

#[derive(Debug, Clone)]
struct Entry {
    at: Instant,
    what: What,
}

#[derive(Debug)]
struct UserState {
    phase: Phase,
    /// Match ids the user has been told of (answer or notice).
    seen: HashSet<String>,
    /// Match ids the user was told ended.
    ended: HashSet<String>,
    log: Vec<Entry>,
}

impl UserState {
    fn record(&mut self, what: What) {
        self.log.push(Entry {
            at: Instant::now(),
            what,
        });
    }
}

struct User {
    index: usize,
    id: String,
    token: String,
    inbox: String,
    state: Mutex<UserState>,
    /// Woken by every inbox notice, so a waiting user reacts at once.
    notified: Notify,
}

impl User {
    fn state(&self) -> MutexGuard<'_, UserState> {
        lock(&self.state)
    }

    fn phase(&self) -> Phase {
        self.state().phase.clone()
    }
}

/// What every task shares.
struct Ctx {
    url: String,
    anon_key: String,
    http: reqwest::Client,
    state: SharedState,
    users: Vec<Arc<User>>,
    by_id: HashMap<String, Arc<User>>,
    /// Offerer and answerer of every match the answerer's lookup found.
    pairs: Mutex<HashMap<String, (String, String)>>,
    violations: Mutex<Vec<String>>,
    started: Instant,
}

impl Ctx {
    fn violation(&self, what: String) {
        lock(&self.violations).push(what);
    }

    /// The server's queue must agree with what every user knows: see
    /// [`Phase`]. Called with the queue lock held, so no decision can slip
    /// between the reads.
    fn check_queue(&self, q: &Matchmaker, when: &str) {
        if let Err(err) = q.check_invariants() {
            self.violation(format!("{when}: matchmaker invariant broken: {err}"));
        }
        for user in q.waiting_users() {
            let phase = self.by_id[user.as_str()].phase();
            if !matches!(phase, Phase::Searching | Phase::Dropping) {
                self.violation(format!("{when}: {user:?} waits while {phase:?}"));
            }
        }
        for m in q.active_matches() {
            let id = m.id.to_string();
            for user in m.users() {
                let phase = self.by_id[user.as_str()].phase();
                let ok = match &phase {
                    Phase::Searching | Phase::Dropping => true,
                    Phase::Matched(known) => *known == id,
                    Phase::Idle | Phase::Gone => false,
                };
                if !ok {
                    self.violation(format!("{when}: {user:?} is in {id} while {phase:?}"));
                }
            }
            if q.is_blocked(&m.offerer, &m.answerer) {
                self.violation(format!("{when}: reported pair matched again in {id}"));
            }
        }
    }
}

/// One user's live socket: the op task holds the write half, a reader task
/// the read half; everything but inbox notices comes back on `replies`.
struct Conn {
    sink: SplitSink<Ws, WsMessage>,
    reader: JoinHandle<()>,
    replies: mpsc::UnboundedReceiver<Message>,
    next_ref: u64,
}

impl Conn {
    async fn open(ctx: &Arc<Ctx>, user: &Arc<User>) -> Self {
        let mut client = Client::connect(&ctx.url, &ctx.anon_key, Vsn::V2).await;
        client
            .join_ok(&user.inbox, join_payload(true, false, Some(&user.token)))
            .await;
        let (sink, stream) = client.into_ws().split();
        let (tx, replies) = mpsc::unbounded_channel();
        let reader = tokio::spawn(reader_task(ctx.clone(), user.clone(), stream, tx));
        Self {
            sink,
            reader,
            replies,
            next_ref: FIRST_HEARTBEAT_REF,
        }
    }

    /// Round-trips a heartbeat. The server queues frames in order, so every
    /// notice decided before the heartbeat was handled is logged on return.
    async fn barrier(&mut self) {
        self.next_ref += 1;
        let msg_ref = self.next_ref.to_string();
        let text = json!([null, msg_ref, phoenix::PHOENIX_TOPIC, "heartbeat", {}]).to_string();
        self.sink
            .send(WsMessage::text(text))
            .await
            .expect("send a heartbeat");
        // An inbox socket gets nothing but notices and this reply.
        let reply = tokio::time::timeout(RECV_TIMEOUT, self.replies.recv())
            .await
            .expect("heartbeat answered in time")
            .expect("the reader is alive");
        assert_heartbeat_reply(&reply, &msg_ref);
    }

    /// Stops reading; the socket stays open until the write half is dropped.
    async fn stop_reading(self) -> SplitSink<Ws, WsMessage> {
        self.reader.abort();
        // Awaiting the aborted task guarantees its half of the socket is gone.
        let _ = self.reader.await;
        self.sink
    }

    async fn close(self) {
        drop(self.stop_reading().await);
    }
}

/// Reads one user's socket: logs inbox notices, forwards everything else.
async fn reader_task(
    ctx: Arc<Ctx>,
    user: Arc<User>,
    mut stream: SplitStream<Ws>,
    replies: mpsc::UnboundedSender<Message>,
) {
    while let Some(frame) = stream.next().await {
        let decoded = match frame {
            Ok(WsMessage::Text(text)) => phoenix::decode_text(Vsn::V2, &text, MAX_FRAME_BYTES),
            Ok(WsMessage::Binary(bytes)) => {
                phoenix::decode_binary(Vsn::V2, &bytes, MAX_FRAME_BYTES)
            }
            Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_)) => continue,
            Ok(WsMessage::Close(_)) | Err(_) => break,
        };
        let msg = match decoded {
            Ok(msg) => msg,
            Err(err) => {
                ctx.violation(format!("user {}: undecodable frame: {err}", user.index));
                continue;
            }
        };
        if msg.topic == user.inbox && msg.event == phoenix::event::BROADCAST {
            on_notice(&ctx, &user, &msg);
            user.notified.notify_one();
        } else if replies.send(msg).is_err() {
            return;
        }
    }
    // Only the test drops its sockets (by aborting this task first).
    ctx.violation(format!("user {}: the server closed the socket", user.index));
}

fn on_notice(ctx: &Ctx, user: &User, msg: &Message) {
    let Some(b) = msg.as_broadcast() else {
        ctx.violation(format!("user {}: inbox message {msg:?}", user.index));
        return;
    };
    let BroadcastBody::Json(body) = &b.body else {
        ctx.violation(format!("user {}: binary-bodied notice", user.index));
        return;
    };
    let text = |key: &str| body[key].as_str().unwrap_or_default().to_owned();
    let mut state = user.state();
    match b.event.as_str() {
        "matched" => {
            let info = MatchInfo {
                id: text("match_id"),
                role: text("role"),
                topic: text("topic"),
            };
            if state.seen.insert(info.id.clone()) {
                if state.phase == Phase::Searching {
                    state.phase = Phase::Matched(info.id.clone());
                } else {
                    ctx.violation(format!(
                        "user {}: told of match {} while {:?}",
                        user.index, info.id, state.phase
                    ));
                }
            }
            state.record(What::NoticeMatched(info));
        }
        "match_ended" => {
            let id = text("match_id");
            let reason = text("reason");
            if !state.seen.contains(&id) {
                ctx.violation(format!("user {}: end of unknown match {id}", user.index));
            }
            if !["hangup", "skipped", "disconnected"].contains(&reason.as_str()) {
                ctx.violation(format!("user {}: end reason {reason:?}", user.index));
            }
            state.ended.insert(id.clone());
            if state.phase == Phase::Matched(id.clone()) {
                state.phase = Phase::Idle;
            }
            state.record(What::NoticeEnded { id, reason });
        }
        other => ctx.violation(format!("user {}: unexpected notice {other}", user.index)),
    }
}

async fn rpc(ctx: &Ctx, user: &User, name: &str, body: Value) -> (StatusCode, Value) {
    let response = ctx
        .http
        .post(format!("{}/rest/v1/rpc/{name}", ctx.url))
        .header("apikey", &ctx.anon_key)
        .bearer_auth(&user.token)
        .json(&body)
        .send()
        .await
        .expect("RPC request");
    let status = response.status();
    (status, response.json().await.expect("RPC JSON"))
}

/// `join_queue`, with the answer checked, logged and applied.
async fn join_queue(ctx: &Ctx, user: &User) {
    let connected = {
        let mut state = user.state();
        let connected = state.phase != Phase::Gone;
        if connected {
            state.phase = Phase::Searching;
        }
        state.record(What::JoinReq);
        connected
    };
    let (status, answer) = rpc(ctx, user, "join_queue", json!({})).await;
    if !connected {
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["code"], "P0001", "{answer}");
        assert_eq!(
            answer["hint"],
            format!("subscribe to the private channel inbox:{}", user.id)
        );
        user.state().record(What::JoinRefused);
        return;
    }
    assert_eq!(status, StatusCode::OK, "user {}: {answer}", user.index);
    match answer["status"].as_str() {
        Some("waiting") => user.state().record(What::JoinWaiting),
        Some("matched") => {
            let info = MatchInfo {
                id: answer["match_id"].as_str().expect("match_id").to_owned(),
                role: answer["role"].as_str().expect("role").to_owned(),
                topic: answer["topic"].as_str().expect("topic").to_owned(),
            };
            {
                let mut state = user.state();
                state.seen.insert(info.id.clone());
                state.phase = if state.ended.contains(&info.id) {
                    Phase::Idle
                } else {
                    Phase::Matched(info.id.clone())
                };
                state.record(What::JoinMatched(info.clone()));
            }
            // Who the offerer is, while the match is (probably) still on.
            let q = ctx.state.matchmaking.queue();
            if let Ok(id) = info.id.parse()
                && let Some(m) = q.get_match(id)
            {
                lock(&ctx.pairs).insert(
                    info.id.clone(),
                    (
                        m.offerer.as_str().to_owned(),
                        m.answerer.as_str().to_owned(),
                    ),
                );
            }
            ctx.check_queue(&q, "after a match");
        }
        _ => panic!("user {}: join_queue answered {answer}", user.index),
    }
}

/// `leave_queue` from `Searching`.
async fn leave_queue(ctx: &Ctx, user: &User, conn: &mut Conn) {
    let (status, answer) = rpc(ctx, user, "leave_queue", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], "idle");
    let was_waiting = answer["was_waiting"].as_bool().expect("was_waiting");
    {
        let mut state = user.state();
        state.record(What::Left { was_waiting });
        if was_waiting {
            if let Phase::Matched(id) = &state.phase {
                ctx.violation(format!(
                    "user {}: left the queue while told of match {id}",
                    user.index
                ));
            }
            state.phase = Phase::Idle;
        }
    }
    if !was_waiting {
        // Matched in the meantime: the notice must be on the socket by now.
        conn.barrier().await;
        if user.phase() == Phase::Searching {
            ctx.violation(format!(
                "user {}: not waiting, yet told of no match",
                user.index
            ));
        }
    }
}

/// `end_match` or `report_stranger` on the match the user was told of.
async fn end_or_report(ctx: &Ctx, user: &User, id: &str, report: bool) {
    let (name, done) = if report {
        ("report_stranger", "reported")
    } else {
        ("end_match", "ended")
    };
    let (status, answer) = rpc(ctx, user, name, json!({ "match_id": id })).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "user {} {name}: {answer}",
        user.index
    );
    assert_eq!(answer, json!({ "status": done }));
    let mut state = user.state();
    state.phase = Phase::Idle;
    state.record(if report {
        What::Reported(id.to_owned())
    } else {
        What::EndedOwn(id.to_owned())
    });
}

/// Drops the socket, then waits until the server has processed it.
async fn disconnect(ctx: &Ctx, user: &User, conn: Conn) {
    // No notice can be half-handled once the reader is gone; the socket
    // itself stays open until the sink drops, so the server cannot have
    // noticed anything before the phase says `Dropping`.
    let sink = conn.stop_reading().await;
    {
        let mut state = user.state();
        state.phase = Phase::Dropping;
        state.record(What::Dropped);
    }
    // No leave, no close frame: as a crashed app or a lost network.
    drop(sink);
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let uid = UserId::new(user.id.clone());
    loop {
        {
            let q = ctx.state.matchmaking.queue();
            let gone = !ctx.state.realtime.hub().has_inbox_listener(&user.id)
                && !q.is_waiting(&uid)
                && q.current_match(&uid).is_none();
            if gone {
                // Under the queue lock: the sampler sees `Gone` only once
                // the server has let go of the user.
                let mut state = user.state();
                state.phase = Phase::Gone;
                state.record(What::Gone);
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "user {}: the server never noticed the disconnect",
            user.index
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

async fn reconnect(ctx: &Arc<Ctx>, user: &Arc<User>) -> Conn {
    let conn = Conn::open(ctx, user).await;
    let mut state = user.state();
    state.phase = Phase::Idle;
    state.record(What::Reconnected);
    conn
}

/// Waits up to a random few milliseconds for a notice.
async fn wait_for_notice(user: &User, rng: &mut StdRng) {
    let wait = Duration::from_millis(rng.random_range(1..=MAX_WAIT_MS));
    let _ = tokio::time::timeout(wait, user.notified.notified()).await;
}

/// One user's storm: [`OPS_PER_USER`] random choices. Returns the socket if
/// the user ends connected.
async fn user_task(ctx: Arc<Ctx>, user: Arc<User>, conn: Conn) -> Option<Conn> {
    let mut rng = StdRng::seed_from_u64(SEED + user.index as u64);
    let mut conn = Some(conn);
    for _ in 0..OPS_PER_USER {
        let roll = rng.random_range(0..100);
        match (user.phase(), conn.take()) {
            (Phase::Idle, Some(c)) => {
                conn = Some(c);
                match roll {
                    0..62 => join_queue(&ctx, &user).await,
                    // Change of mind: leave at once, most likely still
                    // waiting (with 1,000 users a wait is short).
                    62..75 => {
                        join_queue(&ctx, &user).await;
                        if user.phase() == Phase::Searching {
                            let c = conn.as_mut().expect("connected");
                            leave_queue(&ctx, &user, c).await;
                        }
                    }
                    75..85 => disconnect(&ctx, &user, conn.take().expect("connected")).await,
                    _ => wait_for_notice(&user, &mut rng).await,
                }
            }
            (Phase::Searching, Some(mut c)) => {
                match roll {
                    0..60 => wait_for_notice(&user, &mut rng).await,
                    60..88 => leave_queue(&ctx, &user, &mut c).await,
                    _ => {
                        disconnect(&ctx, &user, c).await;
                        continue;
                    }
                }
                conn = Some(c);
            }
            (Phase::Matched(id), Some(c)) => {
                conn = Some(c);
                match roll {
                    0..35 => end_or_report(&ctx, &user, &id, false).await,
                    35..50 => end_or_report(&ctx, &user, &id, true).await,
                    // Skip: search again straight from the match.
                    50..70 => join_queue(&ctx, &user).await,
                    70..85 => wait_for_notice(&user, &mut rng).await,
                    _ => disconnect(&ctx, &user, conn.take().expect("connected")).await,
                }
            }
            (Phase::Gone, None) => {
                if roll < 25 {
                    // Searching while disconnected is refused.
                    join_queue(&ctx, &user).await;
                } else {
                    conn = Some(reconnect(&ctx, &user).await);
                }
            }
            (phase, c) => panic!("user {}: {phase:?} with socket {}", user.index, c.is_some()),
        }
    }
    conn
}

/// Samples the queue until `stop`; returns how many samples it took.
async fn sampler_task(ctx: Arc<Ctx>, stop: Arc<AtomicBool>) -> usize {
    let mut samples = 0;
    while !stop.load(Ordering::Relaxed) {
        {
            let q = ctx.state.matchmaking.queue();
            ctx.check_queue(&q, "sample");
        }
        samples += 1;
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    samples
}

async fn sign_up_all(t: &TestServer) -> Vec<(String, String)> {
    let gate = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let mut tasks = Vec::new();
    for _ in 0..USERS {
        let gate = gate.clone();
        let http = t.http.clone();
        let url = t.url("/auth/v1/signup");
        let anon = t.server.anon_key.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.expect("open semaphore");
            let response = http
                .post(url)
                .header("apikey", anon)
                .json(&json!({}))
                .send()
                .await
                .expect("signup request");
            assert_eq!(response.status(), StatusCode::OK);
            let session: Value = response.json().await.expect("signup JSON");
            (
                session["user"]["id"].as_str().expect("id").to_owned(),
                session["access_token"].as_str().expect("token").to_owned(),
            )
        }));
    }
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.expect("signup task"));
    }
    out
}

async fn connect_all(ctx: &Arc<Ctx>) -> Vec<Conn> {
    let gate = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let mut tasks = Vec::new();
    for user in &ctx.users {
        let (gate, ctx, user) = (gate.clone(), ctx.clone(), user.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.expect("open semaphore");
            Conn::open(&ctx, &user).await
        }));
    }
    let mut conns = Vec::new();
    for task in tasks {
        conns.push(task.await.expect("connect task"));
    }
    conns
}

/// Counts over all logs, for the report and the sanity floor.
#[derive(Debug, Default)]
struct Stats {
    matches: usize,
    joins: usize,
    skips: usize,
    waiting_answers: usize,
    refused_joins: usize,
    leaves_waiting: usize,
    leaves_matched: usize,
    ends: usize,
    reports: usize,
    disconnects: usize,
    reconnects: usize,
    ended_notices: HashMap<String, usize>,
    /// Matches told to one side only (the other dropped its socket).
    one_sided: usize,
    /// Matches whose offerer vanished before anyone saw who it was.
    unknown_offerers: usize,
    /// Reports of such a match, whose pair cannot be checked.
    unknown_reported_pairs: usize,
}

/// Where a match came from: the answerer's join window and the users told.
#[derive(Debug, Default)]
struct MatchRecord {
    answerer: Option<(String, Instant, Instant)>,
    notices: Vec<(String, MatchInfo)>,
}

/// Checks everything the logs can show; returns the counts.
fn analyse_logs(ctx: &Ctx) -> Stats {
    let mut stats = Stats::default();
    let logs: HashMap<String, Vec<Entry>> = ctx
        .users
        .iter()
        .map(|u| (u.id.clone(), u.state().log.clone()))
        .collect();
    let pairs = lock(&ctx.pairs).clone();
    let mut records: HashMap<String, MatchRecord> = HashMap::new();
    // When each user was known not to be waiting: [from, until next search).
    let mut not_waiting: HashMap<String, Vec<(Instant, Option<Instant>)>> = HashMap::new();
    let mut reports: Vec<(String, String, Instant)> = Vec::new();

    for user in &ctx.users {
        let log = &logs[&user.id];
        let mut seen = HashSet::new();
        // The matches first told of since the last search, if searching.
        let mut search: Option<Vec<String>> = None;
        let mut last_join_req = None;
        let mut idle_since = Some(ctx.started);
        let mut intervals = Vec::new();
        let mut in_match = false;
        for entry in log {
            let mut settled = false;
            match &entry.what {
                What::JoinReq => {
                    stats.joins += 1;
                    if in_match {
                        stats.skips += 1;
                    }
                    if let Some(from) = idle_since.take() {
                        intervals.push((from, Some(entry.at)));
                    }
                    search = Some(Vec::new());
                    last_join_req = Some(entry.at);
                    in_match = false;
                }
                What::JoinWaiting => stats.waiting_answers += 1,
                What::JoinRefused => {
                    stats.joins -= 1;
                    stats.refused_joins += 1;
                    search = None;
                    settled = true;
                }
                What::JoinMatched(info) | What::NoticeMatched(info) => {
                    if info.topic != format!("room:{}", info.id) {
                        ctx.violation(format!("match {} announced as {:?}", info.id, info.topic));
                    }
                    let record = records.entry(info.id.clone()).or_default();
                    if let What::JoinMatched(_) = &entry.what {
                        if info.role != "answerer" {
                            ctx.violation(format!("joiner of {} told {:?}", info.id, info.role));
                        }
                        let from = last_join_req.expect("an answer follows a request");
                        if record.answerer.is_some() {
                            ctx.violation(format!("two joins answered with match {}", info.id));
                        }
                        record.answerer = Some((user.id.clone(), from, entry.at));
                    } else {
                        if record.notices.iter().any(|(u, _)| *u == user.id) {
                            ctx.violation(format!("user {} told of {} twice", user.index, info.id));
                        }
                        record.notices.push((user.id.clone(), info.clone()));
                    }
                    if seen.insert(info.id.clone()) {
                        match &mut search {
                            Some(found) => {
                                found.push(info.id.clone());
                                if found.len() > 1 {
                                    ctx.violation(format!(
                                        "user {}: one search, two matches {found:?}",
                                        user.index
                                    ));
                                }
                            }
                            None => ctx.violation(format!(
                                "user {}: matched in {} without searching",
                                user.index, info.id
                            )),
                        }
                        in_match = true;
                        settled = true;
                    }
                }
                What::Left { was_waiting } => {
                    if *was_waiting {
                        stats.leaves_waiting += 1;
                        search = None;
                    } else {
                        stats.leaves_matched += 1;
                    }
                    settled = true;
                }
                What::EndedOwn(_) => {
                    stats.ends += 1;
                    in_match = false;
                    settled = true;
                }
                What::Reported(id) => {
                    stats.reports += 1;
                    reports.push((user.id.clone(), id.clone(), entry.at));
                    in_match = false;
                    settled = true;
                }
                What::NoticeEnded { id, reason } => {
                    *stats.ended_notices.entry(reason.clone()).or_default() += 1;
                    // Only the end of the match of the current search says
                    // the user is idle now; a late notice of an older one
                    // may arrive after a new search began.
                    if search.as_ref().is_some_and(|found| found.contains(id)) {
                        in_match = false;
                        settled = true;
                    }
                }
                What::Dropped => {
                    stats.disconnects += 1;
                    search = None;
                    in_match = false;
                }
                What::Gone => settled = true,
                What::Reconnected => {
                    stats.reconnects += 1;
                    search = None;
                    settled = true;
                }
            }
            if settled && idle_since.is_none() {
                idle_since = Some(entry.at);
            }
        }
        if let Some(from) = idle_since {
            intervals.push((from, None));
        }
        not_waiting.insert(user.id.clone(), intervals);
    }

    // Per match: who took part, and whether both were told.
    let mut pair_of: HashMap<String, (String, String, Instant)> = HashMap::new();
    stats.matches = records.len();
    for (id, record) in &records {
        let Some((answerer, join_at, answered_at)) = record.answerer.clone() else {
            ctx.violation(format!("match {id} was announced but no join made it"));
            continue;
        };
        let mut offerer = None;
        let mut answerer_told = false;
        for (user, info) in &record.notices {
            if *user == answerer {
                answerer_told = true;
                if info.role != "answerer" {
                    ctx.violation(format!("answerer of {id} notified as {:?}", info.role));
                }
            } else {
                if info.role != "offerer" {
                    ctx.violation(format!("offerer of {id} notified as {:?}", info.role));
                }
                if offerer.replace(user.clone()).is_some() {
                    ctx.violation(format!("match {id} announced to three users"));
                }
            }
        }
        let offerer_told = offerer.is_some();
        if let Some((o, a)) = pairs.get(id) {
            if *a != answerer || offerer.as_ref().is_some_and(|known| known != o) {
                ctx.violation(format!("match {id}: the notices disagree with the server"));
            }
            offerer = Some(o.clone());
        }
        // A side that was not told must have dropped its socket meanwhile.
        let dropped_after = |user: &str, after: Instant| {
            logs[user]
                .iter()
                .any(|e| matches!(e.what, What::Gone) && e.at >= after)
        };
        if !answerer_told && !dropped_after(&answerer, answered_at) {
            ctx.violation(format!("answerer of {id} was never told and never dropped"));
        }
        match &offerer {
            Some(o) if !offerer_told && !dropped_after(o, join_at) => {
                ctx.violation(format!("offerer of {id} was never told and never dropped"));
            }
            None => {
                // The offerer vanished before anyone could see who it was:
                // the answerer must hear it disconnected, unless it had
                // already ended the match itself.
                stats.unknown_offerers += 1;
                let told_or_left = logs[&answerer].iter().any(|e| match &e.what {
                    What::NoticeEnded { id: ended, reason } => {
                        ended == id && reason == "disconnected"
                    }
                    What::EndedOwn(ended) | What::Reported(ended) => ended == id,
                    What::JoinReq | What::Dropped => e.at > answered_at,
                    _ => false,
                });
                if !told_or_left {
                    ctx.violation(format!("match {id}: the offerer vanished unannounced"));
                }
            }
            Some(_) => {}
        }
        if !(answerer_told && offerer_told) {
            stats.one_sided += 1;
        }
        let Some(offerer) = offerer else { continue };
        if offerer == answerer {
            ctx.violation(format!("match {id}: a user matched with themselves"));
        }
        // No ghost: the offerer was not known to be idle or gone throughout
        // the window in which the match was made.
        for (from, until) in &not_waiting[&offerer] {
            if *from < join_at && until.is_none_or(|until| until > answered_at) {
                ctx.violation(format!(
                    "match {id}: offerer {} was not waiting when it was made",
                    ctx.by_id[&offerer].index
                ));
            }
        }
        pair_of.insert(id.clone(), (offerer, answerer, join_at));
    }

    // Reported pairs: blocked for good, and never matched after the report.
    let q = ctx.state.matchmaking.queue();
    for (reporter, id, reported_at) in reports {
        let Some((o, a, _)) = pair_of.get(&id) else {
            stats.unknown_reported_pairs += 1;
            continue;
        };
        let partner = if *o == reporter { a } else { o };
        if !q.is_blocked(
            &UserId::new(reporter.clone()),
            &UserId::new(partner.clone()),
        ) {
            ctx.violation(format!("match {id}: the reported pair is not blocked"));
        }
        let pair =
            |x: &str, y: &str| (x == reporter && y == *partner) || (x == *partner && y == reporter);
        for (other, (x, y, made_at)) in &pair_of {
            if *other != id && pair(x, y) && *made_at > reported_at {
                ctx.violation(format!("reported pair matched again in {other}"));
            }
        }
    }
    stats
}

/// After the storm: every connected user searches once more, one at a time
/// in a seeded order, each after a barrier so that it acts on everything it
/// has been told.
async fn final_round(ctx: &Arc<Ctx>, conns: &mut HashMap<usize, Conn>) {
    let mut order: Vec<usize> = conns.keys().copied().collect();
    order.sort_unstable();
    order.shuffle(&mut StdRng::seed_from_u64(SEED));
    for index in order {
        let conn = conns.get_mut(&index).expect("connected");
        conn.barrier().await;
        join_queue(ctx, &ctx.users[index]).await;
    }
    for conn in conns.values_mut() {
        conn.barrier().await;
    }
}

/// The end state: nobody left waiting who could be matched, and the server
/// and every user agree on who is where.
fn check_final_state(ctx: &Ctx, conns: &HashMap<usize, Conn>) -> usize {
    let q = ctx.state.matchmaking.queue();
    ctx.check_queue(&q, "final");
    let waiting: Vec<&UserId> = q.waiting_users().collect();
    for (i, a) in waiting.iter().enumerate() {
        for b in &waiting[i + 1..] {
            assert!(
                q.is_blocked(a, b),
                "{a:?} and {b:?} both wait but could be matched"
            );
        }
    }
    let hub = ctx.state.realtime.hub();
    for user in &ctx.users {
        let uid = UserId::new(user.id.clone());
        let connected = conns.contains_key(&user.index);
        assert_eq!(
            hub.has_inbox_listener(&user.id),
            connected,
            "user {}",
            user.index
        );
        let server = match (q.is_waiting(&uid), q.current_match(&uid)) {
            (true, None) => Phase::Searching,
            (false, Some(m)) => Phase::Matched(m.id.to_string()),
            (false, None) if connected => Phase::Idle,
            (false, None) => Phase::Gone,
            (true, Some(_)) => panic!("user {} waits while matched", user.index),
        };
        assert_eq!(user.phase(), server, "user {}", user.index);
    }
    waiting.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_users_storm_the_matchmaker() {
    // Each user holds a websocket and an HTTP connection, each with a server
    // end: about 4,000 descriptors.
    let limit = rlimit::increase_nofile_limit(8_192).expect("read the open-files limit");
    assert!(
        limit >= 4_500,
        "open-files limit {limit} is too low for the test"
    );

    let t = TestServer::start(test_config()).await;
    let setup = Instant::now();
    let accounts = sign_up_all(&t).await;
    let users: Vec<Arc<User>> = accounts
        .into_iter()
        .enumerate()
        .map(|(index, (id, token))| {
            Arc::new(User {
                index,
                inbox: format!("realtime:inbox:{id}"),
                id,
                token,
                state: Mutex::new(UserState {
                    phase: Phase::Idle,
                    seen: HashSet::new(),
                    ended: HashSet::new(),
                    log: Vec::new(),
                }),
                notified: Notify::new(),
            })
        })
        .collect();
    let ctx = Arc::new(Ctx {
        url: t.server.url.clone(),
        anon_key: t.server.anon_key.clone(),
        http: reqwest::Client::builder()
            .timeout(SETTLE_TIMEOUT)
            .build()
            .expect("HTTP client"),
        state: t.server.state.clone(),
        by_id: users.iter().map(|u| (u.id.clone(), u.clone())).collect(),
        users,
        pairs: Mutex::new(HashMap::new()),
        violations: Mutex::new(Vec::new()),
        started: Instant::now(),
    });
    let conns = connect_all(&ctx).await;
    let setup_time = setup.elapsed();

    let storm = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(sampler_task(ctx.clone(), stop.clone()));
    let tasks: Vec<_> = ctx
        .users
        .iter()
        .zip(conns)
        .map(|(user, conn)| tokio::spawn(user_task(ctx.clone(), user.clone(), conn)))
        .collect();
    let mut conns = HashMap::new();
    for (index, task) in tasks.into_iter().enumerate() {
        if let Some(conn) = task.await.expect("user task") {
            conns.insert(index, conn);
        }
    }
    let storm_time = storm.elapsed();
    for conn in conns.values_mut() {
        conn.barrier().await;
    }

    final_round(&ctx, &mut conns).await;
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.await.expect("sampler");
    let left_waiting = check_final_state(&ctx, &conns);
    let stats = analyse_logs(&ctx);
    let active = ctx.state.matchmaking.queue().active_matches().len();

    eprintln!(
        "{USERS} users, {OPS_PER_USER} choices each: setup {setup_time:?}, storm {storm_time:?}, \
         {samples} samples; {stats:#?}; after the final round {} connected, {active} matches, \
         {left_waiting} waiting",
        conns.len()
    );
    let violations = lock(&ctx.violations).clone();
    assert!(
        violations.is_empty(),
        "{} violations, first: {:#?}",
        violations.len(),
        &violations[..violations.len().min(20)]
    );
    // The storm really exercised every path; the floors are about a third
    // of what a run does. Leaving while still waiting is rare under this
    // load (a waiting user is matched within about a millisecond), so it has
    // no floor of its own.
    assert!(stats.matches >= 1_000, "{stats:?}");
    assert!(stats.skips >= 200, "{stats:?}");
    assert!(stats.ends >= 400, "{stats:?}");
    assert!(stats.reports >= 150, "{stats:?}");
    assert!(stats.disconnects >= 500, "{stats:?}");
    assert!(stats.reconnects >= 400, "{stats:?}");
    assert!(stats.refused_joins >= 100, "{stats:?}");
    assert!(
        stats.leaves_waiting + stats.leaves_matched >= 300,
        "{stats:?}"
    );
    assert!(samples >= 10, "the sampler ran {samples} times");

    for conn in conns.into_values() {
        conn.close().await;
    }
    t.stop().await;
}
