//! [`Peer`] on webrtc-rs 0.17: the only file of the crate that names the
//! `webrtc` crate. Settings that matter (MACHINE.md, PROTOCOLS.md §4):
//!
//! - ICE transport policy `relay`; only `turn:` over UDP URLs;
//! - relay acceptance wait 0 (the default 2 s wait delays every call by
//!   2 s when relay candidates are all there is);
//! - mDNS candidates off;
//! - one audio transceiver, sendrecv, sending RED (RFC 2198) around Opus
//!   (`red/48000/2` with `111/111`; Opus itself `useinbandfec=1;cbr=1`):
//!   the engine builds the RTP packets, so redundancy can deepen with loss;
//! - receiver reports about our stream come back as [`RemoteReport`]s;
//! - remote candidates before the remote description are buffered
//!   ([`RemoteCandidates`]), since `add_ice_candidate` refuses them.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::clock::sleep_until_some;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use voicemeet_proto::privacy;
use webrtc::api::APIBuilder;
use webrtc::api::media_engine::{MIME_TYPE_OPUS, MediaEngine};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice_transport::ice_candidate::{RTCIceCandidate, RTCIceCandidateInit};
use webrtc::ice_transport::ice_gathering_state::RTCIceGatheringState;
use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::offer_answer_options::RTCOfferOptions;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::policy::ice_transport_policy::RTCIceTransportPolicy;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTPCodecType,
};
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::track::track_local::TrackLocal;
use webrtc::track::track_local::TrackLocalWriter as _;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_remote::TrackRemote;

use super::candidates::{
    Disposition, RemoteCandidate, RemoteCandidates, outgoing_candidate_ok, outgoing_sdp_ok,
    redact_addresses,
};
use super::servers::{resolve_relay_ips, usable_servers};
use super::{CandidateInit, EVENT_CAPACITY, PeerConfig, PeerEvent, RelayIps, Role, Sdp};
use crate::error::Error;

/// Capacity of the channel from webrtc's callbacks to the event task. The
/// callbacks fire a few times per negotiation; when it is full they wait,
/// which only delays webrtc's own notification loop.
const RAW_EVENT_CAPACITY: usize = 64;

/// An ICE restart refuses to start while the previous gathering runs
/// (`ErrRestartWhenGathering`), so a restart first waits for it this long.
/// Relay gathering is one TURN allocation (a few round trips; retransmits
/// stretch that to seconds on a lossy link).
pub const GATHERING_SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// RTP payload type for Opus: the value browsers and webrtc-rs use.
pub const OPUS_PAYLOAD_TYPE: u8 = 111;

/// RTP payload type for RED around Opus: the value Chrome uses.
pub const RED_PAYLOAD_TYPE: u8 = 63;

