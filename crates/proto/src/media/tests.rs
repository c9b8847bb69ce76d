//! The policy in virtual time: reports arrive every `interval` on a clock
//! that starts at an arbitrary epoch; one test per behaviour, table-driven
//! where a behaviour has cases.

use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;

const SECOND: Duration = Duration::from_secs(1);
/// An arbitrary epoch, so nothing depends on time starting at zero.
const EPOCH: Duration = Duration::from_secs(1000);
/// 30 ms of jitter at 48 kHz: exactly [`JITTER_HOLD`].
const HOLDING_JITTER: u32 = 1440;

/// `percent` as RTCP carries it, in 256ths.
fn fraction(percent: f64) -> u8 {
    (percent * 256.0 / 100.0).round() as u8
}

fn lossy(percent: f64) -> ReceiverReport {
    ReceiverReport {
        fraction_lost: fraction(percent),
        jitter: 0,
    }
}

fn settings(bitrate_bps: i32, fec_loss_percent: i32, red_depth: u8) -> SendSettings {
    SendSettings {
        bitrate_bps,
        fec_loss_percent,
        red_depth,
    }
}

/// A policy and its virtual clock.
struct Sim {
    policy: SendPolicy,
    now: Duration,
}

impl Sim {
    fn new() -> Self {
        Self {
            policy: SendPolicy::new(EPOCH),
            now: EPOCH,
        }
    }

    /// Advances the clock by `after`, delivers `report`, and returns the
    /// settings, checking that `handle_report` said whether they changed.
    fn report(&mut self, after: Duration, report: ReceiverReport) -> SendSettings {
        self.now += after;
        let before = self.policy.settings();
        let changed = self.policy.handle_report(self.now, report);
        let now_settings = self.policy.settings();
        assert_eq!(changed, (now_settings != before).then_some(now_settings));
        now_settings
    }

    /// `count` reports of `report`, one per `interval`; settings after each.
    fn run(
        &mut self,
        count: usize,
        interval: Duration,
        report: ReceiverReport,
    ) -> Vec<SendSettings> {
        (0..count).map(|_| self.report(interval, report)).collect()
    }
}

#[test]
fn clean_network_stays_at_defaults() {
    for interval in [SECOND / 2, SECOND, 5 * SECOND] {
        let mut sim = Sim::new();
        for (i, got) in sim.run(120, interval, lossy(0.0)).into_iter().enumerate() {
            assert_eq!(
                got,
                SendSettings::default(),
                "report {i} every {interval:?}"
            );
        }
    }
}

#[test]
fn a_clean_call_costs_under_60_kbps_on_the_wire() {
    let clean = SendSettings::default();
    assert_eq!(clean, settings(32_000, 0, 0));
    // 80 B of Opus + 54 B of headers, 50 times a second.
    assert_eq!(clean.wire_bps(RELAYED_IPV4_OVERHEAD_BYTES), 53_600);
    assert!(clean.wire_bps(RELAYED_IPV4_OVERHEAD_BYTES) <= 60_000);
}

#[test]
fn cost_estimates_count_copies_and_red_headers() {
    let cases = [
        // (settings, payload bps, wire bps with relayed IPv4 overhead)
        (settings(32_000, 0, 0), 32_000, 53_600),
        (settings(32_000, 0, 1), 64_000 + 5 * 400, 87_600),
        (settings(28_000, 0, 2), 84_000 + 9 * 400, 109_200),
        // Level 3: 140 kbps of Opus, 17 B of RED headers per packet.
        (settings(28_000, 0, 4), 140_000 + 17 * 400, 168_400),
        (settings(28_000, 3, 4), 140_000 + 17 * 400, 168_400),
        // Depths the policy skips, and a low base, cost the same way.
        (settings(28_000, 0, 3), 112_000 + 13 * 400, 138_800),
        (settings(16_000, 20, 4), 80_000 + 17 * 400, 108_400),
    ];
    for (s, payload, wire) in cases {
        assert_eq!(s.payload_bps(), payload, "{s:?}");
        assert_eq!(s.wire_bps(RELAYED_IPV4_OVERHEAD_BYTES), wire, "{s:?}");
    }
}

