//! The echo bot's audio: what the stranger says comes back to them about
//! a second later. The sink side queues each decoded frame with the time
//! it was heard. The source side stays silent until the oldest queued
//! audio is [`ECHO_DELAY`] old, then plays the queue back continuously,
//! one frame per tick, until it runs dry; the next audio then waits the
//! full delay again. Playing by sample count rather than by each frame's
//! arrival time makes the delay a jitter buffer too: frames that arrive
//! late or in bursts still come out evenly.
//!
//! Both sides run on the engine's audio tasks (20 ms ticks on the async
//! runtime), not in a real-time callback, so a `std::sync::Mutex` around
//! a `VecDeque` is enough. The timing logic takes `now` as an argument
//! ([`EchoLine::push_at`], [`EchoLine::pull_at`]) so it is tested in
//! virtual time; only the [`PacedIo`] adapters read the clock.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use voicemeet_core::Error;
use voicemeet_core::audio::{AudioSink, AudioSource, PacedIo, SAMPLE_RATE};

/// How long after hearing something the bot plays it back: long enough
/// that a caller hears their own words as a separate echo, short enough
/// to feel immediate.
pub const ECHO_DELAY: Duration = Duration::from_secs(1);

/// How far the playback may fall behind the delay before the oldest
/// audio is dropped: 200 ms. The remote's clock may run a little fast, and
/// this keeps such drift from lengthening the echo for the rest of the
/// call, while ordinary jitter (a few frames) never drops anything.
const MAX_LAG: Duration = Duration::from_millis(200);

struct Chunk {
    heard_at: Instant,
    samples: Vec<i16>,
    /// Samples already played (or skipped) from the front.
    read: usize,
}

impl Chunk {
    fn remaining(&self) -> usize {
        self.samples.len() - self.read
    }
}

#[derive(Default)]
struct Queue {
    /// Bumped per call; audio from an older call is dropped, so one
    /// stranger never hears another.
    generation: u64,
    chunks: VecDeque<Chunk>,
    queued: usize,
    /// Playing the queue back (its oldest audio reached the delay and
    /// it has not run dry since).
    playing: bool,
}

impl Queue {
    /// Drops `count` samples from the front.
    fn discard(&mut self, mut count: usize) {
        while count > 0 {
            let Some(front) = self.chunks.front_mut() else {
                return;
            };
            let take = count.min(front.remaining());
            front.read += take;
            self.queued -= take;
            count -= take;
            if front.remaining() == 0 {
                self.chunks.pop_front();
            }
        }
    }
}

/// The bounded, delayed queue between the bot's ears and its mouth.
pub struct EchoLine {
    delay: Duration,
    /// The most samples queued: the delay plus [`MAX_LAG`].
    capacity: usize,
    queue: Mutex<Queue>,
}