/// Opus in SDP: always `opus/48000/2` (RFC 7587 §7), whatever is sent; our
/// encoder sends mono. What the fmtp says is what the engine does: in-band
/// FEC (and asks the same of the other side), constant bitrate (packet
/// sizes do not follow speech; docs/decisions/0003-opus-red-and-playout.md), no
/// DTX (`usedtx` absent means off), 20 ms packets.
fn opus_capability() -> RTCRtpCodecCapability {
    RTCRtpCodecCapability {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1;cbr=1;maxaveragebitrate=40000".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// How often the receiver reports loss and jitter: twice a second, so the
/// sender's redundancy follows a lossy network within about a second.
const RECEIVER_REPORT_INTERVAL: Duration = Duration::from_millis(500);

/// RTCP sender and receiver reports, nothing else: no transport-wide
/// congestion control (its header extension and 10 feedback packets a
/// second cost ~6 kbps per direction and nothing here reads them), and no
/// NACK (a retransmitted audio packet arrives after its playout time;
/// RED covers loss instead).
fn rtcp_reports() -> Registry {
    let mut registry = Registry::new();
    registry.add(Box::new(
        webrtc::interceptor::report::receiver::ReceiverReport::builder()
            .with_interval(RECEIVER_REPORT_INTERVAL),
    ));
    registry.add(Box::new(
        webrtc::interceptor::report::sender::SenderReport::builder(),
    ));
    registry
}

/// RED (RFC 2198) as Chrome negotiates it: every block is Opus.
fn red_capability() -> RTCRtpCodecCapability {
    RTCRtpCodecCapability {
        mime_type: "audio/red".to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: format!("{OPUS_PAYLOAD_TYPE}/{OPUS_PAYLOAD_TYPE}"),
        rtcp_feedback: vec![],
    }
}

/// The stack's errors can quote an SDP line or a candidate: addresses are
/// redacted before the text becomes an error detail (and so, a log line).
fn webrtc_error(during: &'static str) -> impl FnOnce(webrtc::Error) -> Error {
    move |err| Error::Webrtc {
        during,
        detail: redact_addresses(&err.to_string()),
    }
}

/// One relay-only audio peer connection; see the [module docs](super).
///
/// Methods take `&mut self`: the call's driver task owns the peer. Dropping
/// it closes the connection in the background; [`close`](Self::close)
/// waits for that.
pub struct Peer {
    pc: Arc<RTCPeerConnection>,
    role: Role,
    relay_ips: Arc<[IpAddr]>,
    /// The current generation, read by the candidate callback to label
    /// local candidates.
    shared_generation: Arc<AtomicU32>,
    generation: u32,
    remote: RemoteCandidates,
    /// Whether a remote description was ever set.
    has_remote: bool,
    /// Whether the connect timer was started for the first connection.
    armed: bool,
    local_audio: LocalAudio,
    raw_tx: mpsc::Sender<Raw>,
    cancel: CancellationToken,
    closed: bool,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("role", &self.role)
            .field("generation", &self.generation)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

/// What webrtc's callbacks report to the event task.
enum Raw {
    Candidate {
        init: RTCIceCandidateInit,
        generation: u32,
    },
    GatheringComplete {
        generation: u32,
    },
    State(RTCPeerConnectionState),
    Track(Arc<TrackRemote>),
    /// (Re)start the connect timer.
    Arm,
}

impl Peer {
    /// Creates the peer connection with its audio transceiver. Nothing goes
    /// on the network until the first offer or answer.
    ///
    /// # Errors
    /// [`Error::NoUsableTurnServer`] if no `turn:` URL over UDP with
    /// credentials remains; [`Error::Unreachable`] / [`Error::TimedOut`]
    /// if a TURN host name does not resolve (for
    /// [`RelayIps::FromUrls`]); [`Error::Webrtc`] if the stack refuses the
    /// configuration.
    pub async fn new(config: PeerConfig) -> Result<(Self, mpsc::Receiver<PeerEvent>), Error> {
        install_crypto_provider();
        let usable = usable_servers(&config.ice_servers);
        if usable.skipped_urls > 0 {
            // Counts only: URLs name hosts, which logs do not need.
            tracing::debug!(
                skipped = usable.skipped_urls,
                "ignored ICE URLs webrtc-rs 0.17 cannot relay through"
            );
        }
        if usable.servers.is_empty() {
            return Err(Error::NoUsableTurnServer {
                skipped: usable.skipped_urls,
            });
        }
        let relay_ips: Arc<[IpAddr]> = match config.relay_ips {
            RelayIps::FromUrls => resolve_relay_ips(&usable.endpoints).await?.into(),
            RelayIps::Exactly(ips) => ips.into(),
            RelayIps::AnyAddress => Arc::new([]),
        };

        let mut media = MediaEngine::default();
        for (capability, payload_type) in [
            (red_capability(), RED_PAYLOAD_TYPE),
            (opus_capability(), OPUS_PAYLOAD_TYPE),
        ] {
            media
                .register_codec(
                    RTCRtpCodecParameters {
                        capability,
                        payload_type,
                        ..Default::default()
                    },
                    RTPCodecType::Audio,
                )
                .map_err(webrtc_error("register audio codec"))?;
        }
        let registry = rtcp_reports();
        let mut settings = SettingEngine::default();
        settings.set_relay_acceptance_min_wait(Some(Duration::ZERO));
        settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
        // AES-CM with an 80-bit HMAC-SHA1 tag (WebRTC's mandatory profile)
        // rather than AES-GCM's 128-bit tag: 8 bytes less per packet once
        // TURN pads it, 3.2 kbps at 50 packets a second, which keeps a
        // clean call under 60 kbps per direction with every header counted.
        settings
            .set_srtp_protection_profiles(vec![SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80]);
        let api = APIBuilder::new()
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings)
            .build();
        let rtc_config = RTCConfiguration {
            ice_servers: usable
                .servers
                .into_iter()
                .map(|s| RTCIceServer {
                    urls: s.urls,
                    username: s.username.into_inner(),
                    credential: s.credential.into_inner(),
                })
                .collect(),
            ice_transport_policy: RTCIceTransportPolicy::Relay,
            ..Default::default()
        };
        let pc = Arc::new(
            api.new_peer_connection(rtc_config)
                .await
                .map_err(webrtc_error("new_peer_connection"))?,
        );

        let track = Arc::new(TrackLocalStaticRTP::new(
            red_capability(),
            "audio".to_owned(),
            "voicemeet".to_owned(),
        ));
        let transceiver = pc
            .add_transceiver_from_track(
                Arc::clone(&track) as Arc<dyn TrackLocal + Send + Sync>,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Sendrecv,
                    send_encodings: vec![],
                }),
            )
            .await;
        let transceiver = match transceiver {
            Ok(transceiver) => transceiver,
            Err(err) => {
                // Stop what the connection already started; its own error
                // is not the interesting one.
                let _ = pc.close().await;
                return Err(webrtc_error("add audio transceiver")(err));
            }
        };

        let cancel = CancellationToken::new();
        let (raw_tx, raw_rx) = mpsc::channel(RAW_EVENT_CAPACITY);
        let (events_tx, events_rx) = mpsc::channel(EVENT_CAPACITY);
        let shared_generation = Arc::new(AtomicU32::new(0));
        let (stream_starts_tx, stream_starts_rx) = watch::channel(0);
        install_callbacks(&pc, &raw_tx, &shared_generation, &stream_starts_tx);

        let span = tracing::info_span!("peer", role = ?config.role);
        // The interceptors (RTCP reports) only run if the sender's RTCP is
        // read; the receiver reports in it drive the send settings.
        let sender = transceiver.sender().await;
        let (reports_tx, reports_rx) = watch::channel(None);
        tokio::spawn({
            let cancel = cancel.clone();
            async move {
                let mut count = 0u64;
                loop {
                    let packets = tokio::select! {
                        () = cancel.cancelled() => break,
                        read = sender.read_rtcp() => match read {
                            Ok((packets, _)) => packets,
                            Err(_) => break,
                        },
                    };
                    for block in packets.iter().flat_map(|p| reception_reports(p.as_ref())) {
                        count += 1;
                        reports_tx.send_replace(Some(RemoteReport {
                            fraction_lost: block.fraction_lost,
                            total_lost: block.total_lost,
                            jitter: block.jitter,
                            count,
                        }));
                    }
                }
            }
            .instrument(span.clone())
        });
        tokio::spawn(
            event_task(EventTask {
                raw_rx,
                events_tx,
                relay_ips: Arc::clone(&relay_ips),
                connect_timeout: config.connect_timeout,
                cancel: cancel.clone(),
            })
            .instrument(span),
        );

        let peer = Self {
            pc,
            role: config.role,
            relay_ips,
            shared_generation,
            generation: 0,
            remote: RemoteCandidates::default(),
            has_remote: false,
            armed: false,
            local_audio: LocalAudio {
                track,
                reports: reports_rx,
                stream_starts: stream_starts_rx,
            },
            raw_tx,
            cancel,
            closed: false,
        };
        Ok((peer, events_rx))
    }

    /// This peer's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The current negotiation generation.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The relay IPs local candidates must carry (empty: any IP, see
    /// [`RelayIps::AnyAddress`]).
    pub fn relay_ips(&self) -> &[IpAddr] {
        &self.relay_ips
    }

    /// Where to write encoded audio (see
    /// [`send_task`](crate::audio::send_task)).
    pub fn local_audio(&self) -> LocalAudio {
        self.local_audio.clone()
    }

    /// Creates and applies an offer (offerer only). With `ice_restart`, and
    /// once there was an offer before, ICE restarts: new credentials, a new
    /// TURN allocation, and the next generation. A first offer ignores the
    /// flag (there is nothing to restart).
    ///
    /// # Errors
    /// [`Error::PeerState`] on an answerer; [`Error::PrivacyViolation`] if
    /// the SDP fails the check (it is then not returned); [`Error::TimedOut`]
    /// if a restart had to wait for gathering too long; [`Error::Webrtc`].
    pub async fn create_offer(&mut self, ice_restart: bool) -> Result<Sdp, Error> {
        self.ensure_open()?;
        if self.role != Role::Offerer {
            return Err(Error::PeerState("only the offerer creates offers"));
        }
        let restart = ice_restart && self.pc.local_description().await.is_some();
        if restart {
            self.settle_gathering().await?;
            let next = self
                .generation
                .checked_add(1)
                .ok_or(Error::PeerState("generation counter exhausted"))?;
            self.set_generation(next);
        }
        if restart || !self.armed {
            self.arm().await;
        }
        let offer = self
            .pc
            .create_offer(Some(RTCOfferOptions {
                ice_restart: restart,
                voice_activity_detection: false,
            }))
            .await
            .map_err(webrtc_error("create_offer"))?;
        let text = offer.sdp.clone();
        self.pc
            .set_local_description(offer)
            .await
            .map_err(webrtc_error("set_local_description"))?;
        tracing::debug!(generation = self.generation, restart, "offer created");
        self.checked_sdp("offer", &text)
    }

    /// Applies the offerer's offer and returns the answer (answerer only).
    /// An offer of a newer generation is an ICE restart. Remote candidates
    /// buffered for its generation are added right after it is set.
    ///
    /// # Errors
    /// [`Error::StaleGeneration`] for an offer older than the current
    /// generation; [`Error::PeerState`] on an offerer;
    /// [`Error::PrivacyViolation`] if the answer fails the check;
    /// [`Error::Webrtc`] if the offer is malformed or does not fit.
    pub async fn accept_offer(&mut self, offer: Sdp) -> Result<Sdp, Error> {
        self.ensure_open()?;
        if self.role != Role::Answerer {
            return Err(Error::PeerState("only the answerer accepts offers"));
        }
        let current = self.remote.current();
        if self.has_remote && offer.generation < current {
            return Err(Error::StaleGeneration {
                got: offer.generation,
                current,
            });
        }
        let restart = self.has_remote && offer.generation > current;
        if restart {
            // webrtc restarts ICE inside set_remote_description when the
            // remote credentials change; that fails while gathering.
            self.settle_gathering().await?;
        }
        if restart || !self.armed {
            self.arm().await;
        }
        self.set_generation(offer.generation);
        let desc = RTCSessionDescription::offer(offer.text.into_inner())
            .map_err(webrtc_error("parse offer"))?;
        self.pc
            .set_remote_description(desc)
            .await
            .map_err(webrtc_error("set_remote_description"))?;
        self.has_remote = true;
        self.flush_buffered(offer.generation).await;
        let answer = self
            .pc
            .create_answer(None)
            .await
            .map_err(webrtc_error("create_answer"))?;
        let text = answer.sdp.clone();
        self.pc
            .set_local_description(answer)
            .await
            .map_err(webrtc_error("set_local_description"))?;
        tracing::debug!(generation = self.generation, restart, "offer accepted");
        self.checked_sdp("answer", &text)
    }

    /// Applies the answer to our current offer (offerer only), then adds the
    /// remote candidates buffered for its generation.
    ///
    /// # Errors
    /// [`Error::StaleGeneration`] for an answer to an older offer;
    /// [`Error::PeerState`] on an answerer or for a generation not offered
    /// yet; [`Error::Webrtc`] if the answer is malformed or unexpected.
    pub async fn accept_answer(&mut self, answer: Sdp) -> Result<(), Error> {
        self.ensure_open()?;
        if self.role != Role::Offerer {
            return Err(Error::PeerState("only the offerer accepts answers"));
        }
        if answer.generation < self.generation {
            return Err(Error::StaleGeneration {
                got: answer.generation,
                current: self.generation,
            });
        }
        if answer.generation > self.generation {
            return Err(Error::PeerState("answer for a generation not offered"));
        }
        let desc = RTCSessionDescription::answer(answer.text.into_inner())
            .map_err(webrtc_error("parse answer"))?;
        self.pc
            .set_remote_description(desc)
            .await
            .map_err(webrtc_error("set_remote_description"))?;
        self.has_remote = true;
        self.flush_buffered(answer.generation).await;
        tracing::debug!(generation = self.generation, "answer accepted");
        Ok(())
    }

    /// Adds a remote candidate of `generation` (the signalling envelope's
    /// `gen`): now if its description is set, else it waits for it; older
    /// generations are dropped. Only UDP relay candidates are used: the
    /// other side is relay-only too. End-of-candidates needs no call
    /// (webrtc-rs ignores it).
    ///
    /// # Errors
    /// [`Error::Webrtc`] if ICE refuses a candidate that passed our checks;
    /// [`Error::PeerClosed`].
    pub async fn add_remote_candidate(
        &mut self,
        candidate: CandidateInit,
        generation: u32,
    ) -> Result<RemoteCandidate, Error> {
        self.ensure_open()?;
        if let Err(violation) = privacy::check_candidate(candidate.candidate.expose(), &[]) {
            tracing::warn!(%violation, generation, "remote candidate refused");
            return Ok(RemoteCandidate::Refused(violation));
        }
        let overflowed = self.remote.overflowed();
        let outcome = match self.remote.on_candidate(candidate, generation) {
            Disposition::AddNow(candidate) => {
                self.add_to_ice(candidate).await?;
                RemoteCandidate::Added
            }
            Disposition::Buffered => RemoteCandidate::Buffered,
            Disposition::Stale => RemoteCandidate::Stale,
        };
        if self.remote.overflowed() > overflowed {
            tracing::warn!(generation, "candidate buffer full; dropped the oldest");
        }
        Ok(outcome)
    }

    /// Restarts ICE (offerer only): the offer to signal, of the next
    /// generation. Use it on [`PeerEvent::Failed`] or when the TURN
    /// credentials are about to expire. The answerer cannot: it asks the
    /// offerer over signalling.
    ///
    /// # Errors
    /// [`Error::PeerState`] on an answerer or before the first offer; as
    /// [`create_offer`](Self::create_offer) otherwise.
    pub async fn restart_ice(&mut self) -> Result<Sdp, Error> {
        self.ensure_open()?;
        if self.role != Role::Offerer {
            return Err(Error::PeerState(
                "only the offerer restarts ICE; ask it over signalling",
            ));
        }
        if self.pc.local_description().await.is_none() {
            return Err(Error::PeerState(
                "nothing to restart before the first offer",
            ));
        }
        self.create_offer(true).await
    }

    /// Closes the connection and ends the event stream. Idempotent.
    ///
    /// # Errors
    /// [`Error::Webrtc`] if a transport failed to stop cleanly (it is
    /// closed anyway).
    pub async fn close(&mut self) -> Result<(), Error> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        self.cancel.cancel();
        self.pc.close().await.map_err(webrtc_error("close"))
    }

    fn ensure_open(&self) -> Result<(), Error> {
        if self.closed {
            Err(Error::PeerClosed)
        } else {
            Ok(())
        }
    }

    fn set_generation(&mut self, generation: u32) {
        self.generation = generation;
        self.shared_generation.store(generation, Ordering::SeqCst);
        self.remote.advance(generation);
    }

    async fn arm(&mut self) {
        self.armed = true;
        // Fails only once the event task has ended (closed): nothing to time.
        let _ = self.raw_tx.send(Raw::Arm).await;
    }

    fn checked_sdp(&self, what: &'static str, sdp: &str) -> Result<Sdp, Error> {
        match outgoing_sdp_ok(sdp, &self.relay_ips) {
            Ok(text) => Ok(Sdp::new(text, self.generation)),
            Err(violation) => {
                tracing::error!(%violation, what, "local SDP failed the privacy check; not sent");
                Err(Error::PrivacyViolation { what, violation })
            }
        }
    }

    async fn settle_gathering(&self) -> Result<(), Error> {
        // The gatherer's state goes back to Gathering on every restart, and
        // to Complete when its candidate callback gets `None`.
        if self.pc.ice_gathering_state() != RTCIceGatheringState::Gathering {
            return Ok(());
        }
        let mut done = self.pc.gathering_complete_promise().await;
        tokio::time::timeout(GATHERING_SETTLE_TIMEOUT, done.recv())
            .await
            .map(drop)
            .map_err(|_| Error::TimedOut {
                what: "ICE gathering before a restart",
                after: GATHERING_SETTLE_TIMEOUT,
            })
    }

    async fn flush_buffered(&mut self, generation: u32) {
        let buffered = self.remote.applied(generation);
        let count = buffered.len();
        for candidate in buffered {
            // One bad candidate must not keep the others out.
            if let Err(err) = self.add_to_ice(candidate).await {
                tracing::warn!(%err, generation, "buffered remote candidate refused by ICE");
            }
        }
        if count > 0 {
            tracing::debug!(count, generation, "buffered remote candidates added");
        }
    }

    async fn add_to_ice(&self, candidate: CandidateInit) -> Result<(), Error> {
        self.pc
            .add_ice_candidate(RTCIceCandidateInit {
                candidate: candidate.candidate.into_inner(),
                sdp_mid: candidate.sdp_mid,
                sdp_mline_index: candidate.sdp_mline_index,
                username_fragment: None,
            })
            .await
            .map_err(webrtc_error("add_ice_candidate"))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        self.cancel.cancel();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let pc = Arc::clone(&self.pc);
            runtime.spawn(async move {
                // Nobody is left to tell about a failure to close.
                let _ = pc.close().await;
            });
        }
    }
}

