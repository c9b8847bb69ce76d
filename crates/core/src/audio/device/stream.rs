//! One cpal stream: opened, owned and dropped by a thread of its own, with
//! real-time callbacks that only move samples through an `rtrb` ring and
//! bump atomics (no locks, no allocation, no logging).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, StreamTrait};
use cpal::{BufferSize, ErrorKind, FromSample, Sample, SampleFormat, SizedSample, StreamConfig};
use rtrb::{Consumer, Producer, RingBuffer};

use super::host::{self, Chosen};
use super::rate::RateEstimator;
use super::{DeviceConfig, DeviceId, Direction, StreamInfo};
use crate::error::Error;

/// Our ring holds this much device audio. The supervisor empties (or tops
/// up) the ring right after every callback, so this only matters when
/// that thread is starved: a quarter second is far past any normal stall,
/// and not so long that stale audio piles up behind it.
const RING_DURATION: Duration = Duration::from_millis(250);
/// The smallest ring, for very low device rates.
const MIN_RING_SAMPLES: usize = 4_096;
/// How long cpal's stream thread waits for the device before rechecking
/// its state (a disconnect that was not signalled shows up then).
const POLL_TIMEOUT: Duration = Duration::from_millis(500);
/// Periods of silence queued before an output stream plays: ALSA asks for
/// its whole buffer at once when it starts (three back-to-back callbacks on
/// the PulseAudio plugin), before the supervisor has topped anything up.
/// The surplus drains within a few callbacks, as the supervisor only tops
/// up below its target.
const START_PERIODS: usize = 3;
/// How often an idle stream-owning thread looks at its stop flag (it is
/// also woken when asked to stop).
const OWNER_WAKE: Duration = Duration::from_millis(200);

/// Per-stream state the callbacks write and the supervisor reads.
#[derive(Debug)]
pub(super) struct StreamHealth {
    /// The supervisor thread, woken after every callback so it moves the
    /// audio at once instead of polling for it.
    supervisor: Thread,
    epoch: Instant,
    callbacks: AtomicU64,
    /// Nanoseconds after `epoch` of the latest callback.
    last_callback_nanos: AtomicU64,
    max_callback_frames: AtomicU32,
    /// The measured device rate in mHz; 0 until there is one.
    rate_millihertz: AtomicU64,
    /// A fatal error's kind ([`fatal_code`]); 0 while healthy.
    fatal: AtomicU8,
    /// Non-fatal errors since the latest callback.
    errors_since_callback: AtomicU64,
    /// An xrun was reported since the latest callback.
    xrun: AtomicBool,
}

impl StreamHealth {
    /// Health for a stream whose callbacks wake `supervisor`.
    fn new(supervisor: Thread) -> Self {
        Self {
            supervisor,
            epoch: Instant::now(),
            callbacks: AtomicU64::new(0),
            last_callback_nanos: AtomicU64::new(0),
            max_callback_frames: AtomicU32::new(0),
            rate_millihertz: AtomicU64::new(0),
            fatal: AtomicU8::new(0),
            errors_since_callback: AtomicU64::new(0),
            xrun: AtomicBool::new(false),
        }
    }

