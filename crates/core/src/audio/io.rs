//! The audio I/O seam: where a call's audio comes from and goes to.
//!
//! When a call's peer starts, the engine hands the [`AudioIo`] a
//! [`CallAudio`]: a [`FrameSender`] to push captured audio into and a
//! [`Playout`] to pull the far end's audio from. Real devices
//! ([`DeviceAudio`](super::DeviceAudio)) push from the microphone's clock
//! and pull on the speaker's clock; [`PacedIo`] sources and sinks (a tone,
//! a file, memory) are paced by a timer instead.

use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::{AudioSink, AudioSource, FRAME_SAMPLES, FrameSender, Playout};
use crate::error::Error;

/// How much the output side pulls at a time, and how often a paced output
/// runs: 10 ms, what devices and the echo canceller work in.
pub const PULL_SAMPLES: usize = FRAME_SAMPLES / 2;

/// The engine's side of one call's audio.
#[derive(Debug)]
pub struct CallAudio {
    /// Where captured audio goes (any chunk size; 48 kHz mono).
    pub capture: FrameSender,
    /// Where the far end's audio comes from, [`PULL_SAMPLES`] at a time.
    pub playout: Playout,
    /// Fires when the call's audio ends; the I/O stops then.
    pub cancel: CancellationToken,
}

/// Where a call's audio comes from and goes to. Started once per call.
pub trait AudioIo: Send + Sync + 'static {
    /// Starts moving the call's audio; it stops when `call.cancel` fires.
    ///
    /// # Errors
    /// Whatever keeps the audio from starting (no microphone, a busy
    /// device); the call goes on without it.
    fn start(&self, call: CallAudio) -> Result<(), Error>;
}

/// A source and a sink paced by a timer: every 10 ms the sink gets the next
/// 10 ms of the far end, every 20 ms the source gives a frame to send.
/// Everything that implements this is an [`AudioIo`].
pub trait PacedIo: Send + Sync + 'static {
    /// What to send (a tone, a file, silence). Asked first when a call's
    /// audio starts.
    fn source(&self) -> Box<dyn AudioSource>;
    /// What to do with what is heard (a file, memory).
    fn sink(&self) -> Box<dyn AudioSink>;
}

impl<T: PacedIo> AudioIo for T {
    fn start(&self, call: CallAudio) -> Result<(), Error> {
        let source = self.source();
        let sink = self.sink();
        // A thread of its own, as a sound card's would be: on the async
        // runtime the ticks would wait behind network tasks, and that
        // scheduling jitter would reach the jitter buffer as if the network
        // had caused it.
        std::thread::Builder::new()
            .name("voicemeet-paced-audio".to_owned())
            .spawn(move || paced_thread(source, sink, call))
            .map_err(|err| Error::Audio {
                what: "paced audio thread",
                detail: err.to_string(),
            })?;
        Ok(())
    }
}

impl AudioSource for Box<dyn AudioSource> {
    fn read_frame(&mut self, frame: &mut [i16]) -> bool {
        (**self).read_frame(frame)
    }
}

impl AudioSink for Box<dyn AudioSink> {
    fn write_frame(&mut self, samples: &[i16]) -> Result<(), Error> {
        (**self).write_frame(samples)
    }

    fn finish(&mut self) -> Result<(), Error> {
        (**self).finish()
    }
}

/// Runs a paced source and sink like a sound card would: a fixed rate, and
/// a stall is made up in a burst afterwards (a device's buffer would have
/// filled meanwhile), so the far end hears the same amount of audio.
fn paced_thread(mut source: Box<dyn AudioSource>, mut sink: Box<dyn AudioSink>, call: CallAudio) {
    let CallAudio {
        mut capture,
        mut playout,
        cancel,
    } = call;
    let period = super::FRAME_DURATION / 2;
    let mut frame = vec![0i16; FRAME_SAMPLES];
    let mut heard = vec![0i16; PULL_SAMPLES];
    let mut source_live = true;
    let mut sink_live = true;
    let mut ticks = 0u64;
    let mut next = Instant::now();
    while !cancel.is_cancelled() {
        let now = Instant::now();
        if now < next {
            std::thread::sleep(next - now);
            continue;
        }
        next += period;
        if source_live && ticks.is_multiple_of(2) {
            if source.read_frame(&mut frame) {
                source_live = capture.push(&frame);
            } else {
                tracing::debug!("audio source ended");
                source_live = false;
            }
        }
        ticks += 1;
        playout.fill(&mut heard);
        if sink_live && let Err(err) = sink.write_frame(&heard) {
            tracing::debug!(%err, "audio sink failed; the rest is not kept");
            sink_live = false;
        }
    }
    if sink_live && let Err(err) = sink.finish() {
        tracing::debug!(%err, "audio sink did not finish");
    }
}