#[test]
fn steady_loss_settles_at_its_level() {
    // FEC plans for the loss RED leaves, p^(depth+1): only without RED or
    // under very heavy loss is that a percent or more. Every row of the
    // level table appears, level 3 from 10 % loss up.
    let cases = [
        (0.0, settings(32_000, 0, 0)),
        // 1/256 = 0.39 %: under the 0.75 points FEC needs to leave 0.
        (0.5, settings(32_000, 0, 0)),
        // 2/256 = 0.78 % and 3/256 = 1.17 %, planned as is without RED.
        (0.8, settings(32_000, 1, 0)),
        (1.2, settings(32_000, 1, 0)),
        (2.0, settings(32_000, 0, 1)),
        (5.0, settings(28_000, 0, 2)),
        (10.0, settings(28_000, 0, 4)),
        // No separate level for heavy loss: still 28 kbps and four copies.
        (20.0, settings(28_000, 0, 4)),
        // 77/256: 0.3008^5 = 0.25 %, under the 0.75 points to leave 0.
        (30.0, settings(28_000, 0, 4)),
        // 102/256: 0.3984^5 = 1.0 %.
        (40.0, settings(28_000, 1, 4)),
        // 0.5^5 = 3.1 %.
        (50.0, settings(28_000, 3, 4)),
        // 205/256: 0.8008^5 = 33 %, clamped.
        (80.0, settings(28_000, 20, 4)),
    ];
    for (percent, expected) in cases {
        let mut sim = Sim::new();
        let got = sim.run(30, SECOND, lossy(percent));
        assert_eq!(got.last(), Some(&expected), "{percent} % loss");
    }
}

#[test]
fn levels_enter_at_their_thresholds() {
    // (loss in 256ths, settings it settles at): the RTCP values either
    // side of each entry threshold.
    let cases = [
        // 3/256 = 1.17 % and 4/256 = 1.56 % either side of 1.5 %.
        (3, settings(32_000, 1, 0)),
        (4, settings(32_000, 0, 1)),
        // 11/256 = 4.30 % and 12/256 = 4.69 % either side of 4.5 %.
        (11, settings(32_000, 0, 1)),
        (12, settings(28_000, 0, 2)),
        // 23/256 = 8.98 % and 24/256 = 9.38 % either side of 9 %.
        (23, settings(28_000, 0, 2)),
        (24, settings(28_000, 0, 4)),
        // Nothing above level 3: 128/256 = 50 %, 255/256 = 99.6 %.
        (128, settings(28_000, 3, 4)),
        (255, settings(28_000, 20, 4)),
    ];
    for (fraction_lost, expected) in cases {
        let mut sim = Sim::new();
        let report = ReceiverReport {
            fraction_lost,
            jitter: 0,
        };
        let got = sim.run(30, SECOND, report);
        assert_eq!(got.last(), Some(&expected), "{fraction_lost}/256");
    }
}

#[test]
fn levels_are_left_only_below_their_leave_thresholds() {
    // (loss in 256ths that raises the level, loss in 256ths held for a
    // minute after it, settings then): the RTCP values either side of each
    // leave threshold. At or above it the level stays, though the loss is
    // below its entry; below it the policy falls to the level called for.
    let cases = [
        // 16/256 = 6.25 % and 15/256 = 5.86 % either side of 6 %.
        (26, 16, settings(28_000, 0, 4)),
        (26, 15, settings(28_000, 0, 2)),
        // 7/256 = 2.73 % and 6/256 = 2.34 % either side of 2.5 %.
        (13, 7, settings(28_000, 0, 2)),
        (13, 6, settings(32_000, 0, 1)),
        // From level 3, one step per report down to the level called for.
        (26, 7, settings(28_000, 0, 2)),
        (26, 6, settings(32_000, 0, 1)),
        // 2/256 = 0.78 % and 1/256 = 0.39 % either side of 0.75 %.
        (5, 2, settings(32_000, 0, 1)),
        (5, 1, SendSettings::default()),
    ];
    for (raise, hold, expected) in cases {
        let mut sim = Sim::new();
        let report = |fraction_lost| ReceiverReport {
            fraction_lost,
            jitter: 0,
        };
        sim.run(30, SECOND, report(raise));
        let got = sim.run(60, SECOND, report(hold));
        assert_eq!(got.last(), Some(&expected), "{raise}/256 then {hold}/256");
    }
}

