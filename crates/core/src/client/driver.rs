//! The one task that owns a client's call. It runs the pure
//! [`Call`](voicemeet_proto::call::Call) machine and carries out its actions
//! on the three seams: signalling (backend + Realtime), the peer, and audio.
//!
//! The loop: wait for one input (a command, a finished background job, an
//! inbox or room message, a peer event, a timer), feed it to the machine,
//! then [`Driver::drain`] everything that became due — machine outputs,
//! signalling envelopes, signalling give-ups — until nothing moves. Slow
//! backend requests run as background jobs so a tap on "cancel" is never
//! stuck behind one; their results carry the match they were for, and stale
//! ones are dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};
use voicemeet_proto::Redacted;
use voicemeet_proto::call::{Action, Call, CallState, Command, ErrorKind, Event, Output};
use voicemeet_proto::matchmaking::{self, MatchId, Role};
use voicemeet_proto::phoenix::BroadcastBody;
use voicemeet_proto::signal::{self, Body, Delivered, Session};

use super::{AudioIo, CallQuality, ClientEvent, GOODBYE_TIMEOUT, QUALITY_INTERVAL};
use crate::audio::{
    CallAudio, Receiver as AudioReceiver, SendStats, capture_queue, receive_task, send_task,
};
use crate::backend::{
    BackendClient, BackendConfig, InboxEvent, QueueStatus, TurnCredentials, inbox_topic,
};
use crate::clock::{sleep_until_some, unix_now};
use crate::error::Error;
use crate::peer::{self, Peer, PeerConfig, PeerEvent, Sdp};
use crate::realtime::{Channel, ChannelConfig, ChannelEvent, RealtimeClient, RealtimeConfig};

/// Refresh the access token this long before it expires, so joined
/// channels get the new one before Realtime's expiry check closes them.
const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// After a failed refresh, try again this soon (the old token may still
/// have a while to live).
const TOKEN_REFRESH_RETRY: Duration = Duration::from_secs(5);

/// When to refresh a token expiring at `expires_at` (Unix seconds): a
/// margin before expiry, or halfway for tokens shorter than two margins.
fn refresh_time(expires_at: u64) -> Instant {
    let left = Duration::from_secs(expires_at.saturating_sub(unix_now()));
    let wait = if left > TOKEN_REFRESH_MARGIN * 2 {
        left - TOKEN_REFRESH_MARGIN
    } else {
        left / 2
    };
    Instant::now() + wait
}

/// The Realtime broadcast event our signalling envelopes travel as.
const SIGNAL_EVENT: &str = signal::EVENT;

