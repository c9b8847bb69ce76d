//! What runs on every 10 ms of a call's audio between the devices and the
//! engine, the same for real sound cards ([`DeviceAudio`](super::DeviceAudio))
//! and for simulated ones in tests and benchmarks:
//!
//! ```text
//!  microphone ─▶ CaptureChain: echo cancel · noise · gain ─▶ FrameSender ─▶ send
//!  speaker    ◀─ RenderChain:  Playout (jitter buffer) ─┬─▶ far-end reference
//!                                                        └─▶ (echo canceller)
//! ```
//!
//! The render side hands every block it plays to the echo canceller as
//! its reference, so what the microphone picks up of it is removed before
//! it goes back to the far end.

use super::{
    AudioProcessor, CaptureProcessor, FrameSender, Playout, ProcessingControl, ProcessingSettings,
    RenderProcessor,
};

/// The microphone's side: processing, then the send queue.
#[derive(Debug)]
pub struct CaptureChain {
    processor: CaptureProcessor,
    capture: FrameSender,
    block: Vec<i16>,
    failures: u64,
}

impl CaptureChain {
    /// Takes one block from the microphone (a whole number of 10 ms
    /// blocks). Returns `false` once the call's send side is gone.
    pub fn on_frame(&mut self, frame: &[i16]) -> bool {
        self.block.clear();
        self.block.extend_from_slice(frame);
        if self.processor.process_capture(&mut self.block).is_err() {
            // An odd-sized block (a bug upstream): send it unprocessed
            // rather than drop the audio.
            self.failures += 1;
        }
        self.capture.push(&self.block)
    }

    /// Blocks that could not be processed (and went out as they were).
    pub fn failures(&self) -> u64 {
        self.failures
    }
}

/// The speaker's side: the jitter buffer's output, copied to the echo
/// canceller as it is played.
#[derive(Debug)]
pub struct RenderChain {
    playout: Playout,
    processor: RenderProcessor,
}

impl RenderChain {
    /// Fills `out` (a whole number of 10 ms blocks) with what to play.
    pub fn fill(&mut self, out: &mut [i16]) {
        self.playout.fill(out);
        // Only fails for odd-sized blocks; the audio still plays, the echo
        // canceller just misses that reference.
        let _ = self.processor.process_render(out);
    }
}

/// The two chains of one call (from its [`CallAudio`](super::CallAudio)'s
/// capture and playout), and a handle to switch its processing.
pub fn chains(
    sender: FrameSender,
    playout: Playout,
    settings: ProcessingSettings,
) -> (CaptureChain, RenderChain, ProcessingControl) {
    let (render, capture) = AudioProcessor::new(settings).split();
    let control = capture.control();
    (
        CaptureChain {
            processor: capture,
            capture: sender,
            block: Vec::with_capacity(super::FRAME_SAMPLES),
            failures: 0,
        },
        RenderChain {
            playout,
            processor: render,
        },
        control,
    )
}
