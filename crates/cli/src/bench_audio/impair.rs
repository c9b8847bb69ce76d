//! A UDP impairment stage in front of the TURN relay: clients talk to it as
//! if it were the relay, it forwards both ways, and on the way from the
//! relay to a client it drops audio RTP packets by a seeded loss pattern.
//! Everything else (STUN/TURN control, DTLS, RTCP) passes untouched, so
//! the call sets up normally and receiver reports tell the sender the
//! truth. The kernel here has no `netem`, and a seeded stage is
//! reproducible, which a quality benchmark wants.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

/// The largest datagram a TURN relay sends (ChannelData of a full MTU).
const MAX_DATAGRAM: usize = 2048;

/// Which packets are lost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    /// Nothing.
    None,
    /// Each packet independently with this probability.
    Random(f64),
    /// Gilbert–Elliott with a lossless good state and an all-loss bad state:
    /// `rate` of packets lost on average, in bursts of `mean_burst`
    /// packets on average (geometric).
    Bursty {
        /// Average loss, 0..1.
        rate: f64,
        /// Mean burst length in packets, ≥ 1.
        mean_burst: f64,
    },
}

impl Loss {
    /// A short name for tables: `0 %`, `10 % random`, `10 % bursty (3)`.
    pub fn label(self) -> String {
        match self {
            Loss::None => "none".to_owned(),
            Loss::Random(p) => format!("{:.0} % random", p * 100.0),
            Loss::Bursty { rate, mean_burst } => {
                format!("{:.0} % bursty (mean {mean_burst:.0})", rate * 100.0)
            }
        }
    }
}

/// splitmix64: tiny, seeded, good enough to decide drops.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A loss process: one decision per packet.
#[derive(Debug, Clone)]
pub struct LossProcess {
    loss: Loss,
    rng: Rng,
    bad: bool,
}

impl LossProcess {
    /// A process for `loss`, reproducible from `seed`.
    pub fn new(loss: Loss, seed: u64) -> Self {
        Self {
            loss,
            rng: Rng::new(seed),
            bad: false,
        }
    }

    /// Whether the next packet is lost.
    pub fn drop_next(&mut self) -> bool {
        match self.loss {
            Loss::None => false,
            Loss::Random(p) => self.rng.next_f64() < p,
            Loss::Bursty { rate, mean_burst } => {
                // Leave the bad state with 1/mean_burst per packet; enter it
                // so that the stationary share of bad packets is `rate`.
                let leave = 1.0 / mean_burst.max(1.0);
                let enter = rate * leave / (1.0 - rate).max(f64::EPSILON);
                let u = self.rng.next_f64();
                self.bad = if self.bad { u >= leave } else { u < enter };
                self.bad
            }
        }
    }
}

/// Whether a datagram from the relay is TURN ChannelData carrying an RTP
/// (not RTCP) packet: the only kind the stage drops.
pub fn is_relayed_rtp(datagram: &[u8]) -> bool {
    // ChannelData: channel numbers 0x4000..=0x4FFF (RFC 8656 §12.4), then
    // a 2-byte length, then the data.
    if datagram.len() < 4 + 12 || !(0x40..=0x4f).contains(&datagram[0]) {
        return false;
    }
    let inner = &datagram[4..];
    // RTP/RTCP version 2; RTCP packet types are 192..=223 in the second
    // byte (RFC 5761 §4), RTP payload types with the marker bit are not.
    inner[0] >> 6 == 2 && !(192..=223).contains(&inner[1])
}

/// What passed through the stage towards clients.
#[derive(Debug, Default)]
pub struct Counters {
    /// Audio RTP packets from the relay.
    pub rtp: AtomicU64,
    /// Of those, dropped.
    pub dropped: AtomicU64,
    /// Bytes of those audio RTP datagrams (ChannelData included).
    pub rtp_bytes: AtomicU64,
    /// Bytes of every datagram from the relay to clients, before drops
    /// (what the sender paid for), UDP payload only.
    pub bytes: AtomicU64,
    /// Datagrams from the relay to clients, before drops.
    pub datagrams: AtomicU64,
}

/// The running stage.
pub struct Impairment {
    /// Where clients send (the address to advertise as the relay's).
    pub addr: SocketAddr,
    /// Counts so far.
    pub counters: Arc<Counters>,
    cancel: CancellationToken,
}

