//! Just enough RIFF/WAVE for the call's format: 16-bit PCM, mono, 48 kHz.
//! Anything else is refused rather than converted.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use super::SAMPLE_RATE;
use crate::error::Error;

/// Largest WAV file [`FileSource`](super::FileSource) loads into memory: 64 MiB is
/// about 11 minutes of the call's format, far more than a test clip or a
/// ringtone needs.
pub const MAX_WAV_BYTES: u64 = 64 * 1024 * 1024;

const HEADER_BYTES: u32 = 44;
const FORMAT_PCM: u16 = 1;
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

fn bad(detail: impl Into<String>) -> Error {
    Error::Audio {
        what: "WAV file",
        detail: detail.into(),
    }
}

fn io(err: &std::io::Error) -> Error {
    bad(err.to_string())
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// Reads the samples of a 16-bit PCM mono 48 kHz WAV file.
///
/// # Errors
/// [`Error::Audio`] if the file cannot be read, is larger than
/// [`MAX_WAV_BYTES`], is not RIFF/WAVE, or has another format.
pub fn read_pcm16_mono(path: &Path) -> Result<Vec<i16>, Error> {
    let len = std::fs::metadata(path).map_err(|e| io(&e))?.len();
    if len > MAX_WAV_BYTES {
        return Err(bad(format!("{len} bytes, more than {MAX_WAV_BYTES}")));
    }
    let bytes = std::fs::read(path).map_err(|e| io(&e))?;
    parse_pcm16_mono(&bytes)
}

/// [`read_pcm16_mono`] on bytes in memory.
pub fn parse_pcm16_mono(bytes: &[u8]) -> Result<Vec<i16>, Error> {
    if bytes.get(0..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
        return Err(bad("not a RIFF/WAVE file"));
    }
    let mut at = 12;
    let mut format_ok = false;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let declared = u32_at(bytes, at + 4).ok_or_else(|| bad("truncated chunk header"))?;
        let body_start = at + 8;
        // Streaming writers leave the data size at 0 or u32::MAX: take
        // what is there.
        let body_end = body_start
            .saturating_add(declared as usize)
            .min(bytes.len());
        let body = &bytes[body_start..body_end];
        match id {
            b"fmt " => {
                check_format(body)?;
                format_ok = true;
            }
            b"data" => {
                if !format_ok {
                    return Err(bad("data chunk before fmt chunk"));
                }
                return Ok(body
                    .chunks_exact(2)
                    .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
                    .collect());
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        at = body_end + (body_end - body_start) % 2;
    }
    Err(bad("no data chunk"))
}

fn check_format(fmt: &[u8]) -> Result<(), Error> {
    let field = |at| u16_at(fmt, at).ok_or_else(|| bad("fmt chunk too short"));
    let mut format = field(0)?;
    let channels = field(2)?;
    let rate = u32_at(fmt, 4).ok_or_else(|| bad("fmt chunk too short"))?;
    let bits = field(14)?;
    if format == FORMAT_EXTENSIBLE {
        // WAVEFORMATEXTENSIBLE: the sub-format GUID starts with the format
        // code at offset 24.
        format = field(24)?;
    }
    if format != FORMAT_PCM {
        return Err(bad(format!("format {format}, want PCM ({FORMAT_PCM})")));
    }
    if channels != 1 || rate != SAMPLE_RATE || bits != 16 {
        return Err(bad(format!(
            "{channels} channel(s), {rate} Hz, {bits}-bit; want mono, {SAMPLE_RATE} Hz, 16-bit \
             (convert first, e.g. `sox in.wav -r 48000 -c 1 -b 16 out.wav`)"
        )));
    }
    Ok(())
}

/// The 44-byte canonical header for `samples` mono 16-bit samples.
fn header(samples: u32) -> [u8; HEADER_BYTES as usize] {
    let data_bytes = samples.saturating_mul(2);
    let mut h = [0u8; HEADER_BYTES as usize];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(data_bytes.saturating_add(HEADER_BYTES - 8)).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&FORMAT_PCM.to_le_bytes());
    h[22..24].copy_from_slice(&1u16.to_le_bytes());
    h[24..28].copy_from_slice(&SAMPLE_RATE.to_le_bytes());
    h[28..32].copy_from_slice(&(SAMPLE_RATE * 2).to_le_bytes());
    h[32..34].copy_from_slice(&2u16.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_bytes.to_le_bytes());
    h
}

/// Writes a 16-bit PCM mono 48 kHz WAV file incrementally; the sizes in the
/// header are filled in by [`finish`](Self::finish).
#[derive(Debug)]
pub struct WavWriter {
    out: BufWriter<File>,
    samples: u32,
}

impl WavWriter {
    /// Creates (or truncates) the file and writes a provisional header.
    pub fn create(path: &Path) -> Result<Self, Error> {
        let mut out = BufWriter::new(File::create(path).map_err(|e| io(&e))?);
        out.write_all(&header(0)).map_err(|e| io(&e))?;
        Ok(Self { out, samples: 0 })
    }

    /// Appends samples.
    pub fn write(&mut self, samples: &[i16]) -> Result<(), Error> {
        let mut bytes = Vec::with_capacity(samples.len() * 2);
        for s in samples {
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        self.out.write_all(&bytes).map_err(|e| io(&e))?;
        let added = u32::try_from(samples.len()).unwrap_or(u32::MAX);
        self.samples = self.samples.saturating_add(added);
        Ok(())
    }

    /// Writes the final sizes into the header and flushes.
    pub fn finish(&mut self) -> Result<(), Error> {
        self.out.flush().map_err(|e| io(&e))?;
        let file = self.out.get_mut();
        file.seek(SeekFrom::Start(0)).map_err(|e| io(&e))?;
        file.write_all(&header(self.samples)).map_err(|e| io(&e))?;
        file.seek(SeekFrom::End(0)).map_err(|e| io(&e))?;
        file.flush().map_err(|e| io(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(fmt: &[u8], data: &[u8]) -> Vec<u8> {
        let mut v = b"RIFF\0\0\0\0WAVE".to_vec();
        v.extend_from_slice(b"LIST");
        v.extend_from_slice(&3u32.to_le_bytes());
        v.extend_from_slice(b"abc\0"); // odd chunk + pad byte
        v.extend_from_slice(b"fmt ");
        v.extend_from_slice(&(fmt.len() as u32).to_le_bytes());
        v.extend_from_slice(fmt);
        v.extend_from_slice(b"data");
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(data);
        v
    }

    fn fmt(channels: u16, rate: u32, bits: u16) -> Vec<u8> {
        header(0)[20..36]
            .iter()
            .copied()
            .enumerate()
            .map(|(i, b)| match i {
                2..=3 => channels.to_le_bytes()[i - 2],
                4..=7 => rate.to_le_bytes()[i - 4],
                14..=15 => bits.to_le_bytes()[i - 14],
                _ => b,
            })
            .collect()
    }

    #[test]
    fn reads_pcm_after_other_chunks() {
        let bytes = wav(&fmt(1, 48_000, 16), &[1, 0, 0xff, 0xff, 0, 0x80]);
        assert_eq!(
            parse_pcm16_mono(&bytes).expect("valid"),
            vec![1, -1, i16::MIN]
        );
    }

    #[test]
    fn refuses_other_formats() {
        for (channels, rate, bits) in [(2, 48_000, 16), (1, 44_100, 16), (1, 48_000, 24)] {
            let bytes = wav(&fmt(channels, rate, bits), &[0, 0]);
            assert!(
                parse_pcm16_mono(&bytes).is_err(),
                "{channels} {rate} {bits}"
            );
        }
        assert!(parse_pcm16_mono(b"RIFX\0\0\0\0WAVE").is_err());
        assert!(parse_pcm16_mono(b"RIFF\0\0\0\0WAVE").is_err());
    }

    #[test]
    fn writer_round_trips() {
        let path = std::env::temp_dir().join(format!("vm-wav-{}.wav", std::process::id()));
        let mut writer = WavWriter::create(&path).expect("create");
        writer.write(&[1, 2, 3]).expect("write");
        writer.write(&[-4]).expect("write");
        writer.finish().expect("finish");
        let back = read_pcm16_mono(&path).expect("read back");
        std::fs::remove_file(&path).ok();
        assert_eq!(back, vec![1, 2, 3, -4]);
    }
}
