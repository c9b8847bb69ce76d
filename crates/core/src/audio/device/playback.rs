//! The speaker: asks a producer for 10 ms frames of 48 kHz mono `i16`
//! whenever the output device has room, so the device's clock sets the
//! pace.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rtrb::Producer;

use super::resample::Converter;
use super::stream::{self, Counters, OpenRequest, Opened, StreamHealth};
use super::supervisor::{self, Events, Handle, Pump, Shared};
use super::{
    DEVICE_FRAME_DURATION, DEVICE_FRAME_SAMPLES, DEVICE_SAMPLE_RATE, DeviceConfig, DeviceEvents,
    DeviceId, DeviceStats, Direction, StreamInfo,
};
use crate::error::Error;

/// Kept in our ring beyond one device callback: the supervisor tops the
/// ring up right after each callback, so this covers a late wake-up of
/// that thread and callbacks of uneven size.
const TARGET_MARGIN: Duration = Duration::from_millis(5);
/// The ring is never targeted lower than this.
const MIN_TARGET: Duration = Duration::from_millis(10);

/// A running speaker. It calls the producer given to
/// [`start`](Self::start) until this is dropped (or [`stop`](Self::stop)ped).
#[derive(Debug)]
pub struct Speaker {
    handle: Handle,
}

impl Speaker {
    /// Opens the configured speaker and calls `produce` for the next 10 ms
    /// to play ([`DEVICE_FRAME_SAMPLES`] samples of 48 kHz mono) whenever
    /// the device has room: about 100 times a second, on the device's
    /// clock. Our ring then holds about one device period plus 5 ms.
    ///
    /// `produce` runs on the thread that also moves audio to the device: it
    /// must return quickly (e.g. [`Playout::fill`](crate::audio::Playout::fill)).
    /// While no device works it is still called every 10 ms (on the
    /// monotonic clock) and its audio dropped, so whatever feeds it keeps
    /// moving.
    ///
    /// # Errors
    /// [`Error::NoAudioDevice`] when there is no speaker (or the chosen one
    /// does not exist), [`Error::AudioDeviceBusy`] when it exists but cannot
    /// be opened, [`Error::TimedOut`] when it does not open within
    /// [`OPEN_TIMEOUT`](super::OPEN_TIMEOUT), [`Error::Audio`] for anything
    /// else the audio host refuses.
    pub fn start<F>(config: DeviceConfig, produce: F) -> Result<(Self, DeviceEvents), Error>
    where
        F: FnMut(&mut [i16]) + Send + 'static,
    {
        let (handle, events) = supervisor::start(PlaybackPump::new(produce), config)?;
        Ok((Self { handle }, events))
    }

    /// Moves to another speaker (`None`: the system default): the new
    /// device is opened first, then the old one closed (what was queued
    /// for it, at most a few tens of ms, is not played). The outcome
    /// arrives as [`DeviceEvent::Opened`](super::DeviceEvent::Opened) or
    /// [`DeviceEvent::SwitchFailed`](super::DeviceEvent::SwitchFailed).
    ///
    /// # Errors
    /// [`Error::Audio`] if the speaker has stopped.
    pub fn switch_to(&self, device: Option<DeviceId>) -> Result<(), Error> {
        self.handle.switch_to(device)
    }

    /// Counters since the start.
    pub fn stats(&self) -> DeviceStats {
        self.handle.stats()
    }

    /// Stops playing and closes the device (dropping does the same).
    pub fn stop(mut self) {
        self.handle.stop();
    }
}

#[derive(Debug, Clone, Copy)]
struct Idle {
    since: Instant,
    asked: u64,
}

struct PlaybackPump<F> {
    produce: F,
    ring: Option<Producer<f32>>,
    device_rate: u32,
    /// Device frames per callback, as far as known.
    period: usize,
    /// `None` while the device runs at 48 kHz.
    converter: Option<Converter>,
    frame: Vec<i16>,
    frame_f32: Vec<f32>,
    converted: Vec<f32>,
    idle: Option<Idle>,
}

