//! Small audio pieces the commands share: a sink that discards, a source
//! that falls silent instead of ending, and one WAV file that every call
//! of a run appends to.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use voicemeet_core::Error;
use voicemeet_core::audio::{AudioSink, AudioSource, SAMPLE_RATE, WavFileSink};

/// Drops what it is given (the call still decodes it).
#[derive(Debug, Clone, Copy, Default)]
pub struct Discard;

impl AudioSink for Discard {
    fn write_frame(&mut self, _samples: &[i16]) -> Result<(), Error> {
        Ok(())
    }
}

/// A source that sends silence once its inner source has ended, so a
/// short file does not stop the call's audio stream.
pub struct ThenSilence<S> {
    inner: Option<S>,
}

impl<S> ThenSilence<S> {
    /// Plays `inner`, then silence.
    pub fn new(inner: S) -> Self {
        Self { inner: Some(inner) }
    }
}

impl<S: AudioSource> AudioSource for ThenSilence<S> {
    fn read_frame(&mut self, frame: &mut [i16]) -> bool {
        if let Some(inner) = &mut self.inner {
            if inner.read_frame(frame) {
                return true;
            }
            self.inner = None;
        }
        frame.fill(0);
        true
    }
}

struct WavState {
    file: WavFileSink,
    samples: u64,
}

/// One WAV file shared by every call of a run: each call's sink appends to
/// it, and the header is rewritten whenever a call's audio ends, so the
/// file is valid between calls. Not on a real-time path (the engine's
/// receive task writes it), so a mutex is fine.
#[derive(Clone)]
pub struct SharedWav {
    state: Arc<Mutex<WavState>>,
}

impl SharedWav {
    /// Creates (or truncates) the file now, so a bad path fails before the
    /// call starts.
    ///
    /// # Errors
    /// The file cannot be created.
    pub fn create(path: &Path) -> Result<Self, Error> {
        Ok(Self {
            state: Arc::new(Mutex::new(WavState {
                file: WavFileSink::create(path)?,
                samples: 0,
            })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, WavState> {
        // A panic while writing leaves at worst a short file; keep going.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the final header; returns the seconds of audio in the file.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn close(&self) -> Result<f64, Error> {
        let mut state = self.lock();
        state.file.finish()?;
        // Exact for any length a run can reach (2^53 samples).
        #[allow(clippy::cast_precision_loss)]
        Ok(state.samples as f64 / f64::from(SAMPLE_RATE))
    }
}

impl AudioSink for SharedWav {
    fn write_frame(&mut self, samples: &[i16]) -> Result<(), Error> {
        let mut state = self.lock();
        state.file.write_frame(samples)?;
        state.samples += samples.len() as u64;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), Error> {
        self.lock().file.finish()
    }
}

#[cfg(test)]
mod tests {
    use voicemeet_core::audio::{FRAME_SAMPLES, FileSource};

    use super::*;

    #[test]
    fn then_silence_keeps_going_after_the_end() {
        let mut source = ThenSilence::new(FileSource::from_samples(vec![5; FRAME_SAMPLES]));
        let mut frame = [0i16; FRAME_SAMPLES];
        assert!(source.read_frame(&mut frame));
        assert!(frame.iter().all(|&s| s == 5));
        for _ in 0..3 {
            frame.fill(9);
            assert!(source.read_frame(&mut frame));
            assert!(frame.iter().all(|&s| s == 0));
        }
    }

    #[test]
    fn shared_wav_appends_across_calls() {
        let dir = std::env::temp_dir().join(format!("voicemeet-cli-wav-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("shared.wav");
        let wav = SharedWav::create(&path).expect("create");
        let mut first = wav.clone();
        first.write_frame(&[1; 480]).expect("write");
        first.finish().expect("finish");
        let mut second = wav.clone();
        second.write_frame(&[2; 480]).expect("write");
        second.finish().expect("finish");
        let secs = wav.close().expect("close");
        assert!((secs - 0.02).abs() < 1e-9, "{secs}");

        let mut back = FileSource::open(&path).expect("a valid WAV");
        let mut frame = [0i16; FRAME_SAMPLES];
        assert!(back.read_frame(&mut frame));
        assert!(frame[..480].iter().all(|&s| s == 1));
        assert!(frame[480..].iter().all(|&s| s == 2));
        assert!(!back.read_frame(&mut frame));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