/// What a background job hands back to the loop.
enum Done {
    /// Signed in, connected to Realtime, listening on the inbox, and TURN
    /// credentials in hand — or why not.
    Prepared(Result<Prepared, Error>),
    /// The answer to `join_queue`.
    Queue(Result<QueueStatus, Error>),
    /// The room channel of a match.
    Room(MatchId, Result<Channel, Error>),
    /// A refreshed session, to push to joined channels before the old
    /// token expires (Realtime closes channels whose token expired).
    Refreshed(Result<crate::backend::Session, Error>),
    /// Fire-and-forget requests report only failures, for the log.
    Background(&'static str, Result<(), Error>),
}

struct Prepared {
    credentials: TurnCredentials,
    access_token: Redacted<String>,
    /// When the access token expires, Unix seconds.
    token_expires_at: u64,
    /// A new socket and inbox, when there was none yet.
    connection: Option<(RealtimeClient, Channel)>,
}

/// Everything that exists only while a match is on.
struct MatchSession {
    id: MatchId,
    role: Role,
    room: Option<Channel>,
    signal: Option<Session>,
    peer: Option<Peer>,
    peer_events: Option<mpsc::Receiver<PeerEvent>>,
    audio: CancellationToken,
    /// The receive side of the call's audio, once its peer exists.
    receiver: Option<AudioReceiver>,
    local_candidates_seen: bool,
}

impl MatchSession {
    fn new(id: MatchId, role: Role) -> Self {
        Self {
            id,
            role,
            room: None,
            signal: None,
            peer: None,
            peer_events: None,
            audio: CancellationToken::new(),
            receiver: None,
            local_candidates_seen: false,
        }
    }
}

pub(super) struct Driver {
    call: Call,
    backend: BackendClient,
    backend_config: BackendConfig,
    audio_io: Arc<dyn AudioIo>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<ClientEvent>,
    stop: CancellationToken,
    jobs: JoinSet<Done>,
    realtime: Option<Arc<RealtimeClient>>,
    inbox: Option<Channel>,
    access_token: Option<Redacted<String>>,
    /// When to refresh the access token; `None` while a refresh runs or
    /// before the first sign-in.
    token_refresh_at: Option<Instant>,
    credentials: Option<TurnCredentials>,
    current: Option<MatchSession>,
    /// The last match announced, so the RPC answer and the inbox notice of
    /// one match count once.
    last_announced: Option<MatchId>,
    call_deadline: Option<Instant>,
    muted: Arc<AtomicBool>,
    epoch: Instant,
}

impl Driver {
    pub(super) fn new(
        backend: BackendClient,
        backend_config: BackendConfig,
        audio_io: Arc<dyn AudioIo>,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<ClientEvent>,
        stop: CancellationToken,
    ) -> Self {
        Self {
            call: Call::new(),
            backend,
            backend_config,
            audio_io,
            commands,
            events,
            stop,
            jobs: JoinSet::new(),
            realtime: None,
            inbox: None,
            access_token: None,
            token_refresh_at: None,
            credentials: None,
            current: None,
            last_announced: None,
            call_deadline: None,
            muted: Arc::new(AtomicBool::new(false)),
            epoch: Instant::now(),
        }
    }

    /// Time for the signalling session, which counts from an epoch.
    fn since_epoch(&self) -> Duration {
        self.epoch.elapsed()
    }

    pub(super) async fn run(mut self) {
        loop {
            self.drain().await;
            let call_deadline = self.call_deadline;
            let signal_deadline = self
                .current
                .as_ref()
                .and_then(|m| m.signal.as_ref())
                .and_then(Session::poll_timeout)
                .map(|d| self.epoch + d);
            let (room, peer_events) = match self.current.as_mut() {
                Some(m) => (m.room.as_mut(), m.peer_events.as_mut()),
                None => (None, None),
            };
            tokio::select! {
                () = self.stop.cancelled() => break,
                command = self.commands.recv() => match command {
                    Some(command) => self.call.handle_command(command, Instant::now()),
                    None => break,
                },
                Some(done) = self.jobs.join_next() => match done {
                    Ok(done) => self.on_done(done).await,
                    Err(err) => error!(%err, "a background job panicked"),
                },
                event = recv_channel(self.inbox.as_mut()) => self.on_inbox(event),
                event = recv_channel(room) => {
                    self.on_room(event).await;
                }
                event = recv_peer(peer_events) => {
                    self.on_peer(event);
                }
                () = sleep_until(call_deadline) => self.call.handle_timeout(Instant::now()),
                () = sleep_until(signal_deadline) => {}
                () = sleep_until(self.token_refresh_at) => {
                    self.token_refresh_at = None;
                    let backend = self.backend.clone();
                    self.jobs.spawn(async move { Done::Refreshed(backend.refresh_session().await) });
                }
            }
        }
        self.goodbye().await;
    }

    /// Feeds every due output onward until nothing moves.
    async fn drain(&mut self) {
        loop {
            let mut moved = false;
            self.call_deadline = None;
            while let Some(output) = self.call.poll_output(Instant::now()) {
                match output {
                    Output::Timeout(at) => {
                        self.call_deadline = Some(at);
                        break;
                    }
                    Output::StateChanged(state) => self.on_state(state),
                    Output::MuteChanged(muted) => {
                        self.muted.store(muted, Ordering::Relaxed);
                        self.emit(ClientEvent::MuteChanged(muted));
                    }
                    Output::Action(action) => {
                        moved = true;
                        self.act(action).await;
                    }
                }
            }
            if self.flush_signalling().await {
                moved = true;
            }
            if !moved {
                break;
            }
        }
    }

