//! The buffer's internals: bookkeeping that the scenario tests in
//! `tests/jitter.rs` can only see from outside.

use super::*;

/// Decodes a payload to 960 samples of its first byte; conceals with 1s.
struct Constant;

impl FrameDecoder for Constant {
    type Error = &'static str;

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), Self::Error> {
        let value = i16::from(*payload.first().ok_or("empty")?) * 100;
        out.extend(std::iter::repeat_n(value, 960));
        Ok(())
    }

    fn decode_fec(
        &mut self,
        _: &[u8],
        samples: usize,
        out: &mut Vec<i16>,
    ) -> Result<(), Self::Error> {
        out.extend(std::iter::repeat_n(1, samples));
        Ok(())
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> Result<(), Self::Error> {
        out.extend(std::iter::repeat_n(1, samples));
        Ok(())
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn steady_state_pulls_reuse_every_buffer() {
    let mut buffer = JitterBuffer::new(JitterConfig::default());
    let mut out = [0i16; 480];
    let mut run = |buffer: &mut JitterBuffer, from: u32, to: u32| {
        for tick in from..to {
            if tick % 2 == 0 {
                let ts = 480 * tick;
                buffer.insert(
                    ts,
                    &[(tick % 100) as u8 + 1],
                    Origin::Primary,
                    ms(10 * u64::from(tick)),
                );
            }
            buffer.pull(ms(10 * u64::from(tick) + 3), &mut Constant, &mut out);
        }
    };
    run(&mut buffer, 0, 1_000);
    let capacities = |b: &JitterBuffer| {
        (
            b.pcm.capacity(),
            b.frames.capacity(),
            b.pool.capacity(),
            b.pool.iter().map(Vec::capacity).sum::<usize>(),
            b.recent.capacity(),
        )
    };
    let before = capacities(&buffer);
    run(&mut buffer, 1_000, 3_000);
    assert_eq!(
        capacities(&buffer),
        before,
        "no buffer grew in steady state"
    );
    assert_eq!(buffer.mode, Mode::Playing);
}

#[test]
fn timestamps_extend_across_the_wrap_both_ways() {
    let mut buffer = JitterBuffer::new(JitterConfig::default());
    assert_eq!(buffer.extend(u32::MAX - 5), i64::from(u32::MAX - 5));
    buffer.reference = Some((u32::MAX - 5, i64::from(u32::MAX - 5)));
    assert_eq!(buffer.extend(10), i64::from(u32::MAX) + 11);
    assert_eq!(buffer.extend(u32::MAX - 965), i64::from(u32::MAX) - 965);
}

#[test]
fn any_config_is_brought_into_range() {
    let config = sanitize(JitterConfig {
        sample_rate: 0,
        frame_samples: u32::MAX,
        min_delay: ms(900),
        max_delay: ms(100),
        start_delay: Duration::MAX,
        quantile: f64::NAN,
        forget_factor: 7.0,
        max_frames: 0,
        max_payload: 0,
        ..JitterConfig::default()
    });
    assert_eq!(config.sample_rate, 8_000);
    assert_eq!(config.frame_samples, 960);
    assert_eq!(config.min_delay, ms(100));
    assert_eq!(config.start_delay, ms(100));
    assert_eq!(config.quantile, 0.95);
    assert_eq!(config.forget_factor, 0.9999);
    assert_eq!((config.max_frames, config.max_payload), (2, 1));
    // And it plays.
    let mut buffer = JitterBuffer::new(config);
    let mut out = [7i16; 3];
    assert_eq!(
        buffer.insert(0, &[1], Origin::Primary, ms(0)),
        Insert::Accepted
    );
    buffer.pull(ms(1_000), &mut Constant, &mut out);
}

#[test]
fn a_primary_copy_replaces_a_held_redundant_one() {
    let mut buffer = JitterBuffer::new(JitterConfig::default());
    assert_eq!(
        buffer.insert(960, &[2], Origin::Redundant, ms(20)),
        Insert::Accepted
    );
    assert_eq!(
        buffer.insert(960, &[3], Origin::Primary, ms(21)),
        Insert::Duplicate
    );
    let held = buffer.frames.front().expect("held");
    assert_eq!(
        (held.origin, held.payload.as_slice()),
        (Origin::Primary, &[3u8][..])
    );
    assert_eq!(
        buffer.insert(960, &[4], Origin::Redundant, ms(22)),
        Insert::Duplicate
    );
    assert_eq!(buffer.stats().duplicates, 2);
}

#[test]
fn an_empty_pull_changes_nothing() {
    let mut buffer = JitterBuffer::new(JitterConfig::default());
    assert_eq!(buffer.pull(ms(0), &mut Constant, &mut []), Playout::Silence);
    assert_eq!(
        buffer.stats(),
        JitterStats {
            target_delay_ms: 40.0,
            ..JitterStats::default()
        }
    );
}

#[test]
fn a_decoder_that_always_fails_yields_bounded_concealment_then_silence() {
    struct Broken;
    impl FrameDecoder for Broken {
        type Error = &'static str;
        fn decode(&mut self, _: &[u8], out: &mut Vec<i16>) -> Result<(), Self::Error> {
            out.push(123); // garbage before failing: must not leak out
            Err("broken")
        }
        fn decode_fec(&mut self, _: &[u8], _: usize, _: &mut Vec<i16>) -> Result<(), Self::Error> {
            Err("broken")
        }
        fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> Result<(), Self::Error> {
            out.extend(std::iter::repeat_n(500, samples));
            Ok(())
        }
    }
    let mut buffer = JitterBuffer::new(JitterConfig::default());
    let mut out = [0i16; 480];
    let mut output = Vec::new();
    for tick in 0..300u32 {
        if tick % 2 == 0 {
            buffer.insert(480 * tick, &[1], Origin::Primary, ms(10 * u64::from(tick)));
        }
        buffer.pull(ms(10 * u64::from(tick) + 3), &mut Broken, &mut out);
        output.extend_from_slice(&out);
    }
    assert!(!output.contains(&123));
    let s = buffer.stats();
    assert!(s.decoder_errors >= 140, "{s:?}");
    assert_eq!(s.frames_decoded, 0);
    // Concealment ran to its bound, then faded; after that, silence.
    assert!(s.concealed_ms <= 200.0 + 22.5 + 20.0, "{s:?}");
    assert!(output[output.len() - 480 * 200..].iter().all(|&x| x == 0));
}
