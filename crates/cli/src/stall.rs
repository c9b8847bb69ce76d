//! Whether the machine itself paused while a benchmark ran.
//!
//! On a shared virtual machine the hypervisor now and then stops every
//! virtual CPU for tens of milliseconds ("steal" time). Every thread of a
//! call stops with it, so after the pause the far end's packets arrive
//! late all at once: to a jitter buffer that is a network jitter spike the
//! benchmark never injected. A [`StallWatch`] runs during a measurement and
//! says how long the longest such pause was, so a result spoilt by one can
//! be told apart from one our code is to blame for.
//!
//! It watches two ways: a thread that sleeps [`TICK`] at a time and notes
//! how much later than asked it woke up (a plain sleeping thread on a
//! mostly idle machine only oversleeps when nothing ran at all), and the
//! kernel's steal counter in `/proc/stat` where the kernel has one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::stats::ms;

/// How long the watching thread sleeps between looks: often enough to
/// catch a 15 ms pause, seldom enough to cost next to nothing.
const TICK: Duration = Duration::from_millis(10);
/// `/proc/stat` counts in USER_HZ, 100 on every Linux build.
const TICKS_PER_SECOND: u64 = 100;

/// What a [`StallWatch`] saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stalls {
    /// The longest time the watching thread woke up later than it asked.
    pub longest: Duration,
    /// CPU time the hypervisor took from this machine meanwhile, summed
    /// over its CPUs (`None` where the kernel does not count it).
    pub steal: Option<Duration>,
    /// CPU time the watching thread used itself, for measurements of the
    /// process's CPU to leave out.
    pub own_cpu: Duration,
}

impl Stalls {
    /// Whether the machine paused for at least `threshold` at a time.
    pub fn paused(&self, threshold: Duration) -> bool {
        self.longest >= threshold
    }
}

impl std::fmt::Display for Stalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "longest machine pause {:.0} ms", ms(self.longest))?;
        if let Some(steal) = self.steal {
            write!(f, ", {:.0} ms stolen by the hypervisor", ms(steal))?;
        }
        Ok(())
    }
}

/// Watches for machine pauses from [`StallWatch::start`] until
/// [`StallWatch::stop`].
#[derive(Debug)]
pub struct StallWatch {
    stop: Arc<AtomicBool>,
    /// Returns the longest oversleep and its own CPU time.
    thread: Option<JoinHandle<(Duration, Duration)>>,
    steal_before: Option<u64>,
}

impl StallWatch {
    /// Starts watching.
    pub fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("stall-watch".to_owned())
                .spawn(move || {
                    let mut longest = Duration::ZERO;
                    while !stop.load(Ordering::Relaxed) {
                        let asked = Instant::now();
                        std::thread::sleep(TICK);
                        longest = longest.max(asked.elapsed().saturating_sub(TICK));
                    }
                    let own_cpu = std::fs::read_to_string("/proc/thread-self/stat")
                        .ok()
                        .and_then(|stat| cpu_time(&stat))
                        .unwrap_or_default();
                    (longest, own_cpu)
                })
                // Without the thread there is just no pause measured.
                .ok()
        };
        Self {
            stop,
            thread,
            steal_before: steal_ticks(),
        }
    }

    /// Stops watching and says what was seen.
    pub fn stop(mut self) -> Stalls {
        self.stop.store(true, Ordering::Relaxed);
        let (longest, own_cpu) = self
            .thread
            .take()
            .and_then(|thread| thread.join().ok())
            .unwrap_or_default();
        let steal = match (self.steal_before, steal_ticks()) {
            (Some(before), Some(after)) => Some(Duration::from_millis(
                after.saturating_sub(before) * 1000 / TICKS_PER_SECOND,
            )),
            _ => None,
        };
        Stalls {
            longest,
            steal,
            own_cpu,
        }
    }
}

/// User + system time from a `/proc/.../stat` line: fields 14 and 15,
/// counted after the command name (which may hold spaces) ends with `)`.
pub fn cpu_time(stat: &str) -> Option<Duration> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (the state) is the first after ')': utime is 11 further on.
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    let total = ticks(11)?.checked_add(ticks(12)?)?;
    Some(Duration::from_millis(total * 1000 / TICKS_PER_SECOND))
}

/// The machine's total steal time so far, in USER_HZ ticks.
fn steal_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_steal(&stat)
}

/// The steal field (the 8th number) of `/proc/stat`'s `cpu` line.
fn parse_steal(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    line.split_whitespace().nth(8)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steal_is_the_eighth_number_of_the_cpu_line() {
        let stat = "cpu  3665133 25629 524248 2430302 25323 0 8199 44088 0 0\n\
                    cpu0 1811534 12001 256857 1249405 7557 0 2616 21616 0 0\n";
        assert_eq!(parse_steal(stat), Some(44_088));
        assert_eq!(parse_steal("cpu  1 2 3\n"), None);
        assert_eq!(parse_steal("intr 1 2 3\n"), None);
    }

    #[test]
    fn cpu_time_adds_user_and_system_after_the_command_name() {
        let stat = "4242 (tokio runtime) S 1 2 3 4 5 6 7 8 9 10 250 31 0 0 20 0";
        assert_eq!(cpu_time(stat), Some(Duration::from_millis(2_810)));
        assert_eq!(cpu_time("4242 (x) S 1 2"), None);
        assert_eq!(cpu_time("no parenthesis"), None);
    }

    #[test]
    fn a_watch_reads_this_machines_counters() {
        let watch = StallWatch::start();
        std::thread::sleep(Duration::from_millis(30));
        let stalls = watch.stop();
        // Every Linux kernel since 2.6.11 counts steal in /proc/stat.
        assert!(stalls.steal.is_some(), "{stalls:?}");
        assert!(
            std::fs::read_to_string("/proc/thread-self/stat")
                .ok()
                .and_then(|stat| cpu_time(&stat))
                .is_some()
        );
    }

    #[test]
    fn a_pause_is_judged_and_shown_in_milliseconds() {
        let shown = Stalls {
            longest: Duration::from_millis(42),
            steal: Some(Duration::from_millis(70)),
            own_cpu: Duration::ZERO,
        };
        assert_eq!(
            shown.to_string(),
            "longest machine pause 42 ms, 70 ms stolen by the hypervisor"
        );
        assert!(shown.paused(Duration::from_millis(40)));
        assert!(!shown.paused(Duration::from_millis(43)));
    }
}
