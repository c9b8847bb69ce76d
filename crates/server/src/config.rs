//! Server configuration: defaults that need no setup, a small hand-written
//! CLI parser (`--flag value` or `--flag=value`), and validation.
//!
//! Secrets can come from flags, but the environment variables
//! [`ENV_JWT_SECRET`] and [`ENV_TURN_SECRET`] are preferred: command lines are
//! visible to every local user through `ps`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use voicemeet_proto::Redacted;

/// Environment variable holding the JWT secret.
pub const ENV_JWT_SECRET: &str = "VOICEMEET_JWT_SECRET";
/// Environment variable holding the TURN REST shared secret.
pub const ENV_TURN_SECRET: &str = "VOICEMEET_TURN_SECRET";

/// Supabase CLI's local API port, so tooling that assumes it keeps working.
pub const DEFAULT_HTTP_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 54_321);
/// The standard TURN port (RFC 8656).
pub const DEFAULT_TURN_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 3478);
/// GoTrue's default `JWT_EXP`.
pub const DEFAULT_ACCESS_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// GoTrue's default `RATE_LIMIT_ANONYMOUS_USERS`: 30 sign-ups per IP per hour.
pub const DEFAULT_SIGNUP_RATE_LIMIT: RateLimit = RateLimit {
    max: 30,
    per: Duration::from_secs(3600),
};
/// One day: longer than any call, so credentials never need refreshing
/// mid-call in practice.
pub const DEFAULT_TURN_CREDENTIAL_TTL: Duration = Duration::from_secs(86_400);
/// Cloudflare's maximum credential TTL (48 h); we refuse longer ones so the
/// local server never accepts what the hosted path would reject.
pub const MAX_TURN_CREDENTIAL_TTL: Duration = Duration::from_secs(48 * 3600);
/// Upper bound for access tokens (one week), so a typo cannot mint
/// near-permanent user tokens.
pub const MAX_ACCESS_TOKEN_TTL: Duration = Duration::from_secs(7 * 86_400);
/// Minimum JWT secret length, as Supabase self-hosting requires.
pub const MIN_JWT_SECRET_LEN: usize = 32;
/// Default TURN realm (part of the long-term credential key).
pub const DEFAULT_TURN_REALM: &str = "voicemeet";

/// Everything [`Server::start`](crate::Server::start) needs. `Default` is the
/// zero-setup local backend; [`Config::ephemeral`] is the same on port 0.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the HTTP API listens. Default [`DEFAULT_HTTP_ADDR`].
    pub http_addr: SocketAddr,
    /// HS256 secret for the anon key and access tokens; generated at start
    /// when `None` (the anon key then changes every run).
    pub jwt_secret: Option<Redacted<String>>,
    /// Lifetime of access tokens (`expires_in`).
    pub access_token_ttl: Duration,
    /// Per-IP limit on anonymous sign-ups; `None` disables it (tests).
    pub signup_rate_limit: Option<RateLimit>,
    /// TURN relay and credential settings.
    pub turn: TurnConfig,
    /// Realtime limits (payload size, message rate, connections).
    pub realtime: crate::realtime::RealtimeLimits,
}

/// At most `max` requests per `per`, refilled continuously (token bucket).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Burst size and requests per window.
    pub max: u32,
    /// The window.
    pub per: Duration,
}

/// TURN settings shared by both modes.
#[derive(Clone, Debug)]
pub struct TurnConfig {
    /// Embedded relay or an external TURN server.
    pub mode: TurnMode,
    /// Realm announced by the embedded relay (coturn's `--realm` in external
    /// mode; clients learn it from the server, so it is not sent to them).
    pub realm: String,
    /// TURN REST shared secret; generated at start when `None` (embedded
    /// mode only: an external server must be given the same secret).
    pub secret: Option<Redacted<String>>,
    /// Default lifetime of minted credentials.
    pub credential_ttl: Duration,
}