    /// Called from the real-time callback: atomics and arithmetic only.
    fn on_callback(&self, frames: usize, rate: &mut RateEstimator) {
        let now = Instant::now();
        let nanos = now.saturating_duration_since(self.epoch).as_nanos();
        self.last_callback_nanos
            .store(u64::try_from(nanos).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.callbacks.fetch_add(1, Ordering::Release);
        self.errors_since_callback.store(0, Ordering::Relaxed);
        let frames32 = u32::try_from(frames).unwrap_or(u32::MAX);
        self.max_callback_frames
            .fetch_max(frames32, Ordering::Relaxed);
        let xrun = self.xrun.swap(false, Ordering::Relaxed);
        if let Some(hz) = rate.on_callback(now, frames as u64, xrun) {
            self.rate_millihertz
                .store((hz * 1000.0).round() as u64, Ordering::Relaxed);
        }
    }

    /// Called from the real-time callback once the ring is written or
    /// read: wakes the supervisor to move the audio. Never blocks or
    /// allocates (an atomic swap, and a futex wake if the supervisor was
    /// parked).
    fn wake_supervisor(&self) {
        self.supervisor.unpark();
    }

    /// Callbacks so far.
    pub(super) fn callbacks(&self) -> u64 {
        self.callbacks.load(Ordering::Acquire)
    }

    /// How long ago the latest callback was (`None` before the first).
    pub(super) fn since_last_callback(&self, now: Instant) -> Option<Duration> {
        if self.callbacks() == 0 {
            return None;
        }
        let last =
            self.epoch + Duration::from_nanos(self.last_callback_nanos.load(Ordering::Relaxed));
        Some(now.saturating_duration_since(last))
    }

    /// The largest callback so far, in device frames.
    pub(super) fn max_callback_frames(&self) -> u32 {
        self.max_callback_frames.load(Ordering::Relaxed)
    }

    /// The measured device rate, once there is one.
    pub(super) fn measured_rate(&self) -> Option<f64> {
        match self.rate_millihertz.load(Ordering::Relaxed) {
            0 => None,
            millihertz => Some(millihertz as f64 / 1000.0),
        }
    }

    /// Whether the stream reported errors since its latest callback (or
    /// since it started).
    pub(super) fn erring(&self) -> bool {
        self.errors_since_callback.load(Ordering::Relaxed) > 0
    }

    /// The fatal error the stream reported, if any.
    pub(super) fn fatal(&self) -> Option<ErrorKind> {
        fatal_kind(self.fatal.load(Ordering::Acquire))
    }
}

/// Fatal error kinds by code, so a callback can report one in an atomic.
const FATAL_KINDS: [ErrorKind; 4] = [
    ErrorKind::DeviceNotAvailable,
    ErrorKind::StreamInvalidated,
    ErrorKind::HostUnavailable,
    ErrorKind::PermissionDenied,
];

fn fatal_code(kind: ErrorKind) -> Option<u8> {
    FATAL_KINDS
        .iter()
        .position(|k| *k == kind)
        .and_then(|i| u8::try_from(i + 1).ok())
}

fn fatal_kind(code: u8) -> Option<ErrorKind> {
    FATAL_KINDS.get(usize::from(code).checked_sub(1)?).copied()
}

/// Counters shared by every stream of one microphone or speaker.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) xruns: AtomicU64,
    pub(super) ring_overflows: AtomicU64,
    pub(super) ring_underruns: AtomicU64,
    pub(super) lost_samples: AtomicU64,
    pub(super) stream_errors: AtomicU64,
}

/// The error callback: counts xruns and passing errors, flags fatal ones
/// for the supervisor. Real-time safe (the error value itself was made by
/// cpal).
fn on_stream_error(
    health: Arc<StreamHealth>,
    counters: Arc<Counters>,
) -> impl FnMut(cpal::Error) + Send + 'static {
    move |err: cpal::Error| match err.kind() {
        ErrorKind::Xrun => {
            counters.xruns.fetch_add(1, Ordering::Relaxed);
            health.xrun.store(true, Ordering::Relaxed);
        }
        // The stream was moved to a new default device by the host and
        // keeps running.
        ErrorKind::DeviceChanged => {}
        kind => match fatal_code(kind) {
            Some(code) => health.fatal.store(code, Ordering::Release),
            // E.g. the PulseAudio plugin answers `EIO` to every status query
            // after an underrun while the stream goes on: counted, and the
            // stall watchdog decides whether the stream is really gone.
            None => {
                counters.stream_errors.fetch_add(1, Ordering::Relaxed);
                health.errors_since_callback.fetch_add(1, Ordering::Relaxed);
            }
        },
    }
}

