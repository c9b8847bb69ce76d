//! The file ends of the audio seam: a tone written with `WavFileSink`, read
//! back with `FileSource`, sent through the Opus codec, written again and
//! checked by content.

use std::path::PathBuf;

use voicemeet_core::Error;
use voicemeet_core::audio::{
    AudioSink, AudioSource, FRAME_SAMPLES, FileSource, MemorySink, OpusDecoder, OpusEncoder,
    SAMPLE_RATE, ToneSource, WavFileSink, dominant_frequency, tone_energy_fraction,
};

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("vm-audio-{}-{name}.wav", std::process::id()))
}

#[test]
fn a_wav_tone_survives_file_and_opus_round_trips() {
    let original = temp_path("original");
    let decoded = temp_path("decoded");

    let mut sink = WavFileSink::create(&original).expect("create");
    let mut tone = ToneSource::new(440.0);
    let mut frame = [0i16; FRAME_SAMPLES];
    for _ in 0..50 {
        assert!(tone.read_frame(&mut frame));
        sink.write_frame(&frame).expect("write");
    }
    sink.finish().expect("finish");

    let mut source = FileSource::open(&original).expect("a 48 kHz mono 16-bit WAV");
    let mut encoder = OpusEncoder::new().expect("encoder");
    let mut decoder = OpusDecoder::new().expect("decoder");
    let mut out = WavFileSink::create(&decoded).expect("create");
    let mut memory = MemorySink::new();
    let mut frames = 0;
    while source.read_frame(&mut frame) {
        let packet = encoder.encode(&frame).expect("encode");
        let pcm = decoder.decode(&packet).expect("decode");
        out.write_frame(pcm).expect("write");
        memory.write_frame(pcm).expect("write");
        frames += 1;
    }
    out.finish().expect("finish");
    assert_eq!(frames, 50, "one second of 20 ms frames");

    let mut back = FileSource::open(&decoded).expect("read back");
    let mut samples = Vec::new();
    while back.read_frame(&mut frame) {
        samples.extend_from_slice(&frame);
    }
    std::fs::remove_file(&original).ok();
    std::fs::remove_file(&decoded).ok();
    assert_eq!(samples, memory.samples(), "file and memory sinks agree");
    let steady = &samples[SAMPLE_RATE as usize / 5..];
    let found = dominant_frequency(steady, SAMPLE_RATE).expect("not silence");
    assert!((found - 440.0).abs() < 2.0, "{found}");
    assert!(tone_energy_fraction(steady, SAMPLE_RATE, 440.0) > 0.9);
}

#[test]
fn missing_or_foreign_files_are_refused() {
    let err = FileSource::open(temp_path("does-not-exist")).expect_err("no file");
    assert!(matches!(err, Error::Audio { .. }), "{err:?}");

    // A 44.1 kHz file: the source does not resample, it refuses.
    let path = temp_path("cd-rate");
    let mut wav = b"RIFF\x28\0\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0".to_vec();
    wav.extend_from_slice(&44_100u32.to_le_bytes());
    wav.extend_from_slice(&88_200u32.to_le_bytes());
    wav.extend_from_slice(b"\x02\0\x10\0data\x04\0\0\0\0\0\0\0");
    std::fs::write(&path, wav).expect("write");
    let err = FileSource::open(&path).expect_err("44.1 kHz");
    std::fs::remove_file(&path).ok();
    assert!(err.to_string().contains("44100"), "{err}");
}