/// Where relayed media goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TurnMode {
    /// Run the `turn` crate's relay in-process (UDP, IPv4).
    Embedded {
        /// UDP address the relay listens on; port 0 picks a free port.
        listen: SocketAddr,
        /// IP put in relayed addresses and credential URLs; defaults to the
        /// listen IP (required when listening on 0.0.0.0).
        advertised_ip: Option<IpAddr>,
        /// Port put in credential URLs; defaults to the port the relay got.
        /// Differs behind a port forward (or a network impairment stage in
        /// front of the relay, as the audio benchmark puts there).
        advertised_port: Option<u16>,
    },
    /// No embedded relay: mint credentials for another TURN server (e.g.
    /// coturn with `--use-auth-secret --static-auth-secret=<same secret>`).
    External {
        /// `turn:`/`turns:` URLs returned to clients, as given.
        urls: Vec<String>,
    },
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http_addr: DEFAULT_HTTP_ADDR,
            jwt_secret: None,
            access_token_ttl: DEFAULT_ACCESS_TOKEN_TTL,
            signup_rate_limit: Some(DEFAULT_SIGNUP_RATE_LIMIT),
            turn: TurnConfig {
                mode: TurnMode::Embedded {
                    listen: DEFAULT_TURN_ADDR,
                    advertised_ip: None,
                    advertised_port: None,
                },
                realm: DEFAULT_TURN_REALM.to_owned(),
                secret: None,
                credential_ttl: DEFAULT_TURN_CREDENTIAL_TTL,
            },
            realtime: crate::realtime::RealtimeLimits::default(),
        }
    }
}

/// A configuration or command line that cannot be used. Never retryable: fix
/// the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A flag this program does not know.
    #[error("unknown option `{0}` (see --help)")]
    UnknownFlag(String),
    /// A flag that needs a value came last.
    #[error("option `{0}` needs a value")]
    MissingValue(String),
    /// A flag's value does not parse or is out of range.
    #[error("invalid value `{value}` for `{flag}`: {reason}")]
    InvalidValue {
        /// The flag.
        flag: String,
        /// What was given (never a secret).
        value: String,
        /// What is expected.
        reason: String,
    },
    /// The JWT secret is shorter than [`MIN_JWT_SECRET_LEN`].
    #[error("the JWT secret must be at least {MIN_JWT_SECRET_LEN} characters")]
    JwtSecretTooShort,
    /// The TURN shared secret is empty.
    #[error("the TURN secret must not be empty")]
    EmptyTurnSecret,
    /// External TURN mode without a shared secret: the minted credentials
    /// could never match the external server's.
    #[error("external TURN needs the shared secret ({ENV_TURN_SECRET} or --turn-secret)")]
    ExternalTurnNeedsSecret,
    /// External TURN mode without URLs.
    #[error("external TURN needs at least one URL")]
    ExternalTurnNeedsUrl,
    /// An external URL that is not `turn:` or `turns:`.
    #[error("TURN URL `{0}` must start with `turn:` or `turns:`")]
    BadTurnUrl(String),
    /// The embedded relay only does IPv4 (like Cloudflare's relays).
    #[error("the embedded TURN relay is IPv4 only; got {0}")]
    RelayNotIpv4(SocketAddr),
    /// Listening on 0.0.0.0 without saying which address clients should use.
    #[error("the TURN relay listens on an unspecified address; set --turn-advertise")]
    MissingAdvertisedIp,
    /// An advertised IP that is unspecified or not IPv4.
    #[error("the advertised TURN address {0} must be a specific IPv4 address")]
    BadAdvertisedIp(IpAddr),
    /// The realm is empty.
    #[error("the TURN realm must not be empty")]
    EmptyRealm,
    /// A duration outside its allowed range.
    #[error("{what} must be between {min} and {max} seconds")]
    DurationOutOfRange {
        /// Which setting.
        what: &'static str,
        /// Smallest allowed, seconds.
        min: u64,
        /// Largest allowed, seconds.
        max: u64,
    },
    /// A rate limit of zero requests or over a zero window.
    #[error("a rate limit needs a positive count and window")]
    BadRateLimit,
}

/// What the command line asked for.
#[derive(Debug)]
pub enum CliCommand {
    /// Start the server with this configuration.
    Run(Box<Config>),
    /// Print [`USAGE`] and exit.
    Help,
    /// Print the version and exit.
    Version,
}

/// `--help` text.
pub const USAGE: &str = "\
voicemeet-server: VoiceMeet's local backend (Supabase-compatible auth and
functions, embedded TURN relay). No configuration needed.

USAGE:
    voicemeet-server [OPTIONS]

