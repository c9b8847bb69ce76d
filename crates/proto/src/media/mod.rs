//! Send-side audio adaptation: [`SendPolicy`] turns the receiver's RTCP
//! reports into [`SendSettings`] for the Opus encoder and the RED packetizer
//! ([`crate::red::RedEncoder`]).
//!
//! Start at [`SendPolicy::handle_report`]. The policy only reacts to
//! reports; it never reads a clock, and time passes only as the `now` of
//! each report.
//!
//! # What it does
//!
//! 1. **Smooths the loss** each report states: an exponentially weighted
//!    average in time that rises fast ([`RISE_TIME_CONSTANT`], so a lossy
//!    network gets protection within a report or two) and falls slowly
//!    ([`FALL_TIME_CONSTANT`], so protection outlasts a brief lull in a
//!    bursty network). Each report weighs by the time it covers, so the
//!    behaviour does not depend on how often reports come (1 s to 5 s is
//!    common).
//! 2. **Picks a protection level** from the smoothed loss, with separate
//!    thresholds to enter and to leave each level so a noisy loss rate does
//!    not flap between two:
//!
//!    | level | enter at | leave below | RED depth (copies back¹) | bitrate         | payload² |
//!    |-------|----------|-------------|--------------------------|-----------------|----------|
//!    | 0     | —        | —           | 0                        | base (32 kbps)  | 32 kbps  |
//!    | 1     | 1.5 %    | 0.75 %      | 1 (1)                    | base            | 64 kbps  |
//!    | 2     | 4.5 %    | 2.5 %       | 2 (1, 3)                 | base, ≤ 28 kbps | 84 kbps  |
//!    | 3     | 9 %      | 6 %         | 4 (1, 3, 6, 8)           | base, ≤ 28 kbps | 140 kbps |
//!
//!    ¹ How many packets after a frame's own its copies ride:
//!    [`crate::red::SPREAD`]`[..depth]`.
//!    ² Opus bits per second with the default base, before RED's own
//!    headers; see [`SendSettings::payload_bps`].
//!
//!    The levels are for ~2 %, ~5 % and ~10 % loss (the last also for
//!    everything above it), entered half a point to a point early: the
//!    average only approaches a steady loss rate, and RTCP quantizes loss
//!    to 1/256, so "2 %" arrives as 1.95 %. Leaving needs the loss to fall
//!    a third to a half below the entry point, more than the
//!    report-to-report noise of a steady rate (about 50 packets per 1 s
//!    report: one packet is 2 points).
//!
//!    The bitrates come from PESQ-WB scores of the primary alone, measured
//!    here (espeak-ng speech, libopus VOIP, CBR, 20 ms, no loss): 40 kbps
//!    4.10, 32 kbps 3.86, 28 kbps 3.68, 24 kbps 3.50, 16 kbps 2.81, and
//!    from speech through the whole call stack under loss (PESQ-WB, below).
//!    With RED the primary's quality is what the listener hears for all but
//!    the residual loss, and the goals are PESQ-WB ≥ 3.3 at 10 % random
//!    loss and ≥ 2.9 at 20 % random and at 10 % bursty loss
//!    (Gilbert–Elliott, mean burst 3). 16 kbps misses the last two before
//!    any packet is lost, and 24 kbps scored around the 2.9 goal at 10 %
//!    bursty loss (below), so no level goes below 28 kbps by itself (only a base set lower, see
//!    [`SendPolicy::with_base_bitrate`], does).
//!
//!    - *Level 0*: a clean call costs no redundancy: 32 kbps Opus in 20 ms
//!      frames is 80 B per packet, about 54 kbps on the wire with
//!      RTP/SRTP/UDP/IPv4/TURN headers ([`RELAYED_IPV4_OVERHEAD_BYTES`]).
//!    - *Level 1*: isolated losses. One RED copy, in the next packet,
//!      leaves p² of frames lost (0.04 % at 2 % loss) for one packet's
//!      worth of bandwidth, at the full 32 kbps quality.
//!    - *Level 2*: loss this high starts coming in bursts. Two copies, 1
//!      and 3 packets later, ride out a burst of up to 3 lost packets. The
//!      primary drops to 28 kbps (−0.18 PESQ-WB alone) so the total grows
//!      by less than the depth does.
//!    - *Level 3*: bursty or heavy loss. Four copies, 1, 3, 6 and 8
//!      packets later, ride out a single burst of up to 8 lost packets, at
//!      28 kbps. Measured through the call stack at 10 % bursty loss:
//!      three copies (1, 3, 6) at 24 kbps scored 2.87–2.96, around the 2.9
//!      goal, and four at 28 kbps 3.02–3.54; simulated, that loss pattern
//!      leaves 0.92 % of frames lost with copies (1, 3, 6) and 0.42 % with
//!      (1, 3, 6, 8). At 20 % random loss four copies at 28 kbps scored
//!      3.13–3.48 against 3.05 at 24 kbps, so heavier loss gets no level
//!      of its own: a lower bitrate there scored worse, not better. At
//!      140 kbps (about 168 kbps on the wire relayed) this level is the
//!      dearest; only a clean call has to stay within 60 kbps per
//!      direction.
//!
//!    The price of spread copies is latency: while frames are being
//!    rebuilt from copies, the receiver's jitter buffer waits for them, at
//!    level 3 up to 8 packets (160 ms) for the deepest copy, and only
//!    while copies are needed: without recent losses it keeps its short
//!    delay, whatever the level.
//!
//!    Levels rise straight to the one the loss calls for, but fall one per
//!    report, and not while the reported jitter is at least
//!    [`JITTER_HOLD`]: so the bitrate comes back slowly, and redundancy
//!    stays while packets arrive late (a late packet is lost to playout, and
//!    a later packet's copy covers it).
//! 3. **Sets the in-band FEC loss percentage** (`OPUS_SET_PACKET_LOSS_PERC`)
//!    to the loss RED leaves behind, not the raw loss: with smoothed loss
//!    p (a fraction) and the current level's RED depth d, a frame is lost
//!    only if its packet and the d later packets carrying its copies all
//!    are, so for independent loss the residual is p^(d+1). Rounded and
//!    clamped to [`MIN_FEC_LOSS_PERCENT`]..=[`MAX_FEC_LOSS_PERCENT`], that
//!    is 1 % at level 0 with 1.2 % loss, 0 at levels 1 and 2 (at most
//!    0.2 % and 0.07 % where they apply), 0 at level 3 up to 30 % loss
//!    (0.3⁵ = 0.24 %), and something only under heavier loss still: 1 % at
//!    40 %, 3 % at 50 %, the full 20 % from about 73 %. Bursts leave more
//!    than p^(d+1) (the 0.42 % above, where p⁵ is 0.001 %), but still too
//!    little to move the percentage off 0.
//!
//!    Why so little: in-band FEC (LBRR) under CBR takes its bits from every
//!    primary frame, lost or not. Measured here at 32 kbps, with no loss,
//!    the primary alone scored 3.86 without it, 3.23 with the loss
//!    percentage at 1 and 2.66 at 10 (24 kbps at 10: 2.24; 28 kbps at 5:
//!    3.46 against 3.68). RED's copies are full-quality frames that cost
//!    bandwidth only, so while RED is on, LBRR would buy little and cost a
//!    lot. A clean network gets 0, which libopus takes as in-band FEC off.
//!
//!    The percentage moves up once the residual is 0.75 points above it,
//!    down once it is 1.5 points below it, and to 0 once it is under a
//!    quarter point, so a wobbling loss rate does not move it back and
//!    forth.
//!
//! When reports stop (RTCP is lost too on a bad network), nothing changes:
//! silence is not evidence of a clean network. [`SendPolicy::is_stale`]
//! tells the caller, and the first report after a gap counts for at most
//! [`STALE_AFTER`] of time.

