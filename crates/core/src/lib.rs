//! The VoiceMeet client engine. It will own one `Client` handle and one
//! ordered event stream; a single driver task owns each call and talks to the
//! three seams: the signalling transport (Supabase Realtime), the peer
//! (`webrtc`, relay-only ICE) and audio I/O.
//!
//! This crate is filled in by the call-engine issue; today it re-exports the
//! shared pure logic so the app and CLI already depend on the right layer.
#![warn(missing_docs)]

pub use voicemeet_proto as proto;
