//! The thread behind a [`Microphone`](super::Microphone) or
//! [`Speaker`](super::Speaker): it moves audio between the current
//! stream's ring and our side (through a [`Pump`]), and owns the device
//! lifecycle.
//!
//! ```text
//!             start ok                 fatal error / stall
//!  (start) ───────────▶ Running(dev) ─────────────────────┐
//!                        ▲   │ switch_to: open the new one │ chosen device:
//!                        │   │ while the old one runs      │   FellBack, open default
//!                        │   ▼                             │ default:
//!                        └─ Opening ◀── retry (backoff) ◀──┘   Failed, retry later
//! ```
//!
//! While no stream runs, the pump keeps the call's clock with the
//! monotonic clock (silence in, audio drained out).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::stream::{Counters, OpenRequest, OpenResult, Opened, StreamHealth, StreamThread};
use super::{
    DeviceConfig, DeviceEvent, DeviceId, DeviceStats, Direction, FIRST_CALLBACK_TIMEOUT,
    OPEN_TIMEOUT, REOPEN_BACKOFF, STALL_TIMEOUT, StreamInfo,
};
use crate::error::Error;

/// The events of a [`Microphone`](super::Microphone) or
/// [`Speaker`](super::Speaker), in order. Usable from async code
/// (`recv().await`) and from threads (`blocking_recv`, `try_recv`).
pub type DeviceEvents = tokio::sync::mpsc::Receiver<DeviceEvent>;

/// Events waiting to be read: 64 is three seconds of level readings at
/// 20 Hz, while state changes are rare. A reader that falls further behind
/// loses events (counted in [`DeviceStats::events_dropped`]); the
/// supervisor never waits for it.
const EVENT_CAPACITY: usize = 64;
/// How often the supervisor looks while no stream runs: the pump keeps
/// the call's 10 ms clock then. A running stream's callbacks wake it after
/// moving audio, so it works at the device's pace (75–150 times a second)
/// and polls only every [`RUNNING_CHECK_INTERVAL`]. Polling every 2 ms
/// instead cost ~500 extra wake-ups a second per device.
const IDLE_PUMP_INTERVAL: Duration = Duration::from_millis(10);
/// How often the supervisor looks on its own while a stream runs, for
/// what no callback announces: a stream whose callbacks stopped (its
/// timeouts are 250 ms and more) or a switch whose new device failed to
/// open. Commands wake it themselves.
const RUNNING_CHECK_INTERVAL: Duration = Duration::from_millis(50);
/// A stream that reports errors and delivers nothing for this long is
/// taken as dead without waiting for [`STALL_TIMEOUT`]: a broken ALSA
/// stream makes cpal's thread spin on errors, and a healthy one that hit a
/// glitch (the PulseAudio plugin reports errors while it reconnects) is
/// back within tens of milliseconds.
const ERRING_STALL_TIMEOUT: Duration = Duration::from_millis(250);
/// `start` waits this long for the supervisor's first open (which has its
/// own [`OPEN_TIMEOUT`]) before giving up.
const START_WAIT: Duration = Duration::from_secs(6);

/// What differs between capture and playback: how to open a stream, and how
/// to move audio through its ring.
pub(super) trait Pump: Send + 'static {
    /// Which side this pumps.
    const DIRECTION: Direction;
    /// Our end of a stream's ring.
    type End: Send + 'static;

    /// Opens a stream (on the stream's own thread).
    fn open(
        request: &OpenRequest,
        health: &Arc<StreamHealth>,
        counters: &Arc<Counters>,
    ) -> Result<Opened<Self::End>, Error>;

    /// A new stream runs; its ring replaces the old one (if any), whose
    /// stream has been asked to stop.
    fn attach(&mut self, end: Self::End, info: &StreamInfo);

    /// The stream is gone; no device until the next `attach`.
    fn detach(&mut self, now: Instant);

    /// Moves whatever audio is due.
    fn run(
        &mut self,
        now: Instant,
        health: Option<&StreamHealth>,
        shared: &Shared,
        events: &Events,
    );

    /// Audio in our ring now.
    fn ring_fill(&self) -> Duration;
}

