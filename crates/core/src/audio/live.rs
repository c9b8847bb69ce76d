//! [`DeviceAudio`]: a call's audio on the real microphone and speaker, with
//! echo cancellation, noise suppression and gain control between them and
//! the engine. The app builds one, keeps it for its lifetime (to list and
//! switch devices and processing), and hands it to the
//! [`Client`](crate::Client) as its [`AudioIo`].

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::mpsc;

use super::chain::chains;
use super::device::{
    DeviceConfig, DeviceEvent, DeviceEvents, DeviceId, DeviceInfo, DeviceStats, Microphone, Speaker,
};
use super::{AudioIo, CallAudio, ProcessingControl, ProcessingSettings};
use crate::error::Error;

/// What [`DeviceAudio`] opens and how it processes.
#[derive(Debug, Clone, Default)]
pub struct DeviceAudioConfig {
    /// The microphone.
    pub input: DeviceConfig,
    /// The speaker.
    pub output: DeviceConfig,
    /// Echo cancellation, noise suppression, gain control (all on by
    /// default).
    pub processing: ProcessingSettings,
}

/// The devices of the call in progress.
struct Running {
    /// Which call: a call's end stops its own devices, never the next
    /// call's (a skip starts the next call before the last one's end is
    /// handled).
    call: u64,
    microphone: Option<Microphone>,
    speaker: Speaker,
    control: ProcessingControl,
}

impl Running {
    /// Stops both devices off the async runtime (stopping joins threads).
    fn stop(self) {
        tokio::task::spawn_blocking(move || {
            if let Some(microphone) = self.microphone {
                microphone.stop();
            }
            self.speaker.stop();
        });
    }
}

struct Shared {
    config: DeviceAudioConfig,
    running: Option<Running>,
    calls: u64,
}

/// Real devices as a call's [`AudioIo`]. Cheap to clone; clones share the
/// configuration and the call in progress.
#[derive(Clone)]
pub struct DeviceAudio {
    shared: Arc<Mutex<Shared>>,
    events: mpsc::Sender<DeviceEvent>,
}

impl std::fmt::Debug for DeviceAudio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceAudio").finish_non_exhaustive()
    }
}

impl DeviceAudio {
    /// Real devices with `config`; what happens to them during calls (level
    /// readings, fall-backs, failures) goes to `events`, never blocking.
    pub fn new(config: DeviceAudioConfig, events: mpsc::Sender<DeviceEvent>) -> Self {
        Self {
            shared: Arc::new(Mutex::new(Shared {
                config,
                running: None,
                calls: 0,
            })),
            events,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // Holders only swap plain values; a poisoned lock still holds a
        // consistent configuration.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The microphones there are.
    ///
    /// # Errors
    /// [`Error::Audio`] if the audio host cannot list them.
    pub fn input_devices() -> Result<Vec<DeviceInfo>, Error> {
        super::device::input_devices()
    }

    /// The speakers there are.
    ///
    /// # Errors
    /// [`Error::Audio`] if the audio host cannot list them.
    pub fn output_devices() -> Result<Vec<DeviceInfo>, Error> {
        super::device::output_devices()
    }

    /// Uses `device` (`None`: the system default) as the microphone, from
    /// now on and in the call in progress (the outcome arrives as an
    /// `Opened` or `SwitchFailed` event).
    ///
    /// # Errors
    /// [`Error::Audio`] if the running microphone has stopped.
    pub fn set_input(&self, device: Option<DeviceId>) -> Result<(), Error> {
        let mut shared = self.lock();
        shared.config.input.device = device.clone();
        match shared.running.as_ref().and_then(|r| r.microphone.as_ref()) {
            Some(microphone) => microphone.switch_to(device),
            None => Ok(()),
        }
    }

    /// Uses `device` (`None`: the system default) as the speaker, from now
    /// on and in the call in progress.
    ///
    /// # Errors
    /// [`Error::Audio`] if the running speaker has stopped.
    pub fn set_output(&self, device: Option<DeviceId>) -> Result<(), Error> {
        let mut shared = self.lock();
        shared.config.output.device = device.clone();
        match shared.running.as_ref() {
            Some(running) => running.speaker.switch_to(device),
            None => Ok(()),
        }
    }

    /// Switches echo cancellation, noise suppression and gain control, from
    /// now on and in the call in progress.
    pub fn set_processing(&self, settings: ProcessingSettings) {
        let mut shared = self.lock();
        shared.config.processing = settings;
        if let Some(running) = &shared.running {
            running.control.set_settings(settings);
        }
    }

    /// The devices' counters in the call in progress (microphone, speaker).
    pub fn stats(&self) -> Option<(Option<DeviceStats>, DeviceStats)> {
        self.lock().running.as_ref().map(|running| {
            (
                running.microphone.as_ref().map(Microphone::stats),
                running.speaker.stats(),
            )
        })
    }

    /// Passes a device's events on until it stops.
    fn forward(&self, mut events: DeviceEvents) {
        let out = self.events.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                // A slow reader loses level readings, never blocks audio.
                let _ = out.try_send(event);
            }
        });
    }
}

impl AudioIo for DeviceAudio {
    /// Opens the speaker, then the microphone. If the microphone cannot
    /// open (none, or busy), the speaker keeps playing the stranger and the
    /// error says why they cannot hear us.
    fn start(&self, call: CallAudio) -> Result<(), Error> {
        let CallAudio {
            capture,
            playout,
            cancel,
        } = call;
        let config = self.lock().config.clone();
        let (mut capture_chain, mut render_chain, control) =
            chains(capture, playout, config.processing);
        let (speaker, speaker_events) =
            Speaker::start(config.output.clone(), move |out: &mut [i16]| {
                render_chain.fill(out);
            })?;
        self.forward(speaker_events);
        let microphone = Microphone::start(config.input.clone(), move |frame: &[i16]| {
            capture_chain.on_frame(frame);
        });
        let (microphone, result) = match microphone {
            Ok((microphone, events)) => {
                self.forward(events);
                (Some(microphone), Ok(()))
            }
            Err(err) => (None, Err(err)),
        };
        let call = {
            let mut shared = self.lock();
            shared.calls += 1;
            let call = shared.calls;
            let previous = shared.running.replace(Running {
                call,
                microphone,
                speaker,
                control,
            });
            if let Some(previous) = previous {
                previous.stop();
            }
            call
        };
        let shared = Arc::clone(&self.shared);
        tokio::spawn(async move {
            cancel.cancelled().await;
            let mut shared = shared.lock().unwrap_or_else(PoisonError::into_inner);
            if shared.running.as_ref().is_some_and(|r| r.call == call)
                && let Some(running) = shared.running.take()
            {
                running.stop();
            }
        });
        result
    }
}