/// webrtc-rs's DTLS handshake uses rustls's process default crypto
/// provider, which rustls cannot pick by itself when both its `ring`
/// (webrtc's dependencies) and `aws-lc-rs` (reqwest's) features are on: it
/// panics in a runtime worker and the connection never comes up. Installing
/// one first makes it unambiguous; if the app installed its own, that wins.
/// (The Realtime client does the same before a wss:// connect.)
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means a provider is already installed, which is all we need.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

fn install_callbacks(
    pc: &RTCPeerConnection,
    raw_tx: &mpsc::Sender<Raw>,
    generation: &Arc<AtomicU32>,
    stream_starts: &watch::Sender<u64>,
) {
    // Every callback ignores a failed send: it means the event task has
    // ended because the peer was closed.
    let tx = raw_tx.clone();
    let generation = Arc::clone(generation);
    pc.on_ice_candidate(Box::new(move |candidate: Option<RTCIceCandidate>| {
        let tx = tx.clone();
        let generation = generation.load(Ordering::SeqCst);
        Box::pin(async move {
            let raw = match candidate.map(|c| c.to_json()) {
                Some(Ok(init)) => Raw::Candidate { init, generation },
                Some(Err(err)) => {
                    let err = redact_addresses(&err.to_string());
                    tracing::warn!(%err, "local candidate cannot be serialized; dropped");
                    return;
                }
                None => Raw::GatheringComplete { generation },
            };
            let _ = tx.send(raw).await;
        })
    }));
    let tx = raw_tx.clone();
    let starts = stream_starts.clone();
    pc.on_peer_connection_state_change(Box::new(move |state: RTCPeerConnectionState| {
        let tx = tx.clone();
        // Here rather than in the event task, so the audio sender learns
        // of it without waiting behind other events.
        if state == RTCPeerConnectionState::Connected {
            starts.send_modify(|n| *n += 1);
        }
        Box::pin(async move {
            let _ = tx.send(Raw::State(state)).await;
        })
    }));
    let tx = raw_tx.clone();
    let starts = stream_starts.clone();
    pc.on_track(Box::new(move |track, _receiver, _transceiver| {
        let tx = tx.clone();
        // The far end's first packet: it has its keys now, so it can
        // decrypt ours too, which it may not have when we connected first.
        starts.send_modify(|n| *n += 1);
        Box::pin(async move {
            let _ = tx.send(Raw::Track(track)).await;
        })
    }));
}