    fn emit(&self, event: ClientEvent) {
        // A UI that stopped reading loses events rather than stalling calls.
        if self.events.try_send(event).is_err() {
            warn!("client event dropped: the app is not reading events");
        }
    }

    fn on_state(&mut self, state: CallState) {
        info!(?state, "call state");
        if state == CallState::Matched
            && let Some(m) = &self.current
        {
            self.emit(ClientEvent::Matched { role: m.role });
        }
        self.emit(ClientEvent::StateChanged(state));
    }

    /// Sends what the signalling session wants sent; reports give-ups to the
    /// machine. Returns whether anything reached the machine.
    async fn flush_signalling(&mut self) -> bool {
        let now = self.since_epoch();
        let Some(m) = self.current.as_mut() else {
            return false;
        };
        let (Some(session), Some(room)) = (m.signal.as_mut(), m.room.as_ref()) else {
            return false;
        };
        while let Some(envelope) = session.poll_transmit(now) {
            match signal::encode_value(&envelope) {
                // Delivery is the session's job (ack + retransmit), so a
                // failed push is just a lost packet.
                Ok(value) => {
                    if let Err(err) = room.send(SIGNAL_EVENT, value).await {
                        debug!(%err, "signalling push failed; the session retransmits");
                    }
                }
                Err(err) => error!(%err, "our own envelope is invalid: a bug"),
            }
        }
        let mut gave_up = false;
        while let Some(signal::Output::GaveUp { seq, kind }) = session.poll_event() {
            warn!(seq, %kind, "signalling message never acknowledged");
            gave_up = true;
        }
        // A stranger who never said or acknowledged anything has not lost
        // signalling: they never answered. The machine's connect deadline
        // names that case, so the give-up is not reported over it.
        let stats = session.stats();
        let stranger_silent = stats.delivered == 0 && stats.acked == 0;
        if gave_up && !stranger_silent {
            self.call
                .handle_event(Event::SignallingGaveUp, Instant::now());
            return true;
        }
        false
    }

    async fn act(&mut self, action: Action) {
        debug!(?action, "call action");
        match action {
            Action::FetchCredentials => self.spawn_prepare(),
            Action::JoinQueue => {
                let backend = self.backend.clone();
                self.jobs
                    .spawn(async move { Done::Queue(backend.join_queue().await) });
            }
            Action::LeaveQueue => {
                let backend = self.backend.clone();
                self.jobs.spawn(async move {
                    Done::Background("leave_queue", backend.leave_queue().await.map(|_| ()))
                });
            }
            Action::EndMatch { match_id } => {
                let backend = self.backend.clone();
                self.jobs.spawn(async move {
                    Done::Background("end_match", backend.end_match(match_id).await)
                });
            }
            Action::JoinRoom { topic } => self.spawn_join_room(topic),
            Action::LeaveRoom => {
                if let Some(room) = self.current.as_mut().and_then(|m| m.room.take()) {
                    self.jobs
                        .spawn(async move { Done::Background("leave room", room.leave().await) });
                }
                self.current = None;
            }
            Action::StartPeer { role } => {
                if let Err(err) = self.start_peer(role).await {
                    warn!(%err, "could not start the peer");
                    self.call
                        .handle_event(Event::ActionFailed(kind_of(&err)), Instant::now());
                }
            }
            Action::ClosePeer => {
                if let Some(m) = self.current.as_mut() {
                    m.audio.cancel();
                    m.peer_events = None;
                    if let Some(mut peer) = m.peer.take()
                        && let Err(err) = peer.close().await
                    {
                        debug!(%err, "closing the peer");
                    }
                }
            }
            Action::SendBye => {
                let now = self.since_epoch();
                if let Some(session) = self.current.as_mut().and_then(|m| m.signal.as_mut())
                    && let Err(err) = session.send(
                        Body::Bye {
                            reason: "hangup".into(),
                        },
                        now,
                    )
                {
                    warn!(%err, "bye not sent");
                }
                // Out now: the room is left right after.
                self.flush_signalling().await;
            }
            Action::RestartIce => {
                if let Err(err) = self.restart_ice().await {
                    warn!(%err, "ICE restart failed to start");
                }
            }
        }
    }