#[test]
fn residual_loss_is_what_all_copies_missing_leaves() {
    // (loss percent, RED depth, residual percent)
    let cases = [
        (0.0, 0, 0.0),
        (1.2, 0, 1.2),
        (2.0, 1, 0.04),
        (10.0, 1, 1.0),
        (9.0, 2, 0.0729),
        (10.0, 3, 0.01),
        (10.0, 4, 0.001),
        (30.0, 4, 0.243),
        (50.0, 4, 3.125),
        (100.0, 4, 100.0),
        // Out-of-range input is clamped to a probability.
        (150.0, 2, 100.0),
        (-5.0, 0, 0.0),
    ];
    for (loss, depth, residual) in cases {
        let got = residual_loss_percent(loss, depth);
        assert!(
            (got - residual).abs() < 1e-9,
            "{loss} % at depth {depth}: {got}"
        );
    }
}

#[test]
fn in_band_fec_plans_for_the_loss_red_leaves() {
    let mut sim = Sim::new();
    // Without RED, 1.2 % loss (3/256) is planned as is.
    let got = sim.run(10, SECOND, lossy(1.2));
    assert_eq!(got.last(), Some(&settings(32_000, 1, 0)));
    // One RED copy leaves 0.04 %: FEC goes off with the same report that
    // turns RED on, and stays off while RED covers the loss...
    let got = sim.run(10, SECOND, lossy(2.0));
    assert_eq!(got[0], settings(32_000, 0, 1));
    assert!(got.iter().all(|s| s.fec_loss_percent == 0), "{got:?}");
    for percent in [5.0, 10.0, 20.0, 30.0] {
        let got = sim.run(10, SECOND, lossy(percent));
        assert!(
            got.iter().all(|s| s.fec_loss_percent == 0),
            "{percent} %: {got:?}"
        );
    }
    // ...until even four copies leave a percent or more: 0.5^5 = 3.1 %.
    let got = sim.run(10, SECOND, lossy(50.0));
    assert_eq!(got.last(), Some(&settings(28_000, 3, 4)));
}

#[test]
fn in_band_fec_does_not_flap_near_its_threshold() {
    // Reports every 5 s alternating two lost packets (0.78 %) and none: the
    // average swings between about 0.78 % and 0.47 %, which would round to
    // 1 and 0 in turn.
    let mut sim = Sim::new();
    let mut got = Vec::new();
    for _ in 0..20 {
        got.push(sim.report(5 * SECOND, lossy(0.8)));
        got.push(sim.report(5 * SECOND, lossy(0.0)));
    }
    assert!(got.iter().all(|s| *s == settings(32_000, 1, 0)), "{got:?}");
    let low = sim.policy.smoothed_loss_percent();
    assert!((0.4..0.5).contains(&low), "{low}");
    // Once the loss stops, it goes off when the average is under 0.25 %,
    // 0.47 % × e^(-0.5 × 2) = 0.17 % at the second clean report.
    let got = sim.run(3, 5 * SECOND, lossy(0.0));
    let fec: Vec<i32> = got.iter().map(|s| s.fec_loss_percent).collect();
    assert_eq!(fec, [1, 0, 0]);
}

#[test]
fn a_jump_to_10_percent_reaches_level_3_within_about_a_second_of_reports() {
    // (report interval, reports it may take)
    let cases = [
        (SECOND / 2, 3),
        (SECOND, 2),
        (2 * SECOND, 1),
        (5 * SECOND, 1),
    ];
    for (interval, within) in cases {
        let mut sim = Sim::new();
        sim.run(10, interval, lossy(0.0));
        let got = sim.run(within, interval, lossy(10.0));
        assert_eq!(
            got.last(),
            Some(&settings(28_000, 0, 4)),
            "every {interval:?}"
        );
        // And protection starts with the very first lossy report.
        assert!(got[0].red_depth >= 2, "every {interval:?}: {got:?}");
    }
}

