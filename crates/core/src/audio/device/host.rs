//! The cpal side of devices: listing them, finding one, choosing a stream
//! configuration, and what cpal's errors mean to a caller.

use cpal::traits::{DeviceTrait, HostTrait};
use cpal::{ErrorKind, SampleFormat, SupportedBufferSize, SupportedStreamConfigRange};

use super::{DEVICE_SAMPLE_RATE, DeviceId, DeviceInfo, Direction};
use crate::error::Error;

/// ALSA PCMs that are helpers, not devices: rate converters, channel
/// mixers, the sample-discarding `null`, and bridges to sound systems that
/// are not running here. Listing them would only offer broken choices.
const HELPER_PCMS: [&str; 9] = [
    "null",
    "lavrate",
    "samplerate",
    "speexrate",
    "speex",
    "upmix",
    "vdownmix",
    "jack",
    "oss",
];

/// Sample formats our callbacks convert, best first: `i16` is what the
/// call uses, `f32` and `i32` are what devices commonly offer besides.
pub(super) const FORMATS: [SampleFormat; 3] =
    [SampleFormat::I16, SampleFormat::F32, SampleFormat::I32];

/// The microphones there are, the default first.
///
/// # Errors
/// [`Error::Audio`] when the audio host cannot list devices at all.
pub fn input_devices() -> Result<Vec<DeviceInfo>, Error> {
    list(Direction::Input)
}

/// The speakers there are, the default first.
///
/// # Errors
/// [`Error::Audio`] when the audio host cannot list devices at all.
pub fn output_devices() -> Result<Vec<DeviceInfo>, Error> {
    list(Direction::Output)
}

fn list(direction: Direction) -> Result<Vec<DeviceInfo>, Error> {
    let host = cpal::default_host();
    let default = default_device(&host, direction).and_then(|device| describe(&device));
    let devices = match direction {
        Direction::Input => host.input_devices(),
        Direction::Output => host.output_devices(),
    }
    .map_err(|err| Error::Audio {
        what: "device list",
        detail: err.to_string(),
    })?;
    let found = devices.filter_map(|device| describe(&device)).collect();
    Ok(curate(found, default))
}

fn default_device(host: &cpal::Host, direction: Direction) -> Option<cpal::Device> {
    match direction {
        Direction::Input => host.default_input_device(),
        Direction::Output => host.default_output_device(),
    }
}

/// `(id, name)` of a device; `None` if it has no identifier.
fn describe(device: &cpal::Device) -> Option<(String, String)> {
    let id = device.id().ok()?.to_string();
    let name = device
        .description()
        .map(|description| description.name().to_owned())
        .unwrap_or_else(|_| id.clone());
    Some((id, name))
}

/// Turns the host's raw list into what people should choose from: no
/// helper PCMs, no `hw:` device when its converting `plughw:` twin is there
/// (it takes any format; `hw:` only the card's own), no duplicates, and the
/// default first (added if the host did not list it).
fn curate(found: Vec<(String, String)>, default: Option<(String, String)>) -> Vec<DeviceInfo> {
    let pcm = |id: &str| id.split_once(':').map_or(id, |(_, pcm)| pcm).to_owned();
    let pcms: Vec<String> = found.iter().map(|(id, _)| pcm(id)).collect();
    let default_id = default.as_ref().map(|(id, _)| id.clone());
    let mut out: Vec<DeviceInfo> = Vec::with_capacity(found.len() + 1);
    if let Some((id, name)) = default {
        // The host's listing usually describes the default better (ALSA:
        // "Playback/recording through the PulseAudio sound server" rather
        // than "Default Audio Device").
        let name = found
            .iter()
            .find(|(listed, _)| *listed == id)
            .map_or(name, |(_, listed_name)| listed_name.clone());
        out.push(DeviceInfo {
            id: DeviceId(id),
            name,
            is_default: true,
        });
    }
    for (id, name) in found {
        let this = pcm(&id);
        if HELPER_PCMS.contains(&this.as_str()) {
            continue;
        }
        if let Some(rest) = this.strip_prefix("hw:")
            && pcms
                .iter()
                .any(|other| other.strip_prefix("plughw:") == Some(rest))
        {
            continue;
        }
        if out.iter().any(|known| known.id.0 == id) {
            continue;
        }
        let is_default = default_id.as_deref() == Some(id.as_str());
        out.push(DeviceInfo {
            id: DeviceId(id),
            name,
            is_default,
        });
    }
    out
}