    fn spawn_prepare(&mut self) {
        let backend = self.backend.clone();
        let realtime_config = RealtimeConfig::new(
            self.backend_config.url.clone(),
            self.backend_config.anon_key.expose().clone(),
        );
        let connected = self.realtime.is_some() && self.inbox.is_some();
        self.jobs.spawn(async move {
            Done::Prepared(prepare(backend, realtime_config, connected).await)
        });
    }

    fn spawn_join_room(&mut self, topic: Redacted<String>) {
        let (Some(realtime), Some(m)) = (self.realtime.clone(), self.current.as_ref()) else {
            self.call.handle_event(
                Event::ActionFailed(ErrorKind::SignallingLost),
                Instant::now(),
            );
            return;
        };
        let match_id = m.id;
        let token = self.access_token.clone();
        self.jobs.spawn(async move {
            let config = ChannelConfig {
                private: true,
                ..ChannelConfig::default()
            };
            let joined = realtime
                .join(
                    topic.expose(),
                    config,
                    token.as_ref().map(|t| t.expose().as_str()),
                )
                .await;
            Done::Room(match_id, joined)
        });
    }

    async fn start_peer(&mut self, role: Role) -> Result<(), Error> {
        let credentials = self
            .credentials
            .clone()
            .ok_or(Error::PeerState("no TURN credentials"))?;
        let m = self.current.as_mut().ok_or(Error::PeerState("no match"))?;
        let peer_role = match role {
            Role::Offerer => peer::Role::Offerer,
            Role::Answerer => peer::Role::Answerer,
        };
        let (mut peer, events) =
            Peer::new(PeerConfig::new(credentials.ice_servers, peer_role)).await?;
        let signal_config = signal::Config::new(m.id.to_string(), peer.relay_ips().to_vec());
        let mut session = Session::new(signal_config)
            .map_err(|_| Error::PeerState("the match id does not fit a signalling envelope"))?;
        let (capture, frames) = capture_queue();
        let client_events = self.events.clone();
        let receiver = AudioReceiver::new(Some(Box::new(move || {
            let _ = client_events.try_send(ClientEvent::FirstAudio);
        })))?;
        let started = self.audio_io.start(CallAudio {
            capture,
            playout: receiver.playout(),
            cancel: m.audio.child_token(),
        });
        if let Err(err) = started {
            // The call goes on: the stranger may still talk, and the
            // person sees why they cannot be heard.
            error!(%err, "the call's audio did not start");
            let _ = self.events.try_send(ClientEvent::AudioUnavailable {
                message: err.to_string(),
            });
        }
        let (status_tx, status) = watch::channel(SendStats::default());
        tokio::spawn(send_task(
            frames,
            peer.local_audio(),
            self.muted.clone(),
            Some(status_tx),
            m.audio.child_token(),
        ));
        tokio::spawn(quality_task(
            receiver.clone(),
            status,
            self.events.clone(),
            m.audio.child_token(),
        ));
        m.receiver = Some(receiver);
        if role == Role::Offerer {
            let offer = peer.create_offer(false).await?;
            if let Err(err) = session.send(Body::Offer { sdp: offer.text }, self.epoch.elapsed()) {
                return Err(Error::PeerState(send_error_reason(&err)));
            }
        }
        m.peer = Some(peer);
        m.peer_events = Some(events);
        m.signal = Some(session);
        Ok(())
    }

