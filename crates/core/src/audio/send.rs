//! The send half of a call's audio: 20 ms frames from the capture side →
//! Opus → RED → RTP on the peer's track, with the codec and the redundancy
//! following what the other side reports about our stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use voicemeet_proto::media::{ReceiverReport, SendPolicy, SendSettings};
use voicemeet_proto::red::RedEncoder;

use super::{FRAME_SAMPLES, OpusEncoder};
use crate::error::Error;
use crate::peer::{LocalAudio, OPUS_PAYLOAD_TYPE, RemoteReport};

/// Frames waiting between the capture side and the send task: 8 × 20 ms.
/// The send task encodes a frame in 0.2–0.4 ms (`cargo bench -p
/// voicemeet-core --bench codec`), so a full queue means the runtime
/// stalled for about 160 ms; newer frames are then dropped (and show up
/// as a gap in the timestamps) rather than piling up latency.
pub const CAPTURE_QUEUE_FRAMES: usize = 8;

/// One 20 ms frame to send, numbered by the capture side so frames it had
/// to drop leave a gap in the RTP timestamps.
#[derive(Debug, Clone)]
pub struct CapturedFrame {
    /// Frames captured before this one since the call started.
    pub index: u64,
    /// [`FRAME_SAMPLES`] samples of 48 kHz mono.
    pub samples: Box<[i16]>,
}

/// The capture side's end of the send path: takes samples in any chunk
/// size (devices deliver 10 ms), cuts them into 20 ms frames and queues
/// them for the send task without ever blocking.
#[derive(Debug)]
pub struct FrameSender {
    tx: mpsc::Sender<CapturedFrame>,
    pending: Vec<i16>,
    index: u64,
    dropped: Arc<AtomicU64>,
}

impl FrameSender {
    /// Queues `samples`; whole frames go to the send task. Returns `false`
    /// once the send task is gone (the call ended).
    pub fn push(&mut self, mut samples: &[i16]) -> bool {
        while !samples.is_empty() {
            let take = (FRAME_SAMPLES - self.pending.len()).min(samples.len());
            self.pending.extend_from_slice(&samples[..take]);
            samples = &samples[take..];
            if self.pending.len() == FRAME_SAMPLES {
                let frame = CapturedFrame {
                    index: self.index,
                    samples: self.pending.as_slice().into(),
                };
                self.pending.clear();
                self.index += 1;
                match self.tx.try_send(frame) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
        }
        true
    }

    /// Frames dropped because the send task fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// A new capture queue: the [`FrameSender`] for the capture side and the
/// receiver for [`send_task`].
pub fn capture_queue() -> (FrameSender, mpsc::Receiver<CapturedFrame>) {
    let (tx, rx) = mpsc::channel(CAPTURE_QUEUE_FRAMES);
    let sender = FrameSender {
        tx,
        pending: Vec::with_capacity(FRAME_SAMPLES),
        index: 0,
        dropped: Arc::new(AtomicU64::new(0)),
    };
    (sender, rx)
}

/// What a [`send_task`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendStats {
    /// Frames encoded and handed to the peer.
    pub frames: u64,
    /// Frames captured before the connection first came up: not encoded,
    /// since they could not reach anyone.
    pub unconnected_frames: u64,
    /// Times the encoder started a fresh stream (see
    /// [`LocalAudio::stream_starts`]).
    pub fresh_starts: u64,
    /// Frames encoded while muted (sent as silence).
    pub muted_frames: u64,
    /// RTP payload bytes handed to the peer (Opus plus RED).
    pub bytes: u64,
    /// Frames the peer refused to send (e.g. while ICE restarts); the audio
    /// of those 20 ms is lost, the task goes on.
    pub write_errors: u64,
    /// Receiver reports taken in.
    pub reports: u64,
    /// The loss the other side last reported, in 1/256ths.
    pub remote_fraction_lost: Option<u8>,
    /// The settings in force.
    pub settings: Option<SendSettings>,
}

/// How often a running [`send_task`] publishes its [`SendStats`]: every
/// 50 frames, one second.
const STATUS_EVERY_FRAMES: u64 = 50;

/// A random start for the RTP sequence number and timestamp (RFC 3550
/// §5.1 wants them unpredictable).
fn random_start() -> (u16, u32) {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0x766f_6963_656d_6565);
    let bits = hasher.finish();
    ((bits >> 32) as u16, bits as u32)
}

