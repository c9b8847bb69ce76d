//! Voice processing on synthetic speech: the far end's voice comes back
//! through a synthetic room (delay, reflections, noise floor) and the echo
//! canceller must remove it; stationary noise must go, quiet speech must
//! come up; and each switch, turned off, must take its effect away.
//!
//! Everything is deterministic (seeded signals, one thread except where the
//! test is about threads), and every assertion is on the audio itself.

mod speech;

use std::sync::mpsc;
use std::time::Duration;

use speech::{
    HIGH_VOICE, LOW_VOICE, RATE, db, energy, kept_db, level_dbfs, mix, noise, pcm, room_echo,
    speech, window,
};
use voicemeet_core::audio::{
    AudioProcessor, FRAME_SAMPLES, PROCESSING_FRAME_SAMPLES, ProcessingSettings,
};

/// The far end talks at a normal level.
const FAR_LEVEL_DBFS: f32 = -20.0;
/// How loud the echo is relative to the far-end signal (laptop speakers a
/// hand's width from the microphone).
const ECHO_GAIN_DB: f32 = -6.0;
/// The echo canceller must remove at least this much echo once converged.
const MIN_ERLE_DB: f64 = 20.0;

const AEC_ONLY: ProcessingSettings = ProcessingSettings {
    echo_cancellation: true,
    noise_suppression: false,
    auto_gain: false,
};

/// Runs a call through `processor` in frames of `frame_len` samples: each
/// frame of far-end audio is handed over as it is played, then the
/// microphone frame of the same moment is processed. Returns the processed
/// microphone signal.
fn run(processor: &mut AudioProcessor, far: &[i16], mic: &[i16], frame_len: usize) -> Vec<i16> {
    run_with(processor, far, mic, frame_len, |_, _| {})
}

/// [`run`], calling `at_frame(processor, index)` before each frame, e.g. to
/// switch settings mid-call.
fn run_with(
    processor: &mut AudioProcessor,
    far: &[i16],
    mic: &[i16],
    frame_len: usize,
    mut at_frame: impl FnMut(&mut AudioProcessor, usize),
) -> Vec<i16> {
    let mut out = mic.to_vec();
    for (index, (far, mic)) in far
        .chunks_exact(frame_len)
        .zip(out.chunks_exact_mut(frame_len))
        .enumerate()
    {
        at_frame(processor, index);
        processor.process_render(far).expect("whole blocks");
        processor.process_capture(mic).expect("whole blocks");
    }
    out
}

/// Echo removed, in dB, between `from_s` and `to_s`: the echo in the
/// microphone signal over what is left of it in the output.
fn erle_db(mic: &[i16], out: &[i16], from_s: f32, to_s: f32) -> f64 {
    db(energy(window(mic, from_s, to_s)) / energy(window(out, from_s, to_s)))
}

#[test]
fn echo_is_cancelled_by_at_least_20_db_after_convergence() {
    let far = speech(LOW_VOICE, 10.0, FAR_LEVEL_DBFS);
    // Table: echo path delays across the range devices give; everything
    // on, as in a call.
    for delay_ms in [40.0, 120.0] {
        let mic = pcm(&room_echo(&far, delay_ms, ECHO_GAIN_DB, 99));
        let mut processor = AudioProcessor::new(ProcessingSettings::default());
        let out = run(&mut processor, &pcm(&far), &mic, FRAME_SAMPLES);

        let erle = erle_db(&mic, &out, 7.0, 10.0);
        println!(
            "delay {delay_ms} ms: ERLE {erle:.1} dB, {:?}",
            processor.stats()
        );
        assert!(
            erle >= MIN_ERLE_DB,
            "delay {delay_ms} ms: only {erle:.1} dB of echo removed over the last 3 s"
        );
        let stats = processor.stats();
        let found = stats.echo_delay.expect("echo cancellation is on");
        assert!(
            (found.as_secs_f32() * 1000.0 - delay_ms).abs() <= 20.0,
            "delay {delay_ms} ms, found {found:?}"
        );
        assert!(stats.erle_db.is_some_and(|e| e > 10.0), "{stats:?}");
    }
}

#[test]
fn switching_echo_cancellation_off_lets_the_echo_through() {
    let far = speech(LOW_VOICE, 12.0, FAR_LEVEL_DBFS);
    let mic = pcm(&room_echo(&far, 80.0, ECHO_GAIN_DB, 99));
    let switch_frame = 6 * RATE / PROCESSING_FRAME_SAMPLES;
    let mut processor = AudioProcessor::new(AEC_ONLY);
    let control = processor.control();
    let out = run_with(
        &mut processor,
        &pcm(&far),
        &mic,
        PROCESSING_FRAME_SAMPLES,
        |_, frame| {
            if frame == switch_frame {
                // From another handle, as the UI would.
                control.set_settings(ProcessingSettings::ALL_OFF);
            }
        },
    );

    let before = erle_db(&mic, &out, 3.0, 6.0);
    let after = erle_db(&mic, &out, 6.5, 12.0);
    println!("echo removed: {before:.1} dB with AEC on, {after:.1} dB after switching it off");
    assert!(before >= MIN_ERLE_DB, "on: {before:.1} dB");
    assert!(after.abs() < 0.5, "off: the echo changed by {after:.1} dB");
    let stats = processor.stats();
    assert_eq!(stats.erle_db, None, "{stats:?}");
    assert_eq!(stats.echo_delay, None, "{stats:?}");
}