    async fn restart_ice(&mut self) -> Result<(), Error> {
        let now = self.since_epoch();
        let Some(m) = self.current.as_mut() else {
            return Ok(());
        };
        let (Some(peer), Some(session)) = (m.peer.as_mut(), m.signal.as_mut()) else {
            return Ok(());
        };
        let offer = peer.restart_ice().await?;
        if session.set_generation(offer.generation).is_err() {
            return Err(Error::PeerState("generation went backwards"));
        }
        session
            .send(Body::Offer { sdp: offer.text }, now)
            .map_err(|err| Error::PeerState(send_error_reason(&err)))?;
        Ok(())
    }

    async fn on_done(&mut self, done: Done) {
        let now = Instant::now();
        match done {
            Done::Prepared(Ok(prepared)) => {
                let remaining = prepared.credentials.expires_at.saturating_sub(unix_now());
                if let Some((realtime, inbox)) = prepared.connection {
                    self.realtime = Some(Arc::new(realtime));
                    self.inbox = Some(inbox);
                } else if let Some(realtime) = &self.realtime {
                    // Keep joined channels authorised with the fresh token.
                    if let Err(err) = realtime
                        .set_access_token(prepared.access_token.expose())
                        .await
                    {
                        debug!(%err, "access token not pushed");
                    }
                }
                self.access_token = Some(prepared.access_token);
                self.token_refresh_at = Some(refresh_time(prepared.token_expires_at));
                self.credentials = Some(prepared.credentials);
                self.call.handle_event(
                    Event::CredentialsReady {
                        expires_at: now + Duration::from_secs(remaining),
                    },
                    now,
                );
            }
            Done::Prepared(Err(err)) => {
                warn!(%err, "could not prepare a search");
                self.call
                    .handle_event(Event::CredentialsFailed(kind_of(&err)), now);
            }
            Done::Queue(Ok(QueueStatus::Waiting)) => self.call.handle_event(Event::Queued, now),
            Done::Queue(Ok(QueueStatus::Matched(info))) => {
                self.call.handle_event(Event::Queued, now);
                self.on_matched(info.match_id, info.role, info.topic.0);
            }
            Done::Queue(Err(err)) => {
                warn!(%err, "join_queue failed");
                self.call
                    .handle_event(Event::BackendError(kind_of(&err)), now);
            }
            Done::Room(match_id, joined) => {
                let current = self.current.as_mut().filter(|m| m.id == match_id);
                match (current, joined) {
                    (Some(m), Ok(room)) => {
                        m.room = Some(room);
                        self.call.handle_event(Event::RoomJoined, now);
                    }
                    (Some(_), Err(err)) => {
                        warn!(%err, "could not join the room");
                        self.call
                            .handle_event(Event::ActionFailed(ErrorKind::SignallingLost), now);
                    }
                    (None, Ok(room)) => {
                        // The match ended while we joined: leave again.
                        self.jobs.spawn(async move {
                            Done::Background("leave stale room", room.leave().await)
                        });
                    }
                    (None, Err(_)) => {}
                }
            }
            Done::Refreshed(Ok(session)) => {
                if let Some(realtime) = &self.realtime
                    && let Err(err) = realtime
                        .set_access_token(session.access_token.expose())
                        .await
                {
                    debug!(%err, "refreshed access token not pushed");
                }
                self.token_refresh_at = Some(refresh_time(session.expires_at));
                self.access_token = Some(session.access_token);
            }
            Done::Refreshed(Err(err)) => {
                warn!(%err, "access token refresh failed; retrying");
                self.token_refresh_at = Some(Instant::now() + TOKEN_REFRESH_RETRY);
            }
            Done::Background(what, Err(err)) => debug!(%err, what, "background request failed"),
            Done::Background(_, Ok(())) => {}
        }
    }

