//! The microphone: device audio → 10 ms frames of 48 kHz mono `i16`,
//! paced by the input device's clock.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rtrb::Consumer;

use super::meter::LevelMeter;
use super::resample::Converter;
use super::stream::{self, Counters, OpenRequest, Opened, StreamHealth};
use super::supervisor::{self, Events, Handle, Pump, Shared};
use super::{
    DEFAULT_LEVEL_INTERVAL, DEVICE_FRAME_DURATION, DEVICE_FRAME_SAMPLES, DEVICE_SAMPLE_RATE,
    DeviceConfig, DeviceEvent, DeviceEvents, DeviceId, DeviceStats, Direction, StreamInfo,
};
use crate::error::Error;

/// A running microphone. Frames go to the consumer given to
/// [`start`](Self::start) until this is dropped (or [`stop`](Self::stop)ped).
#[derive(Debug)]
pub struct Microphone {
    handle: Handle,
}

impl Microphone {
    /// Opens the configured microphone and hands `on_frame` every 10 ms of
    /// audio ([`DEVICE_FRAME_SAMPLES`] samples of 48 kHz mono) as the device
    /// delivers it.
    ///
    /// `on_frame` runs on the thread that also moves the device's audio, so
    /// it must return quickly and never wait: push into something bounded
    /// that drops when full (e.g. a `try_send`, or
    /// [`FrameSender::push`](crate::audio::FrameSender::push)).
    ///
    /// # Errors
    /// [`Error::NoAudioDevice`] when there is no microphone (or the chosen
    /// one does not exist), [`Error::AudioDeviceBusy`] when it exists but
    /// cannot be opened, [`Error::TimedOut`] when it does not open within
    /// [`OPEN_TIMEOUT`](super::OPEN_TIMEOUT), [`Error::Audio`] for anything
    /// else the audio host refuses.
    pub fn start<F>(config: DeviceConfig, on_frame: F) -> Result<(Self, DeviceEvents), Error>
    where
        F: FnMut(&[i16]) + Send + 'static,
    {
        let interval = config.level_interval.unwrap_or(DEFAULT_LEVEL_INTERVAL);
        let pump = CapturePump::new(on_frame, interval);
        let (handle, events) = supervisor::start(pump, config)?;
        Ok((Self { handle }, events))
    }

    /// Moves to another microphone (`None`: the system default) while
    /// frames keep flowing: the new device is opened first, then the old
    /// one closed. The outcome arrives as [`DeviceEvent::Opened`] or
    /// [`DeviceEvent::SwitchFailed`].
    ///
    /// # Errors
    /// [`Error::Audio`] if the microphone has stopped.
    pub fn switch_to(&self, device: Option<DeviceId>) -> Result<(), Error> {
        self.handle.switch_to(device)
    }

    /// Counters since the start.
    pub fn stats(&self) -> DeviceStats {
        self.handle.stats()
    }

    /// Stops capturing and closes the device (dropping does the same).
    pub fn stop(mut self) {
        self.handle.stop();
    }
}

/// Time since the device went away, to hand out silence on the clock.
#[derive(Debug, Clone, Copy)]
struct Idle {
    since: Instant,
    sent: u64,
}

struct CapturePump<F> {
    on_frame: F,
    ring: Option<Consumer<f32>>,
    device_rate: u32,
    /// `None` while the device runs at 48 kHz.
    converter: Option<Converter>,
    /// Device-rate audio taken from the ring, not yet in a frame.
    staging: Vec<f32>,
    /// One converted frame.
    converted: Vec<f32>,
    frame: Vec<i16>,
    meter: LevelMeter,
    idle: Option<Idle>,
}

