//! Phoenix closes a socket that sends nothing for the idle timeout (60 s by
//! default; shortened here through `RealtimeLimits::idle_timeout`), and a
//! socket that heartbeats stays open.

mod common;
mod realtime_client;

use std::time::Duration;

use common::{TestServer, test_config};
use realtime_client::{Client, Inbound, assert_heartbeat_reply};
use voicemeet_server::proto::phoenix::Vsn;

/// Short enough to keep the test quick, long enough that the heartbeating
/// client below beats it several times over.
const IDLE: Duration = Duration::from_millis(1500);

#[tokio::test]
async fn a_silent_socket_is_closed_and_a_heartbeating_one_is_not() {
    let mut config = test_config();
    config.realtime.idle_timeout = IDLE;
    let server = TestServer::start(config).await;
    let url = &server.server.url;
    let key = &server.server.anon_key;
    let mut silent = Client::connect(url, key, Vsn::V2).await;
    let mut chatty = Client::connect(url, key, Vsn::V2).await;

    // Heartbeat at a third of the timeout for twice its length.
    for _ in 0..6 {
        tokio::time::sleep(IDLE / 3).await;
        let msg_ref = chatty.send_heartbeat().await;
        assert_heartbeat_reply(&chatty.recv_message().await, &msg_ref);
    }

    match silent.recv().await {
        Inbound::Closed { code, reason } => {
            assert_eq!(code, Some(1000));
            assert_eq!(reason, "idle timeout");
        }
        Inbound::Message(msg) => panic!("expected the idle close, got {}", msg.event),
    }
    let msg_ref = chatty.send_heartbeat().await;
    assert_heartbeat_reply(&chatty.recv_message().await, &msg_ref);
    server.stop().await;
}
