//! coturn (`--use-auth-secret`) accepts the credentials this server mints
//! when it shares the TURN secret, and refuses wrong ones: the external TURN
//! mode and the hosted path use the same TURN REST scheme.
//!
//! Skipped, with a message, when `/usr/bin/turnserver` is not installed.

mod common;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TURN_SECRET, TestServer, allocate, assert_relays_both_ways, test_config, unix_now};
use rand::Rng as _;
use voicemeet_server::TurnMode;
use voicemeet_server::turn_rest::{mint, rest_password};

const TURNSERVER: &str = "/usr/bin/turnserver";
/// coturn starts in well under a second on loopback; allow for a loaded box.
const COTURN_START_TIMEOUT: Duration = Duration::from_secs(15);
/// Relay ports coturn may use, so parallel runs do not collide.
const RELAY_PORT_RANGE: u16 = 20;

/// A coturn process, killed by PID when dropped.
struct Coturn {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Coturn {
    fn start(secret: &str) -> Self {
        let port = free_port();
        let min_port = rand::rng().random_range(40_000u16..60_000);
        let dir =
            std::env::temp_dir().join(format!("voicemeet-coturn-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let child = Command::new(TURNSERVER)
            .args([
                "-n",
                "--listening-ip=127.0.0.1",
                "--relay-ip=127.0.0.1",
                &format!("--listening-port={port}"),
                &format!("--min-port={min_port}"),
                &format!("--max-port={}", min_port + RELAY_PORT_RANGE),
                "--use-auth-secret",
                &format!("--static-auth-secret={secret}"),
                "--realm=voicemeet.test",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--allow-loopback-peers",
                "--fingerprint",
                "--no-multicast-peers",
                &format!("--pidfile={}", dir.join("turnserver.pid").display()),
                &format!("--log-file={}", dir.join("turnserver.log").display()),
                "--simple-log",
                "--no-stdout-log",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn turnserver");
        Self {
            child,
            dir,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("turnserver.log")).unwrap_or_default()
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        // `Child::kill` signals this child's PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port free on both UDP and TCP (coturn listens on both) right now.
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("udp bind");
        let port = udp.local_addr().expect("udp addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn coturn_installed() -> bool {
    if Path::new(TURNSERVER).exists() {
        return true;
    }
    println!("SKIPPED: {TURNSERVER} is not installed (apt-get install coturn)");
    false
}

#[tokio::test]
async fn coturn_accepts_minted_credentials_and_refuses_wrong_ones() {
    if !coturn_installed() {
        return;
    }
    let coturn = Coturn::start(TURN_SECRET);
    let mut config = test_config();
    config.turn.mode = TurnMode::External {
        urls: vec![format!("turn:{}?transport=udp", coturn.addr)],
    };
    let t = TestServer::start(config).await;

    let session = t.sign_up().await;
    let (status, body) = t
        .turn_credentials(session["access_token"].as_str().expect("token"))
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    let server = &body["iceServers"][0];
    assert_eq!(
        server["urls"][0],
        format!("turn:{}?transport=udp", coturn.addr)
    );
    let username = server["username"].as_str().expect("username");
    let credential = server["credential"].as_str().expect("credential");

    // The first success also proves coturn is up, so later refusals are
    // coturn's verdicts, not a server that is still starting.
    let deadline = Instant::now() + COTURN_START_TIMEOUT;
    let allocation = loop {
        match allocate(coturn.addr, username, credential).await {
            Ok(allocation) => break allocation,
            Err(err) if Instant::now() < deadline => {
                eprintln!("coturn not ready yet: {err}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => panic!("coturn refused minted credentials: {err}\n{}", coturn.log()),
        }
    };
    assert_relays_both_ways(&allocation).await;
    allocation.close().await;

    let wrong = rest_password("not-the-secret", username);
    let expired = mint(TURN_SECRET, "some-user", unix_now() - 1);
    let wrong_user = format!("{}:someone-else", unix_now() + 600);
    for (what, user, password) in [
        ("wrong password", username, wrong.as_str()),
        (
            "expired username",
            expired.username.as_str(),
            expired.credential.as_str(),
        ),
        (
            "password of another username",
            wrong_user.as_str(),
            credential,
        ),
    ] {
        let result = allocate(coturn.addr, user, password).await;
        let err = result
            .err()
            .unwrap_or_else(|| panic!("coturn accepted a {what}\n{}", coturn.log()));
        eprintln!("{what}: {err}");
        assert!(err.contains("error response"), "{what}: {err}");
    }
    t.stop().await;
    drop(coturn);
}