#[test]
fn toggling_noise_suppression_mid_call_keeps_the_echo_canceller_converged() {
    let far = speech(LOW_VOICE, 9.0, FAR_LEVEL_DBFS);
    let mic = pcm(&room_echo(&far, 80.0, ECHO_GAIN_DB, 99));
    let frames_per_second = RATE / FRAME_SAMPLES;
    let out = run_with(
        &mut AudioProcessor::new(AEC_ONLY),
        &pcm(&far),
        &mic,
        FRAME_SAMPLES,
        |processor, frame| {
            if frame == 5 * frames_per_second {
                processor.set_settings(ProcessingSettings {
                    noise_suppression: true,
                    ..AEC_ONLY
                });
            } else if frame == 6 * frames_per_second {
                processor.set_settings(AEC_ONLY);
            }
        },
    );
    // A reset echo canceller would need seconds to get back above 20 dB.
    for (from, to) in [(5.0, 6.0), (6.0, 9.0)] {
        let erle = erle_db(&mic, &out, from, to);
        assert!(erle >= MIN_ERLE_DB, "{from}-{to} s: {erle:.1} dB");
    }
}

#[test]
fn near_end_speech_survives_double_talk() {
    let seconds = 10.0;
    let talk_from = 6.0;
    let far = speech(LOW_VOICE, seconds, FAR_LEVEL_DBFS);
    let echo = room_echo(&far, 80.0, ECHO_GAIN_DB, 99);
    // The near end starts talking over the far end at 6 s, as loud as the
    // echo.
    let mut near = vec![0.0; (talk_from * RATE as f32) as usize];
    near.extend(speech(
        HIGH_VOICE,
        seconds - talk_from,
        FAR_LEVEL_DBFS - 6.0,
    ));
    let mic = pcm(&mix(&echo, &near));
    let near = pcm(&near);
    // No gain control, so levels in and out compare directly.
    let mut processor = AudioProcessor::new(ProcessingSettings {
        auto_gain: false,
        ..ProcessingSettings::default()
    });
    let out = run(&mut processor, &pcm(&far), &mic, FRAME_SAMPLES);

    let echo_only = erle_db(&mic, &out, 3.0, talk_from);
    assert!(
        echo_only >= MIN_ERLE_DB,
        "before double talk: {echo_only:.1} dB"
    );
    // With the echo already 20+ dB down, the output while both talk is the
    // near end's voice; it must come through at (nearly) its own level...
    let (out_dt, near_dt) = (
        window(&out, talk_from + 0.5, seconds),
        window(&near, talk_from + 0.5, seconds),
    );
    let level = db(energy(out_dt) / energy(near_dt));
    assert!(
        level >= -6.0,
        "near end {level:.1} dB quieter in double talk"
    );
    // ...and it must be the near end's voice, not something else as loud:
    // most of the near-end waveform is in the output (the suppressor's
    // time-varying gains lower this measure more than the level).
    let kept = kept_db(out_dt, near_dt, 2 * PROCESSING_FRAME_SAMPLES);
    println!(
        "double talk: ERLE before {echo_only:.1} dB, near-end level {level:.1} dB, waveform kept {kept:.1} dB"
    );
    assert!(kept >= -10.0, "near-end waveform kept at {kept:.1} dB");
}

#[test]
fn render_and_capture_halves_work_on_two_threads() {
    let far_voice = speech(LOW_VOICE, 10.0, FAR_LEVEL_DBFS);
    let mic = pcm(&room_echo(&far_voice, 80.0, ECHO_GAIN_DB, 99));
    let far = pcm(&far_voice);
    let processor = AudioProcessor::new(ProcessingSettings::default());
    let control = processor.control();
    let (mut render, mut capture) = processor.split();

    // The playout thread hands over each far-end frame, then tells the
    // capture thread that frame is playing: capture never runs ahead of
    // playout, and playout may be a frame ahead of capture, as with two
    // device clocks.
    let (played, playing) = mpsc::sync_channel::<()>(0);
    let far_frames: Vec<Vec<i16>> = far
        .chunks_exact(FRAME_SAMPLES)
        .map(<[i16]>::to_vec)
        .collect();
    let playout = std::thread::spawn(move || {
        for frame in far_frames {
            render.process_render(&frame).expect("whole blocks");
            if played.send(()).is_err() {
                break;
            }
        }
    });
    let capture_thread = std::thread::spawn(move || {
        let mut out = mic.clone();
        for frame in out.chunks_exact_mut(FRAME_SAMPLES) {
            playing.recv().expect("playout runs to the end");
            capture.process_capture(frame).expect("whole blocks");
        }
        (mic, out)
    });
    playout.join().expect("playout thread");
    let (mic, out) = capture_thread.join().expect("capture thread");

    let erle = erle_db(&mic, &out, 7.0, 10.0);
    println!("two threads: ERLE {erle:.1} dB");
    assert!(erle >= MIN_ERLE_DB, "{erle:.1} dB across threads");
    let stats = control.stats();
    assert_eq!(stats.render_frames_dropped, 0, "{stats:?}");
    assert_eq!(
        stats.capture_frames,
        (10 * RATE / PROCESSING_FRAME_SAMPLES) as u64
    );
}

