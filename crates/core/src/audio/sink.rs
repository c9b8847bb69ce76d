//! Where received audio goes.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use super::wav::WavWriter;
use crate::error::Error;

/// A sink for decoded 48 kHz mono 16-bit audio, fed by
/// [`receive_task`](super::receive_task) one frame at a time (20 ms, or
/// whatever the remote's packet held). Implementations must not block for
/// long: the receive task runs on the async runtime.
pub trait AudioSink: Send {
    /// Takes the next decoded (or concealed) samples.
    ///
    /// # Errors
    /// Whatever the sink cannot do; the receive task stops on an error.
    fn write_frame(&mut self, samples: &[i16]) -> Result<(), Error>;

    /// Called once when the stream has ended, to flush and close.
    ///
    /// # Errors
    /// Whatever the sink cannot do.
    fn finish(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

/// Writes what it gets to a WAV file (16-bit PCM, mono, 48 kHz). The
/// header's sizes are written by [`finish`](AudioSink::finish); the
/// receive task calls it when the stream ends.
#[derive(Debug)]
pub struct WavFileSink {
    writer: WavWriter,
}

impl WavFileSink {
    /// Creates (or truncates) the file.
    ///
    /// # Errors
    /// [`Error::Audio`] if the file cannot be created.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, Error> {
        Ok(Self {
            writer: WavWriter::create(path.as_ref())?,
        })
    }
}

impl AudioSink for WavFileSink {
    fn write_frame(&mut self, samples: &[i16]) -> Result<(), Error> {
        self.writer.write(samples)
    }

    fn finish(&mut self) -> Result<(), Error> {
        self.writer.finish()
    }
}

/// Keeps everything in memory, for tests and short recordings (96 KB per
/// second). Clones share the buffer: give one to the receive task and read
/// the audio through another while the call runs.
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    samples: Arc<Mutex<Vec<i16>>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    fn buffer(&self) -> std::sync::MutexGuard<'_, Vec<i16>> {
        // A panic while holding the lock cannot leave a Vec<i16> half
        // updated in a way that matters here, so poisoning is ignored.
        self.samples.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of everything received so far.
    pub fn samples(&self) -> Vec<i16> {
        self.buffer().clone()
    }

    /// How many samples were received so far.
    pub fn len(&self) -> usize {
        self.buffer().len()
    }

    /// Whether nothing was received yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of the samples from `start` on (empty if there are fewer).
    pub fn samples_since(&self, start: usize) -> Vec<i16> {
        self.buffer()
            .get(start..)
            .map(<[i16]>::to_vec)
            .unwrap_or_default()
    }
}

impl AudioSink for MemorySink {
    fn write_frame(&mut self, samples: &[i16]) -> Result<(), Error> {
        self.buffer().extend_from_slice(samples);
        Ok(())
    }
}
