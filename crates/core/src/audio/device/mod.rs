//! Real audio devices: a [`Microphone`] that hands out 10 ms frames of
//! 48 kHz mono `i16` on the input device's clock, and a [`Speaker`] that
//! asks for 10 ms frames on the output device's clock.
//!
//! # Threads and clocks
//!
//! ```text
//!  cpal callback (RT)          supervisor thread                 you
//!  ──────────────────          ─────────────────                 ───
//!  mic  ─ downmix ─▶ rtrb ─▶  pop · resample to 48 k · 10 ms ─▶ on_frame(&[i16])
//!  spk  ◀─ upmix ── rtrb ◀─  top up to target · resample   ◀── produce(&mut [i16])
//! ```
//!
//! - Each cpal stream is created, owned and dropped by a thread of its own
//!   (cpal streams are not `Send` on every platform). Its callbacks only
//!   move samples through a lock-free [`rtrb`] ring and bump atomics: they
//!   never lock, allocate or log. Xruns, ring overflows and underruns are
//!   counted, not reported from the callback.
//! - One supervisor thread per [`Microphone`] / [`Speaker`] does the rest:
//!   resampling ([`rubato`]) when the device does not run at 48 kHz,
//!   cutting 10 ms frames, the level meter, device switches, and recovery.
//! - Capture is paced by the input device: a frame is handed out as soon as
//!   the device has delivered 10 ms. Playback is paced by the output
//!   device: the producer is called whenever the ring holds less than its
//!   target (about one device period plus 5 ms), so the output clock decides
//!   how often the jitter buffer behind the producer is drained. That is how
//!   drift between the two ends' sound cards ends up in the jitter buffer,
//!   which stretches or shrinks audio to absorb it.
//! - Each device's real rate is measured against the monotonic clock and
//!   shown in [`DeviceStats::measured_rate_hz`] / [`DeviceStats::drift_ppm`].
//!   It is not fed back into the resampler: nothing here needs samples at
//!   wall-clock rate (capture frames go out at whatever rate the microphone
//!   runs, the speaker pulls at its own rate), so a correction would only
//!   add a control loop to get wrong. Cross-device drift is the jitter
//!   buffer's job.
//!
//! # Failures
//!
//! A stream that reports a fatal error (e.g. the device was unplugged),
//! keeps reporting errors with no audio for a quarter second, or delivers
//! nothing for [`STALL_TIMEOUT`] is replaced: a chosen device
//! falls back to the system default ([`DeviceEvent::FellBack`]); when the
//! default itself fails, [`DeviceEvent::Failed`] says when the next try is
//! ([`REOPEN_BACKOFF`]). Meanwhile the call goes on: the microphone hands
//! out silence and the speaker keeps draining its producer, both on the
//! monotonic clock. Only [`Microphone::start`] / [`Speaker::start`] fail
//! outright, with [`Error::NoAudioDevice`](crate::Error::NoAudioDevice) or
//! [`Error::AudioDeviceBusy`](crate::Error::AudioDeviceBusy).
//!
//! # Platform
//!
//! On Linux this uses cpal's ALSA host, which reaches PulseAudio or
//! PipeWire through their ALSA plugins (the `default` device). Start with
//! [`input_devices`] and [`Microphone::start`].

mod capture;
mod host;
mod meter;
mod playback;
mod rate;
mod resample;
mod stream;
mod supervisor;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use capture::Microphone;
pub use host::{input_devices, output_devices};
pub use meter::{LevelReading, SILENCE_DBFS};
pub use playback::Speaker;
pub use supervisor::DeviceEvents;