#[test]
fn loss_gone_decays_slowly_and_monotonically_back_to_defaults() {
    let mut sim = Sim::new();
    let got = sim.run(20, SECOND, lossy(10.0));
    assert_eq!(got.last(), Some(&settings(28_000, 0, 4)));
    let decay = sim.run(60, SECOND, lossy(0.0));

    // The average falls from 10.16 % by e^(-t / 10 s), so t seconds into
    // the clean stretch (report t - 1) it is under level 3's 6 % from
    // t = 6, under level 2's 2.5 % from t = 15 (2.50 % at 14), and under
    // level 1's 0.75 % from t = 27 (0.754 % at 26): redundancy outlasts a
    // short lull, the bitrate comes back after a clean stretch, and all is
    // back to normal in about half a minute (see the docs).
    let changes: Vec<(usize, SendSettings)> = std::iter::once(got[got.len() - 1])
        .chain(decay.iter().copied())
        .collect::<Vec<_>>()
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] != w[1])
        .map(|(i, w)| (i, w[1]))
        .collect();
    assert_eq!(
        changes,
        [
            (5, settings(28_000, 0, 2)),
            (14, settings(32_000, 0, 1)),
            (26, SendSettings::default()),
        ]
    );
}

#[test]
fn levels_fall_one_per_report() {
    let mut sim = Sim::new();
    sim.run(10, SECOND, lossy(30.0));
    // A long, entirely clean stretch with jitter held high drives the
    // average to zero while the level waits...
    let held = ReceiverReport {
        fraction_lost: 0,
        jitter: HOLDING_JITTER,
    };
    let got = sim.run(120, SECOND, held);
    assert!(got.iter().all(|s| *s == settings(28_000, 0, 4)), "{got:?}");
    // ...then, once jitter drops, it steps down through every level, from
    // the top one, and stops at the bottom.
    let got = sim.run(4, SECOND, lossy(0.0));
    assert_eq!(
        got,
        [
            settings(28_000, 0, 2),
            settings(32_000, 0, 1),
            SendSettings::default(),
            SendSettings::default(),
        ]
    );
}

#[test]
fn noisy_loss_does_not_flap() {
    // (loss centre ± 1 point in 256ths, depth and bitrate it settles at,
    // FEC percentage range it may settle in)
    let cases = [
        (5, 1, 32_000, 0..=0),
        (13, 2, 28_000, 0..=0),
        (26, 4, 28_000, 0..=0),
        // About 40 %: still level 3, where four copies leave about 1 %
        // (0.91 % to 1.16 % over the noise's range) for in-band FEC.
        (102, 4, 28_000, 1..=1),
    ];
    for (centre, depth, bitrate, fec) in cases {
        let mut sim = Sim::new();
        // A fixed xorshift sequence, uniform over centre-2..=centre+3 (about
        // ±1 point: 2.56 256ths).
        let mut state: u32 = 0x9e37_79b9;
        let mut noisy = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            ReceiverReport {
                fraction_lost: centre - 2 + (state % 6) as u8,
                jitter: 200,
            }
        };
        let got: Vec<SendSettings> = std::iter::once(SendSettings::default())
            .chain((0..300).map(|_| sim.report(SECOND, noisy())))
            .collect();
        let changes: Vec<(usize, SendSettings)> = got
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w[0] != w[1])
            .map(|(i, w)| (i + 1, w[1]))
            .collect();
        // Settling takes a few steps at the start...
        assert!(
            !changes.is_empty() && changes.len() <= 4,
            "centre {centre}: {changes:?}"
        );
        assert!(
            changes.iter().all(|(i, _)| *i <= 30),
            "centre {centre}: {changes:?}"
        );
        // ...and nothing ever moves back.
        for pair in got.windows(2) {
            assert!(pair[1].red_depth >= pair[0].red_depth, "{pair:?}");
            assert!(pair[1].bitrate_bps <= pair[0].bitrate_bps, "{pair:?}");
            assert!(
                pair[1].fec_loss_percent >= pair[0].fec_loss_percent,
                "{pair:?}"
            );
        }
        let last = got.last().copied().unwrap_or_default();
        assert_eq!(
            (last.red_depth, last.bitrate_bps),
            (depth, bitrate),
            "centre {centre}"
        );
        assert!(
            fec.contains(&last.fec_loss_percent),
            "centre {centre}: {last:?}"
        );
    }
}

