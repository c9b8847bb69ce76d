//! Voice processing of the call's audio: acoustic echo cancellation (AEC3),
//! noise suppression and automatic gain control (AGC2), from `sonora`, a
//! pure-Rust port of WebRTC's audio processing module
//! (docs/decisions/0002-audio-processing.md says why this one and what it
//! costs).
//!
//! Audio is 48 kHz mono 16-bit PCM; the processing block is 10 ms
//! ([`PROCESSING_FRAME_SAMPLES`]). Every entry point takes any whole number
//! of blocks, so the pipeline's 20 ms frames go in as they are.
//!
//! # Two threads
//!
//! The far-end audio about to be played is the echo canceller's reference;
//! it is known on the playout thread, while the microphone is processed on
//! the capture thread. [`AudioProcessor::split`] gives one half to each:
//!
//! ```text
//!  playout thread                         capture thread
//!  RenderProcessor::process_render ──▶ ring of 10 ms frames ──▶ CaptureProcessor::process_capture
//!    (copies, never blocks)               (lock-free, 500 ms)      (feeds the queued far-end frames
//!                                                                   to the APM, then processes the mic)
//!                 ProcessingControl (any thread): settings, delay hint, stats
//! ```
//!
//! All the signal processing happens on the capture thread, so the playout
//! thread never waits for it; that is also how WebRTC's own APM hands the
//! render signal to AEC3. If the capture side stalls, the ring fills and
//! the newest far-end frames are dropped and counted
//! ([`ProcessingStats::render_frames_dropped`]); the echo canceller
//! re-estimates its delay afterwards. [`AudioProcessor`] keeps both halves
//! for single-threaded use (tests, files, the CLI).
//!
//! Start with [`AudioProcessor::new`] with [`ProcessingSettings::default`]
//! (everything on).

mod render_queue;

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sonora::config::{
    AdaptiveDigital, EchoCanceller, GainController2, HighPassFilter, NoiseSuppression,
    NoiseSuppressionLevel,
};
use sonora::{AudioProcessing, Config, StreamConfig};

use self::render_queue::{FrameConsumer, FrameProducer, render_queue};
use super::SAMPLE_RATE;
use crate::Error;

/// One processing block: 10 ms at [`SAMPLE_RATE`], mono. WebRTC's audio
/// processing works in 10 ms blocks.
pub const PROCESSING_FRAME_SAMPLES: usize = SAMPLE_RATE as usize / 100;

/// Far-end blocks the ring between the two halves holds: 500 ms. The
/// capture thread drains it every 10–20 ms, so this only fills when capture
/// stalls; far-end audio older than that is about the reach of AEC3's delay
/// search anyway (five matched filters, ~0.5 s).
const RENDER_QUEUE_FRAMES: usize = 50;

/// Weight of each 10 ms block in the smoothed levels of
/// [`ProcessingStats`]: a time constant of about one second (100 blocks),
/// long enough to read as a level, short enough to follow a speaker.
const LEVEL_SMOOTHING: f64 = 0.01;

/// What [`ProcessingStats`] reports for silence: a floor rather than
/// negative infinity.
pub const SILENCE_DBFS: f32 = -100.0;

/// Which processing runs on the microphone signal. Each can be switched
/// during a call ([`AudioProcessor::set_settings`],
/// [`ProcessingControl::set_settings`]); the change applies from the next
/// capture block. Switching echo cancellation on starts it from scratch:
/// it needs a second or two of far-end speech to converge again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProcessingSettings {
    /// Remove the far end's voice picked up by the microphone from the
    /// speakers (AEC3, with its high-pass filter).
    pub echo_cancellation: bool,
    /// Remove stationary background noise (fans, hum, hiss).
    pub noise_suppression: bool,
    /// Bring the voice to a steady level, quiet microphones up and loud ones
    /// down, with a limiter against clipping (AGC2, digital gain only).
    pub auto_gain: bool,
}