use std::time::Duration;

/// Opus bitrate before any report: libwebrtc's default for Opus
/// (fullband speech at 28–40 kbps per the Opus RTP draft's guidance).
pub const DEFAULT_BITRATE_BPS: i32 = 32_000;

/// Lowest Opus bitrate the policy sets, and only when the base bitrate is
/// set this low ([`SendPolicy::with_base_bitrate`]): the low end of the
/// range the Opus RTP draft recommends for wideband speech (16–20 kbps),
/// and Signal's floor too. No level goes below [`BURSTY_LOSS_BITRATE_BPS`]
/// by itself: 16 kbps scored 2.81 PESQ-WB here with no loss at all, under
/// the 2.9 the policy aims for at 20 % loss.
pub const MIN_BITRATE_BPS: i32 = 16_000;

/// Highest Opus bitrate the policy sets: the top of the range recommended
/// for fullband speech (more serves music), and Signal's ceiling (and
/// start).
pub const MAX_BITRATE_BPS: i32 = 40_000;

/// Bitrate cap of levels 2 and 3, the lowest any level goes by itself:
/// 28 kbps scored 3.68 PESQ-WB here alone (32 kbps 3.86, 24 kbps 3.50),
/// and through the call stack with four RED copies 3.02–3.54 at 10 %
/// bursty loss and 3.13–3.48 at 20 % random loss, where 24 kbps scored
/// 2.87–2.96 (three copies) and 3.05: see the level table.
pub const BURSTY_LOSS_BITRATE_BPS: i32 = 28_000;