    fn on_matched(&mut self, match_id: MatchId, role: Role, topic: String) {
        if self.last_announced == Some(match_id) {
            return;
        }
        self.last_announced = Some(match_id);
        self.current = Some(MatchSession::new(match_id, role));
        self.call.handle_event(
            Event::Matched {
                match_id,
                role,
                topic: Redacted::new(topic),
            },
            Instant::now(),
        );
    }

    fn on_inbox(&mut self, event: Option<ChannelEvent>) {
        let now = Instant::now();
        match event {
            Some(ChannelEvent::Broadcast {
                event,
                payload: BroadcastBody::Json(payload),
            }) => match InboxEvent::parse(&event, &payload) {
                Ok(Some(InboxEvent::Matched(info))) => {
                    self.on_matched(info.match_id, info.role, info.topic.0);
                }
                Ok(Some(InboxEvent::MatchEnded { match_id, reason })) => {
                    self.call.handle_event(
                        Event::PartnerLeft {
                            match_id,
                            reason: end_reason(&reason),
                        },
                        now,
                    );
                }
                Ok(Some(InboxEvent::SearchExpired { .. })) => {
                    self.call.handle_event(Event::SearchExpired, now);
                }
                Ok(None) => debug!(event, "unknown inbox event ignored"),
                Err(err) => warn!(%err, "malformed inbox event ignored"),
            },
            Some(ChannelEvent::Closed { reason }) => {
                warn!(%reason, "the inbox closed");
                self.inbox = None;
                self.call
                    .handle_event(Event::BackendError(ErrorKind::SignallingLost), now);
            }
            None => {
                self.inbox = None;
                self.call
                    .handle_event(Event::BackendError(ErrorKind::SignallingLost), now);
            }
            Some(other) => debug!(?other, "inbox event"),
        }
    }

    async fn on_room(&mut self, event: Option<ChannelEvent>) {
        let now = self.since_epoch();
        match event {
            Some(ChannelEvent::Broadcast {
                event,
                payload: BroadcastBody::Json(payload),
            }) if event == SIGNAL_EVENT => {
                let Some(session) = self.current.as_mut().and_then(|m| m.signal.as_mut()) else {
                    // Not negotiating yet: the sender retransmits.
                    return;
                };
                match session.handle_payload(&payload, now) {
                    Ok(Some(delivered)) => self.on_signal(delivered).await,
                    Ok(None) => {}
                    Err(err) => debug!(%err, "malformed signalling envelope dropped"),
                }
            }
            Some(ChannelEvent::Closed { reason }) => {
                warn!(%reason, "the room closed");
                if let Some(m) = self.current.as_mut() {
                    m.room = None;
                }
                self.call
                    .handle_event(Event::SignallingGaveUp, Instant::now());
            }
            None => {
                if let Some(m) = self.current.as_mut() {
                    m.room = None;
                }
            }
            Some(other) => debug!(?other, "room event ignored"),
        }
    }

    async fn on_signal(&mut self, delivered: Delivered) {
        let now = self.since_epoch();
        let Some(m) = self.current.as_mut() else {
            return;
        };
        let (Some(peer), Some(session)) = (m.peer.as_mut(), m.signal.as_mut()) else {
            return;
        };
        let generation = delivered.generation;
        let result = match delivered.body {
            Body::Offer { sdp } if m.role == Role::Answerer => {
                match peer
                    .accept_offer(Sdp::new(sdp.into_inner(), generation))
                    .await
                {
                    Ok(answer) => session
                        .send(Body::Answer { sdp: answer.text }, now)
                        .map(|_| ())
                        .map_err(|err| Error::PeerState(send_error_reason(&err))),
                    Err(err) => Err(err),
                }
            }
            Body::Answer { sdp } if m.role == Role::Offerer => {
                peer.accept_answer(Sdp::new(sdp.into_inner(), generation))
                    .await
            }
            Body::Offer { .. } | Body::Answer { .. } => {
                warn!(generation, "description from the wrong role ignored");
                Ok(())
            }
            Body::Candidates { list } => {
                let mut result = Ok(());
                for candidate in list {
                    if let Err(err) = peer.add_remote_candidate(candidate, generation).await {
                        result = Err(err);
                    }
                }
                result
            }
            Body::EndOfCandidates | Body::Ack { .. } => Ok(()),
            Body::Bye { .. } => {
                self.call.handle_event(Event::RemoteBye, Instant::now());
                Ok(())
            }
        };
        if let Err(err) = result {
            warn!(%err, "applying a signalling message failed");
        }
    }

