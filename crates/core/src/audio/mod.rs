//! The call's audio: capture → Opus → RED → the [peer](crate::peer), and
//! the peer → jitter buffer → playout, as 48 kHz mono 16-bit PCM.
//!
//! Start with [`AudioIo`] (the seam a call's audio is started through) and
//! the two halves it connects:
//!
//! - send: a [`FrameSender`] cuts captured audio into 20 ms frames for
//!   [`send_task`], which encodes ([`OpusEncoder`]: VOIP, CBR, in-band FEC),
//!   adds RFC 2198 redundancy as deep as the loss the far end reports
//!   ([`voicemeet_proto::media`]) and writes RTP;
//! - receive: [`receive_task`] splits RED packets into the jitter buffer
//!   ([`voicemeet_proto::jitter`]) behind a [`Receiver`]; the output side
//!   pulls 10 ms at a time from its [`Playout`] (decoding, FEC recovery,
//!   concealment and time-stretching happen there).
//!
//! [`AudioProcessor`] cleans the microphone signal before it is sent: echo
//! cancellation against what is being played, noise suppression and
//! automatic gain (its [`RenderProcessor`] half takes the playout, its
//! [`CaptureProcessor`] half the microphone).
//!
//! Real devices are [`DeviceAudio`]: cpal streams ([`device`]) with echo
//! cancellation, noise suppression and gain control ([`AudioProcessor`])
//! in between, in the same [`chains`] simulated devices use.
//!
//! Sources and sinks for tests and the CLI ([`ToneSource`], [`FileSource`],
//! [`SilenceSource`], [`WavFileSink`], [`MemorySink`]) run through
//! [`PacedIo`], on a timer; real devices run on their own clocks.
//! [`dominant_frequency`] and [`tone_energy_fraction`] check audio by its
//! content, so tests can tell a 440 Hz tone from a 660 Hz one.

mod analysis;
mod chain;
mod codec;
pub mod device;
mod io;
mod live;
mod processing;
mod receive;
mod send;
mod sink;
mod source;
mod wav;

use std::time::Duration;

pub use analysis::{
    MAX_DETECTED_HZ, MIN_DETECTED_HZ, dominant_frequency, goertzel_power, tone_energy_fraction,
};
pub use chain::{CaptureChain, RenderChain, chains};
pub use codec::{EXPECTED_LOSS_PERCENT, OPUS_BITRATE, OpusDecoder, OpusEncoder};
pub use io::{AudioIo, CallAudio, PULL_SAMPLES, PacedIo};
pub use live::{DeviceAudio, DeviceAudioConfig};
pub use processing::{
    AudioProcessor, CaptureProcessor, PROCESSING_FRAME_SAMPLES, ProcessingControl,
    ProcessingSettings, ProcessingStats, RenderProcessor, SILENCE_DBFS,
};
pub use receive::{Playout, ReceiveCounters, ReceiveStats, Receiver, receive_task};
pub use send::{
    CAPTURE_QUEUE_FRAMES, CapturedFrame, FrameSender, SendStats, capture_queue, send_task,
};
pub use sink::{AudioSink, MemorySink, WavFileSink};
pub use source::{AudioSource, DEFAULT_TONE_AMPLITUDE, FileSource, SilenceSource, ToneSource};
pub use wav::MAX_WAV_BYTES;

/// The call's sample rate: Opus's native rate, so nothing is resampled.
pub const SAMPLE_RATE: u32 = 48_000;
/// One frame: 20 ms at [`SAMPLE_RATE`], mono. 20 ms is WebRTC's usual Opus
/// packet time (one packet per frame), a good trade between header overhead
/// and latency.
pub const FRAME_SAMPLES: usize = 960;
/// The duration of one frame.
pub const FRAME_DURATION: Duration = Duration::from_millis(20);