#[test]
fn jitter_at_the_hold_threshold_keeps_protection() {
    // (jitter in 48 kHz ticks, whether redundancy is still on after 60 s)
    let cases = [
        (0, false),
        (HOLDING_JITTER - 1, false),
        (HOLDING_JITTER, true),
        (4800, true),
    ];
    for (jitter, held) in cases {
        let mut sim = Sim::new();
        // 40 % loss: level 3 with some in-band FEC (0.3984^5 = 1.0 %).
        let got = sim.run(10, SECOND, lossy(40.0));
        assert_eq!(got.last(), Some(&settings(28_000, 1, 4)));
        let report = ReceiverReport {
            fraction_lost: 0,
            jitter,
        };
        let got = sim.run(60, SECOND, report);
        let last = got.last().copied().unwrap_or_default();
        let expected = if held {
            settings(28_000, 0, 4)
        } else {
            SendSettings::default()
        };
        assert_eq!(last, expected, "jitter {jitter}");
    }
}

#[test]
fn silence_keeps_settings_and_the_next_report_counts_for_at_most_5s() {
    let mut sim = Sim::new();
    let lossy_settings = sim.run(10, SECOND, lossy(10.0));
    let before = sim.policy.settings();
    assert_eq!(lossy_settings.last(), Some(&before));
    assert_eq!(before, settings(28_000, 0, 4));
    assert!(!sim.policy.is_stale(sim.now + STALE_AFTER));
    assert!(
        sim.policy
            .is_stale(sim.now + STALE_AFTER + Duration::from_millis(1))
    );

    // A clean report after a minute of silence weighs as 5 s, not 60 s:
    // 10.16 % falls to 10.16 × e^(-0.5) ≈ 6.2 %, still level 3.
    let got = sim.report(60 * SECOND, lossy(0.0));
    let loss = sim.policy.smoothed_loss_percent();
    assert!((6.1..6.3).contains(&loss), "{loss}");
    assert_eq!(got, before);
    assert!(!sim.policy.is_stale(sim.now));
}

#[test]
fn the_first_report_counts_from_creation() {
    let mut sim = Sim::new();
    // 1 s after creation: weight 1 - e^-2 of 10.16 %.
    sim.report(SECOND, lossy(10.0));
    let loss = sim.policy.smoothed_loss_percent();
    assert!((8.7..8.9).contains(&loss), "{loss}");
}

#[test]
fn reports_together_or_out_of_order_still_count_and_never_panic() {
    let mut sim = Sim::new();
    sim.report(10 * SECOND, lossy(0.0));
    // Same instant: counted as 100 ms.
    sim.report(Duration::ZERO, lossy(10.0));
    let once = sim.policy.smoothed_loss_percent();
    assert!(once > 0.0);
    sim.report(Duration::ZERO, lossy(10.0));
    assert!(sim.policy.smoothed_loss_percent() > once);
    // A clock step backwards is treated like the same instant.
    let now = sim.now;
    sim.policy.handle_report(now - 5 * SECOND, lossy(10.0));
    assert!(!sim.policy.is_stale(now + STALE_AFTER));
}

#[test]
fn base_bitrate_is_clamped_and_capped_by_the_level() {
    // (base, clean bitrate, at 2 % loss, at 5 %, at 10 %, at 20 %)
    let cases = [
        (0, 16_000, 16_000, 16_000, 16_000, 16_000),
        (20_000, 20_000, 20_000, 20_000, 20_000, 20_000),
        (26_000, 26_000, 26_000, 26_000, 26_000, 26_000),
        (28_000, 28_000, 28_000, 28_000, 28_000, 28_000),
        (30_000, 30_000, 30_000, 28_000, 28_000, 28_000),
        (32_000, 32_000, 32_000, 28_000, 28_000, 28_000),
        (40_000, 40_000, 40_000, 28_000, 28_000, 28_000),
        (i32::MAX, 40_000, 40_000, 28_000, 28_000, 28_000),
    ];
    for (base, clean, at_2, at_5, at_10, at_20) in cases {
        let bitrate_after = |percent: f64| {
            let mut sim = Sim::new();
            sim.policy = SendPolicy::with_base_bitrate(EPOCH, base);
            sim.run(30, SECOND, lossy(percent))
                .last()
                .map(|s| s.bitrate_bps)
        };
        let fresh = SendPolicy::with_base_bitrate(EPOCH, base).settings();
        assert_eq!(fresh.bitrate_bps, clean, "base {base}");
        assert_eq!(bitrate_after(0.0), Some(clean), "base {base}");
        assert_eq!(bitrate_after(2.0), Some(at_2), "base {base}");
        assert_eq!(bitrate_after(5.0), Some(at_5), "base {base}");
        assert_eq!(bitrate_after(10.0), Some(at_10), "base {base}");
        assert_eq!(bitrate_after(20.0), Some(at_20), "base {base}");
    }
}

