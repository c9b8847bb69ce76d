//! The audio jitter buffer: encoded frames go in as they arrive, in any
//! order and with copies; decoded audio comes out at the output device's
//! pace, as early as the network allows and never with a click.
//!
//! [`JitterBuffer`] is sans-IO, in the spirit of libwebrtc's NetEq: it
//! never reads the clock and never decodes by itself. The receive path
//! calls [`JitterBuffer::insert`] with each frame (primaries and the
//! redundant copies split out of RED packets) and its arrival time; the
//! audio output calls [`JitterBuffer::pull`] every 10 ms with the current
//! time and the [`FrameDecoder`] to use, and plays what it gets.
//!
//! ```
//! use std::time::Duration;
//! use voicemeet_proto::jitter::{FrameDecoder, JitterBuffer, JitterConfig, Origin};
//!
//! /// A stand-in for Opus: each payload decodes to 20 ms of its first byte.
//! struct Fake;
//! impl FrameDecoder for Fake {
//!     type Error = std::convert::Infallible;
//!     fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), Self::Error> {
//!         out.extend(std::iter::repeat_n(i16::from(payload[0]), 960));
//!         Ok(())
//!     }
//!     fn decode_fec(&mut self, _: &[u8], samples: usize, out: &mut Vec<i16>) -> Result<(), Self::Error> {
//!         out.extend(std::iter::repeat_n(0, samples));
//!         Ok(())
//!     }
//!     fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> Result<(), Self::Error> {
//!         out.extend(std::iter::repeat_n(0, samples));
//!         Ok(())
//!     }
//! }
//!
//! let mut buffer = JitterBuffer::new(JitterConfig::default());
//! let mut out = [0i16; 480];
//! for tick in 0..100u32 {
//!     let now = Duration::from_millis(10 * u64::from(tick));
//!     if tick % 2 == 0 {
//!         // A frame every 20 ms: timestamps advance 960 at 48 kHz.
//!         buffer.insert(480 * tick, &[7], Origin::Primary, now);
//!     }
//!     buffer.pull(now, &mut Fake, &mut out);
//! }
//! assert_eq!(out, [7; 480]);
//! assert!(buffer.stats().delay_ms <= 15.0);
//! ```
//!
//! # How it decides
//!
//! - **Order.** Frames are keyed by RTP timestamp (extended past the
//!   32-bit wrap), kept sorted, and decoded once each in timestamp order. A
//!   copy of a frame already held or played is a duplicate; a frame whose
//!   turn has passed is late and dropped.
//! - **Target delay.** The delay estimator (`delay.rs`) measures how much
//!   later than the fastest recent frames each frame arrives. A frame's
//!   first copy counts, so a loss that a redundant copy repairs shows up as
//!   a late frame and raises the target until the copies are in time. The
//!   target is the 95th percentile of that lateness, learned with
//!   exponential forgetting (fast to grow, slow to shrink), plus one pull
//!   (a frame may be needed up to a pull before its own start), within
//!   `[min_delay, max_delay]`.
//! - **Steering.** The playout delay is the time from the fastest arrival
//!   of a sample to its playing. When it exceeds the target by more than
//!   `stretch_band`, the decoded audio is *accelerated*: one pitch period
//!   is cut out with a crossfade (`stretch.rs`). When it falls below the
//!   target, one is inserted (*preemptive expand*). Both also absorb clock
//!   drift between sender and output device. Far above the target
//!   (`catch_up`), whole frames are dropped instead.
//! - **Loss.** If the next frame is missing but the one after is there,
//!   the missing one is rebuilt from that frame's in-band FEC (after
//!   concealing any longer gap). If nothing is there, the decoder conceals
//!   and the playout position waits, so a frame that is only late still
//!   plays (the delay grows by the wait). Concealment runs at most
//!   `max_concealment`, then fades out over `fade_out` into silence.
//! - **Silence and resync.** In silence the playout position follows the
//!   clock at the target delay, so audio that comes back after an outage
//!   plays at the target delay (faded in) and anything older is late. A
//!   frame whose timestamp is far from the stream's (`resync_threshold`)
//!   is refused, unless more follow it consistently for a while: then a new
//!   stream has begun and the buffer starts over with it.
//!
//! Nothing an input can do panics or grows memory past
//! `max_frames × max_payload` plus a few frames of audio, and in steady
//! state `pull` does not allocate.

mod delay;
mod stats;
mod stretch;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use delay::{DelayEstimator, EstimatorConfig};
use stats::{ConcealmentRate, Counters, InterarrivalJitter};
use stretch::Stretcher;

pub use stats::JitterStats;

/// Decodes the codec's frames; for Opus, a thin wrapper around libopus.
///
/// Each method appends to `out` and must leave what was there untouched.
/// The buffer calls them in playout order, so a stateful decoder sees the
/// stream as it is played.
pub trait FrameDecoder {
    /// Why decoding failed; the buffer counts it and conceals instead.
    type Error: fmt::Display;

    /// Decodes one encoded frame, appending its samples (normally 960) to
    /// `out`.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), Self::Error>;

    /// Rebuilds the audio just before `next_payload` from its in-band FEC,
    /// appending exactly `samples` samples: a whole number of frames, of
    /// which only the last comes from the FEC (libopus conceals the rest:
    /// `opus_decode` with `decode_fec = 1` and `frame_size = samples`). It is
    /// called before `decode(next_payload)`.
    fn decode_fec(
        &mut self,
        next_payload: &[u8],
        samples: usize,
        out: &mut Vec<i16>,
    ) -> Result<(), Self::Error>;

    /// Packet-loss concealment: appends `samples` made-up samples that
    /// continue what was played.
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> Result<(), Self::Error>;
}

/// How a frame reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// In its own RTP packet (or as the primary block of a RED packet).
    Primary,
    /// As a redundant block of a later RED packet (RFC 2198).
    Redundant,
}

/// What [`JitterBuffer::insert`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// Stored, to be played in its turn.
    Accepted,
    /// A copy of a frame already held or played; ignored (a primary copy
    /// replaces a held redundant one).
    Duplicate,
    /// Its playout time has passed; dropped and counted late.
    TooLate,
    /// The buffer was full and this was its oldest frame; dropped.
    Overflow,
    /// The stream's timestamps jumped (the sender started over): the buffer
    /// let go of the old stream and stored this frame as the first of the
    /// new one.
    Reset,
    /// Refused, see [`Reject`]; nothing else changed.
    Rejected(Reject),
}

