//! The receive half of a call's audio: RTP from the remote track → RED
//! split → the jitter buffer ([`voicemeet_proto::jitter`]), and the
//! [`Playout`] handle the output side pulls 10 ms at a time from.
//!
//! Two parties touch the buffer: [`receive_task`] inserts as packets
//! arrive, the output (a device's playout thread, or a paced task) pulls.
//! Neither is a real-time callback, so one mutex with short critical
//! sections (one insert, or one 10 ms pull) is enough.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use voicemeet_proto::jitter::{
    FrameDecoder, JitterBuffer, JitterConfig, JitterStats, Origin, Playout as Played,
};
use voicemeet_proto::red;

use super::OpusDecoder;
use crate::error::Error;
use crate::peer::{OPUS_PAYLOAD_TYPE, RED_PAYLOAD_TYPE, RemoteAudio};

/// libopus behind the jitter buffer's decoder seam.
impl FrameDecoder for OpusDecoder {
    type Error = Error;

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), Error> {
        out.extend_from_slice(OpusDecoder::decode(self, payload)?);
        Ok(())
    }

    fn decode_fec(
        &mut self,
        next_payload: &[u8],
        samples: usize,
        out: &mut Vec<i16>,
    ) -> Result<(), Error> {
        out.extend_from_slice(OpusDecoder::decode_fec(self, next_payload, samples)?);
        Ok(())
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> Result<(), Error> {
        out.extend_from_slice(self.conceal_samples(samples)?);
        Ok(())
    }
}

/// Packets the receive task could not use, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiveCounters {
    /// RTP packets read from the track.
    pub packets: u64,
    /// Packets whose RED payload did not parse (dropped whole).
    pub malformed: u64,
    /// Packets of a payload type we did not negotiate.
    pub unknown_payload_type: u64,
    /// Redundant copies of frames taken from RED packets.
    pub redundant_frames: u64,
    /// The longest time between two packets arriving: 20 ms plus jitter in
    /// a healthy call; an outage or an ICE restart shows up here.
    pub max_interarrival: Duration,
}

/// A snapshot of the receive side for the quality indicator and
/// benchmarks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReceiveStats {
    /// The jitter buffer's own statistics.
    pub jitter: JitterStats,
    /// What the receive task saw.
    pub counters: ReceiveCounters,
}

struct State {
    buffer: JitterBuffer,
    decoder: OpusDecoder,
    counters: ReceiveCounters,
    last_arrival: Option<Duration>,
    first_audio: Option<Box<dyn FnOnce() + Send>>,
}

/// The shared receive state of one call: the jitter buffer and the decoder.
#[derive(Clone)]
pub struct Receiver {
    state: Arc<Mutex<State>>,
    epoch: Instant,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

impl Receiver {
    /// An empty receive side; `first_audio` runs once, when the first
    /// decoded (not made-up) audio is pulled for playout.
    ///
    /// # Errors
    /// [`Error::Audio`] if libopus cannot make a decoder.
    pub fn new(first_audio: Option<Box<dyn FnOnce() + Send>>) -> Result<Self, Error> {
        Ok(Self {
            state: Arc::new(Mutex::new(State {
                buffer: JitterBuffer::new(JitterConfig::default()),
                decoder: OpusDecoder::new()?,
                counters: ReceiveCounters::default(),
                last_arrival: None,
                first_audio,
            })),
            epoch: Instant::now(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it; if something did, the buffer is
        // still a valid buffer.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// The handle the output side pulls from.
    pub fn playout(&self) -> Playout {
        Playout {
            receiver: self.clone(),
        }
    }

    /// Statistics so far.
    pub fn stats(&self) -> ReceiveStats {
        let state = self.lock();
        ReceiveStats {
            jitter: state.buffer.stats(),
            counters: state.counters,
        }
    }

    /// Takes one RTP packet apart into the jitter buffer.
    pub fn insert(&self, payload_type: u8, timestamp: u32, payload: &[u8]) {
        let arrival = self.now();
        let mut state = self.lock();
        state.counters.packets += 1;
        if let Some(last) = state.last_arrival.replace(arrival) {
            let gap = arrival.saturating_sub(last);
            state.counters.max_interarrival = state.counters.max_interarrival.max(gap);
        }
        match payload_type {
            RED_PAYLOAD_TYPE => match red::parse(payload) {
                Ok(packet) => {
                    let mut redundant = 0;
                    for frame in packet.frames(timestamp) {
                        if frame.payload_type != OPUS_PAYLOAD_TYPE {
                            continue;
                        }
                        let origin = match frame.origin {
                            red::Origin::Primary => Origin::Primary,
                            red::Origin::Redundant => {
                                redundant += 1;
                                Origin::Redundant
                            }
                        };
                        state
                            .buffer
                            .insert(frame.timestamp, frame.data, origin, arrival);
                    }
                    state.counters.redundant_frames += redundant;
                }
                Err(_) => state.counters.malformed += 1,
            },
            OPUS_PAYLOAD_TYPE => {
                state
                    .buffer
                    .insert(timestamp, payload, Origin::Primary, arrival);
            }
            _ => state.counters.unknown_payload_type += 1,
        }
    }
}

/// The output side of the receive path: fills whatever it is given with the
/// far end's audio (silence before the first packet). Cheap to clone.
#[derive(Clone, Debug)]
pub struct Playout {
    receiver: Receiver,
}

impl Playout {
    /// Fills `out` (normally 10 ms, 480 samples) with the next audio to
    /// play.
    pub fn fill(&mut self, out: &mut [i16]) {
        let now = self.receiver.now();
        let mut state = self.receiver.lock();
        let State {
            buffer, decoder, ..
        } = &mut *state;
        let played = buffer.pull(now, decoder, out);
        let decoded = matches!(
            played,
            Played::Normal | Played::Fec | Played::Accelerated | Played::Expanded
        );
        if decoded && let Some(first) = state.first_audio.take() {
            drop(state);
            first();
        }
    }

    /// Statistics so far.
    pub fn stats(&self) -> ReceiveStats {
        self.receiver.stats()
    }
}

/// Reads the remote track into `receiver` until the track ends or
/// `cancel` fires.
pub async fn receive_task(remote: RemoteAudio, receiver: Receiver, cancel: CancellationToken) {
    loop {
        let packet = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            packet = remote.next_packet() => match packet {
                Some(packet) => packet,
                None => break,
            },
        };
        receiver.insert(packet.payload_type, packet.timestamp, &packet.payload);
    }
}
