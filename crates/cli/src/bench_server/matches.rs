//! Part 2: matchmaking throughput. Users sign up and listen on their inbox
//! first (untimed); then all of them call `join_queue` at once and the clock
//! runs until every one has heard `matched` on their inbox.

use std::time::Duration;

use anyhow::{Context as _, bail};
use futures_util::StreamExt as _;
use futures_util::stream;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::idle::count;
use super::realtime::{self, ConnSpec, Inbound};
use super::{Options, progress};
use crate::report::Metric;
use crate::server_process::ServerProcess;
use crate::stats::{Summary, ms};

/// One HTTP request (sign-up or RPC) on loopback.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// The timed phase ends with an error if not every user is matched by then.
const MATCH_DEADLINE: Duration = Duration::from_secs(120);
/// Inbox notices queued between the connection tasks and the counter; the
/// counter only marks a flag per notice, so it keeps up.
const NOTICE_CAPACITY: usize = 4096;
/// Target: 2,000 matches (pairs) per second.
const MATCHES_TARGET_PER_S: f64 = 2000.0;

/// A signed-up anonymous user.
struct User {
    id: String,
    token: String,
}

/// Runs the part against a fresh server.
pub async fn run(server: &mut ServerProcess, options: &Options) -> anyhow::Result<Vec<Metric>> {
    let m = options.users;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(HTTP_TIMEOUT)
        .pool_max_idle_per_host(options.rpc_concurrency)
        .build()
        .context("building the HTTP client")?;

    let started = Instant::now();
    let users: Vec<User> = stream::iter(0..m)
        .map(|_| sign_up(&http, server))
        .buffer_unordered(options.rpc_concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let signup_time = started.elapsed();
    progress(format_args!(
        "matches: {m} users signed up in {:.2} s",
        signup_time.as_secs_f64()
    ));

    let url = realtime::websocket_url(&server.authority, &server.anon_key);
    let (notices_tx, notices) = mpsc::channel(NOTICE_CAPACITY);
    let mut tasks = JoinSet::new();
    let mut senders = Vec::with_capacity(m);
    let mut opens = stream::iter(users.iter().enumerate())
        .map(|(i, user)| {
            let url = &url;
            async move {
                let topic = format!("realtime:inbox:{}", user.id);
                let payload = realtime::join_payload(true, Some(&user.token));
                let ws = realtime::connect_and_join(url, &topic, payload).await;
                (i, topic, ws)
            }
        })
        .buffer_unordered(options.connect_concurrency);
    while let Some((i, topic, ws)) = opens.next().await {
        let ws = ws.with_context(|| format!("user {i} joining their inbox"))?;
        let spec = ConnSpec {
            conn: i,
            topic,
            echo: None,
            events: Some(notices_tx.clone()),
        };
        senders.push(realtime::spawn(ws, spec, &mut tasks));
    }
    drop(opens);
    drop(notices_tx);
    progress(format_args!("matches: {m} users listening on their inbox"));

    let start = Instant::now();
    let rpcs = async {
        let results: Vec<anyhow::Result<(Duration, bool)>> = stream::iter(&users)
            .map(|user| join_queue(&http, server, user))
            .buffer_unordered(options.rpc_concurrency)
            .collect()
            .await;
        (results, Instant::now())
    };
    let ((results, rpcs_done), counted) =
        tokio::join!(rpcs, count_matched(notices, m, start + MATCH_DEADLINE));
    let (notified, last_notice) = counted;
    drop(senders);
    tasks.shutdown().await;
    server.check_alive()?;

    let mut latencies = Vec::with_capacity(m);
    let mut matched_answers = 0usize;
    for result in results {
        let (latency, matched) = result?;
        latencies.push(latency);
        matched_answers += usize::from(matched);
    }
    if notified < m {
        bail!(
            "only {notified} of {m} users heard `matched` within {MATCH_DEADLINE:?} \
             ({matched_answers} join_queue answers said matched)"
        );
    }
    let end = last_notice.map_or(rpcs_done, |at| at.max(rpcs_done));
    let elapsed = end.saturating_duration_since(start).as_secs_f64();
    let pairs = count(m / 2);
    let rpc = Summary::of(latencies).context("no join_queue answers")?;
    Ok(vec![
        Metric::new(
            "matches_users",
            "matches: users matched",
            count(m),
            0,
            "users",
        ),
        Metric::new(
            "matches_pairs_answered_matched",
            "matches: join_queue answers `matched`",
            count(matched_answers),
            0,
            "pairs",
        ),
        Metric::new(
            "matches_elapsed_ms",
            "matches: time until all matched",
            elapsed * 1000.0,
            1,
            "ms",
        ),
        Metric::new(
            "matches_per_s",
            "matches: matches (pairs) per second",
            pairs / elapsed,
            0,
            "1/s",
        )
        .at_least(MATCHES_TARGET_PER_S),
        Metric::new(
            "matches_join_queue_p50_ms",
            "matches: join_queue latency p50",
            ms(rpc.p50),
            2,
            "ms",
        ),
        Metric::new(
            "matches_join_queue_p99_ms",
            "matches: join_queue latency p99",
            ms(rpc.p99),
            2,
            "ms",
        ),
    ])
}

async fn sign_up(http: &reqwest::Client, server: &ServerProcess) -> anyhow::Result<User> {
    let response: Value = http
        .post(format!("{}/auth/v1/signup", server.url))
        .header("apikey", &server.anon_key)
        .json(&json!({}))
        .send()
        .await
        .context("sign-up request")?
        .error_for_status()
        .context("sign-up refused")?
        .json()
        .await
        .context("sign-up answer")?;
    let token = response["access_token"].as_str();
    let id = response["user"]["id"].as_str();
    match (id, token) {
        (Some(id), Some(token)) => Ok(User {
            id: id.to_owned(),
            token: token.to_owned(),
        }),
        _ => bail!("sign-up answer has no access_token or user.id"),
    }
}

/// Calls `join_queue`; returns its latency and whether it answered
/// `matched` (the second user of each pair does).
async fn join_queue(
    http: &reqwest::Client,
    server: &ServerProcess,
    user: &User,
) -> anyhow::Result<(Duration, bool)> {
    let sent = Instant::now();
    let response = http
        .post(format!("{}/rest/v1/rpc/join_queue", server.url))
        .header("apikey", &server.anon_key)
        .bearer_auth(&user.token)
        .json(&json!({}))
        .send()
        .await
        .context("join_queue request")?;
    let status = response.status();
    let body: Value = response.json().await.context("join_queue answer")?;
    let latency = sent.elapsed();
    if !status.is_success() {
        bail!("join_queue refused ({status}): {body}");
    }
    match body["status"].as_str() {
        Some("matched") => Ok((latency, true)),
        Some("waiting") => Ok((latency, false)),
        _ => bail!("unexpected join_queue answer: {body}"),
    }
}

/// Counts users who heard `matched`, until all `users` have or `deadline`
/// passes. Returns the count and when the last notice arrived.
async fn count_matched(
    mut notices: mpsc::Receiver<Inbound>,
    users: usize,
    deadline: Instant,
) -> (usize, Option<Instant>) {
    let mut seen = vec![false; users];
    let mut notified = 0usize;
    let mut last = None;
    while notified < users {
        let notice = tokio::time::timeout_at(deadline, notices.recv()).await;
        let Ok(Some(notice)) = notice else { break };
        if notice.event == "matched"
            && let Some(flag) = seen.get_mut(notice.conn)
            && !*flag
        {
            *flag = true;
            notified += 1;
            last = Some(notice.at);
        }
    }
    (notified, last)
}
