//! The microphone's level meter: RMS and peak over fixed stretches of
//! audio, in dBFS. Counted in samples, not wall time, so it runs on the
//! device's clock like everything else on the capture side.

use std::time::Duration;

use super::DEVICE_SAMPLE_RATE;

/// The floor of a reading: digital silence reads as this, not -∞.
pub const SILENCE_DBFS: f32 = -100.0;

/// The level of the microphone over one interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LevelReading {
    /// Root mean square, dB relative to full scale: a full-scale sine
    /// reads about -3, normal speech -30 to -15.
    pub rms_dbfs: f32,
    /// The largest sample, dB relative to full scale (0 is clipping).
    pub peak_dbfs: f32,
}

/// Accumulates 48 kHz samples and yields a [`LevelReading`] per interval.
#[derive(Debug)]
pub(super) struct LevelMeter {
    /// Samples per reading; 0 turns the meter off.
    every: usize,
    count: usize,
    sum_squares: f64,
    peak: u16,
}

impl LevelMeter {
    /// A meter reporting every `interval` of audio (`Duration::ZERO`: never).
    pub(super) fn new(interval: Duration) -> Self {
        let every = (u128::from(DEVICE_SAMPLE_RATE) * interval.as_micros() / 1_000_000) as usize;
        Self {
            every,
            count: 0,
            sum_squares: 0.0,
            peak: 0,
        }
    }

    /// Takes a frame; returns a reading when an interval is complete (at
    /// most one per call: frames are far shorter than intervals).
    pub(super) fn add(&mut self, frame: &[i16]) -> Option<LevelReading> {
        if self.every == 0 {
            return None;
        }
        for &sample in frame {
            self.sum_squares += f64::from(sample) * f64::from(sample);
            self.peak = self.peak.max(sample.unsigned_abs());
        }
        self.count += frame.len();
        if self.count < self.every {
            return None;
        }
        let rms = (self.sum_squares / self.count as f64).sqrt();
        let reading = LevelReading {
            rms_dbfs: dbfs(rms),
            peak_dbfs: dbfs(f64::from(self.peak)),
        };
        self.count = 0;
        self.sum_squares = 0.0;
        self.peak = 0;
        Some(reading)
    }
}

/// `amplitude` (in i16 units) relative to full scale, floored at
/// [`SILENCE_DBFS`].
fn dbfs(amplitude: f64) -> f32 {
    if amplitude <= 0.0 {
        return SILENCE_DBFS;
    }
    ((20.0 * (amplitude / 32_768.0).log10()) as f32).max(SILENCE_DBFS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(amplitude: f64, samples: usize) -> Vec<i16> {
        (0..samples)
            .map(|i| {
                let phase = 2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 48_000.0;
                (amplitude * phase.sin()).round() as i16
            })
            .collect()
    }

    #[test]
    fn a_half_scale_sine_reads_minus_6_peak_and_minus_9_rms() {
        let mut meter = LevelMeter::new(Duration::from_millis(50));
        let audio = sine(16_384.0, 4_800);
        let readings: Vec<LevelReading> = audio.chunks(480).filter_map(|f| meter.add(f)).collect();
        // 100 ms of audio, a reading per 50 ms.
        assert_eq!(readings.len(), 2);
        for reading in readings {
            assert!((reading.peak_dbfs + 6.02).abs() < 0.05, "{reading:?}");
            assert!((reading.rms_dbfs + 9.03).abs() < 0.05, "{reading:?}");
        }
    }

    #[test]
    fn silence_reads_the_floor_and_zero_interval_never_reads() {
        let mut meter = LevelMeter::new(Duration::from_millis(10));
        let reading = meter.add(&[0; 480]).expect("a reading per 10 ms");
        assert_eq!(reading.rms_dbfs, SILENCE_DBFS);
        assert_eq!(reading.peak_dbfs, SILENCE_DBFS);

        let mut off = LevelMeter::new(Duration::ZERO);
        assert!((0..100).all(|_| off.add(&[1000; 480]).is_none()));
    }

    #[test]
    fn full_scale_peaks_at_zero() {
        let mut meter = LevelMeter::new(Duration::from_millis(10));
        let mut frame = [0i16; 480];
        frame[7] = i16::MIN;
        let reading = meter.add(&frame).expect("a reading");
        assert!(reading.peak_dbfs.abs() < 1e-3, "{reading:?}");
    }
}