/// Lowest in-band FEC loss percentage, that of a clean network: at 0
/// libopus (`decide_fec`) turns in-band FEC off, which is what a network
/// without loss wants, since under CBR the in-band copy takes its bits from
/// every primary frame (at 32 kbps even a setting of 1 took PESQ-WB from
/// 3.86 to 3.23 here).
pub const MIN_FEC_LOSS_PERCENT: i32 = 0;

/// Highest in-band FEC loss percentage: libwebrtc clamps the loss it gives
/// libopus there too. At higher loss, RED's extra copies rather than a
/// richer in-band copy carry the protection.
pub const MAX_FEC_LOSS_PERCENT: i32 = 20;

/// Deepest RED redundancy the policy asks for, that of level 3: four
/// copies, 1, 3, 6 and 8 packets later ([`crate::red::SPREAD`]), ride out a
/// single burst of up to 8 lost packets (see the level table).
pub const MAX_RED_DEPTH: u8 = 4;

// The RED encoder must be able to send every depth the policy asks for.
const _: () = assert!(MAX_RED_DEPTH as usize <= crate::red::MAX_DEPTH);

/// Opus frame duration the cost estimates assume.
pub const FRAME_DURATION: Duration = Duration::from_millis(20);

/// Packets per second at [`FRAME_DURATION`].
pub const PACKETS_PER_SECOND: i32 = 50;

/// Per-packet header bytes of an Opus packet relayed over TURN on IPv4 with
/// UDP and ChannelData framing: RTP 12 + SRTP authentication tag 10 + TURN
/// ChannelData 4 + UDP 8 + IPv4 20. RTP header extensions and IPv6 (20 more)
/// add to it; TURN over TCP or TLS adds more still.
pub const RELAYED_IPV4_OVERHEAD_BYTES: i32 = 54;

/// Time constant of the loss average while loss rises: half a second, so a
/// step in loss is 86 % reflected after one 1 s report and 98 % after two.
pub const RISE_TIME_CONSTANT: Duration = Duration::from_millis(500);

/// Time constant of the loss average while loss falls: libwebrtc smooths
/// packet loss over 10 s for its Opus settings too. A call that was losing
/// 10 % gets back to no redundancy about 27 s after the loss stops.
pub const FALL_TIME_CONSTANT: Duration = Duration::from_secs(10);

