//! The VoiceMeet client engine. It will own one `Client` handle and one
//! ordered event stream; a single driver task owns each call and talks to the
//! three seams: the signalling transport (Supabase Realtime), the peer
//! (`webrtc`, relay-only ICE) and audio I/O.
//!
//! # What is here so far
//!
//! - [`backend`]: the HTTP client for the Supabase-shaped backend
//!   ([`backend::BackendClient`]): anonymous sign-in and refresh behind a
//!   pluggable [`backend::SessionStore`], TURN credentials filtered to what
//!   the peer can use, and the matchmaking RPCs.
//! - [`realtime`]: the Supabase Realtime client
//!   ([`realtime::RealtimeClient`]): one socket task with heartbeats,
//!   reconnects and rejoins, and [`realtime::Channel`] handles for
//!   broadcasts.
//! - [`peer`]: the relay-only WebRTC peer ([`peer::Peer`]) on webrtc-rs
//!   0.17: offers, answers, buffered remote candidates per negotiation
//!   generation, ICE restarts, and a privacy gate on every local candidate
//!   and description.
//! - [`audio`]: the audio I/O seam: sources and sinks of 20 ms 48 kHz mono
//!   frames, the Opus codec, and the send and receive tasks that connect
//!   them to a peer.
//!
//! All of them report failures as the one [`Error`], whose
//! [`is_retryable`](Error::is_retryable) tells callers whether to back off
//! and try again. Start with `backend` to get a session, then join the
//! user's inbox with `realtime`; a match leads to a `peer` and its audio
//! tasks.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod audio;
pub mod backend;
pub mod client;
mod clock;
mod error;
pub mod peer;
pub mod realtime;

pub use client::{AudioIo, CallQuality, Client, ClientConfig, ClientEvent};
pub use error::{Error, JoinRefusal, StoreError};
pub use voicemeet_proto as proto;
