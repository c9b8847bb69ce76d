//! Where sent audio comes from.

use std::f64::consts::TAU;
use std::path::Path;

use super::{SAMPLE_RATE, wav};
use crate::error::Error;

/// A source of 48 kHz mono 16-bit frames, pulled once per 20 ms by
/// [`send_task`](super::send_task). Implementations must not block: the
/// send task runs on the async runtime.
pub trait AudioSource: Send {
    /// Fills `frame` ([`FRAME_SAMPLES`](super::FRAME_SAMPLES) samples) with the next 20 ms.
    /// Returns `false`, leaving `frame` unspecified, once the source has
    /// ended (a file without looping); it then stays ended.
    fn read_frame(&mut self, frame: &mut [i16]) -> bool;
}

/// Default tone level: 0.3 of full scale (about -10 dBFS), loud and clear
/// without clipping through the codec.
pub const DEFAULT_TONE_AMPLITUDE: f64 = 0.3;

/// An endless sine tone.
#[derive(Debug, Clone)]
pub struct ToneSource {
    step: f64,
    phase: f64,
    amplitude: f64,
}

impl ToneSource {
    /// A tone of `freq` Hz at [`DEFAULT_TONE_AMPLITUDE`].
    pub fn new(freq: f64) -> Self {
        Self::with_amplitude(freq, DEFAULT_TONE_AMPLITUDE)
    }

    /// A tone of `freq` Hz at `amplitude` (0..=1 of full scale; clamped).
    pub fn with_amplitude(freq: f64, amplitude: f64) -> Self {
        Self {
            step: TAU * freq / f64::from(SAMPLE_RATE),
            phase: 0.0,
            amplitude: amplitude.clamp(0.0, 1.0) * f64::from(i16::MAX),
        }
    }
}

impl AudioSource for ToneSource {
    fn read_frame(&mut self, frame: &mut [i16]) -> bool {
        for sample in frame.iter_mut() {
            // |amplitude * sin| <= i16::MAX, so the cast cannot saturate.
            *sample = (self.amplitude * self.phase.sin()).round() as i16;
            self.phase = (self.phase + self.step) % TAU;
        }
        true
    }
}

/// Endless silence (e.g. a muted microphone).
#[derive(Debug, Clone, Copy, Default)]
pub struct SilenceSource;

impl AudioSource for SilenceSource {
    fn read_frame(&mut self, frame: &mut [i16]) -> bool {
        frame.fill(0);
        true
    }
}

/// The samples of a WAV file, once or in a loop.
///
/// The file must already be in the call's format: 16-bit PCM, mono,
/// 48 kHz. Nothing is resampled or mixed down; other files are refused when
/// opened (convert them first, e.g. `sox in.wav -r 48000 -c 1 -b 16
/// out.wav`). The whole file is loaded at open, up to
/// [`MAX_WAV_BYTES`](super::MAX_WAV_BYTES), so reading never blocks.
#[derive(Debug, Clone)]
pub struct FileSource {
    samples: Vec<i16>,
    position: usize,
    looping: bool,
}

impl FileSource {
    /// Loads a WAV file, to be played once.
    ///
    /// # Errors
    /// [`Error::Audio`] if the file cannot be read, is too large, or is not
    /// 16-bit PCM mono 48 kHz.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        Ok(Self::from_samples(wav::read_pcm16_mono(path.as_ref())?))
    }

    /// Plays samples already in memory, once.
    pub fn from_samples(samples: Vec<i16>) -> Self {
        Self {
            samples,
            position: 0,
            looping: false,
        }
    }

    /// Everything it plays.
    pub fn samples(&self) -> &[i16] {
        &self.samples
    }

    /// Starts over at the end instead of ending.
    #[must_use]
    pub fn looping(mut self, looping: bool) -> Self {
        self.looping = looping;
        self
    }
}

impl AudioSource for FileSource {
    fn read_frame(&mut self, frame: &mut [i16]) -> bool {
        if self.samples.is_empty() || (!self.looping && self.position >= self.samples.len()) {
            return false;
        }
        let mut filled = 0;
        while filled < frame.len() {
            if self.position >= self.samples.len() {
                if !self.looping {
                    // The last, partial frame is padded with silence.
                    frame[filled..].fill(0);
                    break;
                }
                self.position = 0;
            }
            let take = (frame.len() - filled).min(self.samples.len() - self.position);
            frame[filled..filled + take]
                .copy_from_slice(&self.samples[self.position..self.position + take]);
            filled += take;
            self.position += take;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::FRAME_SAMPLES;

    #[test]
    fn file_source_pads_the_last_frame_then_ends() {
        let mut source = FileSource::from_samples((1..=1000).collect());
        let mut frame = [7i16; FRAME_SAMPLES];
        assert!(source.read_frame(&mut frame));
        assert_eq!(frame[0], 1);
        assert_eq!(frame[FRAME_SAMPLES - 1], 960);
        assert!(source.read_frame(&mut frame));
        assert_eq!(&frame[..40], &(961..=1000).collect::<Vec<i16>>()[..]);
        assert!(frame[40..].iter().all(|&s| s == 0));
        assert!(!source.read_frame(&mut frame));
        assert!(!source.read_frame(&mut frame));
    }

    #[test]
    fn looping_file_source_wraps() {
        let mut source = FileSource::from_samples(vec![1, 2, 3]).looping(true);
        let mut frame = [0i16; FRAME_SAMPLES];
        assert!(source.read_frame(&mut frame));
        assert_eq!(&frame[..7], &[1, 2, 3, 1, 2, 3, 1]);
        assert!(!FileSource::from_samples(Vec::new()).read_frame(&mut frame));
    }

    #[test]
    fn tone_and_silence_fill_frames() {
        let mut frame = [1i16; FRAME_SAMPLES];
        assert!(SilenceSource.read_frame(&mut frame));
        assert!(frame.iter().all(|&s| s == 0));
        let mut tone = ToneSource::with_amplitude(1000.0, 1.0);
        assert!(tone.read_frame(&mut frame));
        let peak = frame.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!(peak >= 32_000, "{peak}");
    }
}
