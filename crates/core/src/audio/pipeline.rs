//! The two audio tasks of a call: source → Opus → peer, and peer → Opus →
//! sink. Each owns its codec and its end of the audio; the call's
//! cancellation token stops both.

use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::{AudioSink, AudioSource, FRAME_DURATION, FRAME_SAMPLES, OpusDecoder, OpusEncoder};
use crate::error::Error;
use crate::peer::{LocalAudio, RemoteAudio};

/// The longest run of missing packets that is concealed: 5 frames, 100 ms.
/// Longer gaps (an outage, an ICE restart) are left out rather than filled
/// with made-up audio; libopus would have faded to silence by then anyway,
/// and a jitter buffer downstream decides how to bridge them.
pub const MAX_CONCEALED_FRAMES: u16 = 5;

/// What a [`send_task`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendStats {
    /// Frames encoded and handed to the peer.
    pub frames: u64,
    /// Opus bytes handed to the peer.
    pub bytes: u64,
    /// Frames the peer refused to send (e.g. while ICE restarts); the audio
    /// of those 20 ms is lost, the task goes on.
    pub write_errors: u64,
}

/// What a [`receive_task`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceiveStats {
    /// Packets decoded.
    pub packets: u64,
    /// Packets missing from the sequence (counted whether concealed or not).
    pub lost: u64,
    /// Frames of packet loss concealment written in their place.
    pub concealed_frames: u64,
    /// Packets that came late or twice and were dropped (no jitter buffer
    /// here: out-of-order packets are not reordered).
    pub late_or_duplicate: u64,
    /// Packets libopus could not decode (concealed instead).
    pub decode_errors: u64,
    /// The longest time between two packets arriving: 20 ms plus jitter in
    /// a healthy call; an outage or an ICE restart shows up here.
    pub max_interarrival: Duration,
}

/// Pulls a frame from `source` every 20 ms, encodes it and sends it on the
/// peer's track, until the source ends or `cancel` fires. A missed tick
/// (the runtime was busy) is skipped, not made up in a burst.
///
/// # Errors
/// [`Error::Audio`] if encoding fails. Sending errors are counted in
/// [`SendStats::write_errors`], not returned: the connection may come back.
pub async fn send_task(
    mut source: impl AudioSource,
    mut encoder: OpusEncoder,
    out: LocalAudio,
    cancel: CancellationToken,
) -> Result<SendStats, Error> {
    let mut stats = SendStats::default();
    let mut frame = vec![0i16; FRAME_SAMPLES];
    let mut tick = tokio::time::interval(FRAME_DURATION);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut failing_since: Option<u64> = None;
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        if !source.read_frame(&mut frame) {
            tracing::debug!(frames = stats.frames, "audio source ended");
            break;
        }
        let packet = encoder.encode(&frame)?;
        let len = packet.len() as u64;
        match out.write_frame(packet, FRAME_DURATION).await {
            Ok(()) => {
                stats.frames += 1;
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
    }
    Ok(stats)
}

/// Reads the remote track, decodes each packet into `sink`, and conceals
/// short gaps in the sequence (up to [`MAX_CONCEALED_FRAMES`]), until the
/// track ends or `cancel` fires. Then finishes the sink and returns it.
///
/// # Errors
/// Whatever the sink fails with (the sink is then dropped unfinished), or
/// [`Error::Audio`] if concealment itself fails.
pub async fn receive_task<S: AudioSink>(
    remote: RemoteAudio,
    mut decoder: OpusDecoder,
    mut sink: S,
    cancel: CancellationToken,
) -> Result<(S, ReceiveStats), Error> {
    let mut stats = ReceiveStats::default();
    let mut sequence = SequenceTracker::default();
    let mut last_arrival: Option<Instant> = None;
    loop {
        let packet = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            packet = remote.next_packet() => match packet {
                Some(packet) => packet,
                None => break,
            },
        };
        let now = Instant::now();
        if let Some(last) = last_arrival.replace(now) {
            stats.max_interarrival = stats.max_interarrival.max(now - last);
        }
        match sequence.on_packet(packet.sequence) {
            Arrival::LateOrDuplicate => {
                stats.late_or_duplicate += 1;
                continue;
            }
            Arrival::Next { missing } => {
                stats.lost += u64::from(missing);
                for _ in 0..missing.min(MAX_CONCEALED_FRAMES) {
                    sink.write_frame(decoder.conceal()?)?;
                    stats.concealed_frames += 1;
                }
            }
        }
        match decoder.decode(&packet.payload) {
            Ok(pcm) => {
                stats.packets += 1;
                sink.write_frame(pcm)?;
            }
            Err(err) => {
                stats.decode_errors += 1;
                tracing::debug!(%err, "undecodable audio packet; concealed");
                sink.write_frame(decoder.conceal()?)?;
                stats.concealed_frames += 1;
            }
        }
    }
    sink.finish()?;
    Ok((sink, stats))
}

/// Where a packet falls in the RTP sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrival {
    /// The next packet, after `missing` packets that never came.
    Next { missing: u16 },
    /// Behind the newest packet seen, or a repeat of it.
    LateOrDuplicate,
}

/// Follows RTP sequence numbers across wrap-around.
#[derive(Debug, Default)]
struct SequenceTracker {
    newest: Option<u16>,
}

impl SequenceTracker {
    fn on_packet(&mut self, sequence: u16) -> Arrival {
        let Some(newest) = self.newest else {
            self.newest = Some(sequence);
            return Arrival::Next { missing: 0 };
        };
        let ahead = sequence.wrapping_sub(newest);
        // Up to half the sequence space ahead is new, the rest is behind
        // (RFC 3550's usual split); 0 is a repeat.
        if ahead == 0 || ahead > u16::MAX / 2 {
            return Arrival::LateOrDuplicate;
        }
        self.newest = Some(sequence);
        Arrival::Next { missing: ahead - 1 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_gaps_wraps_and_late_packets() {
        let mut tracker = SequenceTracker::default();
        let arrivals: Vec<Arrival> = [65_533, 65_534, 1, 0, 1, 5, 4, 40_000]
            .into_iter()
            .map(|s| tracker.on_packet(s))
            .collect();
        assert_eq!(
            arrivals,
            [
                Arrival::Next { missing: 0 },
                Arrival::Next { missing: 0 },
                Arrival::Next { missing: 2 }, // 65535 and 0 skipped, across the wrap
                Arrival::LateOrDuplicate,     // 0 came late
                Arrival::LateOrDuplicate,     // 1 again
                Arrival::Next { missing: 3 },
                Arrival::LateOrDuplicate,
                Arrival::LateOrDuplicate, // more than half the space away: behind
            ]
        );
    }
}