/// Reports further apart than this are stale: [`SendPolicy::is_stale`]
/// says so, and a report after a longer gap counts for only this much time,
/// because the sender's earlier reports, covering the rest of the gap, were
/// lost (RTCP rides the same bad network).
pub const STALE_AFTER: Duration = Duration::from_secs(5);

/// Least time a report counts for, so that two reports arriving together
/// (or a clock step backwards) still each move the average a little.
const MIN_REPORT_SPAN: Duration = Duration::from_millis(100);

/// Reported interarrival jitter at or above which protection is not
/// lowered: one and a half 20 ms frames, enough that a short playout delay
/// drops some packets as late (a judgement, not measured here).
pub const JITTER_HOLD: Duration = Duration::from_millis(30);

/// RTP clock rate of Opus, always 48 kHz (RFC 7587), the unit of RTCP
/// interarrival jitter for it.
const OPUS_CLOCK_HZ: u64 = 48_000;

/// How far the residual loss (see [`residual_loss_percent`]) must rise
/// above the current FEC percentage before it follows: less than a point,
/// so a residual of 1.95 % still moves a 1 % setting to 2, and 1.2 % loss
/// without RED moves 0 to 1.
const FEC_RISE_POINTS: f64 = 0.75;

/// How far the residual loss must fall below the current FEC percentage
/// before it follows: twice the rise, so a loss rate that wobbles by a
/// point does not move the setting back and forth.
const FEC_FALL_POINTS: f64 = 1.5;

/// Residual loss under which the FEC percentage goes to 0 whatever it was:
/// a third of the rise from 0, so without RED the average must decay for
/// about 11 s (ln 3 × [`FALL_TIME_CONSTANT`]) after switching FEC on before
/// switching it off. At levels 1 and 2 the residual is always below it, and
/// at level 3 until the loss passes 30 %.
const FEC_OFF_BELOW_PERCENT: f64 = 0.25;

/// The loss-related fields of one RTCP report block (RFC 3550 §6.4.1) about
/// our audio stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReceiverReport {
    /// Packets lost since the previous report, as a fraction of 256.
    pub fraction_lost: u8,
    /// Interarrival jitter in RTP timestamp units (1/48,000 s for Opus).
    pub jitter: u32,
}

impl ReceiverReport {
    /// The reported loss in percent (0 to 99.6).
    pub fn loss_percent(&self) -> f64 {
        f64::from(self.fraction_lost) * 100.0 / 256.0
    }

    /// The reported jitter as a duration, at Opus's 48 kHz clock.
    pub fn jitter_duration(&self) -> Duration {
        Duration::from_micros(u64::from(self.jitter) * 1_000_000 / OPUS_CLOCK_HZ)
    }
}

/// What the audio sender should use now.
///
/// Apply `bitrate_bps` with `OPUS_SET_BITRATE` and `fec_loss_percent` with
/// `OPUS_SET_PACKET_LOSS_PERC` (in-band FEC stays enabled; a percentage of
/// 0, the usual value, makes libopus send none). With `red_depth` 0 send
/// plain Opus, otherwise RED with up to that many copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendSettings {
    /// Opus target bitrate, within [`MIN_BITRATE_BPS`]..=[`MAX_BITRATE_BPS`].
    pub bitrate_bps: i32,
    /// Expected loss for Opus in-band FEC, within
    /// [`MIN_FEC_LOSS_PERCENT`]..=[`MAX_FEC_LOSS_PERCENT`]: the loss RED
    /// leaves behind, not the raw loss.
    pub fec_loss_percent: i32,
    /// Earlier frames each packet carries again, 0..=[`MAX_RED_DEPTH`].
    pub red_depth: u8,
}

impl Default for SendSettings {
    /// The settings of a clean call: 32 kbps, no in-band FEC, no
    /// redundancy.
    fn default() -> Self {
        Self {
            bitrate_bps: DEFAULT_BITRATE_BPS,
            fec_loss_percent: MIN_FEC_LOSS_PERCENT,
            red_depth: 0,
        }
    }
}