impl ProcessingSettings {
    /// Everything on: the default for calls.
    pub const ALL_ON: Self = Self {
        echo_cancellation: true,
        noise_suppression: true,
        auto_gain: true,
    };
    /// Everything off: the microphone passes through untouched.
    pub const ALL_OFF: Self = Self {
        echo_cancellation: false,
        noise_suppression: false,
        auto_gain: false,
    };

    /// Whether any processing is on.
    pub const fn any(self) -> bool {
        self.echo_cancellation || self.noise_suppression || self.auto_gain
    }

    const fn to_bits(self) -> u8 {
        (self.echo_cancellation as u8)
            | ((self.noise_suppression as u8) << 1)
            | ((self.auto_gain as u8) << 2)
    }

    const fn from_bits(bits: u8) -> Self {
        Self {
            echo_cancellation: bits & 1 != 0,
            noise_suppression: bits & 2 != 0,
            auto_gain: bits & 4 != 0,
        }
    }

    /// The APM configuration for these settings.
    fn apm_config(self) -> Config {
        Config {
            // Removes DC and rumble below ~80 Hz, which no voice needs and
            // which would otherwise eat the gain controller's headroom. AEC3
            // enforces it anyway when it is on.
            high_pass_filter: self.any().then(HighPassFilter::default),
            echo_canceller: self.echo_cancellation.then(EchoCanceller::default),
            // High, not the library's Moderate: on speech in white noise it
            // removed 17-20 dB of noise instead of 14-15 dB, and kept the
            // speech just as well (decision 0002).
            noise_suppression: self.noise_suppression.then(|| NoiseSuppression {
                level: NoiseSuppressionLevel::High,
                ..NoiseSuppression::default()
            }),
            // Digital gain only: the input volume controller would need the
            // OS mixer's microphone volume, which we neither read nor set.
            gain_controller2: self.auto_gain.then(|| GainController2 {
                input_volume_controller: false,
                adaptive_digital: Some(AdaptiveDigital::default()),
                ..GainController2::default()
            }),
            ..Config::default()
        }
    }
}

impl Default for ProcessingSettings {
    fn default() -> Self {
        Self::ALL_ON
    }
}

/// What the processing is doing, for diagnostics and the call-quality UI.
/// Updated after every capture block.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ProcessingStats {
    /// The echo canceller's own estimate of its echo return loss
    /// enhancement (how much echo it removes), in dB. `None` while echo
    /// cancellation is off or has not processed a block yet.
    pub erle_db: Option<f32>,
    /// The echo canceller's estimate of the echo return loss (how much
    /// quieter the echo is than the far-end signal), in dB. `None` as for
    /// [`erle_db`](Self::erle_db).
    pub erl_db: Option<f32>,
    /// The echo path delay the echo canceller found: far-end audio handed to
    /// the render half now comes back in the microphone this much later.
    /// `None` as for [`erle_db`](Self::erle_db).
    pub echo_delay: Option<Duration>,
    /// The microphone's level before processing: RMS relative to full scale
    /// over about the last second, in dBFS ([`SILENCE_DBFS`] at most quiet).
    pub input_level_dbfs: f32,
    /// The level after processing, measured like
    /// [`input_level_dbfs`](Self::input_level_dbfs).
    pub output_level_dbfs: f32,
    /// Capture blocks (10 ms) processed so far.
    pub capture_frames: u64,
    /// Far-end blocks dropped because the capture side had not taken the
    /// earlier ones (it stalled for more than 500 ms).
    pub render_frames_dropped: u64,
}

impl Default for ProcessingStats {
    /// Before the first block: nothing known, silence both sides.
    fn default() -> Self {
        Self {
            erle_db: None,
            erl_db: None,
            echo_delay: None,
            input_level_dbfs: SILENCE_DBFS,
            output_level_dbfs: SILENCE_DBFS,
            capture_frames: 0,
            render_frames_dropped: 0,
        }
    }
}

impl ProcessingStats {
    /// Output level minus input level, in dB: what the processing did to
    /// the level overall (gain control up, echo and noise removal down).
    pub fn net_gain_db(&self) -> f32 {
        self.output_level_dbfs - self.input_level_dbfs
    }
}