impl Drop for Impairment {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Impairment {
    /// Binds a loopback port that forwards to `relay`, dropping audio on
    /// the way back by `loss` (one process per client, seeded from `seed`
    /// and the client's order of arrival).
    pub async fn start(relay: SocketAddr, loss: Loss, seed: u64) -> anyhow::Result<Self> {
        let front = Arc::new(
            UdpSocket::bind("127.0.0.1:0")
                .await
                .context("binding the impairment stage")?,
        );
        let addr = front.local_addr()?;
        let counters = Arc::new(Counters::default());
        let cancel = CancellationToken::new();
        tokio::spawn(front_task(
            front,
            relay,
            loss,
            seed,
            Arc::clone(&counters),
            cancel.clone(),
        ));
        Ok(Self {
            addr,
            counters,
            cancel,
        })
    }
}

/// Reads from clients; each new client gets its own socket towards the
/// relay (so the relay sees one 5-tuple per client, as without the stage)
/// and a task carrying the relay's answers back.
async fn front_task(
    front: Arc<UdpSocket>,
    relay: SocketAddr,
    loss: Loss,
    seed: u64,
    counters: Arc<Counters>,
    cancel: CancellationToken,
) {
    let mut flows: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (len, client) = tokio::select! {
            () = cancel.cancelled() => break,
            read = front.recv_from(&mut buf) => match read {
                Ok(read) => read,
                Err(_) => continue,
            },
        };
        let upstream = match flows.get(&client) {
            Some(socket) => Arc::clone(socket),
            None => {
                let Ok(socket) = UdpSocket::bind("127.0.0.1:0").await else {
                    continue;
                };
                let socket = Arc::new(socket);
                let flow_seed = seed ^ (flows.len() as u64).wrapping_mul(0x1000_0000_01b3);
                tokio::spawn(back_task(
                    Arc::clone(&socket),
                    Arc::clone(&front),
                    client,
                    LossProcess::new(loss, flow_seed),
                    Arc::clone(&counters),
                    cancel.clone(),
                ));
                flows.insert(client, Arc::clone(&socket));
                socket
            }
        };
        let _ = upstream.send_to(&buf[..len], relay).await;
    }
}

async fn back_task(
    upstream: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    client: SocketAddr,
    mut loss: LossProcess,
    counters: Arc<Counters>,
    cancel: CancellationToken,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let len = tokio::select! {
            () = cancel.cancelled() => break,
            read = upstream.recv(&mut buf) => match read {
                Ok(len) => len,
                Err(_) => continue,
            },
        };
        counters.datagrams.fetch_add(1, Ordering::Relaxed);
        counters.bytes.fetch_add(len as u64, Ordering::Relaxed);
        if is_relayed_rtp(&buf[..len]) {
            counters.rtp.fetch_add(1, Ordering::Relaxed);
            counters.rtp_bytes.fetch_add(len as u64, Ordering::Relaxed);
            if loss.drop_next() {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        }
        let _ = front.send_to(&buf[..len], client).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measure(loss: Loss) -> (f64, f64) {
        let mut process = LossProcess::new(loss, 7);
        let n = 200_000;
        let (mut lost, mut bursts, mut previous) = (0u32, 0u32, false);
        for _ in 0..n {
            let dropped = process.drop_next();
            lost += u32::from(dropped);
            bursts += u32::from(dropped && !previous);
            previous = dropped;
        }
        (
            f64::from(lost) / f64::from(n),
            f64::from(lost) / f64::from(bursts.max(1)),
        )
    }

    #[test]
    fn loss_processes_hit_their_rate_and_burst_length() {
        let (rate, _) = measure(Loss::None);
        assert_eq!(rate, 0.0);
        let (rate, burst) = measure(Loss::Random(0.1));
        assert!((rate - 0.1).abs() < 0.005, "random rate {rate}");
        assert!(burst < 1.2, "random loss has short bursts: {burst}");
        let (rate, burst) = measure(Loss::Bursty {
            rate: 0.1,
            mean_burst: 3.0,
        });
        assert!((rate - 0.1).abs() < 0.01, "bursty rate {rate}");
        assert!((burst - 3.0).abs() < 0.2, "mean burst {burst}");
    }

    #[test]
    fn only_relayed_rtp_is_eligible_for_dropping() {
        let mut rtp = vec![0x40, 0x00, 0x00, 0x20, 0x80, 63];
        rtp.resize(4 + 32, 0);
        assert!(is_relayed_rtp(&rtp));
        let mut marked = rtp.clone();
        marked[5] = 0x80 | 63;
        assert!(is_relayed_rtp(&marked));
        let mut rtcp = rtp.clone();
        rtcp[5] = 201; // receiver report
        assert!(!is_relayed_rtp(&rtcp));
        let mut dtls = rtp.clone();
        dtls[4] = 23; // a DTLS record
        assert!(!is_relayed_rtp(&dtls));
        let stun = [0x01, 0x17, 0x00, 0x10, 0x21, 0x12, 0xa4, 0x42];
        assert!(!is_relayed_rtp(&stun));
        assert!(!is_relayed_rtp(&rtp[..10]), "too short for RTP");
    }
}