/// Why a frame was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// The payload was empty (a frame needs at least its TOC byte).
    #[error("empty payload")]
    EmptyPayload,
    /// The payload was larger than [`JitterConfig::max_payload`].
    #[error("payload larger than the configured maximum")]
    PayloadTooLarge,
    /// The timestamp was further than [`JitterConfig::resync_threshold`]
    /// from where the stream is, and nothing confirmed a new stream yet.
    #[error("timestamp far from the stream's")]
    OutOfRange,
}

/// What one [`JitterBuffer::pull`] played, the most notable first: if a
/// pull both concealed and decoded, it reports `Concealed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Playout {
    /// Some of the output was made up: concealment or its fade-out.
    Concealed,
    /// A frame was rebuilt from the next frame's in-band FEC.
    Fec,
    /// One pitch period was cut out to shrink the delay.
    Accelerated,
    /// One pitch period was added to grow the delay.
    Expanded,
    /// Decoded audio, as it was.
    Normal,
    /// Silence: nothing has arrived yet, the buffer is filling to its
    /// target, or the stream stopped.
    Silence,
}

/// Tuning of a [`JitterBuffer`]. [`Default`] is what VoiceMeet ships:
/// Opus at 48 kHz in 20 ms frames, pulled every 10 ms.
///
/// [`JitterBuffer::new`] brings out-of-range values into range rather
/// than failing (a zero sample rate becomes 8 kHz, `max_delay` is at least
/// `min_delay`, …), so any config makes a working buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct JitterConfig {
    /// Samples per second of the decoded audio (and of the RTP clock).
    pub sample_rate: u32,
    /// Samples in one frame, which is also how far timestamps advance per
    /// frame. Concealment of a missing frame and FEC use this length.
    pub frame_samples: u32,
    /// The smallest target delay.
    pub min_delay: Duration,
    /// The largest target delay; also the range of the delay histogram.
    pub max_delay: Duration,
    /// The target before anything has been measured: playout starts this
    /// long after the first frame, then the target converges to what the
    /// network needs.
    pub start_delay: Duration,
    /// The share of frames the target delay should be in time for.
    pub quantile: f64,
    /// Weight the delay histogram keeps at each update (per resample
    /// interval): 0.983 forgets half of what it knew in about 20 s.
    pub forget_factor: f64,
    /// The histogram learns the largest lateness of each interval this
    /// long (sooner when a frame is later than the current estimate).
    pub resample_interval: Duration,
    /// How far back the fastest frame (lateness zero) is looked for.
    pub history: Duration,
    /// Frames the buffer holds at most; past it, the oldest are dropped.
    pub max_frames: usize,
    /// Largest payload accepted, in bytes.
    pub max_payload: usize,
    /// Longest run of concealment before fading out to silence: Opus PLC
    /// turns to noise after 10 to 15 frames.
    pub max_concealment: Duration,
    /// Length of the fade from concealment to silence.
    pub fade_out: Duration,
    /// Length of the fade-in when audio comes back after silence.
    pub fade_in: Duration,
    /// How far above the target the delay may be before it is shrunk by
    /// accelerate; expand keeps it at or above the target.
    pub stretch_band: Duration,
    /// Delay above the target at which whole frames are dropped rather
    /// than shrunk by accelerate.
    pub catch_up: Duration,
    /// A frame whose timestamp is further than this from where its arrival
    /// time says the stream is, is refused or (if more follow it
    /// consistently) starts a new stream.
    pub resync_threshold: Duration,
}

impl Default for JitterConfig {
    fn default() -> Self {
        Self {
            sample_rate: 48_000,
            frame_samples: 960,
            min_delay: Duration::ZERO,
            max_delay: Duration::from_millis(400),
            start_delay: Duration::from_millis(40),
            quantile: 0.95,
            forget_factor: 0.983,
            resample_interval: Duration::from_millis(500),
            history: Duration::from_secs(2),
            max_frames: 100,
            max_payload: 1_500,
            max_concealment: Duration::from_millis(200),
            fade_out: Duration::from_millis(20),
            fade_in: Duration::from_millis(10),
            stretch_band: Duration::from_millis(5),
            catch_up: Duration::from_millis(240),
            resync_threshold: Duration::from_secs(2),
        }
    }
}

/// Shortest pitch period searched: 400 Hz.
const MIN_PITCH: Duration = Duration::from_micros(2_500);
/// Longest pitch period searched: 67 Hz, below any speaking voice.
const MAX_PITCH: Duration = Duration::from_millis(15);
/// Concealment is asked for in multiples of this (Opus's shortest frame),
/// and this much extra, so that real audio can be crossfaded in over it.
const CONCEAL_UNIT: Duration = Duration::from_micros(2_500);
/// Longest decoded frame kept (Opus's longest packet); more is cut.
const MAX_DECODED: Duration = Duration::from_millis(120);
/// Window of the concealment rate.
const RATE_WINDOW: Duration = Duration::from_secs(2);
/// A new stream needs a second far frame at least this long after the
/// first (a burst of stale frames arrives all at once)...
const NEW_STREAM_MIN_GAP_US: i64 = 60_000;
/// ...but no more than this long after it...
const NEW_STREAM_MAX_GAP_US: i64 = 1_000_000;
/// ...and with a transit this close to the first's.
const NEW_STREAM_TOLERANCE_US: i64 = 250_000;
/// Within this many bands above the target, accelerate only where the
/// audio is quiet (a pause between words, where a splice cannot be heard;
/// pauses come every few hundred ms in speech): a pitch period cut from a
/// vowel is audible, and lowers the call's quality score measurably. A few
/// ms of extra delay wait for the pause. Below the target there is no such
/// patience: a delay too short turns jitter into concealment, which is
/// worse than a splice.
const QUIET_ONLY_BANDS: i64 = 2;
/// Impossible correlation: only quiet audio qualifies.
const QUIET_ONLY: f64 = f64::INFINITY;
/// Further off, stretching needs this correlation between the two periods
/// it splices...
const GOOD_CORRELATION: f64 = 0.9;
/// ...or this much when the delay is four bands off target...
const FAIR_CORRELATION: f64 = 0.7;
/// ...and any when it is this many bands off: drift must not accumulate
/// just because the audio is noise-like.
const ANY_CORRELATION_BANDS: i64 = 8;
/// No accelerate this long after a stall ended: the frame that ended it
/// was late, and the estimator needs a moment to learn that (see
/// `EARLY_GAP` in `delay.rs`) before the extra delay is given back.
const HOLD_AFTER_STALL_US: i64 = 300_000;
/// No accelerate for this long plus the drop after the fastest path got
/// faster: frames sent before the change are still on their way by the
/// old path, and shrinking now would make them late.
const HOLD_AFTER_DROP_US: i64 = 100_000;
/// How long the delay that redundancy needed keeps the target up: a frame
/// that first arrived as a RED copy (its own packet was lost) came as late
/// as its copy; for as long as losses keep coming within this window, the
/// target covers the latest such copy, so that copies of the next burst
/// arrive in time to be played. Ten seconds is a few bursts on a lossy
/// link, and lets the delay come back down soon after the loss stops.
const RECOVERY_WINDOW_US: i64 = 10_000_000;
/// The share of recent recoveries by redundancy the target waits for:
/// the rest, the slowest, are concealed (the same trade as the jitter
/// quantile).
const RECOVERY_QUANTILE: f64 = 0.95;
/// Steering follows the playout delay averaged over about this many pulls
/// (a first-order low-pass). The delay measured at each pull carries the
/// scheduling jitter of whoever pulls (a device thread, a timer): a few
/// ms either way, pull to pull. Steering on the raw value chased that
/// noise, expanding when it dipped and accelerating when it rose, over and
/// over: about 3 % of a call's audio was stretched on a clean network.
const DELAY_SMOOTHING_PULLS: i64 = 16;
/// How many recent recoveries must have needed a delay before the target
/// waits that long...
const RECOVERY_EVIDENCE: usize = 3;
/// ...arriving at least this far apart.
const RECOVERY_EVIDENCE_SPAN_US: i64 = 1_000_000;
/// At most this many recent recoveries are remembered (about 5 s of 50 %
/// loss; more just repeats what is known).
const MAX_RECOVERIES: usize = 128;
/// Production steps in one pull before giving up and padding with
/// silence; a step only fails to produce audio when it changes state, so
/// this is never reached with a sane decoder.
const MAX_STEPS: usize = 64;