impl EchoLine {
    /// An empty line that plays back after `delay`.
    pub fn new(delay: Duration) -> Self {
        let samples = |d: Duration| {
            usize::try_from(d.as_millis() * u128::from(SAMPLE_RATE) / 1000).unwrap_or(usize::MAX)
        };
        Self {
            delay,
            capacity: samples(delay).saturating_add(samples(MAX_LAG)),
            queue: Mutex::new(Queue::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue is consistent between statements that hold the lock;
        // a panic elsewhere cannot leave it half updated.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets everything queued and starts a new call; returns its
    /// generation, for that call's sink.
    pub fn new_call(&self) -> u64 {
        let mut queue = self.lock();
        queue.generation += 1;
        queue.chunks.clear();
        queue.queued = 0;
        queue.playing = false;
        queue.generation
    }

    /// Queues `samples` heard at `now` by call `generation`.
    pub fn push_at(&self, generation: u64, samples: &[i16], now: Instant) {
        let mut queue = self.lock();
        if generation != queue.generation || samples.is_empty() {
            return;
        }
        queue.chunks.push_back(Chunk {
            heard_at: now,
            samples: samples.to_vec(),
            read: 0,
        });
        queue.queued += samples.len();
        let excess = queue.queued.saturating_sub(self.capacity);
        queue.discard(excess);
    }

    /// Fills `frame` with the next audio to play back at `now`, and the
    /// rest with silence.
    pub fn pull_at(&self, frame: &mut [i16], now: Instant) {
        let mut queue = self.lock();
        if !queue.playing {
            queue.playing = queue
                .chunks
                .front()
                .is_some_and(|oldest| oldest.heard_at + self.delay <= now);
        }
        let mut filled = 0;
        while queue.playing && filled < frame.len() {
            let Some(front) = queue.chunks.front() else {
                // Ran dry: the next audio waits the full delay.
                queue.playing = false;
                break;
            };
            let take = (frame.len() - filled).min(front.remaining());
            frame[filled..filled + take].copy_from_slice(&front.samples[front.read..][..take]);
            filled += take;
            queue.discard(take);
        }
        frame[filled..].fill(0);
    }

    /// Samples waiting, due or not.
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.lock().queued
    }
}

/// The bot's [`PacedIo`]: each call starts a fresh generation of the line.
pub struct EchoIo {
    line: Arc<EchoLine>,
}

impl EchoIo {
    /// An echo with [`ECHO_DELAY`].
    pub fn new() -> Self {
        Self {
            line: Arc::new(EchoLine::new(ECHO_DELAY)),
        }
    }
}

impl PacedIo for EchoIo {
    // The engine asks for the source when a call's peer starts, before
    // any of that call's audio can arrive, so this is where a call begins.
    fn source(&self) -> Box<dyn AudioSource> {
        self.line.new_call();
        Box::new(EchoSource {
            line: self.line.clone(),
        })
    }

    fn sink(&self) -> Box<dyn AudioSink> {
        Box::new(EchoSink {
            generation: self.line.lock().generation,
            line: self.line.clone(),
        })
    }
}

struct EchoSource {
    line: Arc<EchoLine>,
}

impl AudioSource for EchoSource {
    fn read_frame(&mut self, frame: &mut [i16]) -> bool {
        self.line.pull_at(frame, Instant::now());
        true
    }
}

struct EchoSink {
    line: Arc<EchoLine>,
    generation: u64,
}

impl AudioSink for EchoSink {
    fn write_frame(&mut self, samples: &[i16]) -> Result<(), Error> {
        self.line.push_at(self.generation, samples, Instant::now());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use voicemeet_core::audio::FRAME_SAMPLES;

    use super::*;

    const TICK: Duration = Duration::from_millis(20);

    fn frame_of(value: i16) -> Vec<i16> {
        vec![value; FRAME_SAMPLES]
    }

    fn pull(line: &EchoLine, now: Instant) -> Vec<i16> {
        let mut frame = vec![i16::MIN; FRAME_SAMPLES];
        line.pull_at(&mut frame, now);
        frame
    }

    #[test]
    fn plays_back_after_the_delay_and_silence_otherwise() {
        let line = EchoLine::new(ECHO_DELAY);
        let t0 = Instant::now();
        let call = line.new_call();
        assert_eq!(pull(&line, t0), frame_of(0), "nothing heard yet");
        for i in 0..10u32 {
            line.push_at(call, &frame_of(i as i16 + 1), t0 + TICK * i);
        }
        assert_eq!(pull(&line, t0 + ECHO_DELAY / 2), frame_of(0), "not due yet");
        for i in 0..10u32 {
            let at = t0 + ECHO_DELAY + TICK * i;
            assert_eq!(pull(&line, at), frame_of(i as i16 + 1), "frame {i}");
        }
        assert_eq!(pull(&line, t0 + ECHO_DELAY * 2), frame_of(0), "drained");
        assert_eq!(line.queued(), 0);
    }

    #[test]
    fn a_new_call_never_hears_the_last_one() {
        let line = EchoLine::new(ECHO_DELAY);
        let t0 = Instant::now();
        let first = line.new_call();
        line.push_at(first, &frame_of(5), t0);
        let second = line.new_call();
        assert_eq!(line.queued(), 0, "cleared");
        line.push_at(first, &frame_of(6), t0);
        assert_eq!(line.queued(), 0, "a late frame of the old call is dropped");
        line.push_at(second, &frame_of(7), t0);
        assert_eq!(pull(&line, t0 + ECHO_DELAY), frame_of(7));
    }

    #[test]
    fn the_queue_is_bounded_by_the_delay_and_the_lag() {
        let line = EchoLine::new(ECHO_DELAY);
        let t0 = Instant::now();
        let call = line.new_call();
        for i in 0..500u32 {
            line.push_at(call, &frame_of(1), t0 + TICK * i);
        }
        let lag = MAX_LAG.as_millis() as usize * SAMPLE_RATE as usize / 1000;
        assert_eq!(line.queued(), SAMPLE_RATE as usize + lag);
    }

    #[test]
    fn jitter_is_absorbed_by_the_delay() {
        let line = EchoLine::new(ECHO_DELAY);
        let t0 = Instant::now();
        let call = line.new_call();
        // Frame 1 on time, then 2 to 5 in one burst, 60 ms late for frame 2.
        line.push_at(call, &frame_of(1), t0);
        for value in 2..=4 {
            line.push_at(call, &frame_of(value), t0 + TICK * 4);
        }
        line.push_at(call, &frame_of(5), t0 + TICK * 4);
        let start = t0 + ECHO_DELAY;
        for (i, value) in (1..=5).enumerate() {
            assert_eq!(pull(&line, start + TICK * i as u32), frame_of(value));
        }
        assert_eq!(pull(&line, start + TICK * 5), frame_of(0));
    }

    #[test]
    fn after_a_pause_the_echo_waits_the_full_delay_again() {
        let line = EchoLine::new(ECHO_DELAY);
        let t0 = Instant::now();
        let call = line.new_call();
        line.push_at(call, &frame_of(1), t0);
        assert_eq!(pull(&line, t0 + ECHO_DELAY), frame_of(1));
        assert_eq!(pull(&line, t0 + ECHO_DELAY + TICK), frame_of(0));
        let again = t0 + ECHO_DELAY * 2;
        line.push_at(call, &frame_of(2), again);
        assert_eq!(pull(&line, again + ECHO_DELAY / 2), frame_of(0));
        assert_eq!(pull(&line, again + ECHO_DELAY), frame_of(2));
    }

    #[test]
    fn odd_sized_packets_fill_whole_frames() {
        let line = EchoLine::new(ECHO_DELAY);
        let t0 = Instant::now();
        let call = line.new_call();
        line.push_at(call, &vec![1; FRAME_SAMPLES / 2], t0);
        line.push_at(call, &vec![2; FRAME_SAMPLES], t0);
        let frame = pull(&line, t0 + ECHO_DELAY);
        assert!(frame[..FRAME_SAMPLES / 2].iter().all(|&s| s == 1));
        assert!(frame[FRAME_SAMPLES / 2..].iter().all(|&s| s == 2));
        let frame = pull(&line, t0 + ECHO_DELAY + TICK);
        assert!(frame[..FRAME_SAMPLES / 2].iter().all(|&s| s == 2));
        assert!(frame[FRAME_SAMPLES / 2..].iter().all(|&s| s == 0));
    }
}