struct EventTask {
    raw_rx: mpsc::Receiver<Raw>,
    events_tx: mpsc::Sender<PeerEvent>,
    relay_ips: Arc<[IpAddr]>,
    connect_timeout: Duration,
    cancel: CancellationToken,
}

/// Turns webrtc's callbacks into [`PeerEvent`]s: the privacy gate on local
/// candidates, and the connect timer.
async fn event_task(mut task: EventTask) {
    let mut deadline: Option<Instant> = None;
    loop {
        let event = tokio::select! {
            biased;
            () = task.cancel.cancelled() => break,
            () = sleep_until_some(deadline) => {
                deadline = None;
                tracing::warn!(after = ?task.connect_timeout, "not connected in time");
                PeerEvent::ConnectTimeout { after: task.connect_timeout }
            }
            raw = task.raw_rx.recv() => match raw {
                None => break,
                Some(Raw::Arm) => {
                    deadline = Some(Instant::now() + task.connect_timeout);
                    continue;
                }
                Some(Raw::Candidate { init, generation }) => {
                    match outgoing_candidate_ok(&init.candidate, &task.relay_ips) {
                        Ok(safe) => PeerEvent::LocalCandidate {
                            // webrtc-rs writes `sdpMid: ""`, which a browser
                            // would look up and not find; the index alone
                            // names our one media section.
                            candidate: CandidateInit::new(
                                safe.into_string(),
                                None,
                                Some(init.sdp_mline_index.unwrap_or(0)),
                            ),
                            generation,
                        },
                        Err(violation) => {
                            tracing::error!(
                                %violation,
                                generation,
                                "local candidate failed the privacy check; dropped"
                            );
                            PeerEvent::PrivacyViolation { violation, generation }
                        }
                    }
                }
                Some(Raw::GatheringComplete { generation }) => {
                    tracing::debug!(generation, "gathering complete");
                    PeerEvent::GatheringComplete { generation }
                }
                Some(Raw::Track(track)) => PeerEvent::RemoteAudio(RemoteAudio { track }),
                Some(Raw::State(state)) => {
                    tracing::debug!(%state, "connection state");
                    match state {
                        RTCPeerConnectionState::Connected => {
                            deadline = None;
                            PeerEvent::Connected
                        }
                        RTCPeerConnectionState::Disconnected => PeerEvent::Disconnected,
                        RTCPeerConnectionState::Failed => PeerEvent::Failed,
                        RTCPeerConnectionState::Unspecified
                        | RTCPeerConnectionState::New
                        | RTCPeerConnectionState::Connecting
                        | RTCPeerConnectionState::Closed => continue,
                    }
                }
            },
        };
        if task.events_tx.send(event).await.is_err() {
            // Nobody listens any more; keep draining so callbacks never
            // block on a full channel.
            tracing::trace!("peer event dropped: receiver gone");
        }
    }
}