impl<F: FnMut(&mut [i16]) + Send + 'static> PlaybackPump<F> {
    fn new(produce: F) -> Self {
        Self {
            produce,
            ring: None,
            device_rate: DEVICE_SAMPLE_RATE,
            period: 0,
            converter: None,
            frame: vec![0; DEVICE_FRAME_SAMPLES],
            frame_f32: vec![0.0; DEVICE_FRAME_SAMPLES],
            converted: Vec::new(),
            idle: None,
        }
    }

    /// The ring level below which another frame is produced, in device
    /// samples.
    fn target(&self, health: Option<&StreamHealth>) -> usize {
        let samples = |duration: Duration| {
            (f64::from(self.device_rate) * duration.as_secs_f64()).round() as usize
        };
        let period = health
            .map_or(0, |h| h.max_callback_frames() as usize)
            .max(self.period);
        (period + samples(TARGET_MARGIN)).max(samples(MIN_TARGET))
    }
}

impl<F: FnMut(&mut [i16]) + Send + 'static> Pump for PlaybackPump<F> {
    const DIRECTION: Direction = Direction::Output;
    type End = Producer<f32>;

    fn open(
        request: &OpenRequest,
        health: &Arc<StreamHealth>,
        counters: &Arc<Counters>,
    ) -> Result<Opened<Self::End>, Error> {
        stream::open_output(request, health, counters)
    }

    fn attach(&mut self, end: Producer<f32>, info: &StreamInfo) {
        if info.sample_rate != self.device_rate
            || (self.converter.is_none() && info.sample_rate != DEVICE_SAMPLE_RATE)
        {
            self.device_rate = info.sample_rate;
            self.converter = None;
            if self.device_rate != DEVICE_SAMPLE_RATE {
                match Converter::from_call_rate(self.device_rate) {
                    Ok(converter) => {
                        self.converted.resize(converter.output_max(), 0.0);
                        self.converter = Some(converter);
                    }
                    Err(err) => {
                        tracing::warn!(%err, "no resampler; the speaker's audio will be off pitch")
                    }
                }
            }
        }
        self.period = info
            .period_frames
            .or(info.buffer_frames)
            .map_or(0, |frames| frames as usize);
        self.ring = Some(end);
        self.idle = None;
    }

    fn detach(&mut self, now: Instant) {
        self.ring = None;
        self.idle = Some(Idle {
            since: now,
            asked: 0,
        });
    }

    fn run(
        &mut self,
        now: Instant,
        health: Option<&StreamHealth>,
        shared: &Shared,
        _events: &Events,
    ) {
        let target = self.target(health);
        let Self {
            produce,
            ring,
            converter,
            frame,
            frame_f32,
            converted,
            idle,
            ..
        } = self;
        if let Some(ring) = ring.as_mut() {
            while ring.buffer().capacity() - ring.slots() < target {
                produce(frame);
                shared.frames.fetch_add(1, Ordering::Relaxed);
                for (out, &sample) in frame_f32.iter_mut().zip(frame.iter()) {
                    *out = f32::from(sample) / 32_768.0;
                }
                let out: &[f32] = match converter.as_mut() {
                    None => frame_f32,
                    Some(converter) => match converter.process(frame_f32, converted) {
                        Ok((_, produced)) => &converted[..produced],
                        Err(err) => {
                            tracing::warn!(%err, "resampling for the speaker failed; a frame dropped");
                            &[]
                        }
                    },
                };
                let (_, rest) = ring.push_partial_slice(out);
                if !rest.is_empty() {
                    break;
                }
            }
            return;
        }
        let Some(state) = idle.as_mut() else {
            return;
        };
        let due = now.saturating_duration_since(state.since).as_micros()
            / DEVICE_FRAME_DURATION.as_micros();
        while u128::from(state.asked) < due {
            produce(frame);
            shared.idle_frames.fetch_add(1, Ordering::Relaxed);
            state.asked += 1;
        }
    }

    fn ring_fill(&self) -> Duration {
        let queued = self
            .ring
            .as_ref()
            .map_or(0, |ring| ring.buffer().capacity() - ring.slots());
        Duration::from_secs_f64(queued as f64 / f64::from(self.device_rate.max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::dominant_frequency;
    use rtrb::RingBuffer;

    fn info(rate: u32, period: u32) -> StreamInfo {
        StreamInfo {
            device: DeviceId::new("test:speaker"),
            name: "Test".to_owned(),
            sample_rate: rate,
            channels: 2,
            buffer_frames: Some(960),
            period_frames: Some(period),
        }
    }

    fn shared() -> (Events, Arc<Shared>) {
        let shared = Arc::new(Shared::default());
        let (tx, _rx) = tokio::sync::mpsc::channel(4);
        (Events::new(tx, shared.clone()), shared)
    }

    fn tone() -> impl FnMut(&mut [i16]) + Send + 'static {
        let mut n = 0usize;
        move |frame: &mut [i16]| {
            for sample in frame.iter_mut() {
                let phase = 2.0 * std::f64::consts::PI * 660.0 * n as f64 / 48_000.0;
                *sample = (16_000.0 * phase.sin()) as i16;
                n += 1;
            }
        }
    }

    #[test]
    fn tops_the_ring_up_to_one_period_plus_margin() {
        let (events, shared) = shared();
        let mut pump = PlaybackPump::new(tone());
        let (producer, mut consumer) = RingBuffer::new(12_000);
        pump.attach(producer, &info(48_000, 640));
        let now = Instant::now();
        pump.run(now, None, &shared, &events);
        // 640 + 240 = 880 samples wanted: two frames (960).
        assert_eq!(consumer.slots(), 960);
        assert_eq!(shared.frames.load(Ordering::Relaxed), 2);
        // The device takes a period; one more frame tops it up.
        for _ in 0..640 {
            consumer.pop().expect("audio");
        }
        // 320 left: two more frames to get back over 880.
        pump.run(now, None, &shared, &events);
        assert_eq!(consumer.slots(), 1_280);
        assert_eq!(shared.frames.load(Ordering::Relaxed), 4);
        let fill = pump.ring_fill().as_secs_f64();
        assert!((fill - 1_280.0 / 48_000.0).abs() < 1e-6, "{fill}");
    }

    #[test]
    fn resamples_for_a_44_1_khz_device() {
        let (events, shared) = shared();
        let mut pump = PlaybackPump::new(tone());
        let (producer, mut consumer) = RingBuffer::new(12_000);
        pump.attach(producer, &info(44_100, 441));
        let mut played = Vec::new();
        let now = Instant::now();
        // A second of device callbacks.
        for _ in 0..100 {
            pump.run(now, None, &shared, &events);
            for _ in 0..441 {
                played.push((consumer.pop().expect("no underrun") * 32_768.0) as i16);
            }
        }
        let frames = shared.frames.load(Ordering::Relaxed);
        assert!((100..=103).contains(&frames), "{frames}");
        let freq = dominant_frequency(&played[4_410..], 44_100).expect("a tone");
        assert!((freq - 660.0).abs() < 0.5, "{freq}");
    }

    #[test]
    fn without_a_device_the_producer_is_drained_on_the_clock() {
        let (events, shared) = shared();
        let mut pump = PlaybackPump::new(tone());
        let start = Instant::now();
        pump.detach(start);
        pump.run(start + Duration::from_millis(250), None, &shared, &events);
        assert_eq!(shared.idle_frames.load(Ordering::Relaxed), 25);
        assert_eq!(shared.frames.load(Ordering::Relaxed), 0);
    }
}