/// Encodes every captured frame and sends it on the peer's track, until the
/// capture side goes away or `cancel` fires. While `muted` is set the
/// frames are replaced by silence: mute stops sending speech, and the
/// packets keep their size and pace, so muting is not visible on the wire.
///
/// # Errors
/// [`Error::Audio`] if encoding fails. Sending errors are counted in
/// [`SendStats::write_errors`], not returned: the connection may come back.
///
/// `status`, if given, gets the stats every second and whenever the
/// settings change.
pub async fn send_task(
    mut frames: mpsc::Receiver<CapturedFrame>,
    out: LocalAudio,
    muted: Arc<AtomicBool>,
    status: Option<watch::Sender<SendStats>>,
    cancel: CancellationToken,
) -> Result<SendStats, Error> {
    let epoch = Instant::now();
    let mut stats = SendStats::default();
    let publish = |stats: &SendStats| {
        if let Some(status) = &status {
            status.send_replace(stats.clone());
        }
    };
    let mut encoder = OpusEncoder::new()?;
    let mut policy = SendPolicy::new(epoch.elapsed());
    let mut settings = policy.settings();
    stats.settings = Some(settings);
    encoder.apply(settings.bitrate_bps, settings.fec_loss_percent)?;
    let new_red = || {
        RedEncoder::new(OPUS_PAYLOAD_TYPE).map_err(|err| Error::Audio {
            what: "red encoder",
            detail: err.to_string(),
        })
    };
    let mut red = new_red()?;
    let starts = out.stream_starts();
    let mut started = 0;
    let mut reports = out.reports();
    let (first_sequence, first_timestamp) = random_start();
    let mut payload = Vec::with_capacity(1024);
    let mut silence = vec![0i16; FRAME_SAMPLES];
    let mut failing_since: Option<u64> = None;
    loop {
        let frame = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            changed = reports.changed() => {
                if changed.is_err() {
                    // The peer is gone; frames will fail to send and the
                    // call ends the task through `cancel`.
                    reports = tokio::sync::watch::channel(None).1;
                    continue;
                }
                let report: Option<RemoteReport> = *reports.borrow_and_update();
                if let Some(report) = report {
                    stats.reports += 1;
                    stats.remote_fraction_lost = Some(report.fraction_lost);
                    let now = epoch.elapsed();
                    let report = ReceiverReport {
                        fraction_lost: report.fraction_lost,
                        jitter: report.jitter,
                    };
                    if let Some(next) = policy.handle_report(now, report) {
                        tracing::debug!(?next, "send settings changed");
                        settings = next;
                        stats.settings = Some(settings);
                        encoder.apply(settings.bitrate_bps, settings.fec_loss_percent)?;
                        publish(&stats);
                    }
                }
                continue;
            }
            frame = frames.recv() => match frame {
                Some(frame) => frame,
                None => break,
            },
        };
        // Opus codes each frame against the ones before it, so a decoder
        // that joins a stream midway ramps up over ~300 ms: the first
        // syllable of the call would come out muffled. Frames before the
        // connection is up reach no one anyway, so the stream starts when
        // it is up, and starts afresh (encoder and redundancy) whenever the
        // far end may have missed its beginning.
        let wanted = *starts.borrow();
        if wanted == 0 {
            stats.unconnected_frames += 1;
            continue;
        }
        if wanted != started {
            started = wanted;
            encoder = OpusEncoder::new()?;
            encoder.apply(settings.bitrate_bps, settings.fec_loss_percent)?;
            red = new_red()?;
            stats.fresh_starts += 1;
        }
        let samples: &[i16] = if muted.load(Ordering::Relaxed) {
            stats.muted_frames += 1;
            silence.fill(0);
            &silence
        } else {
            &frame.samples
        };
        let packet = encoder.encode(samples)?;
        // The index, not a counter of sent frames: frames the capture side
        // dropped leave a gap the receiver conceals.
        let timestamp =
            first_timestamp.wrapping_add((frame.index as u32).wrapping_mul(FRAME_SAMPLES as u32));
        let sequence = first_sequence.wrapping_add(stats.frames as u16);
        payload.clear();
        red.encode(timestamp, &packet, settings.red_depth, &mut payload);
        let len = payload.len() as u64;
        let marker = stats.frames == 0;
        match out
            .write_packet(
                sequence,
                timestamp,
                marker,
                Bytes::copy_from_slice(&payload),
            )
            .await
        {
            Ok(()) => {
                stats.bytes += len;
                if let Some(since) = failing_since.take() {
                    tracing::debug!(frames = stats.write_errors - since, "audio sending resumed");
                }
            }
            Err(err) => {
                stats.write_errors += 1;
                if failing_since.is_none() {
                    tracing::debug!(%err, "audio frame not sent");
                    failing_since = Some(stats.write_errors - 1);
                }
            }
        }
        stats.frames += 1;
        if stats.frames % STATUS_EVERY_FRAMES == 0 {
            publish(&stats);
        }
    }
    publish(&stats);
    Ok(stats)
}