#[test]
fn noise_suppression_removes_stationary_noise_and_keeps_the_voice() {
    let seconds = 10.0;
    let voice = speech(HIGH_VOICE, seconds, -26.0);
    let mic = pcm(&mix(&voice, &noise(seconds, -45.0, 5)));
    // Table: (settings, least noise removed, most noise removed) in dB.
    // Echo cancellation alone (no far end) shows the reduction is the noise
    // suppressor's doing, not the rest of the chain's: AEC3 trims a little
    // of the white noise's top band (about 3 dB overall), no more.
    let ns_only = ProcessingSettings {
        noise_suppression: true,
        ..ProcessingSettings::ALL_OFF
    };
    for (settings, least, most) in [(ns_only, 10.0, f64::MAX), (AEC_ONLY, -1.0, 5.0)] {
        let silence = vec![0; mic.len()];
        let out = run(
            &mut AudioProcessor::new(settings),
            &silence,
            &mic,
            FRAME_SAMPLES,
        );

        // Noise alone: the second half's pauses (20 ms clear of any voice).
        let guard = RATE / 50;
        let (mut noise_in, mut noise_out) = (0.0, 0.0);
        for i in mic.len() / 2..mic.len() - guard {
            if voice[i - guard..i + guard].iter().all(|&v| v == 0.0) {
                noise_in += (f64::from(mic[i]) / 32768.0).powi(2);
                noise_out += (f64::from(out[i]) / 32768.0).powi(2);
            }
        }
        assert!(noise_in > 0.0, "the voice has pauses");
        let removed = db(noise_in / noise_out);
        println!("{settings:?}: {removed:.1} dB of noise removed");
        assert!(
            (least..=most).contains(&removed),
            "{settings:?}: {removed:.1} dB of noise removed, expected {least}..{most}"
        );
        // The voice keeps its level (the noise was 19 dB below it).
        let level = level_dbfs(window(&out, 5.0, seconds)) - level_dbfs(window(&mic, 5.0, seconds));
        assert!(
            level.abs() < 2.0,
            "{settings:?}: level changed by {level:.1} dB"
        );
    }
}

#[test]
fn auto_gain_brings_quiet_speech_up_and_off_leaves_it() {
    let seconds = 10.0;
    let quiet = pcm(&speech(HIGH_VOICE, seconds, -46.0));
    let silence = vec![0; quiet.len()];
    let input_level = level_dbfs(window(&quiet, 7.0, seconds));
    let agc_only = ProcessingSettings {
        auto_gain: true,
        ..ProcessingSettings::ALL_OFF
    };
    let no_agc = ProcessingSettings {
        auto_gain: false,
        ..ProcessingSettings::default()
    };
    // Table: (settings, least gain, most gain) in dB over the last 3 s.
    for (settings, least, most) in [(agc_only, 12.0, 40.0), (no_agc, -2.0, 2.0)] {
        let mut processor = AudioProcessor::new(settings);
        let out = run(&mut processor, &silence, &quiet, FRAME_SAMPLES);
        let gain = level_dbfs(window(&out, 7.0, seconds)) - input_level;
        println!("{settings:?}: {input_level:.1} dBFS in, gain {gain:.1} dB");
        assert!(
            (least..=most).contains(&gain),
            "{settings:?}: gain {gain:.1} dB, expected {least}..{most}"
        );
        let stats = processor.stats();
        assert!(
            (f64::from(stats.net_gain_db()) - gain).abs() < 6.0,
            "{settings:?}: stats say {:.1} dB, measured {gain:.1} dB",
            stats.net_gain_db()
        );
    }
    // All off is an exact pass-through.
    let out = run(
        &mut AudioProcessor::new(ProcessingSettings::ALL_OFF),
        &silence,
        &quiet,
        FRAME_SAMPLES,
    );
    assert_eq!(out, quiet);
}

#[test]
fn a_delay_hint_is_accepted_and_does_not_disturb_convergence() {
    let far = speech(LOW_VOICE, 6.0, FAR_LEVEL_DBFS);
    let mic = pcm(&room_echo(&far, 80.0, ECHO_GAIN_DB, 99));
    // A wrong hint: AEC3 finds the delay itself.
    let mut processor = AudioProcessor::new(AEC_ONLY);
    processor.set_delay_hint(Duration::from_millis(200));
    let out = run(&mut processor, &pcm(&far), &mic, FRAME_SAMPLES);
    let erle = erle_db(&mic, &out, 3.0, 6.0);
    assert!(erle >= MIN_ERLE_DB, "{erle:.1} dB with a wrong hint");
}
