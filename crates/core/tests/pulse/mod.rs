//! A private audio world for device tests. Each test runs in a child
//! process of its own test binary, started with `HOME`, `XDG_RUNTIME_DIR`
//! and `PULSE_SERVER` pointing at a temporary directory, because ALSA and
//! the PulseAudio client read their setup from the process environment
//! (which a test cannot change safely while others run). The parent starts
//! the world (a private PulseAudio daemon, or none at all), runs the child,
//! reports its output and tears the world down, killing what it started by
//! PID. Works the same under nextest and plain `cargo test`.
//!
//! The PulseAudio world (all at 48 kHz):
//! - sink `vm_null`: the default speaker; what it plays is recorded to a
//!   file ([`Audio::speaker_recording`]);
//! - sinks `vm_mic_a` (a 440 Hz sine plays into it) and `vm_mic_b`
//!   (660 Hz); their monitors are the microphones, `vm_mic_a.monitor` the
//!   default. ALSA PCMs `vm_mic_a` / `vm_mic_b` (in `~/.asoundrc`) reach
//!   them, `default` reaches the defaults;
//! - sink `vm_speaker_b`, a second speaker (ALSA PCM `vm_speaker_b`).
//!
//! Null sinks sleep in 2 s blocks until a client asks for low latency, so
//! each keeps a `parec --latency-msec=10` attached: streams then start in
//! milliseconds, not seconds, and the speaker's monitor is near-live.
#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

const PULSEAUDIO: &str = "/usr/bin/pulseaudio";
/// Set in the child: the world's directory.
const CHILD_ENV: &str = "VOICEMEET_AUDIO_TEST_DIR";
/// The daemon answers `pactl info` within this.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// A test body gets this long.
const CHILD_TIMEOUT: Duration = Duration::from_secs(90);

/// Which world a test runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    /// A private PulseAudio daemon with test microphones and speakers.
    Pulse,
    /// No sound server, and ALSA's `default` pointing at a sound card that
    /// does not exist (as on a machine without any audio hardware).
    Silent,
}

