//! The hand-off of far-end frames from the playout thread to the capture
//! thread: a bounded single-producer single-consumer ring (`rtrb`, the same
//! lock-free ring the device layer uses) that only ever moves whole 10 ms
//! frames, so the playout side never waits for the capture side's signal
//! processing (hundreds of microseconds per frame) and neither side
//! allocates after construction.

use rtrb::{Consumer, Producer, RingBuffer};

use super::PROCESSING_FRAME_SAMPLES;

/// Creates a ring of `capacity_frames` frames (at least one) and its two
/// ends.
pub(super) fn render_queue(capacity_frames: usize) -> (FrameProducer, FrameConsumer) {
    let (producer, consumer) = RingBuffer::new(capacity_frames.max(1) * PROCESSING_FRAME_SAMPLES);
    (FrameProducer(producer), FrameConsumer(consumer))
}

/// The playout thread's end.
#[derive(Debug)]
pub(super) struct FrameProducer(Producer<i16>);

impl FrameProducer {
    /// Appends one frame of [`PROCESSING_FRAME_SAMPLES`] samples, or returns
    /// `false` without waiting when the ring is full (the consumer has
    /// stalled). Dropping the newest frame is the only choice a
    /// single-producer ring has; the echo canceller re-aligns after such a
    /// gap.
    pub(super) fn push(&mut self, frame: &[i16]) -> bool {
        debug_assert_eq!(frame.len(), PROCESSING_FRAME_SAMPLES);
        // Both ends move whole frames, so a frame's slots are either all
        // free or not; a partial write never happens.
        let Ok(mut chunk) = self.0.write_chunk(frame.len()) else {
            return false;
        };
        let (first, second) = chunk.as_mut_slices();
        let (head, tail) = frame.split_at(first.len());
        first.copy_from_slice(head);
        second.copy_from_slice(tail);
        chunk.commit_all();
        true
    }
}

/// The capture thread's end.
#[derive(Debug)]
pub(super) struct FrameConsumer(Consumer<i16>);

impl FrameConsumer {
    /// Takes the oldest frame into `out` ([`PROCESSING_FRAME_SAMPLES`]
    /// samples), or returns `false` when the ring is empty.
    pub(super) fn pop(&mut self, out: &mut [i16]) -> bool {
        debug_assert_eq!(out.len(), PROCESSING_FRAME_SAMPLES);
        let Ok(chunk) = self.0.read_chunk(out.len()) else {
            return false;
        };
        let (first, second) = chunk.as_slices();
        let (head, tail) = out.split_at_mut(first.len());
        head.copy_from_slice(first);
        tail.copy_from_slice(second);
        chunk.commit_all();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(value: i16) -> Vec<i16> {
        vec![value; PROCESSING_FRAME_SAMPLES]
    }

    #[test]
    fn frames_come_out_in_order_and_a_full_ring_refuses_more() {
        let (mut producer, mut consumer) = render_queue(3);
        let mut out = frame(0);
        assert!(!consumer.pop(&mut out), "a new ring is empty");

        for value in 1..=3 {
            assert!(producer.push(&frame(value)));
        }
        assert!(!producer.push(&frame(4)), "the fourth frame does not fit");

        assert!(consumer.pop(&mut out));
        assert_eq!(out, frame(1));
        // The freed slot is reused, and order holds across the wrap.
        assert!(producer.push(&frame(5)));
        for expected in [2, 3, 5] {
            assert!(consumer.pop(&mut out));
            assert_eq!(out, frame(expected));
        }
        assert!(!consumer.pop(&mut out));
    }

    #[test]
    fn frames_cross_threads_intact() {
        const FRAMES: i16 = 2_000;
        let (mut producer, mut consumer) = render_queue(4);
        let writer = std::thread::spawn(move || {
            for value in 0..FRAMES {
                // Each frame carries its index in every sample, with a ramp
                // so a torn frame (two frames' samples mixed) shows.
                let samples: Vec<i16> = (0..PROCESSING_FRAME_SAMPLES)
                    .map(|i| value.wrapping_add(i as i16))
                    .collect();
                while !producer.push(&samples) {
                    std::thread::yield_now();
                }
            }
        });
        let mut out = frame(0);
        for value in 0..FRAMES {
            while !consumer.pop(&mut out) {
                std::thread::yield_now();
            }
            for (i, &sample) in out.iter().enumerate() {
                assert_eq!(sample, value.wrapping_add(i as i16), "frame {value}");
            }
        }
        writer.join().expect("writer thread");
    }
}