/// The input callback: averages the device's channels into mono `f32` and
/// pushes it into the ring; what does not fit is dropped and counted.
fn capture_callback<T>(
    channels: usize,
    mut ring: Producer<f32>,
    health: Arc<StreamHealth>,
    counters: Arc<Counters>,
) -> impl FnMut(&[T], &cpal::InputCallbackInfo) + Send + 'static
where
    T: Sample + Send + 'static,
    f32: FromSample<T>,
{
    let mut rate = RateEstimator::new();
    let scale = 1.0 / channels as f32;
    move |data: &[T], _: &cpal::InputCallbackInfo| {
        let frames = data.len() / channels;
        health.on_callback(frames, &mut rate);
        let room = ring.slots().min(frames);
        if let Ok(chunk) = ring.write_chunk_uninit(room) {
            let mono = data
                .chunks_exact(channels)
                .map(|frame| frame.iter().map(|s| s.to_sample::<f32>()).sum::<f32>() * scale);
            chunk.fill_from_iter(mono);
        }
        if room < frames {
            counters.ring_overflows.fetch_add(1, Ordering::Relaxed);
            counters
                .lost_samples
                .fetch_add((frames - room) as u64, Ordering::Relaxed);
        }
        health.wake_supervisor();
    }
}

/// The output callback: pops mono `f32` from the ring onto every channel;
/// a short ring leaves silence and is counted as an underrun.
fn playback_callback<T>(
    channels: usize,
    mut ring: Consumer<f32>,
    health: Arc<StreamHealth>,
    counters: Arc<Counters>,
) -> impl FnMut(&mut [T], &cpal::OutputCallbackInfo) + Send + 'static
where
    T: Sample + FromSample<f32> + Send + 'static,
{
    let mut rate = RateEstimator::new();
    move |data: &mut [T], _: &cpal::OutputCallbackInfo| {
        let frames = data.len() / channels;
        health.on_callback(frames, &mut rate);
        let available = ring.slots().min(frames);
        let mut filled = 0;
        if let Ok(chunk) = ring.read_chunk(available) {
            let (first, second) = chunk.as_slices();
            for (frame, &value) in data
                .chunks_exact_mut(channels)
                .zip(first.iter().chain(second))
            {
                frame.fill(T::from_sample(value));
                filled += 1;
            }
            chunk.commit_all();
        }
        if filled < frames {
            for sample in &mut data[filled * channels..] {
                *sample = T::EQUILIBRIUM;
            }
            counters.ring_underruns.fetch_add(1, Ordering::Relaxed);
            counters
                .lost_samples
                .fetch_add((frames - filled) as u64, Ordering::Relaxed);
        }
        health.wake_supervisor();
    }
}

fn ring_capacity(rate: u32) -> usize {
    let samples = u128::from(rate) * RING_DURATION.as_millis() / 1000;
    usize::try_from(samples)
        .unwrap_or(usize::MAX)
        .max(MIN_RING_SAMPLES)
}

/// What to open.
#[derive(Debug, Clone)]
pub(super) struct OpenRequest {
    pub(super) direction: Direction,
    pub(super) device: Option<DeviceId>,
    pub(super) config: DeviceConfig,
}

/// A stream that is playing, with our end of its ring.
pub(super) struct Opened<E> {
    stream: cpal::Stream,
    pub(super) end: E,
    pub(super) info: StreamInfo,
    pub(super) is_default: bool,
}