/// Runs `body` for the test named `test` (its function name) in `world`.
pub fn isolated(test: &str, world: World, body: impl FnOnce(&Audio)) {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        body(&Audio {
            dir: PathBuf::from(dir),
            recorders: Mutex::new(Vec::new()),
        });
        return;
    }
    // Missing packages fail the test rather than skip it: a device test
    // that passes without devices proves nothing (scripts/test installs
    // them).
    assert!(
        world == World::Silent || Path::new(PULSEAUDIO).exists(),
        "{PULSEAUDIO} is not installed (apt-get install pulseaudio pulseaudio-utils libasound2-plugins)"
    );
    let dir = unique_dir();
    let _dir = RemoveOnDrop(dir.clone());
    let _world = match world {
        World::Pulse => Some(Daemon::start(&dir)),
        World::Silent => {
            write_asoundrc(&dir, SILENT_ASOUNDRC);
            None
        }
    };
    let log = dir.join(format!("{test}.log"));
    let log_file = fs::File::create(&log).expect("child log");
    let started = Instant::now();
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([test, "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, &dir)
        .env("HOME", dir.join("home"))
        .env("XDG_RUNTIME_DIR", dir.join("run"))
        .env(
            "PULSE_SERVER",
            format!("unix:{}", dir.join("run/pulse/native").display()),
        )
        .env_remove("ALSA_CONFIG_PATH")
        .env_remove("PULSE_SINK")
        .env_remove("PULSE_SOURCE")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("log"))
        .stderr(log_file)
        .spawn()
        .expect("run the test in a child");
    let status = loop {
        if let Some(status) = child.try_wait().expect("child status") {
            break status;
        }
        if started.elapsed() > CHILD_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{test} did not finish within {CHILD_TIMEOUT:?}:\n{}",
                read(&log)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = read(&log);
    println!(
        "---- {test} in a private audio world ({:?}) ----\n{output}",
        started.elapsed()
    );
    assert!(status.success(), "{test} failed in its child process");
    assert!(
        output.contains(" 1 passed"),
        "{test} did not run in its child process"
    );
}

/// Removes the world's directory (declared first, so dropped last).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The test's view of its world (in the child).
#[derive(Debug)]
pub struct Audio {
    dir: PathBuf,
    /// Recorders this process started to keep new sinks awake.
    recorders: Mutex<Vec<Child>>,
}

impl Drop for Audio {
    fn drop(&mut self) {
        let recorders = self
            .recorders
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        for recorder in recorders {
            let _ = recorder.kill();
            let _ = recorder.wait();
        }
    }
}

impl Audio {
    /// Runs `pactl` on the private daemon; panics if it fails.
    pub fn pactl(&self, args: &[&str]) -> String {
        let output = Command::new("pactl")
            .args(args)
            .output()
            .expect("pactl runs");
        assert!(
            output.status.success(),
            "pactl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The indices of this process's recording streams.
    pub fn my_source_outputs(&self) -> Vec<u32> {
        let listing = self.pactl(&["list", "source-outputs"]);
        let pid = format!("application.process.id = \"{}\"", std::process::id());
        listing
            .split("Source Output #")
            .skip(1)
            .filter(|block| block.contains(&pid))
            .filter_map(|block| block.split_whitespace().next()?.parse().ok())
            .collect()
    }

    /// Kills a recording stream, as the server does when its device
    /// breaks (through the daemon's command-line socket).
    pub fn kill_source_output(&self, index: u32) {
        let mut cli = UnixStream::connect(self.dir.join("run/pulse/cli")).expect("cli socket");
        cli.write_all(format!("kill-source-output {index}\n").as_bytes())
            .expect("cli command");
        cli.shutdown(std::net::Shutdown::Write)
            .expect("cli shutdown");
        cli.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let mut answer = String::new();
        let _ = cli.read_to_string(&mut answer);
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.my_source_outputs().contains(&index) {
            assert!(
                Instant::now() < deadline,
                "source output {index} still there: {answer}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Unloads the modules that make up sink `name` (its sine, then the sink).
    pub fn remove_sink(&self, name: &str) {
        let modules = self.pactl(&["list", "short", "modules"]);
        let mine = |line: &&str| {
            line.contains(&format!("sink_name={name} "))
                || line.ends_with(&format!("sink_name={name}"))
                || line.contains(&format!("sink={name} "))
        };
        let mut indices: Vec<&str> = modules
            .lines()
            .filter(mine)
            .filter_map(|line| line.split_whitespace().next())
            .collect();
        // The sine (loaded after its sink) first.
        indices.reverse();
        assert!(!indices.is_empty(), "no modules for {name}:\n{modules}");
        for index in indices {
            self.pactl(&["unload-module", index]);
        }
    }

    /// Adds a microphone: a null sink `name` with a sine of `hz` playing
    /// into it; its monitor records the tone.
    pub fn add_microphone(&self, name: &str, hz: u32) {
        add_microphone(name, hz, &|args| {
            self.pactl(args);
        });
        let recording = self.dir.join(format!("{name}.raw"));
        let file = fs::File::create(&recording).expect("recording");
        let recorder = recorder(&format!("{name}.monitor"), Stdio::from(file), &[]);
        self.recorders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(recorder);
        wait_awake(&[recording]);
    }

    /// Everything the default speaker (`vm_null`) played so far, 48 kHz
    /// mono (mixed down by the server).
    pub fn speaker_recording(&self) -> Vec<i16> {
        let bytes = fs::read(self.dir.join("vm_null.raw")).expect("speaker recording");
        bytes
            .chunks_exact(2)
            .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
            .collect()
    }
}

/// `~/.asoundrc` of the PulseAudio world: the defaults and each test
/// device as an ALSA PCM (with a hint, so it is listed).
const PULSE_ASOUNDRC: &str = r#"
pcm.!default { type pulse hint { show on description "Private PulseAudio (default)" } }
ctl.!default { type pulse }
pcm.vm_mic_a { type pulse device "vm_mic_a.monitor" hint { show on description "Test microphone A (440 Hz)" } }
pcm.vm_mic_b { type pulse device "vm_mic_b.monitor" hint { show on description "Test microphone B (660 Hz)" } }
pcm.vm_speaker_b { type pulse device "vm_speaker_b" hint { show on description "Test speaker B" } }
"#;

/// `~/.asoundrc` of the silent world: card 99 does not exist.
const SILENT_ASOUNDRC: &str = r#"
pcm.!default { type hw card 99 }
ctl.!default { type hw card 99 }
"#;

fn write_asoundrc(dir: &Path, text: &str) {
    fs::create_dir_all(dir.join("home")).expect("home dir");
    fs::create_dir_all(dir.join("run")).expect("runtime dir");
    fs::write(dir.join("home/.asoundrc"), text).expect("asoundrc");
}

fn unique_dir() -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "vm-audio-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Waits until every recording has audio. A null sink wakes up for its
/// low-latency client only at the end of the 2 s block it was sleeping
/// through; its monitor's first audio says it is awake.
fn wait_awake(recordings: &[PathBuf]) {
    let started = Instant::now();
    while !recordings
        .iter()
        .all(|path| fs::metadata(path).is_ok_and(|meta| meta.len() > 0))
    {
        assert!(
            started.elapsed() < STARTUP_TIMEOUT,
            "null sinks did not wake up within {STARTUP_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

fn add_microphone(name: &str, hz: u32, pactl: &dyn Fn(&[&str])) {
    pactl(&[
        "load-module",
        "module-null-sink",
        &format!("sink_name={name}"),
        "rate=48000",
        "channels=1",
    ]);
    pactl(&[
        "load-module",
        "module-sine",
        &format!("sink={name}"),
        &format!("frequency={hz}"),
        "rate=48000",
    ]);
}

/// The private daemon and its helper clients; all killed by PID on drop.
struct Daemon {
    dir: PathBuf,
    daemon: Child,
    recorders: Vec<Child>,
}

impl Daemon {
    fn start(dir: &Path) -> Self {
        write_asoundrc(dir, PULSE_ASOUNDRC);
        let log = fs::File::create(dir.join("pulseaudio.log")).expect("daemon log");
        let daemon = Command::new(PULSEAUDIO)
            .args([
                "--daemonize=no",
                "--system=false",
                "-n",
                "--exit-idle-time=-1",
                "--disallow-exit",
                "--use-pid-file=no",
                "--realtime=no",
                "--high-priority=no",
                "--load=module-native-protocol-unix auth-anonymous=1",
                "--load=module-cli-protocol-unix",
                "--load=module-null-sink sink_name=vm_null rate=48000",
            ])
            .envs(Self::env(dir))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start pulseaudio");
        let mut this = Self {
            dir: dir.to_owned(),
            daemon,
            recorders: Vec::new(),
        };
        this.wait_ready();
        let pactl = |args: &[&str]| this.pactl(args);
        add_microphone("vm_mic_a", 440, &pactl);
        add_microphone("vm_mic_b", 660, &pactl);
        pactl(&[
            "load-module",
            "module-null-sink",
            "sink_name=vm_speaker_b",
            "rate=48000",
        ]);
        pactl(&["set-default-source", "vm_mic_a.monitor"]);
        pactl(&["set-default-sink", "vm_null"]);
        let sinks = ["vm_null", "vm_mic_a", "vm_mic_b", "vm_speaker_b"];
        for sink in sinks {
            let file = fs::File::create(this.recording(sink)).expect("recording");
            let recorder = this.recorder(&format!("{sink}.monitor"), Stdio::from(file));
            this.recorders.push(recorder);
        }
        wait_awake(&sinks.map(|sink| this.recording(sink)));
        this
    }

    /// Where the recorder of `sink`'s monitor writes.
    fn recording(&self, sink: &str) -> PathBuf {
        self.dir.join(format!("{sink}.raw"))
    }

    fn env(dir: &Path) -> Vec<(&'static str, String)> {
        vec![
            ("HOME", dir.join("home").display().to_string()),
            ("XDG_RUNTIME_DIR", dir.join("run").display().to_string()),
            (
                "PULSE_SERVER",
                format!("unix:{}", dir.join("run/pulse/native").display()),
            ),
        ]
    }

    fn pactl(&self, args: &[&str]) {
        let output = Command::new("pactl")
            .args(args)
            .envs(Self::env(&self.dir))
            .output()
            .expect("pactl runs");
        assert!(
            output.status.success(),
            "pactl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            let ok = Command::new("pactl")
                .arg("info")
                .envs(Self::env(&self.dir))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success());
            if ok {
                return;
            }
            if let Ok(Some(status)) = self.daemon.try_wait() {
                panic!(
                    "pulseaudio exited ({status}):\n{}",
                    read(&self.dir.join("pulseaudio.log"))
                );
            }
            assert!(
                started.elapsed() < STARTUP_TIMEOUT,
                "pulseaudio did not answer within {STARTUP_TIMEOUT:?}:\n{}",
                read(&self.dir.join("pulseaudio.log"))
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn recorder(&self, source: &str, out: Stdio) -> Child {
        recorder(source, out, &Self::env(&self.dir))
    }
}

/// A low-latency recorder on `source`, writing to `out`.
fn recorder(source: &str, out: Stdio, env: &[(&'static str, String)]) -> Child {
    Command::new("parec")
        .args([
            "--raw",
            &format!("--device={source}"),
            "--latency-msec=10",
            "--format=s16le",
            "--rate=48000",
            "--channels=1",
        ])
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .expect("start parec")
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Our own children, by PID; wait() reaps them.
        for recorder in &mut self.recorders {
            let _ = recorder.kill();
            let _ = recorder.wait();
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}