    fn on_peer(&mut self, event: Option<PeerEvent>) {
        let now = Instant::now();
        let since = self.since_epoch();
        let Some(m) = self.current.as_mut() else {
            return;
        };
        match event {
            Some(PeerEvent::LocalCandidate {
                candidate,
                generation,
            }) => {
                if let Some(session) = m.signal.as_mut() {
                    if session.generation() != generation {
                        return;
                    }
                    if let Err(err) = session.queue_candidate(candidate, since) {
                        error!(%err, "local candidate refused by the signalling session");
                        return;
                    }
                }
                if !m.local_candidates_seen {
                    m.local_candidates_seen = true;
                    self.call.handle_event(Event::LocalCandidatesGathered, now);
                }
            }
            Some(PeerEvent::GatheringComplete { generation }) => {
                if let Some(session) = m.signal.as_mut()
                    && session.generation() == generation
                {
                    session.end_of_candidates(since);
                }
            }
            Some(PeerEvent::Connected) => self.call.handle_event(Event::PeerConnected, now),
            Some(PeerEvent::Disconnected) => self.call.handle_event(Event::PeerDisconnected, now),
            Some(PeerEvent::Failed) => self.call.handle_event(Event::PeerFailed, now),
            Some(PeerEvent::ConnectTimeout { after }) => {
                // The machine keeps its own, longer deadline and tells a
                // relay that never answered from a stranger who never did.
                debug!(?after, "peer connect timeout");
            }
            Some(PeerEvent::RemoteAudio(remote)) => {
                if let Some(receiver) = &m.receiver {
                    tokio::spawn(receive_task(
                        remote,
                        receiver.clone(),
                        m.audio.child_token(),
                    ));
                }
            }
            Some(PeerEvent::PrivacyViolation { violation, .. }) => {
                error!(%violation, "a local candidate broke the privacy rules and was dropped (bug)");
            }
            None => m.peer_events = None,
        }
    }

    /// Hangs up politely when the client goes away, within a bound.
    async fn goodbye(mut self) {
        if !matches!(
            self.call.state(),
            CallState::Idle | CallState::Ended { .. } | CallState::Failed { .. }
        ) {
            self.call.handle_command(Command::HangUp, Instant::now());
            let drain = self.drain();
            if tokio::time::timeout(GOODBYE_TIMEOUT, drain).await.is_err() {
                debug!("goodbye cut short");
            }
        }
        if let Some(m) = self.current.as_mut() {
            m.audio.cancel();
            if let Some(mut peer) = m.peer.take() {
                let _ = tokio::time::timeout(GOODBYE_TIMEOUT, peer.close()).await;
            }
        }
        // Leaving jobs (leave_queue, end_match) get the same bound.
        let _ = tokio::time::timeout(GOODBYE_TIMEOUT, async {
            while self.jobs.join_next().await.is_some() {}
        })
        .await;
    }
}

/// Reports how the call is doing every [`QUALITY_INTERVAL`] until its
/// audio ends. Reports are dropped, not queued, if the app falls behind.
async fn quality_task(
    receiver: AudioReceiver,
    sent: watch::Receiver<SendStats>,
    events: mpsc::Sender<ClientEvent>,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(QUALITY_INTERVAL);
    tick.tick().await;
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let quality = CallQuality {
            received: receiver.stats(),
            sent: sent.borrow().clone(),
        };
        let _ = events.try_send(ClientEvent::Quality(Box::new(quality)));
    }
}

