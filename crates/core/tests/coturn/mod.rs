//! A real coturn on loopback for tests: started with the MACHINE.md recipe
//! on random ports with a random secret, checked ready with a STUN binding,
//! and killed by PID when dropped. `Coturn::start` returns `None`, after
//! printing why, only when `/usr/bin/turnserver` is not installed.
// Each test file uses a different subset.
#![allow(dead_code)]

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use voicemeet_core::backend::IceServer;

const TURNSERVER: &str = "/usr/bin/turnserver";
const REALM: &str = "voicemeet.test";
/// How long coturn may take to answer its first STUN request.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Relay ports coturn may allocate from: plenty for a few allocations.
const RELAY_PORTS: u16 = 100;

fn random_u64() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    RandomState::new().hash_one((nanos, std::process::id()))
}

/// A free UDP port on loopback (free when asked; coturn binds it right
/// after).
fn free_udp_port() -> u16 {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|s| s.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// A running coturn; killed (by its PID) and reaped on drop.
pub struct Coturn {
    child: Child,
    pub port: u16,
    pub secret: String,
    dir: PathBuf,
}

impl Coturn {
    pub fn start() -> Option<Self> {
        if !Path::new(TURNSERVER).exists() {
            println!("SKIPPED: {TURNSERVER} is not installed (apt-get install coturn)");
            return None;
        }
        let port = free_udp_port();
        // A relay range away from the ephemeral range the peers bind in.
        let min_port = 20_000 + (random_u64() % 9_000) as u16 * 2;
        let max_port = min_port + RELAY_PORTS - 1;
        let secret = format!("{:016x}{:016x}", random_u64(), random_u64());
        let dir = std::env::temp_dir().join(format!("vm-coturn-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let child = Command::new(TURNSERVER)
            .args(["-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1"])
            .arg(format!("--listening-port={port}"))
            .arg(format!("--min-port={min_port}"))
            .arg(format!("--max-port={max_port}"))
            .args([
                "--use-auth-secret",
                "--no-tcp",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
            ])
            .arg(format!("--static-auth-secret={secret}"))
            .arg(format!("--realm={REALM}"))
            .args([
                "--allow-loopback-peers",
                "--fingerprint",
                "--no-multicast-peers",
            ])
            .arg(format!(
                "--pidfile={}",
                dir.join("turnserver.pid").display()
            ))
            .arg(format!(
                "--log-file={}",
                dir.join("turnserver.log").display()
            ))
            .args(["--simple-log", "--no-stdout-log"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start turnserver");
        let coturn = Self {
            child,
            port,
            secret,
            dir,
        };
        coturn.wait_ready();
        Some(coturn)
    }

    /// Sends STUN Binding requests until coturn answers one.
    fn wait_ready(&self) {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("probe socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        request.extend_from_slice(&random_u64().to_be_bytes());
        request.extend_from_slice(&[1, 2, 3, 4]);
        let target = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let started = Instant::now();
        let mut answer = [0u8; 512];
        while started.elapsed() < STARTUP_TIMEOUT {
            socket.send_to(&request, target).expect("send probe");
            if let Ok((len, _)) = socket.recv_from(&mut answer)
                && len >= 20
                && answer[..2] == [0x01, 0x01]
            {
                return;
            }
        }
        panic!("coturn did not answer STUN within {STARTUP_TIMEOUT:?}");
    }

    pub fn url(&self) -> String {
        format!("turn:127.0.0.1:{}?transport=udp", self.port)
    }

    /// TURN REST credentials for `user`, valid for an hour.
    pub fn credentials(&self, user: &str) -> Vec<IceServer> {
        let expires_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            + 3600;
        let minted = voicemeet_server::turn_rest::mint(&self.secret, user, expires_at);
        vec![IceServer {
            urls: vec![self.url()],
            username: minted.username.into(),
            credential: minted.credential.into(),
        }]
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        // Our own child, by PID; wait() reaps it.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