/// What the other side last reported about the audio we send (an RTCP
/// reception report block, RFC 3550 §6.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteReport {
    /// Packets lost since its previous report, in 1/256ths.
    pub fraction_lost: u8,
    /// Packets lost since the stream began.
    pub total_lost: u32,
    /// Interarrival jitter, in RTP timestamp units (1/48 ms).
    pub jitter: u32,
    /// How many report blocks arrived so far, this one included: a new
    /// value means a new report.
    pub count: u64,
}

/// The reception report blocks of one RTCP packet (receiver or sender
/// report); none for other kinds.
fn reception_reports(
    packet: &(dyn webrtc::rtcp::packet::Packet + Send + Sync),
) -> Vec<webrtc::rtcp::reception_report::ReceptionReport> {
    let any = packet.as_any();
    if let Some(rr) = any.downcast_ref::<webrtc::rtcp::receiver_report::ReceiverReport>() {
        rr.reports.clone()
    } else if let Some(sr) = any.downcast_ref::<webrtc::rtcp::sender_report::SenderReport>() {
        sr.reports.clone()
    } else {
        Vec::new()
    }
}

/// Where encoded audio goes: the peer's audio track, written as whole RTP
/// packets the engine numbers and stamps itself. Cheap to clone.
#[derive(Clone)]
pub struct LocalAudio {
    track: Arc<TrackLocalStaticRTP>,
    reports: watch::Receiver<Option<RemoteReport>>,
    stream_starts: watch::Receiver<u64>,
}

