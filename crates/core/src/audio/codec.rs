//! libopus with the call's settings.

use bytes::Bytes;
use opus::{Application, Bitrate, Channels, Decoder, Encoder};

use super::{FRAME_SAMPLES, SAMPLE_RATE};
use crate::error::Error;

/// Starting bitrate: ~32 kbps is transparent enough for wideband speech and
/// leaves headroom for the in-band FEC copy. The send policy
/// ([`voicemeet_proto::media`]) moves it between 16 and 40 kbps.
pub const OPUS_BITRATE: i32 = 32_000;

/// The packet loss the encoder plans its in-band FEC for until the first
/// receiver report says otherwise, in percent. At 0 libopus sends no FEC
/// data: under CBR its bits would come out of every frame (measured: PESQ-WB
/// 3.86 without, 3.23 with 1 %), and a clean network does not need it.
pub const EXPECTED_LOSS_PERCENT: i32 = 0;

/// libopus's own default on desktop (libwebrtc uses it too): the best
/// quality per bit. On this project's 2.3 GHz machines it costs ~225 µs
/// per 20 ms frame of speech (~1.1 % of a core); complexity 5 saves a
/// quarter of that and loses ~0.4 PESQ (docs/decisions/0004).
const COMPLEXITY: i32 = 9;

/// Output buffer for one encoded frame. libopus recommends 4000 bytes as a
/// safe upper bound for `max_data_bytes`; a 20 ms frame at 32 kbps needs ~80.
const MAX_PACKET_BYTES: usize = 4000;

/// The longest packet a decoder accepts: 120 ms at 48 kHz (RFC 6716 §3.2.5),
/// so a remote that sends 60 ms or 120 ms packets still decodes.
const MAX_DECODED_SAMPLES: usize = 5760;

fn codec_error(what: &'static str, err: &opus::Error) -> Error {
    Error::Audio {
        what,
        detail: err.to_string(),
    }
}

/// An Opus encoder for 48 kHz mono 20 ms frames: VOIP application,
/// constant bitrate, no DTX, in-band FEC on (docs/decisions/0003-opus-red-and-playout.md).
pub struct OpusEncoder {
    inner: Encoder,
    packet: Vec<u8>,
    bitrate: i32,
    loss_percent: i32,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder")
            .field("bitrate", &self.bitrate)
            .field("loss_percent", &self.loss_percent)
            .finish_non_exhaustive()
    }
}

impl OpusEncoder {
    /// A configured encoder at [`OPUS_BITRATE`] planning FEC for
    /// [`EXPECTED_LOSS_PERCENT`].
    ///
    /// # Errors
    /// [`Error::Audio`] if libopus refuses a setting (it does not for these).
    pub fn new() -> Result<Self, Error> {
        let mut inner = Encoder::new(SAMPLE_RATE, Channels::Mono, Application::Voip)
            .map_err(|e| codec_error("opus encoder", &e))?;
        inner
            .set_complexity(COMPLEXITY)
            .map_err(|e| codec_error("opus complexity", &e))?;
        // Constant bitrate: packet sizes that follow the speech leak what
        // is said to anyone who sees the encrypted packets; CBR does not.
        inner
            .set_vbr(false)
            .map_err(|e| codec_error("opus cbr", &e))?;
        // No DTX either: its silences change the packet timing, which
        // leaks when someone speaks.
        inner
            .set_dtx(false)
            .map_err(|e| codec_error("opus dtx", &e))?;
        inner
            .set_inband_fec(true)
            .map_err(|e| codec_error("opus in-band FEC", &e))?;
        let mut encoder = Self {
            inner,
            packet: vec![0; MAX_PACKET_BYTES],
            bitrate: 0,
            loss_percent: -1,
        };
        encoder.apply(OPUS_BITRATE, EXPECTED_LOSS_PERCENT)?;
        Ok(encoder)
    }

    /// Moves the encoder to `bitrate` (bits per second) and plans its FEC
    /// for `loss_percent`; no-op for values it already has.
    ///
    /// # Errors
    /// [`Error::Audio`] if libopus refuses a value (outside 500..=512000
    /// bps or 0..=100 %).
    pub fn apply(&mut self, bitrate: i32, loss_percent: i32) -> Result<(), Error> {
        if bitrate != self.bitrate {
            self.inner
                .set_bitrate(Bitrate::Bits(bitrate))
                .map_err(|e| codec_error("opus bitrate", &e))?;
            self.bitrate = bitrate;
        }
        if loss_percent != self.loss_percent {
            self.inner
                .set_packet_loss_perc(loss_percent)
                .map_err(|e| codec_error("opus packet loss", &e))?;
            self.loss_percent = loss_percent;
        }
        Ok(())
    }

    /// The bitrate it encodes at now.
    pub fn bitrate(&self) -> i32 {
        self.bitrate
    }

