//! Part 1: how many idle websockets the server holds, and what they cost it
//! in resident memory.

use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::realtime::{self, ConnSpec};
use super::{Options, progress};
use crate::report::Metric;
use crate::server_process::ServerProcess;

/// Lets the server finish the last joins and its allocator settle before
/// memory is read.
const SETTLE: Duration = Duration::from_secs(2);
/// Target: 10,000 connections within 150 MB of server RSS.
const RSS_TARGET_MB: f64 = 150.0;

/// Opens the connections, reads the server's RSS, closes them.
pub async fn run(server: &mut ServerProcess, options: &Options) -> anyhow::Result<Vec<Metric>> {
    let n = options.connections;
    let url = realtime::websocket_url(&server.authority, &server.anon_key);
    let rss_before = server.rss_kib()?;

    let started = Instant::now();
    let mut tasks = JoinSet::new();
    let mut held = Vec::with_capacity(n);
    let mut failed = 0usize;
    let mut first_error = None;
    let mut opens = stream::iter(0..n)
        .map(|i| {
            let url = &url;
            async move {
                let topic = format!("realtime:idle-{i}");
                let ws =
                    realtime::connect_and_join(url, &topic, realtime::join_payload(false, None))
                        .await;
                (i, topic, ws)
            }
        })
        .buffer_unordered(options.connect_concurrency);
    while let Some((i, topic, ws)) = opens.next().await {
        match ws {
            Ok(ws) => {
                let spec = ConnSpec {
                    conn: i,
                    topic,
                    echo: None,
                    events: None,
                };
                held.push(realtime::spawn(ws, spec, &mut tasks));
                if held.len().is_multiple_of(1000) {
                    progress(format_args!("idle: {} of {n} connections open", held.len()));
                }
            }
            Err(err) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("{err:#}"));
            }
        }
    }
    drop(opens);
    let open_time = started.elapsed();

    tokio::time::sleep(SETTLE).await;
    server.check_alive()?;
    // A task that ended lost its socket: count only the live ones.
    while tasks.try_join_next().is_some() {}
    let alive = tasks.len();
    let rss_after = server.rss_kib()?;
    drop(held);
    tasks.shutdown().await;

    if let Some(err) = &first_error {
        progress(format_args!(
            "idle: {failed} of {n} connections failed; first error: {err}"
        ));
    }
    anyhow::ensure!(alive > 0, "no connection could be held");

    let total_mb = kib_to_mb(rss_after);
    let delta_mb = kib_to_mb(rss_after.saturating_sub(rss_before));
    let per_conn_kb = delta_mb * 1000.0 / count(alive);
    let rss_total = Metric::new(
        "idle_rss_total_mb",
        "idle: server RSS with connections",
        total_mb,
        1,
        "MB",
    );
    // The goal is stated for 10,000 connections; smaller runs get no verdict.
    let rss_total = if alive >= 10_000 {
        rss_total.at_most(RSS_TARGET_MB)
    } else {
        rss_total
    };
    Ok(vec![
        Metric::new(
            "idle_connections_held",
            "idle: connections held",
            count(alive),
            0,
            "conn",
        )
        .at_least(count(n)),
        Metric::new(
            "idle_connections_failed",
            "idle: connections failed",
            count(failed),
            0,
            "conn",
        ),
        Metric::new(
            "idle_open_rate_per_s",
            "idle: connect+join rate",
            count(alive) / open_time.as_secs_f64(),
            0,
            "1/s",
        ),
        Metric::new(
            "idle_rss_before_mb",
            "idle: server RSS at start",
            kib_to_mb(rss_before),
            1,
            "MB",
        ),
        rss_total,
        Metric::new(
            "idle_rss_per_connection_kb",
            "idle: server RSS per connection",
            per_conn_kb,
            2,
            "KB",
        ),
    ])
}

/// `/proc` "kB" are KiB; results are in decimal MB (10^6 bytes).
fn kib_to_mb(kib: u64) -> f64 {
    count_u64(kib) * 1024.0 / 1e6
}

/// A count as a float for rates and ratios; exact below 2^53.
#[allow(clippy::cast_precision_loss)]
pub fn count(n: usize) -> f64 {
    n as f64
}

#[allow(clippy::cast_precision_loss)]
fn count_u64(n: u64) -> f64 {
    n as f64
}
