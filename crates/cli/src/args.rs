//! Command-line pieces every subcommand shares: `--flag value` or
//! `--flag=value` splitting, the usage error, and value parsers.

use std::fmt;
use std::time::Duration;

/// What a subcommand's command line asked for: run with these options,
/// or print the subcommand's usage.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<T> {
    /// Run with the options.
    Run(T),
    /// Print the usage.
    Help,
}

/// A command line that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionsError {
    /// A flag this command does not know.
    UnknownFlag(String),
    /// A flag that needs a value came last.
    MissingValue(String),
    /// A value that does not parse or is out of range.
    InvalidValue {
        /// The flag.
        flag: String,
        /// What was given.
        value: String,
        /// What is expected.
        expected: &'static str,
    },
    /// A required setting was given neither as a flag nor in the
    /// environment.
    Missing {
        /// The flag.
        flag: &'static str,
        /// The environment variable that may stand in for it.
        env: &'static str,
    },
    /// Two flags that exclude each other were both given.
    Conflict(String, String),
    /// A switch that takes no value was given one (`--silence=yes`).
    UnexpectedValue(String),
}

impl fmt::Display for OptionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownFlag(flag) => write!(f, "unknown option `{flag}` (see --help)"),
            Self::MissingValue(flag) => write!(f, "option `{flag}` needs a value"),
            Self::InvalidValue {
                flag,
                value,
                expected,
            } => write!(
                f,
                "invalid value `{value}` for `{flag}`: expected {expected}"
            ),
            Self::Missing { flag, env } => {
                write!(f, "`{flag}` is required (or set {env} in the environment)")
            }
            Self::Conflict(a, b) => write!(f, "`{a}` and `{b}` cannot be used together"),
            Self::UnexpectedValue(flag) => write!(f, "option `{flag}` takes no value"),
        }
    }
}

impl std::error::Error for OptionsError {}

/// An [`OptionsError::InvalidValue`].
pub fn invalid(flag: &str, value: &str, expected: &'static str) -> OptionsError {
    OptionsError::InvalidValue {
        flag: flag.to_owned(),
        value: value.to_owned(),
        expected,
    }
}

/// One argument as a flag: `--flag=value` gives its inline value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// `--flag`.
    pub name: String,
    /// The part after `=`, if any.
    pub inline: Option<String>,
}

/// Walks a command line flag by flag; each flag decides whether it takes
/// a value ([`Args::value`]) or is a switch ([`Args::switch`]).
pub struct Args<I> {
    rest: I,
}

impl<I: Iterator<Item = String>> Args<I> {
    /// The arguments after the subcommand's name.
    pub fn new(args: impl IntoIterator<IntoIter = I>) -> Self {
        Self {
            rest: args.into_iter(),
        }
    }

    /// The next flag, or `None` at the end.
    pub fn next_flag(&mut self) -> Option<Flag> {
        let arg = self.rest.next()?;
        Some(match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => Flag {
                name: name.to_owned(),
                inline: Some(value.to_owned()),
            },
            _ => Flag {
                name: arg,
                inline: None,
            },
        })
    }

    /// The flag's value: inline, or the next argument.
    ///
    /// # Errors
    /// [`OptionsError::MissingValue`] if the flag came last.
    pub fn value(&mut self, flag: Flag) -> Result<String, OptionsError> {
        match flag.inline {
            Some(value) => Ok(value),
            None => self
                .rest
                .next()
                .ok_or(OptionsError::MissingValue(flag.name)),
        }
    }

    /// Checks that a switch came without a value.
    ///
    /// # Errors
    /// [`OptionsError::UnexpectedValue`] for `--switch=value`.
    pub fn switch(&self, flag: Flag) -> Result<(), OptionsError> {
        match flag.inline {
            Some(_) => Err(OptionsError::UnexpectedValue(flag.name)),
            None => Ok(()),
        }
    }
}

/// Longest duration any flag accepts: a day. Anything longer is a typo,
/// and it keeps `Instant + duration` far from overflowing.
const MAX_SECS: f64 = 86_400.0;

/// A duration in seconds, fractions allowed, above zero and at most a day.
///
/// # Errors
/// [`OptionsError::InvalidValue`] otherwise.
pub fn seconds(flag: &str, value: &str) -> Result<Duration, OptionsError> {
    value
        .parse::<f64>()
        .ok()
        .filter(|secs| *secs > 0.0 && *secs <= MAX_SECS)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| invalid(flag, value, "seconds, above 0 and at most 86400"))
}

/// A whole count of at least `min`.
///
/// # Errors
/// [`OptionsError::InvalidValue`] otherwise.
pub fn count(
    flag: &str,
    value: &str,
    min: u64,
    expected: &'static str,
) -> Result<u64, OptionsError> {
    value
        .parse::<u64>()
        .ok()
        .filter(|n| *n >= min)
        .ok_or_else(|| invalid(flag, value, expected))
}