/// A frame waiting for its turn.
#[derive(Debug)]
struct Stored {
    ts: i64,
    origin: Origin,
    payload: Vec<u8>,
}

/// A far frame that may be the first of a new stream.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    ts: u32,
    arrival_us: i64,
}

/// Where playout is.
///
/// ```text
///            frames due               next frame missing
///  Silent ─────────────▶ Playing ─────────────────────▶ Concealing
///    ▲   (fade in)          ▲      frame (or later one) │
///    │                      └───────────────────────────┤
///    │             max_concealment reached (fade out)   │
///    └──────────────────────────────────────────────────┘
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// No audio: not started, or the stream stopped. The playout position
    /// follows the clock at the target delay (once a frame set the base).
    Silent,
    /// Decoding frames in order.
    Playing,
    /// The next frame is missing: concealing while the position waits.
    Concealing,
}

/// What happened during one pull.
#[derive(Debug, Default)]
struct Report {
    decoded: bool,
    fec: bool,
    accelerated: bool,
    expanded: bool,
    concealed: bool,
    /// Samples made up (concealment, fades, silence in an outage).
    made_up: usize,
}

/// An adaptive jitter buffer for one incoming audio stream. See the
/// [module docs](self).
#[derive(Debug)]
pub struct JitterBuffer {
    config: JitterConfig,
    fs: i64,
    frame: usize,
    unit: usize,
    min_pitch: usize,
    max_pitch: usize,
    band: i64,
    max_conceal: usize,
    fade_out: usize,
    fade_in: usize,
    max_decoded: usize,
    min_delay_us: i64,
    max_delay_us: i64,
    catch_up_us: i64,
    resync_us: i64,

    /// Frames not yet decoded, sorted by timestamp, one per timestamp.
    frames: VecDeque<Stored>,
    /// Payload buffers to reuse.
    pool: Vec<Vec<u8>>,
    /// The newest timestamp seen and its extended value.
    reference: Option<(u32, i64)>,
    /// Extended timestamps of the latest distinct frames, for duplicates.
    recent: VecDeque<i64>,
    recent_capacity: usize,
    newest_primary: Option<i64>,
    candidate: Option<Candidate>,
    estimator: DelayEstimator,
    stretcher: Stretcher,
    interarrival: InterarrivalJitter,
    rate: ConcealmentRate,

    /// Decoded audio not yet played.
    pcm: Vec<i16>,
    /// `pcm[..synthetic_front]` may hold made-up audio: not stretched.
    synthetic_front: usize,
    /// `pcm[len - synthetic_tail..]` is concealment, which real audio
    /// coming next is crossfaded into.
    synthetic_tail: usize,
    mode: Mode,
    /// Whether `next_ts` means anything yet.
    anchored: bool,
    /// Timestamp of the next frame to play.
    next_ts: i64,
    /// Samples concealed while `next_ts` waited.
    filled: usize,
    /// Samples made up since the last real audio.
    run: usize,
    fade_in_pending: bool,
    /// Silence because the stream stopped (counts as made up).
    outage: bool,
    /// Length of the last pull, which the target covers.
    pull_us: i64,
    /// Time of the current pull.
    now_us: i64,
    /// No accelerate before this time.
    hold_accelerate_until_us: i64,
    /// (arrival, relative delay) of recent frames whose first copy was a
    /// redundant one, oldest first.
    recoveries: VecDeque<(i64, i64)>,
    /// The first primary frame of the stream (extended timestamp).
    first_primary: Option<i64>,
    /// The playout delay, low-passed over [`DELAY_SMOOTHING_PULLS`] pulls:
    /// what steering follows.
    smoothed_delay_us: Option<i64>,
    last_delay_us: i64,
    counters: Counters,
}