/// Sentinel for "no delay hint" in [`Shared::delay_hint_ms`].
const NO_DELAY_HINT: i32 = -1;

/// State the two halves and the control handles share: settings going to
/// the capture side, stats coming from it. Plain atomics, so reading stats
/// from the UI never holds up the audio threads.
#[derive(Debug)]
struct Shared {
    settings: AtomicU8,
    delay_hint_ms: AtomicI32,
    /// `f32` bits; NaN for `None`.
    erle_db: AtomicU32,
    /// `f32` bits; NaN for `None`.
    erl_db: AtomicU32,
    /// Milliseconds; negative for `None`.
    echo_delay_ms: AtomicI32,
    /// `f32` bits.
    input_level_dbfs: AtomicU32,
    /// `f32` bits.
    output_level_dbfs: AtomicU32,
    capture_frames: AtomicU64,
    render_frames_dropped: AtomicU64,
}

impl Shared {
    fn new(settings: ProcessingSettings) -> Self {
        Self {
            settings: AtomicU8::new(settings.to_bits()),
            delay_hint_ms: AtomicI32::new(NO_DELAY_HINT),
            erle_db: AtomicU32::new(f32::NAN.to_bits()),
            erl_db: AtomicU32::new(f32::NAN.to_bits()),
            echo_delay_ms: AtomicI32::new(-1),
            input_level_dbfs: AtomicU32::new(SILENCE_DBFS.to_bits()),
            output_level_dbfs: AtomicU32::new(SILENCE_DBFS.to_bits()),
            capture_frames: AtomicU64::new(0),
            render_frames_dropped: AtomicU64::new(0),
        }
    }

    // Relaxed everywhere: each value stands alone, and nothing else is
    // published through them.
    fn settings(&self) -> ProcessingSettings {
        ProcessingSettings::from_bits(self.settings.load(Ordering::Relaxed))
    }

    fn set_settings(&self, settings: ProcessingSettings) {
        self.settings.store(settings.to_bits(), Ordering::Relaxed);
    }

    fn set_delay_hint(&self, hint: Duration) {
        let ms = i32::try_from(hint.as_millis()).unwrap_or(i32::MAX);
        self.delay_hint_ms.store(ms, Ordering::Relaxed);
    }

    fn stats(&self) -> ProcessingStats {
        let optional = |bits: &AtomicU32| {
            let value = f32::from_bits(bits.load(Ordering::Relaxed));
            (!value.is_nan()).then_some(value)
        };
        let delay_ms = self.echo_delay_ms.load(Ordering::Relaxed);
        ProcessingStats {
            erle_db: optional(&self.erle_db),
            erl_db: optional(&self.erl_db),
            echo_delay: u64::try_from(delay_ms).ok().map(Duration::from_millis),
            input_level_dbfs: f32::from_bits(self.input_level_dbfs.load(Ordering::Relaxed)),
            output_level_dbfs: f32::from_bits(self.output_level_dbfs.load(Ordering::Relaxed)),
            capture_frames: self.capture_frames.load(Ordering::Relaxed),
            render_frames_dropped: self.render_frames_dropped.load(Ordering::Relaxed),
        }
    }
}

/// A handle for any thread (the call driver, the UI bridge) to switch the
/// processing and read its stats while the audio threads run. Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct ProcessingControl {
    shared: Arc<Shared>,
}

impl ProcessingControl {
    /// Switches processing on or off; applies from the next capture block.
    pub fn set_settings(&self, settings: ProcessingSettings) {
        self.shared.set_settings(settings);
    }

    /// The settings in force (or about to be, from the next block).
    pub fn settings(&self) -> ProcessingSettings {
        self.shared.settings()
    }