/// Samples in one device-side frame: 10 ms at 48 kHz, mono. What the
/// [`Microphone`] hands out and the [`Speaker`] asks for.
pub const DEVICE_FRAME_SAMPLES: usize = 480;
/// The duration of one device-side frame.
pub const DEVICE_FRAME_DURATION: Duration = Duration::from_millis(10);
/// The rate of the frames on our side of the devices.
pub const DEVICE_SAMPLE_RATE: u32 = 48_000;
/// Callback size asked of input devices (10 ms at 48 kHz); ALSA rounds it
/// to what the device can do (the PulseAudio plugin gives 320-frame, 6.7 ms
/// periods). A refused size falls back to the device's default.
pub const DEFAULT_INPUT_BUFFER_FRAMES: u32 = 480;
/// Callback size asked of output devices (20 ms at 48 kHz). Output is less
/// forgiving than input: with 480 the PulseAudio plugin's two-period buffer
/// (13 ms) underran at start-up and then reported errors on every cycle;
/// 960 (640-frame, 13 ms periods) ran clean.
pub const DEFAULT_OUTPUT_BUFFER_FRAMES: u32 = 960;
/// How often the level meter reports by default: 20 times a second, enough
/// for a smooth meter, few enough not to crowd the event channel.
pub const DEFAULT_LEVEL_INTERVAL: Duration = Duration::from_millis(50);
/// A running stream that delivers no callback for this long is taken as
/// dead and replaced. Real devices call back every few ms; a second is
/// long enough not to trip on a scheduling hiccup, short enough that the
/// other side hears only a short gap.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(1);
/// A new stream gets this long for its first callback: some sound servers
/// wake an idle device slowly (PulseAudio's null sink sleeps up to 2 s).
pub const FIRST_CALLBACK_TIMEOUT: Duration = Duration::from_secs(3);
/// How long opening a device may take before the attempt counts as failed.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(5);
/// Waits between attempts to reopen the default device after it failed;
/// the last one repeats.
pub const REOPEN_BACKOFF: [Duration; 5] = [
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

/// Which way audio flows through a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// A microphone: audio comes in.
    Input,
    /// A speaker or headphones: audio goes out.
    Output,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Input => "microphone",
            Self::Output => "speaker",
        })
    }
}

/// A device's stable identifier, as the audio host spells it (on Linux
/// `alsa:<pcm>`, e.g. `alsa:default`, `alsa:plughw:CARD=0,DEV=0`). Keep it
/// to pick the same device again.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeviceId(String);

impl DeviceId {
    /// Wraps an identifier from [`DeviceId::as_str`] (e.g. a saved setting).
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One device that can be chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// What to pass to [`DeviceConfig::device`] or `switch_to`.
    pub id: DeviceId,
    /// A name for people, e.g. `HD Webcam C525, USB Audio`.
    pub name: String,
    /// Whether this is the system's default device for the direction.
    pub is_default: bool,
}

/// What to open and how. `Default::default()` opens the system default
/// device with the settings above.
#[derive(Debug, Clone, Default)]
pub struct DeviceConfig {
    /// The device; `None` for the system default.
    pub device: Option<DeviceId>,
    /// Frames per callback to ask for; `None` for
    /// [`DEFAULT_INPUT_BUFFER_FRAMES`] / [`DEFAULT_OUTPUT_BUFFER_FRAMES`].
    /// If the device refuses, its own default is used.
    pub buffer_frames: Option<u32>,
    /// The device-side rate to ask for; `None` for 48 kHz (no resampling).
    /// Other rates are resampled to and from [`DEVICE_SAMPLE_RATE`]. If the
    /// device cannot run at the rate asked, its default rate is used.
    pub sample_rate: Option<u32>,
    /// Device-side channels to ask for; `None` for mono. Input channels are
    /// averaged into mono, output is copied to every channel.
    pub channels: Option<u16>,
    /// How often a [`Microphone`] reports [`DeviceEvent::Level`]; `None`
    /// for [`DEFAULT_LEVEL_INTERVAL`], `Some(Duration::ZERO)` for never.
    /// Ignored by [`Speaker`].
    pub level_interval: Option<Duration>,
}