impl<F: FnMut(&[i16]) + Send + 'static> CapturePump<F> {
    fn new(on_frame: F, level_interval: Duration) -> Self {
        Self {
            on_frame,
            ring: None,
            device_rate: DEVICE_SAMPLE_RATE,
            converter: None,
            staging: Vec::new(),
            converted: vec![0.0; DEVICE_FRAME_SAMPLES],
            frame: vec![0; DEVICE_FRAME_SAMPLES],
            meter: LevelMeter::new(level_interval),
            idle: None,
        }
    }

    /// Hands out every whole frame in `staging`.
    fn cut_frames(&mut self, shared: &Shared, events: &Events) {
        let mut used = 0;
        loop {
            let available = self.staging.len() - used;
            let produced = match &mut self.converter {
                None if available >= DEVICE_FRAME_SAMPLES => {
                    to_i16(
                        &self.staging[used..used + DEVICE_FRAME_SAMPLES],
                        &mut self.frame,
                    );
                    used += DEVICE_FRAME_SAMPLES;
                    true
                }
                Some(converter) if available >= converter.input_needed() => {
                    match converter.process(&self.staging[used..], &mut self.converted) {
                        Ok((consumed, produced)) => {
                            used += consumed;
                            to_i16(&self.converted[..produced], &mut self.frame);
                            true
                        }
                        Err(err) => {
                            tracing::warn!(%err, "resampling the microphone failed; audio dropped");
                            used = self.staging.len();
                            false
                        }
                    }
                }
                _ => false,
            };
            if !produced {
                break;
            }
            shared.frames.fetch_add(1, Ordering::Relaxed);
            self.deliver(events);
        }
        self.staging.drain(..used);
    }

    fn deliver(&mut self, events: &Events) {
        (self.on_frame)(&self.frame);
        if let Some(reading) = self.meter.add(&self.frame) {
            events.send(DeviceEvent::Level(reading));
        }
    }
}

/// `f32` in [-1, 1) back to `i16` (exact for what came from `i16`).
fn to_i16(samples: &[f32], out: &mut [i16]) {
    for (out, &sample) in out.iter_mut().zip(samples) {
        *out = (sample * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16;
    }
}

impl<F: FnMut(&[i16]) + Send + 'static> Pump for CapturePump<F> {
    const DIRECTION: Direction = Direction::Input;
    type End = Consumer<f32>;

    fn open(
        request: &OpenRequest,
        health: &Arc<StreamHealth>,
        counters: &Arc<Counters>,
    ) -> Result<Opened<Self::End>, Error> {
        stream::open_input(request, health, counters)
    }

    fn attach(&mut self, mut end: Consumer<f32>, info: &StreamInfo) {
        if info.sample_rate == self.device_rate {
            // Same rate: what the old stream left joins the new one's audio
            // seamlessly.
            if let Some(old) = self.ring.as_mut() {
                drain_into(old, &mut self.staging);
            }
        } else {
            self.staging.clear();
            self.device_rate = info.sample_rate;
            self.converter = None;
            if self.device_rate != DEVICE_SAMPLE_RATE {
                match Converter::to_call_rate(self.device_rate) {
                    Ok(converter) => self.converter = Some(converter),
                    Err(err) => {
                        tracing::warn!(%err, "no resampler; the microphone's audio will be off pitch")
                    }
                }
            }
        }
        if let Some(converter) = &self.converter {
            self.converted.resize(converter.output_max(), 0.0);
        }
        // Whatever the new stream captured before this moment is kept.
        drain_into(&mut end, &mut self.staging);
        self.ring = Some(end);
        self.idle = None;
    }

    fn detach(&mut self, now: Instant) {
        self.ring = None;
        self.staging.clear();
        self.idle = Some(Idle {
            since: now,
            sent: 0,
        });
    }

    fn run(
        &mut self,
        now: Instant,
        _health: Option<&StreamHealth>,
        shared: &Shared,
        events: &Events,
    ) {
        if let Some(ring) = self.ring.as_mut() {
            drain_into(ring, &mut self.staging);
            self.cut_frames(shared, events);
            return;
        }
        let Some(mut idle) = self.idle else {
            return;
        };
        let due = now.saturating_duration_since(idle.since).as_micros()
            / DEVICE_FRAME_DURATION.as_micros();
        while u128::from(idle.sent) < due {
            self.frame.fill(0);
            shared.idle_frames.fetch_add(1, Ordering::Relaxed);
            self.deliver(events);
            idle.sent += 1;
        }
        self.idle = Some(idle);
    }

    fn ring_fill(&self) -> Duration {
        let queued = self.ring.as_ref().map_or(0, Consumer::slots) + self.staging.len();
        Duration::from_secs_f64(queued as f64 / f64::from(self.device_rate.max(1)))
    }
}

