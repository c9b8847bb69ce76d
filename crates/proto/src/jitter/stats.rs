//! What the jitter buffer reports: delays for the UI's quality indicator,
//! and counters for benchmarks and logs.

/// A snapshot of the jitter buffer's state and counters, from
/// [`JitterBuffer::stats`](super::JitterBuffer::stats).
///
/// Counters count frames (one RTP timestamp each) or samples since the
/// buffer was made; they never go down.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct JitterStats {
    /// The playout delay at the last pull: how long after the fastest
    /// recent frames arrive their audio is played, beyond the frame itself.
    /// This is the delay the buffer adds and steers towards
    /// [`target_delay_ms`](Self::target_delay_ms).
    pub delay_ms: f64,
    /// The delay the buffer aims for: the 95th percentile (by default) of
    /// how late frames arrive, plus one pull, within the configured bounds.
    pub target_delay_ms: f64,
    /// Audio held: frames waiting to be decoded (at their nominal length)
    /// plus decoded samples waiting to be played.
    pub buffered_ms: f64,
    /// Interarrival jitter of primary frames as RFC 3550 (section 6.4.1)
    /// defines it: a smoothed mean of transit-time differences.
    pub jitter_ms: f64,
    /// Fraction of recent output (about the last two seconds) that was
    /// made up: concealment, its fade-out, and silence after a stream
    /// stopped. 0 when all is well, 1 during an outage.
    pub concealment_rate: f64,
    /// Distinct frames received (first copies, on time or not).
    pub frames_received: u64,
    /// Frames decoded from their own payload.
    pub frames_decoded: u64,
    /// Frames whose first copy was a redundant (RED) one and that were
    /// played from it: losses that redundancy repaired.
    pub frames_recovered_red: u64,
    /// Frames rebuilt from the in-band FEC of the frame after them.
    pub frames_recovered_fec: u64,
    /// Frames missing when their turn came while a later frame was there:
    /// recovered by FEC or concealed. An outage with nothing after it is
    /// not counted here (the sender may just be silent); see
    /// [`concealed_ms`](Self::concealed_ms).
    pub frames_lost: u64,
    /// Frames that arrived after their playout time and were dropped.
    pub frames_late: u64,
    /// Copies of frames already held or played (including redundant copies
    /// of frames whose primary arrived).
    pub duplicates: u64,
    /// Primary frames that arrived after a primary frame with a later
    /// timestamp.
    pub reordered: u64,
    /// Frames dropped unplayed to stay within capacity or to catch up
    /// with a stream that got far ahead.
    pub frames_dropped: u64,
    /// Packets refused: empty, too large, or with a timestamp far from the
    /// stream's (see [`Reject`](super::Reject)).
    pub rejected: u64,
    /// Times the buffer started over with a new stream.
    pub resets: u64,
    /// Decoder calls that failed (the audio was concealed instead).
    pub decoder_errors: u64,
    /// Audio made up by packet-loss concealment, including fade-outs.
    pub concealed_ms: f64,
    /// Audio removed by accelerate to shrink the delay.
    pub accelerated_ms: f64,
    /// Audio added by preemptive expand to grow the delay.
    pub expanded_ms: f64,
}

/// Counters, kept in samples and frames; converted in the snapshot.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counters {
    pub received: u64,
    pub decoded: u64,
    pub recovered_red: u64,
    pub recovered_fec: u64,
    pub lost: u64,
    pub late: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub dropped: u64,
    pub rejected: u64,
    pub resets: u64,
    pub decoder_errors: u64,
    pub concealed_samples: u64,
    pub accelerated_samples: u64,
    pub expanded_samples: u64,
}

/// RFC 3550 interarrival jitter: `J += (|D| - J) / 16`, where `D` is the
/// change in transit time between consecutive packets.
#[derive(Debug, Clone, Default)]
pub(crate) struct InterarrivalJitter {
    last_transit_us: Option<i64>,
    jitter_us: f64,
}

impl InterarrivalJitter {
    pub(crate) fn update(&mut self, transit_us: i64) {
        if let Some(last) = self.last_transit_us {
            let change = transit_us.saturating_sub(last).unsigned_abs();
            // Transit changes are far below f64's exact-integer range.
            let change = change as f64;
            self.jitter_us += (change - self.jitter_us) / 16.0;
        }
        self.last_transit_us = Some(transit_us);
    }

    /// Forgets the last transit: the next packet starts a new stream.
    pub(crate) fn restart(&mut self) {
        self.last_transit_us = None;
    }

    pub(crate) fn ms(&self) -> f64 {
        self.jitter_us / 1_000.0
    }
}

/// An exponential moving average of the fraction of output that was made
/// up, weighted by samples so that it does not depend on the pull size.
#[derive(Debug, Clone)]
pub(crate) struct ConcealmentRate {
    window_samples: f64,
    rate: f64,
}

impl ConcealmentRate {
    pub(crate) fn new(window_samples: f64) -> Self {
        Self {
            window_samples: window_samples.max(1.0),
            rate: 0.0,
        }
    }

    /// Accounts for `made_up` of `total` output samples.
    pub(crate) fn update(&mut self, made_up: usize, total: usize) {
        if total == 0 {
            return;
        }
        let total_f = total as f64;
        let fraction = (made_up.min(total) as f64) / total_f;
        let alpha = (total_f / self.window_samples).min(1.0);
        self.rate += alpha * (fraction - self.rate);
    }

    pub(crate) fn rate(&self) -> f64 {
        self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interarrival_jitter_follows_rfc_3550() {
        let mut jitter = InterarrivalJitter::default();
        jitter.update(1_000);
        assert_eq!(jitter.ms(), 0.0);
        jitter.update(17_000);
        assert!((jitter.ms() - 1.0).abs() < 1e-9);
        jitter.restart();
        jitter.update(900_000);
        assert!((jitter.ms() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn concealment_rate_tracks_the_recent_fraction() {
        let mut rate = ConcealmentRate::new(96_000.0);
        for _ in 0..2_000 {
            rate.update(480, 480);
        }
        assert!(rate.rate() > 0.99);
        for _ in 0..2_000 {
            rate.update(48, 480);
        }
        assert!((rate.rate() - 0.1).abs() < 0.01);
        rate.update(5, 0);
        assert!((rate.rate() - 0.1).abs() < 0.01);
    }
}