impl JitterBuffer {
    /// A buffer with `config` (brought into range, see [`JitterConfig`]).
    pub fn new(config: JitterConfig) -> Self {
        let config = sanitize(config);
        let fs = i64::from(config.sample_rate);
        let samples = |d: Duration| duration_samples(d, fs);
        let frame = usize::try_from(config.frame_samples).unwrap_or(960);
        let max_pitch = samples(MAX_PITCH).max(2);
        let min_delay_us = duration_us(config.min_delay);
        let max_delay_us = duration_us(config.max_delay);
        let start_us = duration_us(config.start_delay);
        let pull_us = duration_us(Duration::from_millis(10));
        let estimator = DelayEstimator::new(EstimatorConfig {
            quantile: config.quantile,
            forget_factor: config.forget_factor,
            resample_us: duration_us(config.resample_interval),
            history_us: duration_us(config.history).max(1),
            max_us: max_delay_us,
            initial_us: start_us.saturating_sub(pull_us).max(0),
        });
        let recent_capacity = (2 * config.max_frames).clamp(128, 4_096);
        Self {
            fs,
            frame,
            unit: samples(CONCEAL_UNIT).max(1),
            min_pitch: samples(MIN_PITCH).max(1),
            max_pitch,
            band: i64::try_from(samples(config.stretch_band)).unwrap_or(i64::MAX),
            max_conceal: samples(config.max_concealment),
            fade_out: samples(config.fade_out),
            fade_in: samples(config.fade_in),
            max_decoded: samples(MAX_DECODED).max(frame),
            min_delay_us,
            max_delay_us,
            catch_up_us: duration_us(config.catch_up),
            resync_us: duration_us(config.resync_threshold),
            frames: VecDeque::with_capacity(config.max_frames + 1),
            pool: Vec::with_capacity(config.max_frames + 1),
            reference: None,
            recent: VecDeque::with_capacity(recent_capacity),
            recent_capacity,
            newest_primary: None,
            candidate: None,
            estimator,
            stretcher: Stretcher::new(config.sample_rate, max_pitch),
            interarrival: InterarrivalJitter::default(),
            rate: ConcealmentRate::new(to_f64(duration_samples(RATE_WINDOW, fs))),
            pcm: Vec::with_capacity(4 * samples(MAX_DECODED) + 4 * frame),
            synthetic_front: 0,
            synthetic_tail: 0,
            mode: Mode::Silent,
            anchored: false,
            next_ts: 0,
            filled: 0,
            run: 0,
            fade_in_pending: false,
            outage: false,
            pull_us,
            now_us: 0,
            hold_accelerate_until_us: i64::MIN,
            recoveries: VecDeque::with_capacity(MAX_RECOVERIES),
            first_primary: None,
            smoothed_delay_us: None,
            last_delay_us: 0,
            counters: Counters::default(),
            config,
        }
    }

    /// The config in force (after [`JitterBuffer::new`] brought it into
    /// range).
    pub fn config(&self) -> &JitterConfig {
        &self.config
    }

