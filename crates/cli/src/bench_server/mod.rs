//! `voicemeet-cli bench-server`: starts the real `voicemeet-server` binary
//! as a child process on 127.0.0.1 and measures it from outside, the way
//! clients see it (see [`USAGE`] for the parts and flags). Every part gets a
//! fresh server, and every server is killed when its part ends, failed or
//! not. Results go to stdout as a table plus one `BENCH name=value` line per
//! metric; progress goes to stderr.
//!
//! Start at [`run`]; [`realtime`] is the small load client every part uses.

mod idle;
mod matches;
mod options;
mod realtime;
mod rtt;

use std::fmt;
use std::path::Path;

use anyhow::{Context as _, bail};

use crate::report::{self, Metric};
use crate::server_process::{self, ServerProcess, format_tail};
use crate::signals::interrupted;
use options::Part;
pub use options::{Options, Parsed, USAGE};

/// File descriptors beyond the sockets a part opens: the runtime, the
/// child's pipes, HTTP connections being recycled.
const FD_MARGIN: u64 = 256;

/// Runs the parts `options` selects and prints the results.
pub fn run(options: &Options) -> anyhow::Result<()> {
    let server_bin = server_process::resolve_bin(options.server_bin.as_deref())?;
    raise_fd_limit(options)?;
    if cfg!(debug_assertions) {
        progress(format_args!(
            "this is a debug build of voicemeet-cli: use --release builds for real numbers"
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        // On Ctrl-C or SIGTERM the parts are dropped, and with them the
        // server child (killed on drop), so no server outlives the command.
        tokio::select! {
            result = run_parts(&server_bin, options) => result,
            signal = interrupted() => {
                signal.context("listening for signals")?;
                bail!("interrupted; the server was stopped")
            }
        }
    })
}

async fn run_parts(server_bin: &Path, options: &Options) -> anyhow::Result<()> {
    let mut metrics = Vec::new();
    let mut failures = Vec::new();
    for part in &options.parts {
        match run_part(*part, server_bin, options).await {
            Ok(part_metrics) => metrics.extend(part_metrics),
            Err(err) => {
                eprintln!("bench-server: part {} failed: {err:#}", part.name());
                failures.push(part.name());
            }
        }
    }
    if metrics.is_empty() {
        bail!("parts failed: {}", failures.join(", "));
    }
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "\nvoicemeet-server benchmark ({build} build of voicemeet-cli; server {})\n",
        server_bin.display()
    );
    print!("{}", report::render(&metrics));
    if !failures.is_empty() {
        bail!("parts failed: {}", failures.join(", "));
    }
    Ok(())
}

/// Starts a server, runs one part against it, and stops the server whatever
/// the outcome; a failure carries the tail of the server's log.
async fn run_part(part: Part, server_bin: &Path, options: &Options) -> anyhow::Result<Vec<Metric>> {
    let mut server = ServerProcess::start(server_bin).await?;
    progress(format_args!(
        "{}: server started at {}",
        part.name(),
        server.url
    ));
    let result = match part {
        Part::Idle => idle::run(&mut server, options).await,
        Part::Matches => matches::run(&mut server, options).await,
        Part::Rtt => rtt::run(&mut server, options).await,
    };
    let tail = server.stop().await;
    result.map_err(|err| anyhow::anyhow!("{err:#}{}", format_tail(&tail)))
}

/// Raises this process's open-files soft limit to its hard limit; the
/// server child inherits it. Fails early if even that cannot hold the
/// largest part's sockets.
fn raise_fd_limit(options: &Options) -> anyhow::Result<()> {
    let largest = options
        .parts
        .iter()
        .map(|part| match part {
            Part::Idle => options.connections,
            Part::Matches => options.users + options.rpc_concurrency,
            Part::Rtt => options.room_users,
        })
        .max()
        .unwrap_or(0);
    let needed = u64::try_from(largest)
        .unwrap_or(u64::MAX)
        .saturating_add(FD_MARGIN);
    let limit = rlimit::increase_nofile_limit(u64::MAX).context("raising RLIMIT_NOFILE")?;
    if limit < needed {
        bail!(
            "the open-files limit is {limit} but this run needs about {needed}; \
             raise the hard limit (ulimit -Hn) or use smaller sizes"
        );
    }
    Ok(())
}

/// A progress line on stderr, so stdout holds only results.
fn progress(args: fmt::Arguments<'_>) {
    eprintln!("bench-server: {args}");
}