/// Opens the device, picks a configuration and builds the stream, asking
/// for a fixed callback size first and the device's default if refused.
/// `build` makes the stream for one buffer size and returns our ring end.
fn open<E>(
    request: &OpenRequest,
    default_buffer: u32,
    mut build: impl FnMut(
        &cpal::Device,
        StreamConfig,
        SampleFormat,
    ) -> Result<(cpal::Stream, E), cpal::Error>,
) -> Result<Opened<E>, Error> {
    let direction = request.direction;
    let (device, id, name, is_default) = host::find(direction, request.device.as_ref())?;
    let ranges = host::supported(&device, direction)?;
    let config = &request.config;
    let Chosen {
        channels,
        sample_rate,
        format,
        buffer_frames,
    } = host::choose(
        &ranges,
        config.sample_rate,
        config.channels,
        Some(config.buffer_frames.unwrap_or(default_buffer)),
    )
    .ok_or_else(|| Error::Audio {
        what: "device open",
        detail: format!(
            "{name} offers none of the sample formats {:?}",
            host::FORMATS
        ),
    })?;
    let stream_config = |buffer_size| StreamConfig {
        channels,
        sample_rate,
        buffer_size,
    };
    let mut accepted = buffer_frames;
    let built = match buffer_frames {
        Some(frames) => match build(&device, stream_config(BufferSize::Fixed(frames)), format) {
            Err(err) if host::refused_buffer_size(err.kind()) => {
                tracing::debug!(%err, frames, "fixed callback size refused; using the device default");
                accepted = None;
                build(&device, stream_config(BufferSize::Default), format)
            }
            other => other,
        },
        None => build(&device, stream_config(BufferSize::Default), format),
    };
    let (stream, end) = built.map_err(|err| host::open_error(direction, &err))?;
    let period_frames = stream.buffer_size().ok();
    Ok(Opened {
        stream,
        end,
        info: StreamInfo {
            device: id,
            name,
            sample_rate,
            channels,
            buffer_frames: accepted,
            period_frames,
        },
        is_default,
    })
}

/// Opens an input stream; our end is the ring's consumer.
pub(super) fn open_input(
    request: &OpenRequest,
    health: &Arc<StreamHealth>,
    counters: &Arc<Counters>,
) -> Result<Opened<Consumer<f32>>, Error> {
    let opened = open(
        request,
        super::DEFAULT_INPUT_BUFFER_FRAMES,
        |device, config, format| {
            let (producer, consumer) = RingBuffer::new(ring_capacity(config.sample_rate));
            let channels = usize::from(config.channels);
            let stream = match format {
                SampleFormat::I16 => {
                    build_input::<i16>(device, config, channels, producer, health, counters)
                }
                SampleFormat::F32 => {
                    build_input::<f32>(device, config, channels, producer, health, counters)
                }
                SampleFormat::I32 => {
                    build_input::<i32>(device, config, channels, producer, health, counters)
                }
                other => Err(unsupported_format(other)),
            }?;
            Ok((stream, consumer))
        },
    )?;
    opened
        .stream
        .play()
        .map_err(|err| host::open_error(request.direction, &err))?;
    Ok(opened)
}

/// Opens an output stream; our end is the ring's producer, already holding
/// [`START_PERIODS`] periods of silence for the callbacks that fill the
/// device buffer at start-up.
pub(super) fn open_output(
    request: &OpenRequest,
    health: &Arc<StreamHealth>,
    counters: &Arc<Counters>,
) -> Result<Opened<Producer<f32>>, Error> {
    let mut opened = open(
        request,
        super::DEFAULT_OUTPUT_BUFFER_FRAMES,
        |device, config, format| {
            let (producer, consumer) = RingBuffer::new(ring_capacity(config.sample_rate));
            let channels = usize::from(config.channels);
            let stream = match format {
                SampleFormat::I16 => {
                    build_output::<i16>(device, config, channels, consumer, health, counters)
                }
                SampleFormat::F32 => {
                    build_output::<f32>(device, config, channels, consumer, health, counters)
                }
                SampleFormat::I32 => {
                    build_output::<i32>(device, config, channels, consumer, health, counters)
                }
                other => Err(unsupported_format(other)),
            }?;
            Ok((stream, producer))
        },
    )?;
    let period = opened
        .info
        .period_frames
        .map_or(opened.info.sample_rate as usize / 50, |frames| {
            frames as usize
        });
    let silence = (START_PERIODS * period).min(opened.end.slots());
    if let Ok(chunk) = opened.end.write_chunk_uninit(silence) {
        chunk.fill_from_iter(std::iter::repeat(0.0));
    }
    opened
        .stream
        .play()
        .map_err(|err| host::open_error(request.direction, &err))?;
    Ok(opened)
}