    /// Takes in one frame: its RTP `timestamp`, its encoded `payload`,
    /// whether it came as a primary or a redundant copy, and when it
    /// arrived (on the same clock as [`JitterBuffer::pull`]'s `now`).
    pub fn insert(
        &mut self,
        timestamp: u32,
        payload: &[u8],
        origin: Origin,
        arrival: Duration,
    ) -> Insert {
        if payload.is_empty() {
            return self.reject(Reject::EmptyPayload);
        }
        if payload.len() > self.config.max_payload {
            return self.reject(Reject::PayloadTooLarge);
        }
        let arrival_us = duration_us(arrival);
        let mut ts = self.extend(timestamp);
        let mut reset = false;
        if let Some(relative) = self.estimator.relative_us(self.transit_us(ts, arrival_us)) {
            if relative.unsigned_abs() > self.resync_us.unsigned_abs() {
                if !self.confirms_new_stream(timestamp, arrival_us) {
                    return self.reject(Reject::OutOfRange);
                }
                self.restart_stream();
                ts = self.extend(timestamp);
                reset = true;
            } else {
                self.candidate = None;
            }
        }

        if self.recent.contains(&ts) {
            self.counters.duplicates += 1;
            if origin == Origin::Primary
                && let Some(held) = self.frames.iter_mut().find(|f| f.ts == ts)
                && held.origin == Origin::Redundant
            {
                held.payload.clear();
                held.payload.extend_from_slice(payload);
                held.origin = Origin::Primary;
            }
            return Insert::Duplicate;
        }
        if self.recent.len() >= self.recent_capacity {
            self.recent.pop_front();
        }
        self.recent.push_back(ts);
        self.counters.received += 1;
        let transit = self.transit_us(ts, arrival_us);
        // A copy of a frame from before the first primary is history the
        // sender had before we listened (or before a restart), not a loss
        // the copy repaired.
        if origin == Origin::Redundant
            && self.first_primary.is_some_and(|first| ts > first)
            && let Some(relative) = self.estimator.relative_us(transit)
        {
            if self.recoveries.len() >= MAX_RECOVERIES {
                self.recoveries.pop_front();
            }
            self.recoveries.push_back((arrival_us, relative));
        }
        if origin == Origin::Primary {
            self.first_primary.get_or_insert(ts);
            if self.newest_primary.is_some_and(|newest| ts < newest) {
                self.counters.reordered += 1;
            }
            self.newest_primary = Some(self.newest_primary.map_or(ts, |n| n.max(ts)));
            self.interarrival.update(transit);
        }
        let base_before = self.estimator.base_us();
        self.estimator.observe(transit, arrival_us);
        if let (Some(before), Some(after)) = (base_before, self.estimator.base_us()) {
            let drop = before.saturating_sub(after);
            if drop > self.samples_us(usize::try_from(self.band).unwrap_or(0)) {
                let until = arrival_us
                    .saturating_add(drop)
                    .saturating_add(HOLD_AFTER_DROP_US);
                self.hold_accelerate_until_us = self.hold_accelerate_until_us.max(until);
            }
        }
        if self.reference.is_none_or(|(_, newest)| ts > newest) {
            self.reference = Some((timestamp, ts));
        }

        // In silence the position follows the clock and may move back (a
        // slower path), so only the pull decides what is late there.
        if self.anchored && self.mode != Mode::Silent && ts < self.next_ts {
            self.counters.late += 1;
            return Insert::TooLate;
        }
        if self.frames.len() >= self.config.max_frames {
            // Full: output has stalled or a burst is far ahead. The oldest
            // frame is the stalest, so it goes.
            if self.frames.front().is_none_or(|oldest| ts < oldest.ts) {
                self.counters.dropped += 1;
                return Insert::Overflow;
            }
            if let Some(oldest) = self.frames.pop_front() {
                self.counters.dropped += 1;
                self.pool.push(oldest.payload);
            }
        }
        let mut buffer = self
            .pool
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.config.max_payload));
        buffer.clear();
        buffer.extend_from_slice(payload);
        let at = self.frames.partition_point(|f| f.ts < ts);
        self.frames.insert(
            at,
            Stored {
                ts,
                origin,
                payload: buffer,
            },
        );
        if reset {
            Insert::Reset
        } else {
            Insert::Accepted
        }
    }

    /// Fills all of `out` with the next audio to play, decoding with
    /// `decoder` as needed. `now` is when `out` starts playing, on the
    /// clock of [`JitterBuffer::insert`]'s arrivals; call it every 10 ms
    /// (any length works; the target covers the length of the last pull).
    pub fn pull<D: FrameDecoder>(
        &mut self,
        now: Duration,
        decoder: &mut D,
        out: &mut [i16],
    ) -> Playout {
        let need = out.len();
        let now_us = duration_us(now);
        let mut report = Report::default();
        if need == 0 {
            return self.quiet_playout();
        }
        self.pull_us = self.samples_us(need).min(self.max_delay_us);
        self.now_us = now_us;
        let mut steps = 0;
        while self.pcm.len() < need {
            steps += 1;
            if steps > MAX_STEPS {
                let missing = need - self.pcm.len();
                self.push_silence(missing, &mut report);
                break;
            }
            match self.mode {
                Mode::Silent => self.step_silent(now_us, need, &mut report),
                Mode::Playing | Mode::Concealing => {
                    self.step_stream(now_us, need, decoder, &mut report);
                }
            }
        }
        self.last_delay_us = self.delay_us(now_us);
        out.copy_from_slice(&self.pcm[..need]);
        self.pcm.drain(..need);
        self.synthetic_front = self.synthetic_front.saturating_sub(need);
        self.synthetic_tail = self.synthetic_tail.min(self.pcm.len());
        self.rate.update(report.made_up, need);
        if report.concealed {
            Playout::Concealed
        } else if report.fec {
            Playout::Fec
        } else if report.accelerated {
            Playout::Accelerated
        } else if report.expanded {
            Playout::Expanded
        } else if report.decoded {
            Playout::Normal
        } else {
            self.quiet_playout()
        }
    }

    /// A snapshot of delays and counters.
    pub fn stats(&self) -> JitterStats {
        let c = &self.counters;
        let ms = |samples: u64| to_f64_u64(samples) * 1_000.0 / to_f64_i64(self.fs);
        let buffered = self.pcm.len() + self.frames.len() * self.frame;
        JitterStats {
            delay_ms: to_f64_i64(self.last_delay_us) / 1_000.0,
            target_delay_ms: to_f64_i64(self.target_us()) / 1_000.0,
            buffered_ms: ms(u64::try_from(buffered).unwrap_or(u64::MAX)),
            jitter_ms: self.interarrival.ms(),
            concealment_rate: self.rate.rate(),
            frames_received: c.received,
            frames_decoded: c.decoded,
            frames_recovered_red: c.recovered_red,
            frames_recovered_fec: c.recovered_fec,
            frames_lost: c.lost,
            frames_late: c.late,
            duplicates: c.duplicates,
            reordered: c.reordered,
            frames_dropped: c.dropped,
            rejected: c.rejected,
            resets: c.resets,
            decoder_errors: c.decoder_errors,
            concealed_ms: ms(c.concealed_samples),
            accelerated_ms: ms(c.accelerated_samples),
            expanded_ms: ms(c.expanded_samples),
        }
    }

    // ----- insert helpers -----

    fn reject(&mut self, why: Reject) -> Insert {
        self.counters.rejected += 1;
        Insert::Rejected(why)
    }

    /// The timestamp extended to 64 bits: the 32-bit difference from the
    /// newest timestamp, taken as signed, so wrap-around is seamless.
    fn extend(&self, timestamp: u32) -> i64 {
        match self.reference {
            None => i64::from(timestamp),
            Some((reference, extended)) => {
                // Reinterpreting the wrapped difference as signed is the
                // point: a timestamp just before the reference is behind it.
                let difference = timestamp.wrapping_sub(reference) as i32;
                extended.saturating_add(i64::from(difference))
            }
        }
    }

    fn transit_us(&self, ts: i64, arrival_us: i64) -> i64 {
        arrival_us.saturating_sub(self.ts_us(ts))
    }

    /// Whether this far frame, with the one before it, shows that a new
    /// stream has begun; if not, it becomes the candidate.
    fn confirms_new_stream(&mut self, timestamp: u32, arrival_us: i64) -> bool {
        if let Some(first) = self.candidate {
            let gap = arrival_us.saturating_sub(first.arrival_us);
            // Both measured in the candidate's own timestamp space.
            let difference = i64::from(timestamp.wrapping_sub(first.ts) as i32);
            let transit_first = first.arrival_us;
            let transit_now = arrival_us.saturating_sub(self.ts_us(difference));
            if gap < NEW_STREAM_MIN_GAP_US {
                return false;
            }
            if gap <= NEW_STREAM_MAX_GAP_US
                && transit_now.saturating_sub(transit_first).abs() <= NEW_STREAM_TOLERANCE_US
            {
                self.candidate = None;
                return true;
            }
        }
        self.candidate = Some(Candidate {
            ts: timestamp,
            arrival_us,
        });
        false
    }

    /// Lets go of the old stream: its frames, its timestamps and its base.
    fn restart_stream(&mut self) {
        self.recoveries.clear();
        self.first_primary = None;
        self.smoothed_delay_us = None;
        while let Some(frame) = self.frames.pop_front() {
            self.pool.push(frame.payload);
        }
        // What is left of the old audio plays out, fading to silence.
        let fade = self.fade_out.min(self.pcm.len());
        let len = self.pcm.len();
        stretch::ramp(&mut self.pcm[len - fade..], 1.0, 0.0);
        self.synthetic_front = self.pcm.len();
        self.synthetic_tail = 0;
        self.mode = Mode::Silent;
        self.anchored = false;
        self.filled = 0;
        self.run = 0;
        self.fade_in_pending = false;
        self.outage = false;
        self.reference = None;
        self.recent.clear();
        self.newest_primary = None;
        self.candidate = None;
        self.estimator.restart();
        self.interarrival.restart();
        self.counters.resets += 1;
    }

    // ----- pull helpers -----

    fn quiet_playout(&self) -> Playout {
        match self.mode {
            Mode::Silent => Playout::Silence,
            Mode::Playing => Playout::Normal,
            Mode::Concealing => Playout::Concealed,
        }
    }

    /// The target playout delay: the jitter estimate, or what recent
    /// recoveries by redundancy needed if that is more, plus one pull.
    fn target_us(&self) -> i64 {
        self.estimator
            .estimate_us()
            .max(self.recovery_us())
            .saturating_add(self.pull_us)
            .clamp(self.min_delay_us, self.max_delay_us)
    }

    /// The delay that covers [`RECOVERY_QUANTILE`] of the frames rebuilt
    /// from redundant copies within [`RECOVERY_WINDOW_US`]: copies spread
    /// over several packets (see `red::SPREAD`) arrive up to 120 ms after
    /// the frame was due, and a buffer that does not wait for them plays
    /// concealment instead. 0 when nothing needed a copy lately.
    fn recovery_us(&self) -> i64 {
        let since = self.now_us.saturating_sub(RECOVERY_WINDOW_US);
        let mut recent = [(0i64, 0i64); MAX_RECOVERIES];
        let mut count = 0;
        for &(at, relative) in self.recoveries.iter().filter(|(at, _)| *at >= since) {
            recent[count] = (relative, at);
            count += 1;
        }
        let recent = &mut recent[..count];
        if recent.is_empty() {
            return 0;
        }
        // Longest wait first.
        recent.sort_unstable_by(|a, b| b.cmp(a));
        // The nearest-rank quantile counted from the top: this many of the
        // longest waits may go uncovered.
        let uncovered = count - ((count as f64) * RECOVERY_QUANTILE).ceil() as usize;
        // And a wait only counts once several frames, spread over time,
        // needed it: a batch of copies in one moment (redundancy just
        // switched on, frames lost before it was) says little about the
        // next second, and following it would stretch speech twice.
        let (mut earliest, mut latest) = (i64::MAX, i64::MIN);
        for (index, &(relative, at)) in recent.iter().enumerate() {
            earliest = earliest.min(at);
            latest = latest.max(at);
            if index >= uncovered
                && index + 1 >= RECOVERY_EVIDENCE
                && latest - earliest >= RECOVERY_EVIDENCE_SPAN_US
            {
                return relative;
            }
        }
        recent[count - 1].0
    }

    /// The playout delay of `next_ts` if it were played after what is
    /// queued: when it plays minus when the fastest path would bring it.
    fn delay_us(&self, now_us: i64) -> i64 {
        match self.estimator.base_us() {
            Some(base) if self.anchored => now_us
                .saturating_add(self.samples_us(self.pcm.len()))
                .saturating_sub(base)
                .saturating_sub(self.ts_us(self.next_ts)),
            _ => 0,
        }
    }

    /// Silence, with the position following the clock at the target delay
    /// until the next frame is due.
    fn step_silent(&mut self, now_us: i64, need: usize, report: &mut Report) {
        let missing = need - self.pcm.len();
        let Some(base) = self.estimator.base_us() else {
            self.push_silence(missing, report);
            return;
        };
        let plays_at = now_us.saturating_add(self.samples_us(self.pcm.len()));
        self.next_ts = self.us_ts(
            plays_at
                .saturating_sub(self.target_us())
                .saturating_sub(base),
        );
        self.anchored = true;
        self.drop_late();
        if let Some(front) = self.frames.front() {
            let gap = front.ts - self.next_ts;
            if let Ok(gap) = usize::try_from(gap)
                && gap < missing
            {
                let front_ts = front.ts;
                self.push_silence(gap, report);
                self.next_ts = front_ts;
                self.mode = Mode::Playing;
                self.fade_in_pending = true;
                self.filled = 0;
                return;
            }
        }
        self.push_silence(missing, report);
        self.next_ts = self.next_ts.saturating_add(to_i64(missing));
    }

    /// One production step while a stream plays.
    fn step_stream<D: FrameDecoder>(
        &mut self,
        now_us: i64,
        need: usize,
        decoder: &mut D,
        report: &mut Report,
    ) {
        self.drop_late();
        let missing = need - self.pcm.len();
        let Some(front_ts) = self.frames.front().map(|f| f.ts) else {
            self.stall(missing, decoder, report);
            return;
        };
        let target = self.target_us();
        let delay = self.delay_us(now_us);
        if delay > target.saturating_add(self.catch_up_us) && self.catch_up(delay, target) {
            return;
        }
        if front_ts == self.next_ts {
            let was_playing = self.mode == Mode::Playing && !self.fade_in_pending;
            if self.decode_front(decoder, report) && was_playing {
                self.steer(delay, target, decoder, report);
            }
            return;
        }

        // A gap before the front frame: fill it, or skip it if the wait
        // already did.
        let hole = usize::try_from(front_ts - self.next_ts).unwrap_or(usize::MAX);
        let overlap = if self.mode == Mode::Concealing {
            self.unit.min(self.synthetic_tail)
        } else {
            0
        };
        let covered = self.filled.saturating_sub(overlap);
        if covered >= hole {
            self.counters.lost += self.frames_in(hole);
            self.next_ts = front_ts;
            self.filled = 0;
            return;
        }
        if self.run >= self.max_conceal {
            self.fade_to_silence(decoder, report);
            return;
        }
        let rest = hole - covered;
        if rest >= self.frame && rest <= 2 * self.frame && rest % self.unit == 0 {
            self.fill_with_fec(hole, rest, overlap, decoder, report);
        } else if rest < self.frame {
            // Conceal the rest, plus an overlap to crossfade the front in.
            let samples = (hole + self.unit).saturating_sub(self.filled);
            self.conceal(samples, decoder, report);
            self.counters.lost += self.frames_in(hole);
            self.next_ts = front_ts;
            self.filled = self.unit;
            self.mode = Mode::Concealing;
        } else {
            self.stall(missing, decoder, report);
        }
    }

    /// Nothing to play next: conceal a little (while the position waits for
    /// a late frame), or fade out once concealment has run long enough.
    fn stall<D: FrameDecoder>(&mut self, missing: usize, decoder: &mut D, report: &mut Report) {
        if self.run >= self.max_conceal {
            self.fade_to_silence(decoder, report);
            return;
        }
        let chunk = (missing + self.unit).div_ceil(self.unit) * self.unit;
        self.conceal(chunk, decoder, report);
        self.filled += chunk;
        self.mode = Mode::Concealing;
    }

    /// Rebuilds the frame before the front from the front's FEC (`rest`
    /// samples, the first ones concealed if it is more than a frame).
    fn fill_with_fec<D: FrameDecoder>(
        &mut self,
        hole: usize,
        rest: usize,
        overlap: usize,
        decoder: &mut D,
        report: &mut Report,
    ) {
        let Some(front) = self.frames.front() else {
            return;
        };
        let front_ts = front.ts;
        let start = self.pcm.len();
        let result = decoder.decode_fec(&front.payload, rest, &mut self.pcm);
        if result.is_err() {
            self.pcm.truncate(start);
            self.counters.decoder_errors += 1;
            self.conceal(rest + self.unit - overlap, decoder, report);
            self.filled = self.unit;
            self.mode = Mode::Concealing;
        } else {
            fit(&mut self.pcm, start, rest);
            if self.mode == Mode::Concealing {
                stretch::merge(&mut self.pcm, start, overlap);
            }
            self.counters.recovered_fec += 1;
            self.counters.concealed_samples += to_u64(rest - self.frame);
            self.synthetic_tail = 0;
            self.filled = 0;
            self.run = 0;
            self.mode = Mode::Playing;
            report.fec = true;
        }
        self.counters.lost += self.frames_in(hole);
        self.next_ts = front_ts;
    }

    /// Decodes the front frame (its turn has come). Returns whether real
    /// audio came out (if not, the frame was concealed).
    fn decode_front<D: FrameDecoder>(&mut self, decoder: &mut D, report: &mut Report) -> bool {
        let Some(frame) = self.frames.pop_front() else {
            return false;
        };
        let start = self.pcm.len();
        let result = decoder.decode(&frame.payload, &mut self.pcm);
        let produced = self.pcm.len().saturating_sub(start);
        let decoded = result.is_ok() && produced > 0;
        if decoded {
            self.pcm.truncate(start + produced.min(self.max_decoded));
            let len = self.pcm.len() - start;
            self.counters.decoded += 1;
            if frame.origin == Origin::Redundant {
                self.counters.recovered_red += 1;
            }
            if self.fade_in_pending {
                let end = start + self.fade_in.min(len);
                stretch::ramp(&mut self.pcm[start..end], 0.0, 1.0);
                self.fade_in_pending = false;
            } else if self.mode == Mode::Concealing {
                let overlap = self.unit.min(self.synthetic_tail);
                stretch::merge(&mut self.pcm, start, overlap);
                if self.filled > overlap {
                    // The position waited for this frame: it was late.
                    let until = self.now_us.saturating_add(HOLD_AFTER_STALL_US);
                    self.hold_accelerate_until_us = self.hold_accelerate_until_us.max(until);
                }
            }
            self.next_ts = frame.ts.saturating_add(to_i64(len));
            self.mode = Mode::Playing;
            self.synthetic_tail = 0;
            self.filled = 0;
            self.run = 0;
            self.outage = false;
            report.decoded = true;
        } else {
            self.pcm.truncate(start.min(self.pcm.len()));
            self.synthetic_front = self.synthetic_front.min(self.pcm.len());
            self.synthetic_tail = self.synthetic_tail.min(self.pcm.len());
            self.counters.decoder_errors += 1;
            if self.run >= self.max_conceal {
                // Concealment has run its course: stay silent, and fade the
                // next good frame in.
                self.push_silence(self.frame, report);
                self.synthetic_front = self.pcm.len();
                self.run = self.run.saturating_add(self.frame);
                self.fade_in_pending = true;
            } else {
                self.conceal(self.frame + self.unit, decoder, report);
                self.filled = self.unit;
                self.mode = Mode::Concealing;
            }
            self.next_ts = frame.ts.saturating_add(to_i64(self.frame));
        }
        self.pool.push(frame.payload);
        decoded
    }

    /// Accelerates or expands the queued audio by one pitch period when
    /// the delay is off target.
    fn steer<D: FrameDecoder>(
        &mut self,
        delay: i64,
        target: i64,
        decoder: &mut D,
        report: &mut Report,
    ) {
        let smoothed = match self.smoothed_delay_us {
            Some(previous) => previous + (delay - previous) / DELAY_SMOOTHING_PULLS,
            None => delay,
        };
        self.smoothed_delay_us = Some(smoothed);
        let delay = smoothed;
        let excess = self.us_samples(delay.saturating_sub(target));
        // What late packets alone call for; the rest of the target is for
        // redundant copies from further back.
        let for_jitter = self
            .estimator
            .estimate_us()
            .saturating_add(self.pull_us)
            .clamp(self.min_delay_us, self.max_delay_us);
        let recovering = self.recovery_us() > 0;
        let required =
            if excess.abs() > ANY_CORRELATION_BANDS * self.band && (excess < 0 || !recovering) {
                -1.0
            } else if excess < 0 && delay >= for_jitter {
                // Only the wait for far copies is short: a copy that comes
                // too late costs one frame of concealment, a splice in a vowel
                // costs more, so this waits for a pause.
                QUIET_ONLY
            } else if excess > 0 && (recovering || excess <= QUIET_ONLY_BANDS * self.band) {
                // Too much delay is never urgent: cut it in pauses. Under
                // loss the target moves with the copies needed; following it
                // through speech would splice vowels twice for nothing.
                QUIET_ONLY
            } else if excess.abs() > 4 * self.band {
                FAIR_CORRELATION
            } else {
                GOOD_CORRELATION
            };
        if excess > self.band && self.now_us >= self.hold_accelerate_until_us {
            // Cut at most the excess, so the delay stays at or above target.
            let max_lag = self
                .max_pitch
                .min(usize::try_from(excess).unwrap_or(usize::MAX));
            if max_lag < self.min_pitch {
                return;
            }
            // Long periods need more audio than one frame holds.
            while self.pcm.len() - self.synthetic_front.min(self.pcm.len()) < 2 * max_lag
                && self.frames.front().is_some_and(|f| f.ts == self.next_ts)
                && self.decode_front(decoder, report)
            {}
            let start = self.synthetic_front.min(self.pcm.len());
            if let Some(lag) = self.pick_lag(start, max_lag, required)
                && stretch::accelerate(&mut self.pcm, start, lag)
            {
                // The cut takes effect at once, not over the average.
                self.smoothed_delay_us = Some(smoothed - self.samples_us(lag));
                self.counters.accelerated_samples += to_u64(lag);
                report.accelerated = true;
            }
        } else if excess < 0 {
            // Add at most up to the top of the band, unless far below.
            let room = usize::try_from(self.band.saturating_sub(excess)).unwrap_or(usize::MAX);
            let max_lag = if -excess > self.band {
                self.max_pitch
            } else {
                self.max_pitch.min(room)
            };
            if max_lag < self.min_pitch {
                return;
            }
            let start = self.synthetic_front.min(self.pcm.len());
            if let Some(lag) = self.pick_lag(start, max_lag, required)
                && stretch::expand(&mut self.pcm, start, lag)
            {
                self.smoothed_delay_us = Some(smoothed + self.samples_us(lag));
                self.counters.expanded_samples += to_u64(lag);
                report.expanded = true;
            }
        }
    }

    /// A pitch period of `pcm[start..]` up to `max_lag` that splices well
    /// enough; any lag will do in near silence.
    fn pick_lag(&mut self, start: usize, max_lag: usize, required: f64) -> Option<usize> {
        let x = &self.pcm[start..];
        let max_lag = max_lag.min(x.len() / 2);
        if max_lag < self.min_pitch {
            return None;
        }
        if stretch::is_quiet(&x[..2 * max_lag]) {
            return Some(max_lag);
        }
        let period = self.stretcher.find_period(x, self.min_pitch, max_lag)?;
        (period.correlation >= required).then_some(period.lag)
    }

    /// Far above target: drops whole frames up to the last one that still
    /// leaves the delay at or above target. Returns whether it skipped.
    fn catch_up(&mut self, delay: i64, target: i64) -> bool {
        let next_ts = self.next_ts;
        let ahead = self
            .frames
            .iter()
            .take_while(|f| {
                delay.saturating_sub(self.ts_us(f.ts.saturating_sub(next_ts))) >= target
            })
            .count();
        let Some(keep_from) = ahead.checked_sub(1) else {
            return false;
        };
        if keep_from == 0 && self.frames.front().is_some_and(|f| f.ts == next_ts) {
            return false;
        }
        for _ in 0..keep_from {
            if let Some(frame) = self.frames.pop_front() {
                self.counters.dropped += 1;
                self.pool.push(frame.payload);
            }
        }
        let Some(front) = self.frames.front() else {
            return false;
        };
        self.next_ts = front.ts;
        // A jump in the signal: fade what is queued out and the new audio in.
        let fade = self.fade_in.min(self.pcm.len());
        let len = self.pcm.len();
        stretch::ramp(&mut self.pcm[len - fade..], 1.0, 0.0);
        self.fade_in_pending = true;
        self.mode = Mode::Playing;
        self.filled = 0;
        true
    }

    /// Drops frames whose turn has passed.
    fn drop_late(&mut self) {
        while self.frames.front().is_some_and(|f| f.ts < self.next_ts) {
            if let Some(frame) = self.frames.pop_front() {
                self.counters.late += 1;
                self.pool.push(frame.payload);
            }
        }
    }

    /// Concealment, then a fade to silence; playout goes silent.
    fn fade_to_silence<D: FrameDecoder>(&mut self, decoder: &mut D, report: &mut Report) {
        let start = self.pcm.len();
        self.conceal(self.fade_out, decoder, report);
        stretch::ramp(&mut self.pcm[start..], 1.0, 0.0);
        self.synthetic_tail = 0;
        self.filled = 0;
        self.run = 0;
        self.mode = Mode::Silent;
        self.outage = true;
    }

    /// Appends exactly `samples` of decoder concealment (zeros if it fails).
    fn conceal<D: FrameDecoder>(&mut self, samples: usize, decoder: &mut D, report: &mut Report) {
        let start = self.pcm.len();
        if decoder.conceal(samples, &mut self.pcm).is_err() {
            self.pcm.truncate(start);
            self.counters.decoder_errors += 1;
        }
        fit(&mut self.pcm, start, samples);
        self.synthetic_tail += samples;
        self.synthetic_front = self.pcm.len();
        self.run = self.run.saturating_add(samples);
        self.counters.concealed_samples += to_u64(samples);
        report.concealed = true;
        report.made_up += samples;
    }

    fn push_silence(&mut self, samples: usize, report: &mut Report) {
        self.pcm.resize(self.pcm.len() + samples, 0);
        self.synthetic_tail = 0;
        if self.outage {
            report.made_up += samples;
        }
    }

    // ----- units -----

    fn frames_in(&self, samples: usize) -> u64 {
        to_u64(samples.div_ceil(self.frame).max(1))
    }

    fn ts_us(&self, ts: i64) -> i64 {
        saturate_i128(i128::from(ts) * 1_000_000 / i128::from(self.fs))
    }

    fn us_ts(&self, us: i64) -> i64 {
        saturate_i128(i128::from(us) * i128::from(self.fs) / 1_000_000)
    }

    fn samples_us(&self, samples: usize) -> i64 {
        self.ts_us(to_i64(samples))
    }

    fn us_samples(&self, us: i64) -> i64 {
        self.us_ts(us)
    }
}

