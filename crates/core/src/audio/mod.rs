//! The audio I/O seam: what the call sends and what it plays, as 20 ms
//! frames of 48 kHz mono 16-bit PCM, and the Opus codec between those frames
//! and the [peer](crate::peer).
//!
//! - [`AudioSource`] yields frames to send: [`ToneSource`],
//!   [`SilenceSource`], [`FileSource`] (a WAV file). Real microphones
//!   (cpal) come later behind the same trait.
//! - [`AudioSink`] takes decoded frames: [`WavFileSink`], [`MemorySink`].
//! - [`OpusEncoder`] / [`OpusDecoder`] wrap libopus with the call's settings
//!   (VOIP, ~32 kbps, in-band FEC on).
//! - [`send_task`] paces a source onto the peer's
//!   [`LocalAudio`](crate::peer::LocalAudio) on a 20 ms tick;
//!   [`receive_task`] decodes the peer's
//!   [`RemoteAudio`](crate::peer::RemoteAudio) into a sink, concealing gaps.
//! - [`dominant_frequency`] and [`tone_energy_fraction`] check audio by its
//!   content, so tests can tell a 440 Hz tone from a 660 Hz one.
//!
//! Start with [`send_task`] and [`receive_task`]; everything else plugs
//! into them.

mod analysis;
mod codec;
mod pipeline;
mod sink;
mod source;
mod wav;

use std::time::Duration;

pub use analysis::{
    MAX_DETECTED_HZ, MIN_DETECTED_HZ, dominant_frequency, goertzel_power, tone_energy_fraction,
};
pub use codec::{EXPECTED_LOSS_PERCENT, OPUS_BITRATE, OpusDecoder, OpusEncoder};
pub use pipeline::{MAX_CONCEALED_FRAMES, ReceiveStats, SendStats, receive_task, send_task};
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