OPTIONS:
    --listen ADDR               HTTP address [default: 127.0.0.1:54321]
    --jwt-secret SECRET         HS256 secret, >= 32 chars [env: VOICEMEET_JWT_SECRET]
                                [default: random per run, so the anon key changes]
    --access-token-ttl SECS     access token lifetime [default: 3600]
    --signup-rate-limit N|off   anonymous sign-ups per IP per hour [default: 30]
    --turn-listen ADDR          embedded relay UDP address [default: 127.0.0.1:3478]
    --turn-advertise IP         relay IP given to clients [default: listen IP]
    --turn-advertise-port PORT  relay port in credential URLs [default: the relay's]
    --turn-realm REALM          TURN realm [default: voicemeet]
    --turn-secret SECRET        TURN REST shared secret [env: VOICEMEET_TURN_SECRET]
                                [default: random per run]
    --turn-credential-ttl SECS  TURN credential lifetime, <= 172800 [default: 86400]
    --turn-external-url URL     use an external TURN server (e.g. coturn sharing the
                                secret) instead of the embedded relay; repeatable
    -h, --help                  print this help
    -V, --version               print the version

Prefer the environment variables for secrets: command lines are visible in `ps`.
";

impl Config {
    /// The default configuration with every port set to 0, for tests and
    /// multi-instance runs: read the bound addresses from
    /// [`RunningServer`](crate::RunningServer).
    pub fn ephemeral() -> Self {
        let mut config = Self {
            http_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            ..Self::default()
        };
        config.turn.mode = TurnMode::Embedded {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            advertised_ip: None,
            advertised_port: None,
        };
        config
    }

    /// Parses command-line arguments (without the program name), reading
    /// secrets' environment variables through `env` when no flag gives them.
    pub fn from_args<I, E>(args: I, env: E) -> Result<CliCommand, ConfigError>
    where
        I: IntoIterator<Item = String>,
        E: Fn(&str) -> Option<String>,
    {
        let mut config = Self::default();
        let mut turn_listen = DEFAULT_TURN_ADDR;
        let mut advertised_ip = None;
        let mut advertised_port = None;
        let mut external_urls = Vec::new();
        let mut args = args.into_iter();

        while let Some(arg) = args.next() {
            let (flag, inline_value) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => {
                    (flag.to_owned(), Some(value.to_owned()))
                }
                _ => (arg, None),
            };
            let mut value = || -> Result<String, ConfigError> {
                inline_value
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| ConfigError::MissingValue(flag.clone()))
            };
            match flag.as_str() {
                "-h" | "--help" => return Ok(CliCommand::Help),
                "-V" | "--version" => return Ok(CliCommand::Version),
                "--listen" => config.http_addr = parse_value(&flag, &value()?, "an IP:port")?,
                "--jwt-secret" => config.jwt_secret = Some(Redacted::new(value()?)),
                "--access-token-ttl" => config.access_token_ttl = parse_secs(&flag, &value()?)?,
                "--signup-rate-limit" => {
                    let v = value()?;
                    config.signup_rate_limit = if v == "off" {
                        None
                    } else {
                        Some(RateLimit {
                            max: parse_value(&flag, &v, "a positive count or `off`")?,
                            per: Duration::from_secs(3600),
                        })
                    };
                }
                "--turn-listen" => turn_listen = parse_value(&flag, &value()?, "an IP:port")?,
                "--turn-advertise" => {
                    advertised_ip = Some(parse_value(&flag, &value()?, "an IPv4 address")?);
                }
                "--turn-advertise-port" => {
                    advertised_port = Some(parse_value(&flag, &value()?, "a port")?);
                }
                "--turn-realm" => config.turn.realm = value()?,
                "--turn-secret" => config.turn.secret = Some(Redacted::new(value()?)),
                "--turn-credential-ttl" => {
                    config.turn.credential_ttl = parse_secs(&flag, &value()?)?;
                }
                "--turn-external-url" => external_urls.push(value()?),
                _ => return Err(ConfigError::UnknownFlag(flag)),
            }
        }

        if config.jwt_secret.is_none() {
            config.jwt_secret = env(ENV_JWT_SECRET).map(Redacted::new);
        }
        if config.turn.secret.is_none() {
            config.turn.secret = env(ENV_TURN_SECRET).map(Redacted::new);
        }
        config.turn.mode = if external_urls.is_empty() {
            TurnMode::Embedded {
                listen: turn_listen,
                advertised_ip,
                advertised_port,
            }
        } else {
            TurnMode::External {
                urls: external_urls,
            }
        };
        config.validate()?;
        Ok(CliCommand::Run(Box::new(config)))
    }

    /// Checks ranges and combinations. [`Server::start`](crate::Server::start)
    /// calls it too, so hand-built configs are checked the same way.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(secret) = &self.jwt_secret
            && secret.expose().len() < MIN_JWT_SECRET_LEN
        {
            return Err(ConfigError::JwtSecretTooShort);
        }
        check_duration(
            "the access token TTL",
            self.access_token_ttl,
            MAX_ACCESS_TOKEN_TTL,
        )?;
        if let Some(limit) = self.signup_rate_limit
            && (limit.max == 0 || limit.per.is_zero())
        {
            return Err(ConfigError::BadRateLimit);
        }

        let turn = &self.turn;
        if turn.realm.is_empty() {
            return Err(ConfigError::EmptyRealm);
        }
        if turn.secret.as_ref().is_some_and(|s| s.expose().is_empty()) {
            return Err(ConfigError::EmptyTurnSecret);
        }
        check_duration(
            "the TURN credential TTL",
            turn.credential_ttl,
            MAX_TURN_CREDENTIAL_TTL,
        )?;
        match &turn.mode {
            TurnMode::Embedded {
                listen,
                advertised_ip,
                advertised_port,
            } => {
                if *advertised_port == Some(0) {
                    return Err(ConfigError::InvalidValue {
                        flag: "--turn-advertise-port".to_owned(),
                        value: "0".to_owned(),
                        reason: "a port clients can reach is never 0".to_owned(),
                    });
                }
                if !listen.is_ipv4() {
                    return Err(ConfigError::RelayNotIpv4(*listen));
                }
                match advertised_ip {
                    Some(ip) if !ip.is_ipv4() || ip.is_unspecified() => {
                        return Err(ConfigError::BadAdvertisedIp(*ip));
                    }
                    None if listen.ip().is_unspecified() => {
                        return Err(ConfigError::MissingAdvertisedIp);
                    }
                    _ => {}
                }
            }
            TurnMode::External { urls } => {
                if turn.secret.is_none() {
                    return Err(ConfigError::ExternalTurnNeedsSecret);
                }
                if urls.is_empty() {
                    return Err(ConfigError::ExternalTurnNeedsUrl);
                }
                if let Some(bad) = urls
                    .iter()
                    .find(|u| !(u.starts_with("turn:") || u.starts_with("turns:")))
                {
                    return Err(ConfigError::BadTurnUrl(bad.clone()));
                }
            }
        }
        Ok(())
    }
}