/// The backend to use, from `--url`/`--anon-key` or, failing those, the
/// `VOICEMEET_URL`/`VOICEMEET_ANON_KEY` environment variables that
/// `voicemeet-server` prints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendArgs {
    url: Option<String>,
    anon_key: Option<String>,
}

/// The environment variable standing in for `--url`.
pub const URL_ENV: &str = "VOICEMEET_URL";
/// The environment variable standing in for `--anon-key`.
pub const ANON_KEY_ENV: &str = "VOICEMEET_ANON_KEY";

impl BackendArgs {
    /// Takes `--url` or `--anon-key`; returns the flag back if it is
    /// neither.
    ///
    /// # Errors
    /// A flag without its value.
    pub fn take<I: Iterator<Item = String>>(
        &mut self,
        flag: Flag,
        args: &mut Args<I>,
    ) -> Result<Option<Flag>, OptionsError> {
        match flag.name.as_str() {
            "--url" => self.url = Some(args.value(flag)?),
            "--anon-key" => self.anon_key = Some(args.value(flag)?),
            _ => return Ok(Some(flag)),
        }
        Ok(None)
    }

    /// The URL and key, filling gaps from `env`.
    ///
    /// # Errors
    /// [`OptionsError::Missing`] if either is given nowhere (or empty).
    pub fn resolve(self, env: impl Fn(&str) -> Option<String>) -> Result<Backend, OptionsError> {
        let pick = |given: Option<String>, flag, var| {
            given
                .or_else(|| env(var))
                .filter(|v| !v.is_empty())
                .ok_or(OptionsError::Missing { flag, env: var })
        };
        Ok(Backend {
            url: pick(self.url, "--url", URL_ENV)?,
            anon_key: pick(self.anon_key, "--anon-key", ANON_KEY_ENV)?,
        })
    }
}

/// Where the backend is.
#[derive(Clone, PartialEq, Eq)]
pub struct Backend {
    /// `http://127.0.0.1:<port>` or a hosted project's URL.
    pub url: String,
    /// The public API key.
    pub anon_key: String,
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key is public, but keys stay out of logs by habit.
        f.debug_struct("Backend")
            .field("url", &self.url)
            .field("anon_key", &"{REDACTED}")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Args<std::vec::IntoIter<String>> {
        Args::new(list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_take_values_inline_or_next() {
        let mut a = args(&["--url=http://x", "--anon-key", "k", "--silence", "--tone"]);
        let flag = a.next_flag().expect("flag");
        assert_eq!(a.value(flag), Ok("http://x".to_owned()));
        let flag = a.next_flag().expect("flag");
        assert_eq!(a.value(flag), Ok("k".to_owned()));
        let flag = a.next_flag().expect("flag");
        assert_eq!(a.switch(flag), Ok(()));
        let flag = a.next_flag().expect("flag");
        assert_eq!(
            a.value(flag),
            Err(OptionsError::MissingValue("--tone".into()))
        );
        assert_eq!(a.next_flag(), None);
        let mut a = args(&["--silence=1"]);
        let flag = a.next_flag().expect("flag");
        assert_eq!(
            a.switch(flag),
            Err(OptionsError::UnexpectedValue("--silence".into()))
        );
    }

    #[test]
    fn seconds_and_counts_are_checked() {
        assert_eq!(seconds("--d", "2.5"), Ok(Duration::from_millis(2500)));
        for bad in ["0", "-1", "nan", "inf", "1e9", "x", ""] {
            assert!(seconds("--d", bad).is_err(), "{bad}");
        }
        assert_eq!(count("--n", "3", 1, "n"), Ok(3));
        assert!(count("--n", "0", 1, "n").is_err());
    }

    #[test]
    fn backend_flags_win_over_the_environment() {
        let env = |var: &str| match var {
            URL_ENV => Some("http://env".to_owned()),
            ANON_KEY_ENV => Some("env-key".to_owned()),
            _ => None,
        };
        let mut backend = BackendArgs::default();
        let mut a = args(&["--url", "http://flag"]);
        let flag = a.next_flag().expect("flag");
        assert_eq!(backend.take(flag, &mut a), Ok(None));
        let resolved = backend.resolve(env).expect("complete");
        assert_eq!(resolved.url, "http://flag");
        assert_eq!(resolved.anon_key, "env-key");
        assert!(!format!("{resolved:?}").contains("env-key"));

        assert_eq!(
            BackendArgs::default().resolve(|_| None),
            Err(OptionsError::Missing {
                flag: "--url",
                env: URL_ENV
            })
        );
        assert_eq!(
            BackendArgs::default().resolve(|var| (var == URL_ENV).then(|| "u".to_owned())),
            Err(OptionsError::Missing {
                flag: "--anon-key",
                env: ANON_KEY_ENV
            })
        );
    }
}
