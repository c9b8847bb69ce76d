//! Rate conversion between a device that does not run at 48 kHz and our
//! 10 ms frames, with rubato's sinc resampler. Fixed ratio: device drift is
//! measured, not corrected (see the module docs of `device`).

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Async, FixedAsync, Resampler, SincInterpolationParameters, WindowFunction};

use super::{DEVICE_FRAME_SAMPLES, DEVICE_SAMPLE_RATE};
use crate::error::Error;

/// Sinc filter length: 64 taps delay ~0.7 ms and keep aliasing well below
/// what voice through Opus can show, at a few µs per 10 ms frame.
const SINC_LEN: usize = 64;

/// One direction of conversion, mono `f32`.
pub(super) struct Converter {
    inner: Async<f32>,
}

impl std::fmt::Debug for Converter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Converter")
            .field("ratio", &self.inner.resample_ratio())
            .finish()
    }
}

impl Converter {
    /// Device rate → 48 kHz, exactly one 10 ms frame out per call.
    pub(super) fn to_call_rate(device_rate: u32) -> Result<Self, Error> {
        Self::new(
            f64::from(DEVICE_SAMPLE_RATE) / f64::from(device_rate),
            FixedAsync::Output,
        )
    }

    /// One 10 ms frame at 48 kHz in per call → device rate.
    pub(super) fn from_call_rate(device_rate: u32) -> Result<Self, Error> {
        Self::new(
            f64::from(device_rate) / f64::from(DEVICE_SAMPLE_RATE),
            FixedAsync::Input,
        )
    }

    fn new(ratio: f64, fixed: FixedAsync) -> Result<Self, Error> {
        let parameters =
            SincInterpolationParameters::new(SINC_LEN, WindowFunction::BlackmanHarris2);
        let inner = Async::new_sinc(ratio, 1.0, &parameters, DEVICE_FRAME_SAMPLES, 1, fixed)
            .map_err(|err| Error::Audio {
                what: "resampler",
                detail: err.to_string(),
            })?;
        Ok(Self { inner })
    }

    /// Input samples the next [`process`](Self::process) needs.
    pub(super) fn input_needed(&self) -> usize {
        self.inner.input_frames_next()
    }

    /// The most output one call can produce.
    pub(super) fn output_max(&self) -> usize {
        self.inner.output_frames_max()
    }

    /// Converts the first [`input_needed`](Self::input_needed) samples of
    /// `input` into `output` (at least [`output_max`](Self::output_max)
    /// long); returns `(consumed, produced)`.
    pub(super) fn process(
        &mut self,
        input: &[f32],
        output: &mut [f32],
    ) -> Result<(usize, usize), Error> {
        let needed = self.input_needed();
        let out_len = output.len();
        let input = InterleavedSlice::new(input, 1, needed).map_err(resample_error)?;
        let mut output = InterleavedSlice::new_mut(output, 1, out_len).map_err(resample_error)?;
        self.inner
            .process_into_buffer(&input, &mut output, None)
            .map_err(resample_error)
    }
}

fn resample_error(err: impl std::fmt::Display) -> Error {
    Error::Audio {
        what: "resampler",
        detail: err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::dominant_frequency;

    fn tone(rate: u32, freq: f64, samples: usize) -> Vec<f32> {
        (0..samples)
            .map(|i| {
                (0.5 * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin())
                    as f32
            })
            .collect()
    }

    fn to_i16(samples: &[f32]) -> Vec<i16> {
        samples
            .iter()
            .map(|&x| (x * 32_768.0).round() as i16)
            .collect()
    }

    #[test]
    fn a_44_1_khz_tone_comes_out_as_48_khz_frames_of_the_same_pitch() {
        let input = tone(44_100, 440.0, 44_100);
        let mut converter = Converter::to_call_rate(44_100).expect("resampler");
        let mut out = vec![0.0f32; converter.output_max()];
        let mut frames = Vec::new();
        let mut pos = 0;
        while input.len() - pos >= converter.input_needed() {
            let (consumed, produced) = converter.process(&input[pos..], &mut out).expect("process");
            assert_eq!(produced, DEVICE_FRAME_SAMPLES);
            pos += consumed;
            frames.extend_from_slice(&out[..produced]);
        }
        // One second in, (almost) one second out: 100 frames less the
        // filter's look-ahead.
        let count = frames.len() / DEVICE_FRAME_SAMPLES;
        assert!((99..=100).contains(&count), "{count} frames");
        let freq =
            dominant_frequency(&to_i16(&frames[4_800..]), DEVICE_SAMPLE_RATE).expect("a tone");
        assert!((freq - 440.0).abs() < 1.0, "{freq} Hz");
    }

    #[test]
    fn a_48_khz_frame_becomes_the_device_rates_worth() {
        let mut converter = Converter::from_call_rate(44_100).expect("resampler");
        let input = tone(48_000, 660.0, 48_000);
        let mut out = vec![0.0f32; converter.output_max()];
        let mut total = 0;
        let mut device = Vec::new();
        for frame in input.chunks_exact(DEVICE_FRAME_SAMPLES) {
            assert_eq!(converter.input_needed(), DEVICE_FRAME_SAMPLES);
            let (consumed, produced) = converter.process(frame, &mut out).expect("process");
            assert_eq!(consumed, DEVICE_FRAME_SAMPLES);
            total += produced;
            device.extend_from_slice(&out[..produced]);
        }
        assert!((44_090..=44_110).contains(&total), "{total}");
        let freq = dominant_frequency(&to_i16(&device[4_410..]), 44_100).expect("a tone");
        assert!((freq - 660.0).abs() < 1.0, "{freq} Hz");
    }
}