/// The stream a [`Microphone`] or [`Speaker`] is running on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// The device.
    pub device: DeviceId,
    /// Its name for people.
    pub name: String,
    /// The device-side rate, Hz.
    pub sample_rate: u32,
    /// The device-side channel count.
    pub channels: u16,
    /// The callback size asked for and accepted, or `None` when the device
    /// refused a fixed size and runs with its default.
    pub buffer_frames: Option<u32>,
    /// The callback size the device actually uses, in device frames, when
    /// the host tells (ALSA rounds requests: 960 gives 640 on PulseAudio).
    pub period_frames: Option<u32>,
}

/// Something that happened to a [`Microphone`] or [`Speaker`] (on the
/// [`DeviceEvents`] channel).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DeviceEvent {
    /// A stream started: at start-up, after a switch, a fall-back or a
    /// recovery.
    Opened {
        /// Input or output.
        direction: Direction,
        /// The stream.
        stream: StreamInfo,
    },
    /// A requested switch did not happen; the current device goes on.
    SwitchFailed {
        /// Input or output.
        direction: Direction,
        /// The device asked for (`None`: the default).
        device: Option<DeviceId>,
        /// Why, for people.
        reason: String,
    },
    /// The chosen device failed or disappeared mid-call; the system default
    /// is being opened in its place.
    FellBack {
        /// Input or output.
        direction: Direction,
        /// The device that failed.
        from: DeviceId,
        /// Why, for people.
        reason: String,
    },
    /// The default device failed too (or could not be opened): no audio
    /// flows on this side until a retry succeeds (then
    /// [`Opened`](Self::Opened)).
    Failed {
        /// Input or output.
        direction: Direction,
        /// Why, for people.
        reason: String,
        /// When the next attempt is.
        retry_in: Duration,
    },
    /// The microphone's level over the last interval.
    Level(LevelReading),
}

/// Counters of a [`Microphone`] or [`Speaker`] since it started (across
/// device switches).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceStats {
    /// The stream running now; `None` while there is no working device.
    pub stream: Option<StreamInfo>,
    /// 10 ms frames handed out (microphone) or asked for (speaker) while a
    /// device ran.
    pub frames: u64,
    /// 10 ms frames of silence handed out (microphone) or asked for and
    /// dropped (speaker) while no device ran, to keep the call's clock.
    pub idle_frames: u64,
    /// Callbacks of the current stream.
    pub callbacks: u64,
    /// The largest callback of the current stream, in device frames.
    pub max_callback_frames: u32,
    /// Xruns the audio host reported (its own buffer over- or underran).
    pub xruns: u64,
    /// Microphone: callbacks that found our ring full (the supervisor
    /// thread fell behind; the newest audio was dropped).
    pub ring_overflows: u64,
    /// Speaker: callbacks that found our ring short (silence was played in
    /// the gap). A few at start-up are normal.
    pub ring_underruns: u64,
    /// Device samples dropped by overflows or missing in underruns.
    pub lost_samples: u64,
    /// Non-fatal errors the audio host reported.
    pub stream_errors: u64,
    /// Audio waiting in our ring now (microphone: captured, not yet
    /// framed; speaker: queued for the device).
    pub ring_fill: Duration,
    /// The current device's rate measured against the monotonic clock;
    /// `None` for its first 1.5 s. After an xrun or a stall the fit starts
    /// over (frames lost then would read as a slow clock); the last value
    /// stays until the new fit has a second of data.
    pub measured_rate_hz: Option<f64>,
    /// [`measured_rate_hz`](Self::measured_rate_hz) against the nominal
    /// rate, in parts per million (positive: the device runs fast). A
    /// least-squares fit through every callback after a half-second
    /// warm-up: a few ms of callback jitter leave a few ppm after a minute.
    pub drift_ppm: Option<f64>,
    /// Times a stream was replaced after a failure.
    pub recoveries: u64,
    /// Times the device's thread woke to move audio: about once per
    /// callback while a stream runs, every 10 ms while none does.
    pub wakeups: u64,
    /// Events dropped because the event channel was full.
    pub events_dropped: u64,
}