fn unsupported_format(format: SampleFormat) -> cpal::Error {
    cpal::Error::with_message(
        ErrorKind::UnsupportedConfig,
        format!("sample format {format} is not converted here"),
    )
}

fn build_input<T>(
    device: &cpal::Device,
    config: StreamConfig,
    channels: usize,
    producer: Producer<f32>,
    health: &Arc<StreamHealth>,
    counters: &Arc<Counters>,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + Send + 'static,
    f32: FromSample<T>,
{
    device.build_input_stream::<T, _, _>(
        config,
        capture_callback::<T>(channels, producer, health.clone(), counters.clone()),
        on_stream_error(health.clone(), counters.clone()),
        Some(POLL_TIMEOUT),
    )
}

fn build_output<T>(
    device: &cpal::Device,
    config: StreamConfig,
    channels: usize,
    consumer: Consumer<f32>,
    health: &Arc<StreamHealth>,
    counters: &Arc<Counters>,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + FromSample<f32> + Send + 'static,
{
    device.build_output_stream::<T, _, _>(
        config,
        playback_callback::<T>(channels, consumer, health.clone(), counters.clone()),
        on_stream_error(health.clone(), counters.clone()),
        Some(POLL_TIMEOUT),
    )
}

/// Opens a stream of one direction: [`open_input`] or [`open_output`].
pub(super) type OpenFn<E> =
    fn(&OpenRequest, &Arc<StreamHealth>, &Arc<Counters>) -> Result<Opened<E>, Error>;

/// How an open ended, sent from the stream's thread to the supervisor.
pub(super) type OpenResult<E> = Result<(E, StreamInfo, bool), Error>;

/// The thread that owns one stream. Dropping this asks it to stop; it
/// then drops the stream (which joins cpal's callback thread) and ends.
#[derive(Debug)]
pub(super) struct StreamThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    pub(super) health: Arc<StreamHealth>,
}

impl StreamThread {
    /// Starts a thread that opens a stream with `open` and keeps it until
    /// stopped. The open's outcome arrives on the returned receiver.
    pub(super) fn spawn<E: Send + 'static>(
        request: OpenRequest,
        counters: Arc<Counters>,
        open: OpenFn<E>,
    ) -> Result<(Self, mpsc::Receiver<OpenResult<E>>), Error> {
        let (tx, rx) = mpsc::sync_channel(1);
        // Spawned by the supervisor, which the callbacks then wake.
        let health = Arc::new(StreamHealth::new(thread::current()));
        let stop = Arc::new(AtomicBool::new(false));
        let name = match request.direction {
            Direction::Input => "vm-mic-stream",
            Direction::Output => "vm-speaker-stream",
        };
        let handle = thread::Builder::new()
            .name(name.to_owned())
            .spawn({
                let health = health.clone();
                let stop = stop.clone();
                move || match open(&request, &health, &counters) {
                    Ok(Opened {
                        stream,
                        end,
                        info,
                        is_default,
                    }) => {
                        if tx.send(Ok((end, info, is_default))).is_err() {
                            // Nobody wants this stream any more.
                            return;
                        }
                        while !stop.load(Ordering::Acquire) {
                            thread::park_timeout(OWNER_WAKE);
                        }
                        drop(stream);
                    }
                    Err(err) => {
                        let _ = tx.send(Err(err));
                    }
                }
            })
            .map_err(|err| Error::Audio {
                what: "thread start",
                detail: err.to_string(),
            })?;
        Ok((
            Self {
                stop,
                handle: Some(handle),
                health,
            },
            rx,
        ))
    }

    /// Whether the thread has ended (its stream is closed).
    pub(super) fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Asks the thread to close its stream and end, without waiting.
    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        if let Some(handle) = &self.handle {
            handle.thread().unpark();
        }
    }

    /// Stops the thread and waits until its stream is closed.
    pub(super) fn join(mut self) {
        self.stop();
        if let Some(handle) = self.handle.take()
            && handle.join().is_err()
        {
            tracing::warn!("an audio stream thread panicked");
        }
    }
}