#[test]
fn report_fields_convert_from_rtcp_units() {
    let cases = [(0, 0.0), (64, 25.0), (128, 50.0), (255, 99.609_375)];
    for (fraction_lost, percent) in cases {
        let r = ReceiverReport {
            fraction_lost,
            jitter: 0,
        };
        assert_eq!(r.loss_percent(), percent);
    }
    let r = ReceiverReport {
        fraction_lost: 0,
        jitter: 48,
    };
    assert_eq!(r.jitter_duration(), Duration::from_millis(1));
}

fn any_report() -> impl Strategy<Value = (i64, ReceiverReport)> {
    (
        // Mostly forward, sometimes together or backwards, sometimes long gaps.
        -2_000i64..20_000,
        any::<u8>(),
        prop_oneof![Just(0u32), 0u32..3_000, any::<u32>()],
    )
        .prop_map(|(gap_ms, fraction_lost, jitter)| {
            (
                gap_ms,
                ReceiverReport {
                    fraction_lost,
                    jitter,
                },
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_report_sequence_keeps_settings_in_bounds(
        base in any::<i32>(),
        reports in vec(any_report(), 0..200),
    ) {
        let mut now = EPOCH;
        let mut policy = SendPolicy::with_base_bitrate(now, base);
        for (gap_ms, report) in reports {
            now = if gap_ms >= 0 {
                now + Duration::from_millis(gap_ms as u64)
            } else {
                now.saturating_sub(Duration::from_millis(gap_ms.unsigned_abs()))
            };
            let before = policy.settings();
            let changed = policy.handle_report(now, report);
            let s = policy.settings();
            prop_assert_eq!(changed, (s != before).then_some(s));
            prop_assert!((MIN_BITRATE_BPS..=MAX_BITRATE_BPS).contains(&s.bitrate_bps), "{s:?}");
            // Every setting is a row of the level table: levels 0 and 1
            // send the base, levels 2 and 3 at most 28 kbps of it, so no
            // level goes below 28 kbps unless the base is lower.
            let clamped = base.clamp(MIN_BITRATE_BPS, MAX_BITRATE_BPS);
            let capped = clamped.min(BURSTY_LOSS_BITRATE_BPS);
            let row_bitrate = match s.red_depth {
                0 | 1 => Some(clamped),
                2 | 4 => Some(capped),
                _ => None,
            };
            prop_assert_eq!(Some(s.bitrate_bps), row_bitrate, "base {}: {:?}", base, s);
            prop_assert!(
                (MIN_FEC_LOSS_PERCENT..=MAX_FEC_LOSS_PERCENT).contains(&s.fec_loss_percent),
                "{s:?}"
            );
            prop_assert!(s.red_depth <= MAX_RED_DEPTH, "{s:?}");
            let loss = policy.smoothed_loss_percent();
            prop_assert!((0.0..=100.0).contains(&loss), "{loss}");
            // FEC stays within its hysteresis of the loss RED leaves.
            let residual = residual_loss_percent(loss, s.red_depth)
                .clamp(0.0, f64::from(MAX_FEC_LOSS_PERCENT));
            prop_assert!((f64::from(s.fec_loss_percent) - residual).abs() < 1.5, "{loss} {s:?}");
            if residual < 0.25 {
                prop_assert_eq!(s.fec_loss_percent, 0);
            }
            prop_assert!(s.payload_bps() >= s.bitrate_bps);
        }
    }

    #[test]
    fn any_history_recovers_to_defaults_on_a_clean_network(
        reports in vec(any_report(), 0..100),
    ) {
        let mut now = EPOCH;
        let mut policy = SendPolicy::new(now);
        for (gap_ms, report) in reports {
            now += Duration::from_millis(gap_ms.unsigned_abs());
            policy.handle_report(now, report);
        }
        // From 100 % loss, 10 s per e-fold reaches 0.75 % in under 50 s.
        for _ in 0..60 {
            now += SECOND;
            policy.handle_report(now, ReceiverReport::default());
        }
        prop_assert_eq!(policy.settings(), SendSettings::default());
    }
}
