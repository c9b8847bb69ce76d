//! Pure logic shared by the VoiceMeet client (`voicemeet-core`) and the local
//! backend (`voicemeet-server`). No sockets, no clocks, no threads: every
//! state machine here is driven by inputs (including the current time) and
//! drained for outputs, so it is tested deterministically in virtual time.
//!
//! Start with [`redact`], the wrapper every identifying value passes through
//! before it can reach a log line, and [`phoenix`], the Supabase Realtime
//! (Phoenix Channels) wire codec both the client and the local server use,
//! [`matchmaking`], the queue the local server runs (and production mirrors
//! in SQL), [`call`], the call state machine the client's driver runs,
//! [`signal`], the reliable signalling protocol over Realtime broadcast,
//! [`privacy`], the checks that keep every address but the relay's out of
//! signalling, and [`jitter`], the adaptive jitter buffer between received
//! audio frames and the output device.
//!
//! For media: [`red`], the RFC 2198 audio redundancy payload format, and
//! [`media`], the send-side policy that picks Opus bitrate, in-band FEC and
//! redundancy depth from the receiver's loss reports.
#![warn(missing_docs)]

pub mod call;
pub mod jitter;
pub mod matchmaking;
pub mod media;
pub mod phoenix;
pub mod privacy;
pub mod red;
pub mod redact;
pub mod signal;

pub use redact::Redacted;