impl SendSettings {
    /// Estimated RTP payload bits per second: the primary plus one copy per
    /// RED depth (a copy is the size of a primary at the same bitrate), plus
    /// the RED headers (1 byte, and 4 per copy) when RED is on. An estimate:
    /// copies that do not fit are left out, and VBR frames vary in size.
    /// Saturates rather than overflowing on absurd hand-built settings.
    pub fn payload_bps(&self) -> i32 {
        let depth = i32::from(self.red_depth);
        let red_header_bytes = if depth == 0 { 0 } else { 1 + 4 * depth };
        self.bitrate_bps
            .saturating_mul(1 + depth)
            .saturating_add(red_header_bytes * 8 * PACKETS_PER_SECOND)
    }

    /// Estimated bits per second on the wire, given the header bytes each
    /// packet carries below the payload (e.g.
    /// [`RELAYED_IPV4_OVERHEAD_BYTES`]).
    pub fn wire_bps(&self, overhead_bytes_per_packet: i32) -> i32 {
        self.payload_bps()
            .saturating_add(overhead_bytes_per_packet.saturating_mul(8 * PACKETS_PER_SECOND))
    }
}

/// One row of the level table in the module docs.
struct Level {
    /// Smoothed loss (percent) at or above which this level applies.
    enter_percent: f64,
    /// Smoothed loss (percent) below which the policy steps down from it.
    leave_percent: f64,
    red_depth: u8,
    /// The level's bitrate when the base bitrate is higher.
    bitrate_cap_bps: i32,
}

/// The level table; the module docs give each row's reason.
const LEVELS: [Level; 4] = [
    Level {
        enter_percent: 0.0,
        leave_percent: 0.0,
        red_depth: 0,
        bitrate_cap_bps: MAX_BITRATE_BPS,
    },
    Level {
        enter_percent: 1.5,
        leave_percent: 0.75,
        red_depth: 1,
        bitrate_cap_bps: MAX_BITRATE_BPS,
    },
    Level {
        enter_percent: 4.5,
        leave_percent: 2.5,
        red_depth: 2,
        bitrate_cap_bps: BURSTY_LOSS_BITRATE_BPS,
    },
    Level {
        enter_percent: 9.0,
        leave_percent: 6.0,
        red_depth: MAX_RED_DEPTH,
        bitrate_cap_bps: BURSTY_LOSS_BITRATE_BPS,
    },
];

/// Percentage of frames still lost after RED with `red_depth` copies, at a
/// loss rate of `loss_percent`: a frame is lost only if its own packet and
/// the `red_depth` later packets carrying its copies
/// ([`crate::red::SPREAD`]) are all lost, so for independent loss at rate p
/// it is p^(depth+1). Bursty loss leaves more; the spread copies of the
/// deeper levels are there for bursts.
fn residual_loss_percent(loss_percent: f64, red_depth: u8) -> f64 {
    let p = (loss_percent / 100.0).clamp(0.0, 1.0);
    100.0 * p.powi(i32::from(red_depth) + 1)
}

/// The send-side adaptation policy. Pure: feed it reports with
/// [`handle_report`](Self::handle_report), read [`settings`](Self::settings).
#[derive(Debug, Clone)]
pub struct SendPolicy {
    /// Bitrate of the clean levels; lossier levels cap it.
    base_bitrate_bps: i32,
    /// Smoothed loss in percent, 0..=100.
    loss_percent: f64,
    /// Index into [`LEVELS`].
    level: usize,
    /// Jitter of the latest report.
    jitter: Duration,
    /// Time of the latest report, or of creation before the first.
    last_report_at: Duration,
    settings: SendSettings,
}

impl SendPolicy {
    /// A policy created at `now`, starting at [`SendSettings::default`].
    pub fn new(now: Duration) -> Self {
        Self::with_base_bitrate(now, DEFAULT_BITRATE_BPS)
    }