impl std::fmt::Debug for LocalAudio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalAudio").finish_non_exhaustive()
    }
}

impl LocalAudio {
    /// Sends one RTP packet with a RED payload. The track sets the SSRC and
    /// the negotiated payload type. Before the connection is up (or while it
    /// is down) the packet is dropped quietly, as a microphone's audio would
    /// be.
    ///
    /// # Errors
    /// [`Error::Webrtc`] if the track cannot send.
    pub async fn write_packet(
        &self,
        sequence: u16,
        timestamp: u32,
        marker: bool,
        payload: Bytes,
    ) -> Result<(), Error> {
        let packet = webrtc::rtp::packet::Packet {
            header: webrtc::rtp::header::Header {
                version: 2,
                marker,
                payload_type: RED_PAYLOAD_TYPE,
                sequence_number: sequence,
                timestamp,
                ..Default::default()
            },
            payload,
        };
        self.track
            .write_rtp(&packet)
            .await
            .map(|_| ())
            .map_err(webrtc_error("write audio packet"))
    }

    /// The other side's reports about what we send, newest first; `None`
    /// until the first one arrives (about a second into the call).
    pub fn reports(&self) -> watch::Receiver<Option<RemoteReport>> {
        self.reports.clone()
    }

    /// A count bumped each time the audio should start a fresh stream, one
    /// the far end's decoder can pick up from its first packet: when the
    /// connection comes up (again), and when the far end's first packet
    /// arrives (proof that it can now decrypt ours; the side that connects
    /// first sends a few packets the other cannot yet). 0 while the
    /// connection has never been up: packets would go nowhere.
    pub fn stream_starts(&self) -> watch::Receiver<u64> {
        self.stream_starts.clone()
    }
}