/// Makes `pcm[start..]` exactly `samples` long: a decoder that wrote too
/// much is cut, one that wrote too little is padded with silence.
fn fit(pcm: &mut Vec<i16>, start: usize, samples: usize) {
    pcm.resize(start.min(pcm.len()) + samples, 0);
}

fn sanitize(mut config: JitterConfig) -> JitterConfig {
    config.sample_rate = config.sample_rate.clamp(8_000, 384_000);
    // Up to 120 ms, Opus's longest frame.
    config.frame_samples = config
        .frame_samples
        .clamp(1, config.sample_rate / 1_000 * 120);
    let seconds = |d: Duration, max: u64| d.min(Duration::from_secs(max));
    config.max_delay = seconds(config.max_delay, 10);
    config.min_delay = config.min_delay.min(config.max_delay);
    config.start_delay = config.start_delay.clamp(config.min_delay, config.max_delay);
    config.quantile = finite_or(config.quantile, 0.95).clamp(0.5, 0.999);
    config.forget_factor = finite_or(config.forget_factor, 0.983).clamp(0.5, 0.9999);
    config.resample_interval = seconds(config.resample_interval, 60);
    config.history = seconds(config.history, 60).max(Duration::from_millis(100));
    config.max_frames = config.max_frames.clamp(2, 10_000);
    config.max_payload = config.max_payload.clamp(1, 65_536);
    config.max_concealment = seconds(config.max_concealment, 10);
    config.fade_out = seconds(config.fade_out, 1);
    config.fade_in = seconds(config.fade_in, 1);
    config.stretch_band = seconds(config.stretch_band, 1).max(Duration::from_millis(1));
    config.catch_up = seconds(config.catch_up, 60);
    config.resync_threshold = seconds(config.resync_threshold, 3_600);
    config
}

fn finite_or(value: f64, default: f64) -> f64 {
    if value.is_finite() { value } else { default }
}

fn duration_us(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn duration_samples(d: Duration, fs: i64) -> usize {
    let samples = d.as_micros().saturating_mul(u128::from(fs.unsigned_abs())) / 1_000_000;
    usize::try_from(samples).unwrap_or(usize::MAX)
}

fn saturate_i128(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

fn to_i64(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_u64(value: usize) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

fn to_f64(value: usize) -> f64 {
    // Sample counts stay far below 2^53.
    value as f64
}

fn to_f64_u64(value: u64) -> f64 {
    value as f64
}

fn to_f64_i64(value: i64) -> f64 {
    value as f64
}