    /// Tells the echo canceller how long far-end audio takes from
    /// [`RenderProcessor::process_render`] through the speaker and the
    /// microphone to [`CaptureProcessor::process_capture`]: the output and
    /// input device latencies plus whatever buffering lies between, if the
    /// audio layer knows them. Optional: AEC3 finds the delay itself
    /// (decision 0002 measured no difference with a right, a wrong or no
    /// hint for delays of 40 to 250 ms); it only seeds the alignment after a
    /// reset. Values above 500 ms are clamped.
    pub fn set_delay_hint(&self, hint: Duration) {
        self.shared.set_delay_hint(hint);
    }

    /// The latest stats.
    pub fn stats(&self) -> ProcessingStats {
        self.shared.stats()
    }
}

/// The playout thread's half: hands the far-end audio about to be played to
/// the capture half. Never blocks, and allocates only to report a frame of
/// the wrong length.
#[derive(Debug)]
pub struct RenderProcessor {
    queue: FrameProducer,
    shared: Arc<Shared>,
}

impl RenderProcessor {
    /// Takes the far-end audio about to be played (the echo reference):
    /// whole 10 ms blocks of 48 kHz mono samples. Call it with exactly what
    /// goes to the speaker, as close to the device as possible, so the echo
    /// canceller sees a steady delay.
    ///
    /// # Errors
    /// [`Error::Audio`] if `frame` is not a whole number of
    /// [`PROCESSING_FRAME_SAMPLES`] blocks; nothing is taken then.
    pub fn process_render(&mut self, frame: &[i16]) -> Result<(), Error> {
        check_frame_len(frame.len())?;
        // Without echo cancellation nobody needs the reference; the capture
        // half discards whatever was queued before the switch.
        if !self.shared.settings().echo_cancellation {
            return Ok(());
        }
        for block in frame.chunks_exact(PROCESSING_FRAME_SAMPLES) {
            if !self.queue.push(block) {
                self.shared
                    .render_frames_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// A control handle for the processing this half belongs to.
    pub fn control(&self) -> ProcessingControl {
        ProcessingControl {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The capture thread's half: runs all the processing, on the microphone
/// signal in place, after feeding the far-end blocks queued by the
/// [`RenderProcessor`] to the echo canceller.
#[derive(Debug)]
pub struct CaptureProcessor {
    apm: AudioProcessing,
    /// The settings the APM is configured for.
    applied: ProcessingSettings,
    /// The delay hint last passed to the APM.
    applied_delay_hint_ms: i32,
    queue: FrameConsumer,
    shared: Arc<Shared>,
    /// One block of input: the APM reads from one buffer and writes another.
    scratch: [i16; PROCESSING_FRAME_SAMPLES],
    /// One far-end block taken from the queue, and the APM's (unused) copy
    /// of it.
    render_in: [i16; PROCESSING_FRAME_SAMPLES],
    render_out: [i16; PROCESSING_FRAME_SAMPLES],
    /// Smoothed mean squares (full scale = 1) of input and output.
    input_mean_square: f64,
    output_mean_square: f64,
    /// Source of the dither added to every block the APM sees.
    dither: Dither,
}

impl CaptureProcessor {
    /// Processes microphone audio in place: whole 10 ms blocks of 48 kHz
    /// mono samples. Applies any settings or delay-hint change first.
    ///
    /// # Errors
    /// [`Error::Audio`] if `frame` is not a whole number of
    /// [`PROCESSING_FRAME_SAMPLES`] blocks (the frame is left untouched), or
    /// if the APM refuses a block (it only does for stream formats we never
    /// configure).
    pub fn process_capture(&mut self, frame: &mut [i16]) -> Result<(), Error> {
        check_frame_len(frame.len())?;
        self.apply_control();
        for block in frame.chunks_exact_mut(PROCESSING_FRAME_SAMPLES) {
            self.process_block(block)?;
        }
        self.publish_stats();
        Ok(())
    }

    /// Switches processing on or off from the next block (see
    /// [`ProcessingControl::set_settings`]).
    pub fn set_settings(&mut self, settings: ProcessingSettings) {
        self.shared.set_settings(settings);
    }

    /// The latest stats.
    pub fn stats(&self) -> ProcessingStats {
        self.shared.stats()
    }

    /// A control handle for this processing.
    pub fn control(&self) -> ProcessingControl {
        ProcessingControl {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Brings the APM in line with the shared settings and delay hint.
    fn apply_control(&mut self) {
        let settings = self.shared.settings();
        if settings != self.applied {
            // Reinitialises only the components whose switch changed, so
            // toggling noise suppression keeps the echo canceller converged.
            self.apm.apply_config(settings.apm_config());
            self.applied = settings;
        }
        let hint = self.shared.delay_hint_ms.load(Ordering::Relaxed);
        if hint != self.applied_delay_hint_ms && hint != NO_DELAY_HINT {
            // The APM clamps to 0..=500 ms and says so with an error, which
            // is the documented behaviour of the hint, not a failure.
            let _clamped = self.apm.set_stream_delay_ms(hint);
        }
        self.applied_delay_hint_ms = hint;
    }

    fn process_block(&mut self, block: &mut [i16]) -> Result<(), Error> {
        // Every queued far-end block goes in before the microphone block,
        // in order; AEC3 absorbs the burstiness (WebRTC drains its render
        // queue the same way).
        while self.queue.pop(&mut self.render_in) {
            if self.applied.echo_cancellation {
                self.dither.add_to(&mut self.render_in);
                self.apm
                    .process_render_i16(&self.render_in, &mut self.render_out)
                    .map_err(apm_error)?;
            }
        }
        self.input_mean_square = smooth(self.input_mean_square, block);
        if self.applied.any() {
            self.scratch.copy_from_slice(block);
            self.dither.add_to(&mut self.scratch);
            self.apm
                .process_capture_i16(&self.scratch, block)
                .map_err(apm_error)?;
        }
        self.output_mean_square = smooth(self.output_mean_square, block);
        self.shared.capture_frames.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn publish_stats(&self) {
        let shared = &*self.shared;
        let apm_stats = self.apm.statistics();
        // The APM keeps its last echo figures after the echo canceller is
        // switched off; they no longer describe anything.
        let echo = self.applied.echo_cancellation;
        let store_optional = |slot: &AtomicU32, value: Option<f64>| {
            let value = value.filter(|_| echo).map_or(f32::NAN, |v| v as f32);
            slot.store(value.to_bits(), Ordering::Relaxed);
        };
        store_optional(&shared.erle_db, apm_stats.echo_return_loss_enhancement);
        store_optional(&shared.erl_db, apm_stats.echo_return_loss);
        let delay = apm_stats.delay_ms.filter(|_| echo).unwrap_or(-1);
        shared.echo_delay_ms.store(delay, Ordering::Relaxed);
        shared
            .input_level_dbfs
            .store(dbfs(self.input_mean_square).to_bits(), Ordering::Relaxed);
        shared
            .output_level_dbfs
            .store(dbfs(self.output_mean_square).to_bits(), Ordering::Relaxed);
    }
}

/// Both halves in one value, for single-threaded use; [`split`](Self::split)
/// it to run render and capture on their own threads.
#[derive(Debug)]
pub struct AudioProcessor {
    render: RenderProcessor,
    capture: CaptureProcessor,
}

impl AudioProcessor {
    /// A processor for 48 kHz mono audio with the given settings. Building
    /// cannot fail: the stream format is fixed and valid.
    pub fn new(settings: ProcessingSettings) -> Self {
        let stream = StreamConfig::new(SAMPLE_RATE, 1);
        let apm = AudioProcessing::builder()
            .config(settings.apm_config())
            .capture_config(stream)
            .render_config(stream)
            .build();
        let shared = Arc::new(Shared::new(settings));
        let (producer, consumer) = render_queue(RENDER_QUEUE_FRAMES);
        Self {
            render: RenderProcessor {
                queue: producer,
                shared: Arc::clone(&shared),
            },
            capture: CaptureProcessor {
                apm,
                applied: settings,
                applied_delay_hint_ms: NO_DELAY_HINT,
                queue: consumer,
                shared,
                scratch: [0; PROCESSING_FRAME_SAMPLES],
                render_in: [0; PROCESSING_FRAME_SAMPLES],
                render_out: [0; PROCESSING_FRAME_SAMPLES],
                input_mean_square: 0.0,
                output_mean_square: 0.0,
                dither: Dither::new(),
            },
        }
    }

    /// The far-end audio about to be played (see
    /// [`RenderProcessor::process_render`]).
    ///
    /// # Errors
    /// As [`RenderProcessor::process_render`].
    pub fn process_render(&mut self, frame: &[i16]) -> Result<(), Error> {
        self.render.process_render(frame)
    }

    /// The near-end microphone audio, processed in place (see
    /// [`CaptureProcessor::process_capture`]).
    ///
    /// # Errors
    /// As [`CaptureProcessor::process_capture`].
    pub fn process_capture(&mut self, frame: &mut [i16]) -> Result<(), Error> {
        self.capture.process_capture(frame)
    }

    /// Switches processing on or off from the next capture block.
    pub fn set_settings(&mut self, settings: ProcessingSettings) {
        self.capture.set_settings(settings);
    }

    /// The settings in force.
    pub fn settings(&self) -> ProcessingSettings {
        self.capture.shared.settings()
    }

    /// See [`ProcessingControl::set_delay_hint`].
    pub fn set_delay_hint(&mut self, hint: Duration) {
        self.capture.shared.set_delay_hint(hint);
    }

    /// The latest stats.
    pub fn stats(&self) -> ProcessingStats {
        self.capture.stats()
    }

    /// A control handle for any thread.
    pub fn control(&self) -> ProcessingControl {
        self.capture.control()
    }

    /// The two halves, for the playout thread and the capture thread.
    pub fn split(self) -> (RenderProcessor, CaptureProcessor) {
        (self.render, self.capture)
    }
}

fn check_frame_len(len: usize) -> Result<(), Error> {
    if len.is_multiple_of(PROCESSING_FRAME_SAMPLES) {
        Ok(())
    } else {
        Err(Error::Audio {
            what: "audio processing",
            detail: format!(
                "a frame of {len} samples is not a whole number of 10 ms blocks \
                 ({PROCESSING_FRAME_SAMPLES} samples, 48 kHz mono)"
            ),
        })
    }
}

fn apm_error(error: sonora::Error) -> Error {
    Error::Audio {
        what: "audio processing",
        detail: error.to_string(),
    }
}

/// A ±1 LSB dither (about -93 dBFS RMS), added to every block before the
/// APM sees it, far-end reference and microphone alike.
///
/// Why: in digital silence (a silent far end, a muted microphone) the APM's
/// recursive filters decay into subnormal floats, and rounding keeps them
/// there; x86 computes on subnormals up to a hundred times slower. Measured
/// with `benches/processing.rs`: echo cancellation went from ~100 µs to
/// ~460 µs per frame when the far end was exact zeros half the time.
/// Audio threads elsewhere set the CPU's flush-to-zero mode instead, which
/// takes `unsafe` here. The dither is far below any microphone's own noise
/// floor, and the APM's output is all anyone hears of it.
#[derive(Debug)]
struct Dither(u32);

impl Dither {
    fn new() -> Self {
        Self(0x9E37_79B9)
    }

    fn add_to(&mut self, block: &mut [i16]) {
        for sample in block {
            // xorshift32; two of its bits make a triangular -1, 0, 0, +1.
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 17;
            self.0 ^= self.0 << 5;
            let noise = (self.0 & 1) as i16 - ((self.0 >> 1) & 1) as i16;
            *sample = sample.saturating_add(noise);
        }
    }
}

/// One step of the exponential average of the mean square, full scale = 1.
fn smooth(mean_square: f64, block: &[i16]) -> f64 {
    let full_scale = f64::from(i16::MAX) + 1.0;
    let block_mean_square = block
        .iter()
        .map(|&s| (f64::from(s) / full_scale).powi(2))
        .sum::<f64>()
        / block.len().max(1) as f64;
    mean_square + LEVEL_SMOOTHING * (block_mean_square - mean_square)
}

fn dbfs(mean_square: f64) -> f32 {
    if mean_square <= 0.0 {
        return SILENCE_DBFS;
    }
    ((10.0 * mean_square.log10()) as f32).max(SILENCE_DBFS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_through_their_bits() {
        for bits in 0..8 {
            let settings = ProcessingSettings::from_bits(bits);
            assert_eq!(settings.to_bits(), bits);
        }
        assert_eq!(ProcessingSettings::default(), ProcessingSettings::ALL_ON);
        assert!(!ProcessingSettings::ALL_OFF.any());
    }

    #[test]
    fn frames_that_are_not_whole_blocks_are_refused_untouched() {
        let mut processor = AudioProcessor::new(ProcessingSettings::ALL_ON);
        let mut odd = vec![1000i16; PROCESSING_FRAME_SAMPLES + 1];
        let error = processor
            .process_capture(&mut odd)
            .expect_err("481 samples");
        assert!(matches!(error, Error::Audio { .. }), "{error}");
        assert!(!error.is_retryable());
        assert!(odd.iter().all(|&s| s == 1000));
        assert!(processor.process_render(&odd).is_err());
        assert_eq!(processor.stats().capture_frames, 0);
    }

    #[test]
    fn a_stalled_capture_side_drops_far_end_frames_without_blocking() {
        let (mut render, mut capture) = AudioProcessor::new(ProcessingSettings::ALL_ON).split();
        let block = [0i16; PROCESSING_FRAME_SAMPLES];
        for _ in 0..RENDER_QUEUE_FRAMES + 7 {
            render.process_render(&block).expect("whole block");
        }
        assert_eq!(capture.stats().render_frames_dropped, 7);

        // The capture side takes everything queued, so the ring has room
        // again.
        let mut mic = [0i16; PROCESSING_FRAME_SAMPLES];
        capture.process_capture(&mut mic).expect("whole block");
        render.process_render(&block).expect("whole block");
        assert_eq!(capture.stats().render_frames_dropped, 7);
    }

    #[test]
    fn the_dither_is_one_lsb_and_centred() {
        let mut dither = Dither::new();
        let mut block = [0i16; 100 * PROCESSING_FRAME_SAMPLES];
        dither.add_to(&mut block);
        assert!(block.iter().all(|s| (-1..=1).contains(s)));
        let mean = block.iter().map(|&s| f64::from(s)).sum::<f64>() / block.len() as f64;
        let power = block.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / block.len() as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((power - 0.5).abs() < 0.02, "power {power}");
        // Full scale stays full scale.
        let mut loud = [i16::MAX; PROCESSING_FRAME_SAMPLES];
        dither.add_to(&mut loud);
        assert!(loud.iter().all(|&s| s >= i16::MAX - 1));
    }

    #[test]
    fn a_new_processor_reports_default_stats() {
        let processor = AudioProcessor::new(ProcessingSettings::default());
        assert_eq!(processor.stats(), ProcessingStats::default());
        assert_eq!(processor.stats().net_gain_db(), 0.0);
    }

    #[test]
    fn levels_are_reported_in_dbfs() {
        assert_eq!(dbfs(0.0), SILENCE_DBFS);
        assert!((dbfs(0.01) + 20.0).abs() < 1e-4);
        let mut processor = AudioProcessor::new(ProcessingSettings::ALL_OFF);
        // A square wave at a tenth of full scale: -20 dBFS.
        let mut frame: Vec<i16> = (0..PROCESSING_FRAME_SAMPLES)
            .map(|i| if i % 2 == 0 { 3277 } else { -3277 })
            .collect();
        for _ in 0..1000 {
            processor.process_capture(&mut frame).expect("whole block");
        }
        let stats = processor.stats();
        assert!((stats.input_level_dbfs + 20.0).abs() < 0.1, "{stats:?}");
        assert!(stats.net_gain_db().abs() < 0.01, "{stats:?}");
        assert_eq!(stats.erle_db, None, "echo cancellation is off");
    }
}