impl Drop for StreamThread {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fatal_kinds_round_trip_through_their_codes() {
        for kind in FATAL_KINDS {
            let code = fatal_code(kind).expect("a code");
            assert_ne!(code, 0, "0 means healthy");
            assert_eq!(fatal_kind(code), Some(kind));
        }
        assert_eq!(fatal_code(ErrorKind::Xrun), None);
        assert_eq!(fatal_code(ErrorKind::BackendError), None);
        assert_eq!(fatal_kind(0), None);
    }

    #[test]
    fn the_error_callback_sorts_xruns_passing_and_fatal_errors() {
        let health = Arc::new(StreamHealth::new(thread::current()));
        let counters = Arc::new(Counters::default());
        let mut on_error = on_stream_error(health.clone(), counters.clone());
        on_error(cpal::Error::new(ErrorKind::Xrun));
        on_error(cpal::Error::new(ErrorKind::BackendError));
        on_error(cpal::Error::new(ErrorKind::DeviceChanged));
        assert_eq!(counters.xruns.load(Ordering::Relaxed), 1);
        assert_eq!(counters.stream_errors.load(Ordering::Relaxed), 1);
        assert_eq!(health.fatal(), None);
        on_error(cpal::Error::new(ErrorKind::DeviceNotAvailable));
        assert_eq!(health.fatal(), Some(ErrorKind::DeviceNotAvailable));
    }

    #[test]
    fn capture_downmixes_and_counts_overflows() {
        let health = Arc::new(StreamHealth::new(thread::current()));
        let counters = Arc::new(Counters::default());
        let (producer, mut consumer) = RingBuffer::new(3);
        let mut callback = capture_callback::<i16>(2, producer, health.clone(), counters.clone());
        // Four stereo frames into a ring of three.
        let data = [16_384i16, 0, -16_384, -16_384, 8_192, 8_192, 1, 1];
        let info = cpal_input_info();
        callback(&data, &info);
        let got: Vec<f32> = std::iter::from_fn(|| consumer.pop().ok()).collect();
        assert_eq!(got, [0.25, -0.5, 0.25]);
        assert_eq!(counters.ring_overflows.load(Ordering::Relaxed), 1);
        assert_eq!(counters.lost_samples.load(Ordering::Relaxed), 1);
        assert_eq!(health.callbacks(), 1);
        assert_eq!(health.max_callback_frames(), 4);
    }

    #[test]
    fn playback_upmixes_and_fills_underruns_with_silence() {
        let health = Arc::new(StreamHealth::new(thread::current()));
        let counters = Arc::new(Counters::default());
        let (mut producer, consumer) = RingBuffer::new(8);
        producer.push(0.5).expect("room");
        producer.push(-0.25).expect("room");
        let mut callback = playback_callback::<i16>(2, consumer, health.clone(), counters.clone());
        let mut data = [7i16; 6];
        let info = cpal_output_info();
        callback(&mut data, &info);
        assert_eq!(data, [16_384, 16_384, -8_192, -8_192, 0, 0]);
        assert_eq!(counters.ring_underruns.load(Ordering::Relaxed), 1);
        assert_eq!(counters.lost_samples.load(Ordering::Relaxed), 1);
    }

    fn cpal_input_info() -> cpal::InputCallbackInfo {
        let zero = cpal::StreamInstant::new(0, 0);
        cpal::InputCallbackInfo::new(cpal::InputStreamTimestamp {
            callback: zero,
            capture: zero,
        })
    }

    fn cpal_output_info() -> cpal::OutputCallbackInfo {
        let zero = cpal::StreamInstant::new(0, 0);
        cpal::OutputCallbackInfo::new(cpal::OutputStreamTimestamp {
            callback: zero,
            playback: zero,
        })
    }
}