    /// A policy whose clean-network bitrate is `bitrate_bps`, clamped to
    /// [`MIN_BITRATE_BPS`]..=[`MAX_BITRATE_BPS`] (e.g. 40 kbps to match
    /// Signal's start). Lossy levels still cap it as the table says.
    pub fn with_base_bitrate(now: Duration, bitrate_bps: i32) -> Self {
        let base_bitrate_bps = bitrate_bps.clamp(MIN_BITRATE_BPS, MAX_BITRATE_BPS);
        Self {
            base_bitrate_bps,
            loss_percent: 0.0,
            level: 0,
            jitter: Duration::ZERO,
            last_report_at: now,
            settings: SendSettings {
                bitrate_bps: base_bitrate_bps,
                ..SendSettings::default()
            },
        }
    }

    /// The settings to use now.
    pub fn settings(&self) -> SendSettings {
        self.settings
    }

    /// The smoothed loss in percent.
    pub fn smoothed_loss_percent(&self) -> f64 {
        self.loss_percent
    }

    /// Whether no report has arrived for more than [`STALE_AFTER`] (counting
    /// from creation before the first). The settings stay as they were.
    pub fn is_stale(&self, now: Duration) -> bool {
        now.saturating_sub(self.last_report_at) > STALE_AFTER
    }

    /// Takes in a receiver report about our stream that arrived at `now`.
    /// Returns the new settings if they changed.
    pub fn handle_report(&mut self, now: Duration, report: ReceiverReport) -> Option<SendSettings> {
        let span = now
            .saturating_sub(self.last_report_at)
            .clamp(MIN_REPORT_SPAN, STALE_AFTER);
        self.last_report_at = self.last_report_at.max(now);
        self.jitter = report.jitter_duration();

        let sample = report.loss_percent();
        let time_constant = if sample > self.loss_percent {
            RISE_TIME_CONSTANT
        } else {
            FALL_TIME_CONSTANT
        };
        // Weight of a sample covering `span` in a continuous-time average.
        let weight = 1.0 - (-span.as_secs_f64() / time_constant.as_secs_f64()).exp();
        self.loss_percent += weight * (sample - self.loss_percent);

        self.update_level();
        let previous = self.settings;
        self.settings = SendSettings {
            bitrate_bps: self.level_bitrate(),
            fec_loss_percent: self.fec_loss_percent(),
            red_depth: self.current_level().red_depth,
        };
        (self.settings != previous).then_some(self.settings)
    }

    fn current_level(&self) -> &'static Level {
        // `level` only ever comes from a position in LEVELS or steps down
        // from one, so it is in range; level 0 is the fallback regardless.
        LEVELS.get(self.level).unwrap_or(&LEVELS[0])
    }

    fn update_level(&mut self) {
        let called_for = LEVELS
            .iter()
            .rposition(|l| self.loss_percent >= l.enter_percent)
            .unwrap_or(0);
        if called_for > self.level {
            self.level = called_for;
        } else if self.level > 0
            && self.loss_percent < self.current_level().leave_percent
            && self.jitter < JITTER_HOLD
        {
            self.level -= 1;
        }
    }

    fn level_bitrate(&self) -> i32 {
        self.base_bitrate_bps
            .min(self.current_level().bitrate_cap_bps)
            .clamp(MIN_BITRATE_BPS, MAX_BITRATE_BPS)
    }

    fn fec_loss_percent(&self) -> i32 {
        let current = self.settings.fec_loss_percent;
        let current_f = f64::from(current);
        let target = residual_loss_percent(self.loss_percent, self.current_level().red_depth)
            .clamp(
                f64::from(MIN_FEC_LOSS_PERCENT),
                f64::from(MAX_FEC_LOSS_PERCENT),
            );
        if target < FEC_OFF_BELOW_PERCENT
            || target >= current_f + FEC_RISE_POINTS
            || target <= current_f - FEC_FALL_POINTS
        {
            // In 0.0..=20.0, so the conversion is exact.
            target.round() as i32
        } else {
            current
        }
    }
}

#[cfg(test)]
mod tests;