/// Counters the supervisor publishes for [`Handle::stats`].
#[derive(Debug, Default)]
pub(super) struct Shared {
    stream: Mutex<Option<StreamInfo>>,
    /// Frames moved while a device ran.
    pub(super) frames: AtomicU64,
    /// Frames of silence (or drained audio) while no device ran.
    pub(super) idle_frames: AtomicU64,
    callbacks: AtomicU64,
    max_callback_frames: AtomicU32,
    rate_millihertz: AtomicU64,
    ring_fill_micros: AtomicU64,
    recoveries: AtomicU64,
    events_dropped: AtomicU64,
    wakeups: AtomicU64,
}

impl Shared {
    fn set_stream(&self, stream: Option<StreamInfo>) {
        *self.stream.lock().unwrap_or_else(PoisonError::into_inner) = stream;
    }

    fn stream(&self) -> Option<StreamInfo> {
        self.stream
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The sending side of [`DeviceEvents`]: never blocks, counts what it had
/// to drop.
#[derive(Debug)]
pub(super) struct Events {
    tx: tokio::sync::mpsc::Sender<DeviceEvent>,
    shared: Arc<Shared>,
}

impl Events {
    pub(super) fn new(tx: tokio::sync::mpsc::Sender<DeviceEvent>, shared: Arc<Shared>) -> Self {
        Self { tx, shared }
    }

    pub(super) fn send(&self, event: DeviceEvent) {
        if let Err(tokio::sync::mpsc::error::TrySendError::Full(_)) = self.tx.try_send(event) {
            self.shared.events_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[derive(Debug)]
enum Command {
    Switch(Option<DeviceId>),
}

/// The owner's handle: commands in, statistics out. Dropping it stops the
/// supervisor and closes its stream.
#[derive(Debug)]
pub(super) struct Handle {
    direction: Direction,
    commands: Option<mpsc::Sender<Command>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    counters: Arc<Counters>,
}

/// Opens the configured device and starts the supervisor on it.
pub(super) fn start<P: Pump>(
    pump: P,
    config: DeviceConfig,
) -> Result<(Handle, DeviceEvents), Error> {
    let (event_tx, event_rx) = tokio::sync::mpsc::channel(EVENT_CAPACITY);
    let shared = Arc::new(Shared::default());
    let counters = Arc::new(Counters::default());
    let (command_tx, command_rx) = mpsc::channel();
    let (started_tx, started_rx) = mpsc::sync_channel(1);
    let supervisor = Supervisor {
        pump,
        config,
        active: None,
        opening: None,
        retiring: Vec::new(),
        retry: None,
        failures: 0,
        events: Events::new(event_tx, shared.clone()),
        shared: shared.clone(),
        counters: counters.clone(),
    };
    let name = match P::DIRECTION {
        Direction::Input => "vm-mic",
        Direction::Output => "vm-speaker",
    };
    let thread = thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || supervisor.run(&command_rx, &started_tx))
        .map_err(|err| Error::Audio {
            what: "thread start",
            detail: err.to_string(),
        })?;
    let handle = Handle {
        direction: P::DIRECTION,
        commands: Some(command_tx),
        thread: Some(thread),
        shared,
        counters,
    };
    match started_rx.recv_timeout(START_WAIT) {
        Ok(Ok(())) => Ok((handle, event_rx)),
        Ok(Err(err)) => Err(err),
        Err(_) => Err(Error::TimedOut {
            what: match P::DIRECTION {
                Direction::Input => "opening the microphone",
                Direction::Output => "opening the speaker",
            },
            after: START_WAIT,
        }),
    }
}

impl Handle {
    /// Asks to move to `device` (`None`: the default).
    pub(super) fn switch_to(&self, device: Option<DeviceId>) -> Result<(), Error> {
        let sent = self
            .commands
            .as_ref()
            .is_some_and(|commands| commands.send(Command::Switch(device)).is_ok());
        if !sent {
            return Err(Error::Audio {
                what: "device switch",
                detail: format!("the {} has stopped", self.direction),
            });
        }
        if let Some(thread) = &self.thread {
            thread.thread().unpark();
        }
        Ok(())
    }

    /// A snapshot of the counters.
    pub(super) fn stats(&self) -> DeviceStats {
        let shared = &self.shared;
        let counters = &self.counters;
        let stream = shared.stream();
        let measured_rate_hz = match shared.rate_millihertz.load(Ordering::Relaxed) {
            0 => None,
            millihertz => Some(millihertz as f64 / 1000.0),
        };
        let drift_ppm = match (&stream, measured_rate_hz) {
            (Some(stream), Some(rate)) => Some((rate / f64::from(stream.sample_rate) - 1.0) * 1e6),
            _ => None,
        };
        DeviceStats {
            stream,
            frames: shared.frames.load(Ordering::Relaxed),
            idle_frames: shared.idle_frames.load(Ordering::Relaxed),
            callbacks: shared.callbacks.load(Ordering::Relaxed),
            max_callback_frames: shared.max_callback_frames.load(Ordering::Relaxed),
            xruns: counters.xruns.load(Ordering::Relaxed),
            ring_overflows: counters.ring_overflows.load(Ordering::Relaxed),
            ring_underruns: counters.ring_underruns.load(Ordering::Relaxed),
            lost_samples: counters.lost_samples.load(Ordering::Relaxed),
            stream_errors: counters.stream_errors.load(Ordering::Relaxed),
            ring_fill: Duration::from_micros(shared.ring_fill_micros.load(Ordering::Relaxed)),
            measured_rate_hz,
            drift_ppm,
            recoveries: shared.recoveries.load(Ordering::Relaxed),
            events_dropped: shared.events_dropped.load(Ordering::Relaxed),
            wakeups: shared.wakeups.load(Ordering::Relaxed),
        }
    }

    /// Stops the supervisor and waits until its streams are closed.
    pub(super) fn stop(&mut self) {
        self.commands = None;
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            if thread.join().is_err() {
                tracing::warn!(direction = %self.direction, "the audio supervisor panicked");
            }
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Why a stream is being opened; decides what a failure leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// `switch_to`: a failure leaves the current stream running.
    Switch,
    /// Replacing a failed chosen device with the default.
    Fallback,
    /// Another try at the default after it failed.
    Retry,
}

struct Active {
    thread: StreamThread,
    info: StreamInfo,
    is_default: bool,
    opened_at: Instant,
}

struct Opening<E> {
    thread: StreamThread,
    rx: mpsc::Receiver<OpenResult<E>>,
    device: Option<DeviceId>,
    purpose: Purpose,
    since: Instant,
}

struct Supervisor<P: Pump> {
    pump: P,
    config: DeviceConfig,
    active: Option<Active>,
    opening: Option<Opening<P::End>>,
    /// Streams asked to stop whose threads have not ended yet.
    retiring: Vec<StreamThread>,
    /// When to try the default again.
    retry: Option<Instant>,
    /// Failures since the last successful open (indexes the backoff).
    failures: usize,
    events: Events,
    shared: Arc<Shared>,
    counters: Arc<Counters>,
}

impl<P: Pump> Supervisor<P> {
    fn run(
        mut self,
        commands: &mpsc::Receiver<Command>,
        started: &mpsc::SyncSender<Result<(), Error>>,
    ) {
        let outcome = self.open_first();
        let ok = outcome.is_ok();
        let _ = started.send(outcome);
        if !ok {
            return;
        }
        loop {
            self.shared.wakeups.fetch_add(1, Ordering::Relaxed);
            let now = Instant::now();
            loop {
                match commands.try_recv() {
                    Ok(Command::Switch(device)) => self.begin_open(device, Purpose::Switch, now),
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        self.shut_down();
                        return;
                    }
                }
            }
            self.poll_opening(now);
            self.check_active(now);
            if self.retry.is_some_and(|at| now >= at) && self.opening.is_none() {
                self.retry = None;
                self.begin_open(None, Purpose::Retry, now);
            }
            let health = self.active.as_ref().map(|active| &*active.thread.health);
            self.pump.run(now, health, &self.shared, &self.events);
            self.publish();
            self.retiring.retain(|thread| !thread.is_finished());
            thread::park_timeout(if self.active.is_some() {
                RUNNING_CHECK_INTERVAL
            } else {
                IDLE_PUMP_INTERVAL
            });
        }
    }

    fn request(&self, device: Option<DeviceId>) -> OpenRequest {
        OpenRequest {
            direction: P::DIRECTION,
            device,
            config: self.config.clone(),
        }
    }

    /// The open `start` waits for; its failure is `start`'s error.
    fn open_first(&mut self) -> Result<(), Error> {
        let request = self.request(self.config.device.clone());
        let (thread, rx) = StreamThread::spawn(request, self.counters.clone(), P::open)?;
        match rx.recv_timeout(OPEN_TIMEOUT) {
            Ok(Ok((end, info, is_default))) => {
                self.install(thread, end, info, is_default, Instant::now());
                Ok(())
            }
            Ok(Err(err)) => Err(err),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(Error::TimedOut {
                what: match P::DIRECTION {
                    Direction::Input => "opening the microphone",
                    Direction::Output => "opening the speaker",
                },
                after: OPEN_TIMEOUT,
            }),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(Error::Audio {
                what: "device open",
                detail: "the stream thread ended".to_owned(),
            }),
        }
    }

    /// Starts opening `device` on a new stream thread, abandoning any open
    /// in progress.
    fn begin_open(&mut self, device: Option<DeviceId>, purpose: Purpose, now: Instant) {
        self.opening = None;
        let request = self.request(device.clone());
        match StreamThread::spawn(request, self.counters.clone(), P::open) {
            Ok((thread, rx)) => {
                self.opening = Some(Opening {
                    thread,
                    rx,
                    device,
                    purpose,
                    since: now,
                });
            }
            Err(err) => self.open_failed(device, purpose, &err, now),
        }
    }

    fn poll_opening(&mut self, now: Instant) {
        let Some(opening) = &self.opening else {
            return;
        };
        let outcome = match opening.rx.try_recv() {
            Ok(outcome) => outcome,
            Err(mpsc::TryRecvError::Empty)
                if now.saturating_duration_since(opening.since) < OPEN_TIMEOUT =>
            {
                return;
            }
            Err(mpsc::TryRecvError::Empty) => Err(Error::TimedOut {
                what: "device open",
                after: OPEN_TIMEOUT,
            }),
            Err(mpsc::TryRecvError::Disconnected) => Err(Error::Audio {
                what: "device open",
                detail: "the stream thread ended".to_owned(),
            }),
        };
        let Some(opening) = self.opening.take() else {
            return;
        };
        match outcome {
            Ok((end, info, is_default)) => {
                if opening.purpose != Purpose::Switch {
                    self.shared.recoveries.fetch_add(1, Ordering::Relaxed);
                }
                self.install(opening.thread, end, info, is_default, now);
            }
            Err(err) => self.open_failed(opening.device, opening.purpose, &err, now),
        }
    }

    fn install(
        &mut self,
        thread: StreamThread,
        end: P::End,
        info: StreamInfo,
        is_default: bool,
        now: Instant,
    ) {
        if let Some(old) = self.active.take() {
            old.thread.stop();
            self.retiring.push(old.thread);
        }
        self.pump.attach(end, &info);
        tracing::info!(
            direction = %P::DIRECTION,
            device = %info.device,
            rate = info.sample_rate,
            channels = info.channels,
            period = ?info.period_frames,
            "audio device opened"
        );
        self.shared.set_stream(Some(info.clone()));
        self.events.send(DeviceEvent::Opened {
            direction: P::DIRECTION,
            stream: info.clone(),
        });
        self.active = Some(Active {
            thread,
            info,
            is_default,
            opened_at: now,
        });
        self.retry = None;
        self.failures = 0;
    }

    fn open_failed(
        &mut self,
        device: Option<DeviceId>,
        purpose: Purpose,
        err: &Error,
        now: Instant,
    ) {
        tracing::warn!(direction = %P::DIRECTION, ?device, ?purpose, %err, "could not open an audio device");
        if purpose == Purpose::Switch && self.active.is_some() {
            self.events.send(DeviceEvent::SwitchFailed {
                direction: P::DIRECTION,
                device,
                reason: err.to_string(),
            });
            return;
        }
        self.schedule_retry(err.to_string(), now);
    }

    fn schedule_retry(&mut self, reason: String, now: Instant) {
        let retry_in = REOPEN_BACKOFF[self.failures.min(REOPEN_BACKOFF.len() - 1)];
        self.failures += 1;
        self.retry = Some(now + retry_in);
        self.events.send(DeviceEvent::Failed {
            direction: P::DIRECTION,
            reason,
            retry_in,
        });
    }

    /// Replaces the running stream if it reported a fatal error or stopped
    /// calling back.
    fn check_active(&mut self, now: Instant) {
        let Some(active) = &self.active else {
            return;
        };
        let health = &active.thread.health;
        let reason = if let Some(kind) = health.fatal() {
            kind.to_string()
        } else if active.thread.is_finished() {
            "the stream's thread ended".to_owned()
        } else {
            let silent = health
                .since_last_callback(now)
                .unwrap_or_else(|| now.saturating_duration_since(active.opened_at));
            let started = health.callbacks() > 0;
            if health.erring() && silent > ERRING_STALL_TIMEOUT {
                format!("the device keeps failing (no audio for {silent:?})")
            } else if !started && silent > FIRST_CALLBACK_TIMEOUT {
                format!("no audio from the device within {FIRST_CALLBACK_TIMEOUT:?}")
            } else if started && silent > STALL_TIMEOUT {
                format!("the device stopped for {STALL_TIMEOUT:?} or more")
            } else {
                return;
            }
        };
        let Some(failed) = self.active.take() else {
            return;
        };
        failed.thread.stop();
        self.retiring.push(failed.thread);
        self.pump.detach(now);
        self.shared.set_stream(None);
        tracing::warn!(direction = %P::DIRECTION, device = %failed.info.device, %reason, "audio device failed");
        if self.opening.is_some() {
            // A switch is under way; its stream takes over (or its failure
            // schedules a retry).
            return;
        }
        if failed.is_default {
            self.schedule_retry(reason, now);
        } else {
            self.events.send(DeviceEvent::FellBack {
                direction: P::DIRECTION,
                from: failed.info.device,
                reason,
            });
            self.begin_open(None, Purpose::Fallback, now);
        }
    }

    fn publish(&self) {
        let shared = &self.shared;
        let (callbacks, max_frames, rate) = match &self.active {
            Some(active) => {
                let health = &active.thread.health;
                (
                    health.callbacks(),
                    health.max_callback_frames(),
                    health
                        .measured_rate()
                        .map_or(0, |hz| (hz * 1000.0).round() as u64),
                )
            }
            None => (0, 0, 0),
        };
        shared.callbacks.store(callbacks, Ordering::Relaxed);
        shared
            .max_callback_frames
            .store(max_frames, Ordering::Relaxed);
        shared.rate_millihertz.store(rate, Ordering::Relaxed);
        let fill = u64::try_from(self.pump.ring_fill().as_micros()).unwrap_or(u64::MAX);
        shared.ring_fill_micros.store(fill, Ordering::Relaxed);
    }

    /// Closes every stream, waiting for the ones that were running.
    fn shut_down(mut self) {
        // An open in progress may be stuck in the driver: not waited for.
        self.opening = None;
        if let Some(active) = self.active.take() {
            active.thread.join();
        }
        for thread in self.retiring.drain(..) {
            thread.join();
        }
        self.shared.set_stream(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopen_backoff_grows_then_holds() {
        let waits: Vec<Duration> = (0..7)
            .map(|failures: usize| REOPEN_BACKOFF[failures.min(REOPEN_BACKOFF.len() - 1)])
            .collect();
        assert!(waits.windows(2).all(|pair| pair[0] <= pair[1]));
        assert_eq!(waits[0], Duration::from_millis(100));
        assert_eq!(waits[6], Duration::from_secs(2));
    }
}