/// The device to open: the system default for `None`. Also says whether
/// it is the default (asking for the default's id by name counts).
pub(super) fn find(
    direction: Direction,
    wanted: Option<&DeviceId>,
) -> Result<(cpal::Device, DeviceId, String, bool), Error> {
    let host = cpal::default_host();
    let default = default_device(&host, direction);
    let default_id = default
        .as_ref()
        .and_then(|device| device.id().ok())
        .map(|id| id.to_string());
    let device = match wanted {
        None => default.ok_or(Error::NoAudioDevice { direction })?,
        Some(id) if Some(id.as_str()) == default_id.as_deref() => {
            default.ok_or(Error::NoAudioDevice { direction })?
        }
        Some(id) => {
            let parsed: cpal::DeviceId = id.as_str().parse().map_err(|err: cpal::Error| {
                Error::InvalidConfig(format!("device id {id:?}: {err}"))
            })?;
            host.device_by_id(&parsed)
                .ok_or(Error::NoAudioDevice { direction })?
        }
    };
    let (id, name) = describe(&device).ok_or_else(|| Error::Audio {
        what: "device open",
        detail: "the device has no identifier".to_owned(),
    })?;
    let is_default = default_id.as_deref() == Some(id.as_str());
    Ok((device, DeviceId(id), name, is_default))
}

/// The configurations `device` supports in `direction`.
pub(super) fn supported(
    device: &cpal::Device,
    direction: Direction,
) -> Result<Vec<SupportedStreamConfigRange>, Error> {
    let ranges = match direction {
        Direction::Input => device.supported_input_configs().map(Iterator::collect),
        Direction::Output => device.supported_output_configs().map(Iterator::collect),
    };
    ranges.map_err(|err| open_error(direction, &err))
}

/// The stream configuration chosen for a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Chosen {
    pub(super) channels: u16,
    pub(super) sample_rate: u32,
    pub(super) format: SampleFormat,
    /// The callback size to ask for, clamped into what the device
    /// reported; `None` to use its default.
    pub(super) buffer_frames: Option<u32>,
}

/// Picks the configuration closest to what was asked: the asked rate
/// (48 kHz by default) and channel count (mono by default) in the first
/// format of [`FORMATS`] that has them; else the asked rate with the
/// fewest channels; else the nearest rate the device can do. `None` when
/// the device offers none of our formats.
pub(super) fn choose(
    ranges: &[SupportedStreamConfigRange],
    rate: Option<u32>,
    channels: Option<u16>,
    buffer_frames: Option<u32>,
) -> Option<Chosen> {
    let rate = rate.unwrap_or(DEVICE_SAMPLE_RATE);
    let channels = channels.unwrap_or(1);
    let ours = |range: &&SupportedStreamConfigRange| FORMATS.contains(&range.sample_format());
    let rank = |range: &SupportedStreamConfigRange| {
        FORMATS
            .iter()
            .position(|format| *format == range.sample_format())
            .unwrap_or(FORMATS.len())
    };
    let exact = ranges
        .iter()
        .filter(ours)
        .filter(|range| range.channels() == channels && range.contains_rate(rate))
        .min_by_key(|range| rank(range));
    let same_rate = || {
        ranges
            .iter()
            .filter(ours)
            .filter(|range| range.contains_rate(rate))
            .min_by_key(|range| (range.channels(), rank(range)))
    };
    let nearest = || {
        ranges.iter().filter(ours).min_by_key(|range| {
            let clamped = rate.clamp(range.min_sample_rate(), range.max_sample_rate());
            (clamped.abs_diff(rate), range.channels(), rank(range))
        })
    };
    let range = exact.or_else(same_rate).or_else(nearest)?;
    let buffer_frames = buffer_frames.map(|frames| match range.buffer_size() {
        SupportedBufferSize::Range { min, max } if min <= max => frames.clamp(*min, *max),
        _ => frames,
    });
    Some(Chosen {
        channels: range.channels(),
        sample_rate: rate.clamp(range.min_sample_rate(), range.max_sample_rate()),
        format: range.sample_format(),
        buffer_frames,
    })
}

