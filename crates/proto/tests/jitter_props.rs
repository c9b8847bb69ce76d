//! Properties of the jitter buffer under random sequences of inserts and
//! pulls: whatever arrives (garbage timestamps, empty or huge payloads,
//! copies, a failing decoder, time running backwards), nothing panics,
//! every pull is filled, memory stays bounded and counters only grow.

use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use voicemeet_proto::jitter::{FrameDecoder, JitterBuffer, JitterConfig, Origin};

/// Fails on payloads starting with 0; otherwise decodes a payload-sized
/// number of samples (0 to 2 000, so frames of odd lengths appear too).
struct Erratic;

impl FrameDecoder for Erratic {
    type Error = &'static str;

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), Self::Error> {
        match payload.first() {
            Some(0) | None => Err("bad"),
            Some(&n) => {
                out.extend(std::iter::repeat_n(i16::from(n), usize::from(n) * 8));
                Ok(())
            }
        }
    }

    fn decode_fec(
        &mut self,
        payload: &[u8],
        n: usize,
        out: &mut Vec<i16>,
    ) -> Result<(), Self::Error> {
        if payload.first() == Some(&1) {
            return Err("no fec");
        }
        out.extend(std::iter::repeat_n(
            -1,
            n + usize::from(payload.len().is_multiple_of(3)),
        ));
        Ok(())
    }

    fn conceal(&mut self, n: usize, out: &mut Vec<i16>) -> Result<(), Self::Error> {
        if n.is_multiple_of(7) {
            return Err("no plc");
        }
        out.extend(std::iter::repeat_n(2, n.saturating_sub(1)));
        Ok(())
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// A frame `step` frames after the previous one (any i32), with a
    /// payload of `len` bytes of `byte`, arriving `wait_ms` later.
    Insert {
        step: i32,
        absurd: Option<u32>,
        len: usize,
        byte: u8,
        redundant: bool,
        wait_ms: i64,
    },
    Pull {
        len: usize,
        wait_ms: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (
            prop_oneof![4 => Just(1), 2 => -3..6i32, 1 => any::<i32>()],
            proptest::option::weighted(0.05, any::<u32>()),
            prop_oneof![8 => 1..40usize, 1 => Just(0), 1 => 1_400..1_600usize],
            any::<u8>(),
            any::<bool>(),
            prop_oneof![8 => 0..40i64, 1 => -50..0i64, 1 => 0..5_000i64],
        )
            .prop_map(|(step, absurd, len, byte, redundant, wait_ms)| Op::Insert {
                step,
                absurd,
                len,
                byte,
                redundant,
                wait_ms,
            }),
        4 => (
            prop_oneof![8 => Just(480), 1 => 0..3_000usize],
            prop_oneof![8 => Just(10), 1 => 0..3_000i64],
        )
            .prop_map(|(len, wait_ms)| Op::Pull { len, wait_ms }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn nothing_breaks_it(ops in vec(op(), 1..400)) {
        let config = JitterConfig { max_frames: 20, ..JitterConfig::default() };
        let bound_ms = 20.0 * 20.0 + 1_000.0;
        let mut buffer = JitterBuffer::new(config);
        let mut ts = 77u32;
        let mut now_ms = 1_000i64;
        let mut last = buffer.stats();
        for op in ops {
            match op {
                Op::Insert { step, absurd, len, byte, redundant, wait_ms } => {
                    now_ms = (now_ms + wait_ms).max(0);
                    ts = ts.wrapping_add((step as u32).wrapping_mul(960));
                    let payload = vec![byte; len];
                    let origin = if redundant { Origin::Redundant } else { Origin::Primary };
                    let at = Duration::from_millis(now_ms as u64);
                    buffer.insert(absurd.unwrap_or(ts), &payload, origin, at);
                }
                Op::Pull { len, wait_ms } => {
                    now_ms = (now_ms + wait_ms).max(0);
                    // A pull that could not fill `out` would panic here.
                    let mut out = vec![i16::MIN; len];
                    buffer.pull(Duration::from_millis(now_ms as u64), &mut Erratic, &mut out);
                    prop_assert!(!out.contains(&i16::MIN), "nothing produces i16::MIN");
                }
            }
            let s = buffer.stats();
            prop_assert!(s.buffered_ms <= bound_ms, "{s:?}");
            prop_assert!(s.frames_received >= last.frames_received);
            prop_assert!(s.frames_decoded >= last.frames_decoded);
            prop_assert!(s.concealed_ms >= last.concealed_ms);
            prop_assert!(s.frames_decoded <= s.frames_received);
            prop_assert!((0.0..=1.0).contains(&s.concealment_rate));
            prop_assert!(s.target_delay_ms >= 0.0 && s.target_delay_ms <= 400.0);
            last = s;
        }
    }
}