fn drain_into(ring: &mut Consumer<f32>, staging: &mut Vec<f32>) {
    let available = ring.slots();
    if let Ok(chunk) = ring.read_chunk(available) {
        let (first, second) = chunk.as_slices();
        staging.extend_from_slice(first);
        staging.extend_from_slice(second);
        chunk.commit_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::dominant_frequency;
    use rtrb::RingBuffer;
    use std::sync::Mutex;

    fn info(rate: u32) -> StreamInfo {
        StreamInfo {
            device: DeviceId::new("test:mic"),
            name: "Test".to_owned(),
            sample_rate: rate,
            channels: 1,
            buffer_frames: None,
            period_frames: None,
        }
    }

    fn events() -> (Events, DeviceEvents, Arc<Shared>) {
        let shared = Arc::new(Shared::default());
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        (Events::new(tx, shared.clone()), rx, shared)
    }

    /// Runs a pump over `seconds` of a tone pushed into its ring at
    /// `rate` in uneven chunks, returning the frames it handed out.
    fn capture_tone(rate: u32, seconds: f64) -> (Vec<Vec<i16>>, Vec<DeviceEvent>) {
        let frames = Arc::new(Mutex::new(Vec::new()));
        let sink = frames.clone();
        let mut pump = CapturePump::new(
            move |frame: &[i16]| sink.lock().expect("lock").push(frame.to_vec()),
            Duration::from_millis(50),
        );
        let (mut producer, consumer) = RingBuffer::new(rate as usize);
        pump.attach(consumer, &info(rate));
        let (events, mut rx, shared) = events();
        let total = (f64::from(rate) * seconds) as usize;
        let mut i = 0;
        let now = Instant::now();
        for chunk in [441, 160, 1024, 7].iter().cycle() {
            if i >= total {
                break;
            }
            for _ in 0..(*chunk).min(total - i) {
                let phase = 2.0 * std::f64::consts::PI * 440.0 * i as f64 / f64::from(rate);
                producer.push((0.5 * phase.sin()) as f32).expect("room");
                i += 1;
            }
            pump.run(now, None, &shared, &events);
        }
        let events = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        let frames = frames.lock().expect("lock").clone();
        assert_eq!(shared.frames.load(Ordering::Relaxed), frames.len() as u64);
        (frames, events)
    }

    #[test]
    fn frames_are_10_ms_and_keep_the_tone_at_48_khz() {
        let (frames, events) = capture_tone(48_000, 1.0);
        assert_eq!(frames.len(), 100);
        assert!(frames.iter().all(|f| f.len() == DEVICE_FRAME_SAMPLES));
        let all: Vec<i16> = frames.concat();
        let freq = dominant_frequency(&all, DEVICE_SAMPLE_RATE).expect("a tone");
        assert!((freq - 440.0).abs() < 0.5, "{freq}");
        // A level reading per 50 ms of audio.
        let levels = events
            .iter()
            .filter(|e| matches!(e, DeviceEvent::Level(_)))
            .count();
        assert_eq!(levels, 20);
    }

    #[test]
    fn a_44_1_khz_device_is_resampled() {
        let (frames, _) = capture_tone(44_100, 1.0);
        assert!((99..=100).contains(&frames.len()), "{}", frames.len());
        let all: Vec<i16> = frames[5..].concat();
        let freq = dominant_frequency(&all, DEVICE_SAMPLE_RATE).expect("a tone");
        assert!((freq - 440.0).abs() < 0.5, "{freq}");
    }

    #[test]
    fn without_a_device_silence_keeps_the_clock() {
        let count = Arc::new(Mutex::new(0usize));
        let seen = count.clone();
        let mut pump = CapturePump::new(
            move |frame: &[i16]| {
                assert!(frame.iter().all(|&s| s == 0));
                *seen.lock().expect("lock") += 1;
            },
            Duration::ZERO,
        );
        let (events, _rx, shared) = events();
        let start = Instant::now();
        pump.detach(start);
        pump.run(start + Duration::from_millis(5), None, &shared, &events);
        assert_eq!(*count.lock().expect("lock"), 0);
        pump.run(start + Duration::from_millis(95), None, &shared, &events);
        assert_eq!(*count.lock().expect("lock"), 9);
        pump.run(start + Duration::from_millis(200), None, &shared, &events);
        assert_eq!(*count.lock().expect("lock"), 20);
        assert_eq!(shared.idle_frames.load(Ordering::Relaxed), 20);
        // A new device stops the silence.
        let (_producer, consumer) = RingBuffer::new(16);
        pump.attach(consumer, &info(48_000));
        pump.run(start + Duration::from_millis(400), None, &shared, &events);
        assert_eq!(*count.lock().expect("lock"), 20);
    }
}