/// The other side's audio track, from [`PeerEvent::RemoteAudio`].
#[derive(Clone)]
pub struct RemoteAudio {
    track: Arc<TrackRemote>,
}

impl std::fmt::Debug for RemoteAudio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteAudio").finish_non_exhaustive()
    }
}

/// One received RTP packet of the remote audio track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioPacket {
    /// The RTP payload type: [`RED_PAYLOAD_TYPE`] or [`OPUS_PAYLOAD_TYPE`].
    pub payload_type: u8,
    /// The RTP sequence number.
    pub sequence: u16,
    /// The RTP timestamp (48 kHz units for Opus).
    pub timestamp: u32,
    /// The payload: RED blocks around Opus, or Opus alone.
    pub payload: Bytes,
}

impl RemoteAudio {
    /// The next packet, decrypted; `None` once the track has ended (the
    /// peer closed).
    pub async fn next_packet(&self) -> Option<AudioPacket> {
        match self.track.read_rtp().await {
            Ok((packet, _)) => Some(AudioPacket {
                payload_type: packet.header.payload_type,
                sequence: packet.header.sequence_number,
                timestamp: packet.header.timestamp,
                payload: packet.payload,
            }),
            Err(err) => {
                let err = redact_addresses(&err.to_string());
                tracing::debug!(%err, "remote audio track ended");
                None
            }
        }
    }
}
