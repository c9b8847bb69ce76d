//! The yardstick: plain libopus at the call's settings, one frame of
//! in-band FEC and the decoder's concealment, nothing else — what a
//! minimal Opus-over-RTP client would sound like under the same loss.

use voicemeet_core::audio::{FRAME_SAMPLES, OPUS_BITRATE, OpusDecoder, OpusEncoder};

use super::impair::{Loss, LossProcess};

/// The FEC plan libopus gets: the true loss rate (a generous baseline: it
/// knows the loss in advance); 0 on a clean network, as our encoder runs
/// there.
fn loss_percent(loss: Loss) -> i32 {
    let rate = match loss {
        Loss::None => 0.0,
        Loss::Random(p) => p,
        Loss::Bursty { rate, .. } => rate,
    };
    (rate * 100.0).round() as i32
}

/// `speech` encoded and decoded frame by frame, packets dropped by `loss`
/// (seeded), a lost frame rebuilt from the next packet's FEC when that one
/// arrived, concealed otherwise.
pub fn plain_libopus(speech: &[i16], loss: Loss, seed: u64) -> anyhow::Result<Vec<i16>> {
    let mut encoder = OpusEncoder::new()?;
    encoder.apply(OPUS_BITRATE, loss_percent(loss))?;
    let mut decoder = OpusDecoder::new()?;
    let mut process = LossProcess::new(loss, seed);
    let mut packets = Vec::new();
    for chunk in speech.chunks(FRAME_SAMPLES) {
        let mut frame = chunk.to_vec();
        frame.resize(FRAME_SAMPLES, 0);
        let packet = encoder.encode(&frame)?;
        packets.push((!process.drop_next()).then_some(packet));
    }
    let mut out = Vec::with_capacity(speech.len());
    for (index, packet) in packets.iter().enumerate() {
        match packet {
            Some(packet) => out.extend_from_slice(decoder.decode(packet)?),
            None => match packets.get(index + 1).and_then(Option::as_ref) {
                Some(next) => out.extend_from_slice(decoder.decode_fec(next, FRAME_SAMPLES)?),
                None => out.extend_from_slice(decoder.conceal()?),
            },
        }
    }
    Ok(out)
}