    /// Encodes one frame of exactly [`FRAME_SAMPLES`] samples into one
    /// packet.
    ///
    /// # Errors
    /// [`Error::Audio`] for a frame of the wrong length or a codec failure.
    pub fn encode(&mut self, frame: &[i16]) -> Result<Bytes, Error> {
        if frame.len() != FRAME_SAMPLES {
            return Err(Error::Audio {
                what: "opus encode",
                detail: format!("frame of {} samples, want {FRAME_SAMPLES}", frame.len()),
            });
        }
        let len = self
            .inner
            .encode(frame, &mut self.packet)
            .map_err(|e| codec_error("opus encode", &e))?;
        Ok(Bytes::copy_from_slice(&self.packet[..len]))
    }
}

/// An Opus decoder to 48 kHz mono, with packet loss concealment and
/// in-band FEC recovery.
pub struct OpusDecoder {
    inner: Decoder,
    pcm: Vec<i16>,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder").finish_non_exhaustive()
    }
}

impl OpusDecoder {
    /// A decoder for the call's format.
    ///
    /// # Errors
    /// [`Error::Audio`] if libopus cannot create it.
    pub fn new() -> Result<Self, Error> {
        let inner = Decoder::new(SAMPLE_RATE, Channels::Mono)
            .map_err(|e| codec_error("opus decoder", &e))?;
        Ok(Self {
            inner,
            pcm: vec![0; MAX_DECODED_SAMPLES],
        })
    }

    /// Decodes one packet (any Opus frame size up to 120 ms; usually
    /// [`FRAME_SAMPLES`] samples).
    ///
    /// # Errors
    /// [`Error::Audio`] for a packet libopus cannot decode (corrupt, or
    /// empty: use [`conceal`](Self::conceal) for a missing packet).
    pub fn decode(&mut self, packet: &[u8]) -> Result<&[i16], Error> {
        if packet.is_empty() {
            return Err(Error::Audio {
                what: "opus decode",
                detail: "empty packet".to_owned(),
            });
        }
        let samples = self
            .inner
            .decode(packet, &mut self.pcm, false)
            .map_err(|e| codec_error("opus decode", &e))?;
        Ok(&self.pcm[..samples])
    }

    /// Rebuilds the `samples` samples before `next` from `next`'s in-band
    /// FEC (libopus conceals instead when `next` carries none). Must come
    /// before `decode(next)`.
    ///
    /// # Errors
    /// [`Error::Audio`] for an undecodable `next` or a length libopus
    /// cannot produce (a multiple of 2.5 ms up to 120 ms).
    pub fn decode_fec(&mut self, next: &[u8], samples: usize) -> Result<&[i16], Error> {
        let samples = samples.min(MAX_DECODED_SAMPLES);
        let made = self
            .inner
            .decode(next, &mut self.pcm[..samples], true)
            .map_err(|e| codec_error("opus fec", &e))?;
        Ok(&self.pcm[..made])
    }

    /// One frame ([`FRAME_SAMPLES`] samples) of packet loss concealment in
    /// place of a packet that never came: libopus extrapolates from what it
    /// decoded last, fading to silence over longer gaps.
    ///
    /// # Errors
    /// [`Error::Audio`] if libopus fails.
    pub fn conceal(&mut self) -> Result<&[i16], Error> {
        self.conceal_samples(FRAME_SAMPLES)
    }