/// Signs in (or reuses the session), connects to Realtime and joins the
/// inbox if not connected yet, and fetches TURN credentials — all before
/// the user is queued, so a failure is a clear error, never a failed call.
async fn prepare(
    backend: BackendClient,
    realtime_config: RealtimeConfig,
    connected: bool,
) -> Result<Prepared, Error> {
    let session = backend.ensure_session().await?;
    let credentials = backend.turn_credentials().await?;
    let connection = if connected {
        None
    } else {
        let realtime = RealtimeClient::connect(realtime_config).await?;
        let inbox = realtime
            .join(
                &inbox_topic(&session.user_id),
                ChannelConfig {
                    private: true,
                    ..ChannelConfig::default()
                },
                Some(session.access_token.expose()),
            )
            .await?;
        Some((realtime, inbox))
    };
    Ok(Prepared {
        credentials,
        access_token: session.access_token,
        token_expires_at: session.expires_at,
        connection,
    })
}

/// What the UI can act on, from a core error.
fn kind_of(err: &Error) -> ErrorKind {
    match err {
        Error::Unreachable { .. } | Error::TimedOut { .. } | Error::Disconnected => {
            ErrorKind::BackendUnreachable
        }
        Error::Unauthorized { .. } | Error::SessionStore(_) => ErrorKind::Auth,
        Error::NoUsableTurnServer { .. } | Error::RateLimited { .. } | Error::Server { .. } => {
            ErrorKind::Credentials
        }
        Error::JoinRefused { .. } | Error::PushRejected { .. } | Error::ChannelClosed => {
            ErrorKind::SignallingLost
        }
        Error::Webrtc { .. } | Error::PrivacyViolation { .. } => ErrorKind::Relay,
        _ => ErrorKind::Internal,
    }
}

fn end_reason(reason: &str) -> matchmaking::EndReason {
    match reason {
        "skipped" => matchmaking::EndReason::Skipped,
        "disconnected" => matchmaking::EndReason::Disconnected,
        "reported" => matchmaking::EndReason::Reported,
        _ => matchmaking::EndReason::Hangup,
    }
}

fn send_error_reason(err: &signal::SendError) -> &'static str {
    match err {
        signal::SendError::Privacy(_) => "our own description failed the privacy check",
        signal::SendError::Invalid(_) => "our own description does not fit an envelope",
        signal::SendError::AckIsInternal => "acks are the session's own",
        _ => "the signalling session refused the message",
    }
}

async fn recv_channel(channel: Option<&mut Channel>) -> Option<ChannelEvent> {
    match channel {
        Some(channel) => channel.recv().await,
        None => std::future::pending().await,
    }
}

async fn recv_peer(events: Option<&mut mpsc::Receiver<PeerEvent>>) -> Option<PeerEvent> {
    match events {
        Some(events) => events.recv().await,
        None => std::future::pending().await,
    }
}

/// The driver keeps std instants (the call machine's time); timers want tokio's.
async fn sleep_until(deadline: Option<Instant>) {
    sleep_until_some(deadline.map(tokio::time::Instant::from_std)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_reasons_map_to_matchmaker_reasons() {
        assert_eq!(end_reason("skipped"), matchmaking::EndReason::Skipped);
        assert_eq!(
            end_reason("disconnected"),
            matchmaking::EndReason::Disconnected
        );
        assert_eq!(end_reason("hangup"), matchmaking::EndReason::Hangup);
        assert_eq!(end_reason("something new"), matchmaking::EndReason::Hangup);
    }

    #[test]
    fn unreachable_backends_are_backend_errors_the_ui_can_retry() {
        let kind = kind_of(&Error::Disconnected);
        assert_eq!(kind, ErrorKind::BackendUnreachable);
        assert!(kind.is_retryable());
    }
}