fn parse_value<T: std::str::FromStr>(
    flag: &str,
    value: &str,
    expected: &str,
) -> Result<T, ConfigError> {
    value.parse().map_err(|_| ConfigError::InvalidValue {
        flag: flag.to_owned(),
        value: value.to_owned(),
        reason: format!("expected {expected}"),
    })
}

fn parse_secs(flag: &str, value: &str) -> Result<Duration, ConfigError> {
    parse_value(flag, value, "whole seconds").map(Duration::from_secs)
}

fn check_duration(what: &'static str, value: Duration, max: Duration) -> Result<(), ConfigError> {
    if value < Duration::from_secs(1) || value > max {
        return Err(ConfigError::DurationOutOfRange {
            what,
            min: 1,
            max: max.as_secs(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<CliCommand, ConfigError> {
        Config::from_args(args.iter().map(|s| s.to_string()), |_| None)
    }

    fn run(args: &[&str]) -> Config {
        match parse(args) {
            Ok(CliCommand::Run(config)) => *config,
            other => panic!("expected a config, got {other:?}"),
        }
    }

    #[test]
    fn no_flags_give_the_documented_defaults() {
        let config = run(&[]);
        assert_eq!(config.http_addr, DEFAULT_HTTP_ADDR);
        assert_eq!(config.http_addr.to_string(), "127.0.0.1:54321");
        assert!(config.jwt_secret.is_none());
        assert_eq!(config.access_token_ttl, Duration::from_secs(3600));
        assert_eq!(config.signup_rate_limit, Some(DEFAULT_SIGNUP_RATE_LIMIT));
        assert_eq!(
            config.turn.mode,
            TurnMode::Embedded {
                listen: "127.0.0.1:3478".parse().expect("literal"),
                advertised_ip: None,
                advertised_port: None,
            }
        );
        assert_eq!(config.turn.credential_ttl, Duration::from_secs(86_400));
        assert!(config.turn.secret.is_none());
    }

    #[test]
    fn every_flag_is_read_in_both_forms() {
        let secret = "s".repeat(40);
        let config = run(&[
            "--listen=0.0.0.0:8080",
            "--jwt-secret",
            &secret,
            "--access-token-ttl",
            "60",
            "--signup-rate-limit=1000",
            "--turn-listen",
            "0.0.0.0:0",
            "--turn-advertise=192.0.2.7",
            "--turn-advertise-port=3479",
            "--turn-realm",
            "example.test",
            "--turn-secret=abc",
            "--turn-credential-ttl",
            "600",
        ]);
        assert_eq!(config.http_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(
            config.jwt_secret.as_ref().map(|s| s.expose().as_str()),
            Some(secret.as_str())
        );
        assert_eq!(config.access_token_ttl, Duration::from_secs(60));
        assert_eq!(config.signup_rate_limit.map(|l| l.max), Some(1000));
        assert_eq!(
            config.turn.mode,
            TurnMode::Embedded {
                listen: "0.0.0.0:0".parse().expect("literal"),
                advertised_ip: Some("192.0.2.7".parse().expect("literal")),
                advertised_port: Some(3479),
            }
        );
        assert_eq!(config.turn.realm, "example.test");
        assert_eq!(
            config.turn.secret.as_ref().map(|s| s.expose().as_str()),
            Some("abc")
        );
        assert_eq!(config.turn.credential_ttl, Duration::from_secs(600));
    }

    #[test]
    fn secrets_come_from_the_environment_unless_given_as_flags() {
        let env = |name: &str| match name {
            ENV_JWT_SECRET => Some("e".repeat(32)),
            ENV_TURN_SECRET => Some("turn-env".to_owned()),
            _ => None,
        };
        let Ok(CliCommand::Run(config)) =
            Config::from_args(["--turn-secret".to_owned(), "flag".to_owned()], env)
        else {
            panic!("expected a config");
        };
        assert_eq!(
            config.jwt_secret.as_ref().map(|s| s.expose().len()),
            Some(32)
        );
        assert_eq!(
            config.turn.secret.as_ref().map(|s| s.expose().as_str()),
            Some("flag")
        );
    }

    #[test]
    fn external_turn_mode_needs_a_secret() {
        assert_eq!(
            parse(&["--turn-external-url", "turn:192.0.2.1:3478?transport=udp"]).err(),
            Some(ConfigError::ExternalTurnNeedsSecret)
        );
        let config = run(&[
            "--turn-external-url",
            "turn:192.0.2.1:3478?transport=udp",
            "--turn-external-url=turns:turn.example.test:5349?transport=tcp",
            "--turn-secret",
            "shared",
        ]);
        assert_eq!(
            config.turn.mode,
            TurnMode::External {
                urls: vec![
                    "turn:192.0.2.1:3478?transport=udp".into(),
                    "turns:turn.example.test:5349?transport=tcp".into()
                ]
            }
        );
        assert_eq!(
            parse(&["--turn-external-url", "http://x", "--turn-secret", "s"]).err(),
            Some(ConfigError::BadTurnUrl("http://x".into()))
        );
    }

    #[test]
    fn rate_limit_can_be_switched_off() {
        assert_eq!(run(&["--signup-rate-limit", "off"]).signup_rate_limit, None);
        assert_eq!(
            parse(&["--signup-rate-limit", "0"]).err(),
            Some(ConfigError::BadRateLimit)
        );
    }

    #[test]
    fn bad_command_lines_are_refused() {
        assert_eq!(
            parse(&["--nope"]).err(),
            Some(ConfigError::UnknownFlag("--nope".into()))
        );
        assert_eq!(
            parse(&["--listen"]).err(),
            Some(ConfigError::MissingValue("--listen".into()))
        );
        assert!(matches!(
            parse(&["--listen", "localhost"]),
            Err(ConfigError::InvalidValue { .. })
        ));
        assert_eq!(
            parse(&["--jwt-secret", "short"]).err(),
            Some(ConfigError::JwtSecretTooShort)
        );
        assert!(matches!(
            parse(&["--turn-credential-ttl", "172801"]),
            Err(ConfigError::DurationOutOfRange { .. })
        ));
        assert!(matches!(
            parse(&["--access-token-ttl", "0"]),
            Err(ConfigError::DurationOutOfRange { .. })
        ));
        assert_eq!(
            parse(&["--turn-listen", "0.0.0.0:3478"]).err(),
            Some(ConfigError::MissingAdvertisedIp)
        );
        assert!(matches!(
            parse(&["--turn-listen", "[::1]:3478"]),
            Err(ConfigError::RelayNotIpv4(_))
        ));
        assert!(matches!(parse(&["--help"]), Ok(CliCommand::Help)));
        assert!(matches!(parse(&["-V"]), Ok(CliCommand::Version)));
    }

    #[test]
    fn errors_never_echo_secrets() {
        let err = parse(&["--jwt-secret", "hunter2"]).expect_err("too short");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let printed = format!("{:?}", run(&["--turn-secret", "hunter2"]));
        assert!(!printed.contains("hunter2"), "{printed}");
    }

    #[test]
    fn ephemeral_binds_port_zero_on_loopback() {
        let config = Config::ephemeral();
        assert_eq!(config.http_addr.port(), 0);
        assert!(config.http_addr.ip().is_loopback());
        assert!(
            matches!(config.turn.mode, TurnMode::Embedded { listen, .. } if listen.port() == 0)
        );
        config.validate().expect("ephemeral config is valid");
    }
}