    /// `samples` samples of concealment (a multiple of 2.5 ms, at most
    /// 120 ms).
    ///
    /// # Errors
    /// [`Error::Audio`] if libopus fails or refuses the length.
    pub fn conceal_samples(&mut self, samples: usize) -> Result<&[i16], Error> {
        // An empty input asks libopus for PLC; the output length sets how
        // much audio it makes up.
        let samples = samples.min(MAX_DECODED_SAMPLES);
        let made = self
            .inner
            .decode(&[], &mut self.pcm[..samples], false)
            .map_err(|e| codec_error("opus conceal", &e))?;
        Ok(&self.pcm[..made])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{AudioSource, ToneSource, dominant_frequency, tone_energy_fraction};

    fn round_trip(freq: f64, frames: usize) -> (Vec<i16>, Vec<usize>) {
        let mut source = ToneSource::new(freq);
        let mut encoder = OpusEncoder::new().expect("encoder");
        let mut decoder = OpusDecoder::new().expect("decoder");
        let mut frame = [0i16; FRAME_SAMPLES];
        let mut decoded = Vec::new();
        let mut sizes = Vec::new();
        for _ in 0..frames {
            assert!(source.read_frame(&mut frame));
            let packet = encoder.encode(&frame).expect("encode");
            sizes.push(packet.len());
            decoded.extend_from_slice(decoder.decode(&packet).expect("decode"));
        }
        (decoded, sizes)
    }

    #[test]
    fn a_tone_keeps_its_frequency_through_opus() {
        for freq in [440.0, 660.0, 1000.0] {
            let (decoded, _) = round_trip(freq, 50);
            assert_eq!(decoded.len(), 50 * FRAME_SAMPLES);
            // Skip the codec's start-up (look-ahead and ramp).
            let tail = &decoded[10 * FRAME_SAMPLES..];
            let found = dominant_frequency(tail, SAMPLE_RATE).expect("not silence");
            assert!((found - freq).abs() < 3.0, "sent {freq} Hz, got {found} Hz");
            let purity = tone_energy_fraction(tail, SAMPLE_RATE, freq);
            assert!(purity > 0.9, "{freq} Hz holds only {purity} of the energy");
        }
    }

    #[test]
    fn packets_fit_the_bitrate() {
        let (_, sizes) = round_trip(440.0, 50);
        let mean = sizes.iter().sum::<usize>() as f64 / sizes.len() as f64;
        // 32 kbps * 20 ms = 80 bytes, constant: CBR.
        assert!((75.0..=85.0).contains(&mean), "mean packet {mean} bytes");
        assert!(
            sizes[5..].iter().all(|&s| s == sizes[5]),
            "constant bitrate means constant sizes: {sizes:?}"
        );
    }

    #[test]
    fn wrong_frame_length_is_refused() {
        let mut encoder = OpusEncoder::new().expect("encoder");
        let err = encoder.encode(&[0; 480]).expect_err("half a frame");
        assert!(matches!(err, Error::Audio { .. }), "{err:?}");
        assert!(!err.is_retryable());
    }

    #[test]
    fn concealment_fills_one_frame_and_fades() {
        let mut source = ToneSource::new(440.0);
        let mut encoder = OpusEncoder::new().expect("encoder");
        let mut decoder = OpusDecoder::new().expect("decoder");
        let mut frame = [0i16; FRAME_SAMPLES];
        for _ in 0..20 {
            source.read_frame(&mut frame);
            let packet = encoder.encode(&frame).expect("encode");
            decoder.decode(&packet).expect("decode");
        }
        let first = decoder.conceal().expect("plc").to_vec();
        assert_eq!(first.len(), FRAME_SAMPLES);
        let found = dominant_frequency(&first, SAMPLE_RATE).expect("PLC continues the tone");
        assert!((found - 440.0).abs() < 20.0, "PLC made {found} Hz");
        let energy = |s: &[i16]| s.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>();
        let mut last = Vec::new();
        for _ in 0..50 {
            last = decoder.conceal().expect("plc").to_vec();
        }
        assert!(
            energy(&last) < energy(&first) / 10.0,
            "a long gap fades out"
        );
        assert!(
            decoder.decode(&[]).is_err(),
            "empty packets go through conceal"
        );
    }

    /// Why the send path starts its stream afresh when the far end can
    /// first hear it: Opus codes each frame against the ones before, so a
    /// decoder that joins midway comes up slowly, and a fresh encoder's
    /// next frame brings it to full level at once.
    #[test]
    fn a_decoder_joining_midway_ramps_up_until_a_fresh_start() {
        let rms = |s: &[i16]| {
            (s.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / s.len() as f64).sqrt()
        };
        // Decodes frames 25.. of a tone; the encoder starts afresh at
        // `fresh`. Returns the ms until a 10 ms block is at 90 % of the
        // level a second in.
        let ramp = |fresh: Option<usize>| {
            let mut source = ToneSource::new(660.0);
            let mut encoder = OpusEncoder::new().expect("encoder");
            let mut decoder = OpusDecoder::new().expect("decoder");
            let mut frame = [0i16; FRAME_SAMPLES];
            let mut heard = Vec::new();
            for i in 0..75 {
                source.read_frame(&mut frame);
                if Some(i) == fresh {
                    encoder = OpusEncoder::new().expect("encoder");
                }
                let packet = encoder.encode(&frame).expect("encode");
                if i >= 25 {
                    heard.extend_from_slice(decoder.decode(&packet).expect("decode"));
                }
            }
            let full = rms(&heard[heard.len() - FRAME_SAMPLES..]);
            10 * heard
                .chunks(FRAME_SAMPLES / 2)
                .position(|block| rms(block) >= 0.9 * full)
                .expect("reaches full level")
        };
        let joined_midway = ramp(None);
        assert!(joined_midway >= 70, "{joined_midway} ms");
        // A fresh start with the decoder's first packet, or one frame
        // later (the far end heard one packet of the old stream).
        assert!(ramp(Some(25)) <= 20, "{} ms", ramp(Some(25)));
        assert!(ramp(Some(26)) <= 50, "{} ms", ramp(Some(26)));
    }
}
