//! The `call` command line.

use std::path::PathBuf;
use std::time::Duration;

use crate::args::{self, Args, Backend, BackendArgs, OptionsError, invalid};

/// `call --help`.
pub const USAGE: &str = "\
voicemeet-cli call: search for a stranger, talk, hang up.

USAGE:
    voicemeet-cli call --url URL --anon-key KEY [OPTIONS]

OPTIONS:
    --url URL            backend URL [env: VOICEMEET_URL]
    --anon-key KEY       backend anon key [env: VOICEMEET_ANON_KEY]
    --tone HZ            send a sine tone of HZ (1-20000) [default: --tone 440]
    --input FILE.wav     send a WAV file (16-bit PCM, mono, 48 kHz), from its
                         start in each call, then silence
    --silence            send silence
    --output FILE.wav    write what is heard (every call of the run, in order)
    --duration SECS      hang up SECS after the first call connects
                         [default: stay until the stranger leaves]
    --skip-after SECS    skip each stranger SECS after connecting, and search on
    -h, --help           print this help

Stdout has one line per event, for scripts:
    state: searching | matched | connecting | in-call | reconnecting | ...
    state: ended (you-left | skipped | stranger-left | stranger-never-answered
                  | connection-lost | nobody-found)
    state: failed (credentials | backend-unreachable | auth | relay
                   | signalling-lost | internal)
    role: offerer | answerer
    audio: first-frame
Progress and errors go to stderr.

Exit status: 0 when the call (or search) ends without an error, including
after Ctrl-C or SIGTERM, which hang up politely first; 1 when it fails
(`state: failed (..)`) or anything else goes wrong; 64 for a bad command line.
";

/// What the call sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A sine tone, Hz.
    Tone(f64),
    /// A WAV file.
    File(PathBuf),
    /// Silence.
    Silence,
}

/// The default source: a 440 Hz tone, so the other side hears something.
pub const DEFAULT_TONE_HZ: f64 = 440.0;
/// Audible and well below the 24 kHz Nyquist limit of 48 kHz audio.
const TONE_RANGE_HZ: std::ops::RangeInclusive<f64> = 1.0..=20_000.0;

/// One `call` run.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Where the backend is.
    pub backend: Backend,
    /// What to send.
    pub input: Input,
    /// Where to write what is heard.
    pub output: Option<PathBuf>,
    /// Hang up this long after the first call connects.
    pub duration: Option<Duration>,
    /// Skip each stranger this long after connecting.
    pub skip_after: Option<Duration>,
}

/// What the command line asked for.
pub type Parsed = crate::args::Parsed<Options>;

impl Options {
    /// Parses the arguments after `call`, reading the backend from `env`
    /// when no flag gives it.
    ///
    /// # Errors
    /// A command line that cannot be used.
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Parsed, OptionsError> {
        let mut args = Args::new(args);
        let mut backend = BackendArgs::default();
        // The source flag given, to refuse a second one.
        let mut input: Option<(String, Input)> = None;
        let mut output = None;
        let mut duration = None;
        let mut skip_after = None;
        while let Some(flag) = args.next_flag() {
            let Some(flag) = backend.take(flag, &mut args)? else {
                continue;
            };
            let name = flag.name.clone();
            let source = match name.as_str() {
                "-h" | "--help" => return Ok(Parsed::Help),
                "--tone" => {
                    let value = args.value(flag)?;
                    let hz = value
                        .parse::<f64>()
                        .ok()
                        .filter(|hz| TONE_RANGE_HZ.contains(hz))
                        .ok_or_else(|| invalid(&name, &value, "a frequency in Hz, 1 to 20000"))?;
                    Some(Input::Tone(hz))
                }
                "--input" => Some(Input::File(PathBuf::from(args.value(flag)?))),
                "--silence" => {
                    args.switch(flag)?;
                    Some(Input::Silence)
                }
                "--output" => {
                    output = Some(PathBuf::from(args.value(flag)?));
                    None
                }
                "--duration" => {
                    duration = Some(args::seconds(&name, &args.value(flag)?)?);
                    None
                }
                "--skip-after" => {
                    skip_after = Some(args::seconds(&name, &args.value(flag)?)?);
                    None
                }
                _ => return Err(OptionsError::UnknownFlag(name)),
            };
            if let Some(source) = source {
                if let Some((earlier, _)) = &input {
                    return Err(OptionsError::Conflict(earlier.clone(), name));
                }
                input = Some((name, source));
            }
        }
        Ok(Parsed::Run(Self {
            backend: backend.resolve(env)?,
            input: input.map_or(Input::Tone(DEFAULT_TONE_HZ), |(_, input)| input),
            output,
            duration,
            skip_after,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(list: &[&str]) -> Result<Parsed, OptionsError> {
        let env = |var: &str| match var {
            args::URL_ENV => Some("http://127.0.0.1:1".to_owned()),
            args::ANON_KEY_ENV => Some("key".to_owned()),
            _ => None,
        };
        Options::parse(list.iter().map(|s| (*s).to_owned()), env)
    }

    fn run(list: &[&str]) -> Options {
        match parse(list) {
            Ok(Parsed::Run(options)) => options,
            other => panic!("expected options for {list:?}, got {other:?}"),
        }
    }

    #[test]
    fn defaults_send_a_tone_forever() {
        let options = run(&[]);
        assert_eq!(options.input, Input::Tone(DEFAULT_TONE_HZ));
        assert_eq!(options.backend.url, "http://127.0.0.1:1");
        assert_eq!(options.output, None);
        assert_eq!(options.duration, None);
        assert_eq!(options.skip_after, None);
    }

    #[test]
    fn every_flag() {
        let options = run(&[
            "--url=http://x",
            "--anon-key",
            "k",
            "--input",
            "in.wav",
            "--output=out.wav",
            "--duration",
            "2.5",
            "--skip-after",
            "1",
        ]);
        assert_eq!(options.backend.url, "http://x");
        assert_eq!(options.backend.anon_key, "k");
        assert_eq!(options.input, Input::File("in.wav".into()));
        assert_eq!(options.output, Some("out.wav".into()));
        assert_eq!(options.duration, Some(Duration::from_millis(2500)));
        assert_eq!(options.skip_after, Some(Duration::from_secs(1)));
        assert_eq!(run(&["--silence"]).input, Input::Silence);
        assert_eq!(run(&["--tone", "660"]).input, Input::Tone(660.0));
    }

    #[test]
    fn bad_command_lines_are_refused() {
        assert_eq!(parse(&["-h"]), Ok(Parsed::Help));
        assert_eq!(
            parse(&["--tone", "440", "--silence"]),
            Err(OptionsError::Conflict("--tone".into(), "--silence".into()))
        );
        assert_eq!(
            parse(&["--loud"]),
            Err(OptionsError::UnknownFlag("--loud".into()))
        );
        for bad in [
            &["--tone", "0"][..],
            &["--tone", "30000"],
            &["--duration", "0"],
            &["--skip-after", "soon"],
        ] {
            assert!(
                matches!(parse(bad), Err(OptionsError::InvalidValue { .. })),
                "{bad:?}"
            );
        }
        let no_env = Options::parse(Vec::new(), |_| None);
        assert!(matches!(no_env, Err(OptionsError::Missing { .. })));
    }
}
