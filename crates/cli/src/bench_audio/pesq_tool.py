"""Speech material and PESQ scores for `voicemeet-cli bench-audio`.

    python pesq_tool.py speech OUT.wav        speech from espeak-ng, 48 kHz mono 16-bit
    python pesq_tool.py score REF.wav DEG.wav PESQ-WB (ITU-T P.862.2) of DEG against REF

Both WAV files of `score` are 48 kHz mono 16-bit. DEG may be longer and
delayed (it is a recording of a call): it is aligned to REF by
cross-correlation first, then both go to 16 kHz, the widest band PESQ
scores. Needs numpy and the `pesq` package (PyPI), and espeak-ng for
`speech`.
"""

import subprocess
import sys
import tempfile
import wave

import numpy as np

RATE = 48_000
PESQ_RATE = 16_000

# Our own lines: varied vowels, fricatives and plosives, some pauses.
LINES = [
    "Pick up the phone, and a stranger somewhere says hello.",
    "Seven quick foxes jumped over the shiny bridge at dawn.",
    "She sells fresh fish and bread by the sleepy harbour.",
    "Nobody learns where you are, but your voice still travels.",
]


def read_wav(path):
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise SystemExit(f"{path}: want 16-bit mono")
        rate = w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return rate, data.astype(np.float64)


def write_wav(path, rate, samples):
    clipped = np.clip(np.round(samples), -32768, 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(clipped.tobytes())


def resample(samples, rate_in, rate_out):
    """Band-limited resampling in the frequency domain (offline material)."""
    n_out = int(round(len(samples) * rate_out / rate_in))
    spectrum = np.fft.rfft(samples)
    bins = n_out // 2 + 1
    if bins <= len(spectrum):
        spectrum = spectrum[:bins]
    else:
        spectrum = np.concatenate([spectrum, np.zeros(bins - len(spectrum), complex)])
    return np.fft.irfft(spectrum, n_out) * (n_out / len(samples))


def speech(out):
    text = " ".join(LINES)
    with tempfile.NamedTemporaryFile(suffix=".wav") as raw:
        subprocess.run(
            ["espeak-ng", "-v", "en-us", "-s", "150", "-w", raw.name, text],
            check=True,
        )
        rate, samples = read_wav(raw.name)
    samples = resample(samples, rate, RATE)
    # About -20 dBFS RMS of active speech: a normal microphone level.
    active = samples[np.abs(samples) > 100]
    rms = np.sqrt(np.mean(active**2)) if len(active) else 1.0
    samples *= (32768 * 10 ** (-20 / 20)) / rms
    write_wav(out, RATE, samples)


def align(ref, deg):
    """DEG shifted so it lines up with REF, cut (or padded) to REF's length."""
    n = 1
    while n < len(ref) + len(deg):
        n *= 2
    corr = np.fft.irfft(np.fft.rfft(deg, n) * np.conj(np.fft.rfft(ref, n)), n)
    lag = int(np.argmax(corr[: len(deg)]))
    out = deg[lag : lag + len(ref)]
    return np.concatenate([out, np.zeros(len(ref) - len(out))]), lag


def score(ref_path, deg_path):
    from pesq import pesq

    rate_r, ref = read_wav(ref_path)
    rate_d, deg = read_wav(deg_path)
    if rate_r != RATE or rate_d != RATE:
        raise SystemExit("want 48 kHz files")
    ref16 = resample(ref, RATE, PESQ_RATE)
    deg16 = resample(deg, RATE, PESQ_RATE)
    deg16, lag = align(ref16, deg16)
    value = pesq(PESQ_RATE, ref16.astype(np.float32), deg16.astype(np.float32), "wb")
    print(f"{value:.3f} {lag / PESQ_RATE:.3f}")


def main(argv):
    if len(argv) == 3 and argv[1] == "speech":
        speech(argv[2])
    elif len(argv) == 4 and argv[1] == "score":
        score(argv[2], argv[3])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