/// Whether a build failure with a fixed callback size is worth retrying
/// with the device's default size.
pub(super) fn refused_buffer_size(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::UnsupportedConfig | ErrorKind::InvalidInput)
}

/// What a cpal error while opening a device means to a caller:
/// - the device is not there, its host is not running, or it cannot work in
///   this direction (ALSA: `ENOENT`/`ENODEV`, or a default PCM pointing at
///   a card that does not exist): [`Error::NoAudioDevice`];
/// - it is there but cannot be had now (`EBUSY`/`EAGAIN`: another program
///   holds it exclusively, as a raw `hw:` device is; `EPERM`/`EACCES`):
///   [`Error::AudioDeviceBusy`];
/// - anything else: [`Error::Audio`] with cpal's message.
pub(super) fn open_error(direction: Direction, err: &cpal::Error) -> Error {
    match err.kind() {
        ErrorKind::DeviceNotAvailable
        | ErrorKind::HostUnavailable
        | ErrorKind::UnsupportedOperation => Error::NoAudioDevice { direction },
        ErrorKind::DeviceBusy | ErrorKind::PermissionDenied => Error::AudioDeviceBusy {
            direction,
            detail: err.to_string(),
        },
        _ => Error::Audio {
            what: match direction {
                Direction::Input => "microphone open",
                Direction::Output => "speaker open",
            },
            detail: err.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(id: &str, name: &str) -> (String, String) {
        (id.to_owned(), name.to_owned())
    }

    #[test]
    fn listing_drops_helpers_and_raw_twins_and_puts_the_default_first() {
        let found = vec![
            pair("alsa:null", "Discard all samples"),
            pair("alsa:samplerate", "Rate Converter Plugin"),
            pair("alsa:pulse", "PulseAudio Sound Server"),
            pair("alsa:default", "Default"),
            pair("alsa:hw:CARD=0,DEV=0", "HDA Intel, ALC892 Analog"),
            pair("alsa:plughw:CARD=0,DEV=0", "HDA Intel, ALC892 Analog"),
            pair("alsa:hw:CARD=1,DEV=0", "USB Mic"),
        ];
        let listed = curate(found, Some(pair("alsa:default", "Default Audio Device")));
        let ids: Vec<&str> = listed.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "alsa:default",
                "alsa:pulse",
                "alsa:plughw:CARD=0,DEV=0",
                // No plughw twin: the raw device is all there is.
                "alsa:hw:CARD=1,DEV=0",
            ]
        );
        let defaults: Vec<bool> = listed.iter().map(|d| d.is_default).collect();
        assert_eq!(defaults, [true, false, false, false]);
        assert_eq!(listed[0].name, "Default");
    }

    #[test]
    fn listing_adds_a_default_the_host_did_not_list() {
        let listed = curate(
            vec![pair("alsa:pulse", "Pulse")],
            Some(pair("alsa:default", "Default")),
        );
        assert_eq!(listed.len(), 2);
        assert!(listed[0].is_default && listed[0].id.as_str() == "alsa:default");
        assert!(curate(Vec::new(), None).is_empty());
    }

    fn range(
        channels: u16,
        min: u32,
        max: u32,
        format: SampleFormat,
    ) -> SupportedStreamConfigRange {
        SupportedStreamConfigRange::new(
            channels,
            min,
            max,
            SupportedBufferSize::Range { min: 64, max: 4096 },
            format,
        )
    }

    #[test]
    fn config_prefers_48k_mono_i16() {
        let ranges = [
            range(2, 8_000, 192_000, SampleFormat::F32),
            range(1, 8_000, 192_000, SampleFormat::F32),
            range(1, 8_000, 192_000, SampleFormat::I16),
            range(2, 8_000, 192_000, SampleFormat::I16),
        ];
        let chosen = choose(&ranges, None, None, Some(480)).expect("a config");
        assert_eq!(
            chosen,
            Chosen {
                channels: 1,
                sample_rate: 48_000,
                format: SampleFormat::I16,
                buffer_frames: Some(480),
            }
        );
    }

    #[test]
    fn config_falls_back_to_fewest_channels_then_nearest_rate() {
        // A stereo-only 48 kHz card in f32.
        let stereo = [
            range(2, 48_000, 48_000, SampleFormat::F32),
            range(4, 48_000, 48_000, SampleFormat::F32),
        ];
        let chosen = choose(&stereo, None, None, None).expect("a config");
        assert_eq!(
            (chosen.channels, chosen.sample_rate, chosen.format),
            (2, 48_000, SampleFormat::F32)
        );
        assert_eq!(chosen.buffer_frames, None);

        // A 44.1 kHz-only card: the nearest rate, resampled later.
        let cd = [range(2, 44_100, 44_100, SampleFormat::I32)];
        let chosen = choose(&cd, None, None, Some(10_000)).expect("a config");
        assert_eq!((chosen.channels, chosen.sample_rate), (2, 44_100));
        // Clamped into what the device reported.
        assert_eq!(chosen.buffer_frames, Some(4096));

        // Formats we do not convert are not chosen.
        let exotic = [range(1, 48_000, 48_000, SampleFormat::U8)];
        assert_eq!(choose(&exotic, None, None, None), None);
    }

    #[test]
    fn config_honours_an_asked_rate_and_channel_count() {
        let ranges = [
            range(1, 1, 384_000, SampleFormat::I16),
            range(2, 1, 384_000, SampleFormat::I16),
        ];
        let chosen = choose(&ranges, Some(44_100), Some(2), None).expect("a config");
        assert_eq!((chosen.channels, chosen.sample_rate), (2, 44_100));
    }

    #[test]
    fn open_errors_map_to_no_device_busy_or_other() {
        let input = Direction::Input;
        for kind in [
            ErrorKind::DeviceNotAvailable,
            ErrorKind::HostUnavailable,
            ErrorKind::UnsupportedOperation,
        ] {
            let err = open_error(input, &cpal::Error::new(kind));
            assert!(
                matches!(
                    err,
                    Error::NoAudioDevice {
                        direction: Direction::Input
                    }
                ),
                "{kind:?}"
            );
            assert_eq!(err.to_string(), "no microphone found");
            assert!(!err.is_retryable());
        }
        for kind in [ErrorKind::DeviceBusy, ErrorKind::PermissionDenied] {
            let err = open_error(
                Direction::Output,
                &cpal::Error::with_message(kind, "held by another program"),
            );
            assert!(
                matches!(
                    err,
                    Error::AudioDeviceBusy {
                        direction: Direction::Output,
                        ..
                    }
                ),
                "{kind:?}"
            );
            assert_eq!(err.to_string(), "speaker busy: held by another program");
            assert!(err.is_retryable());
        }
        let err = open_error(
            input,
            &cpal::Error::with_message(ErrorKind::BackendError, "I/O error (5)"),
        );
        assert!(matches!(err, Error::Audio { .. }));
        assert!(err.to_string().contains("I/O error (5)"));
    }

    #[test]
    fn only_config_refusals_retry_with_the_default_buffer() {
        assert!(refused_buffer_size(ErrorKind::UnsupportedConfig));
        assert!(refused_buffer_size(ErrorKind::InvalidInput));
        assert!(!refused_buffer_size(ErrorKind::DeviceBusy));
        assert!(!refused_buffer_size(ErrorKind::DeviceNotAvailable));
    }
}
