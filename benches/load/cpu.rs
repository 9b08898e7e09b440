//! Where the shared CPUs go: per process from /proc/<pid>/stat, for the
//! whole machine from /proc/stat.

/// CPUs this machine gives the bench, hookd, Redis and the driver to share.
pub fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
}

/// CPU time used so far, in clock ticks (USER_HZ, 100 per second on
/// Linux): per process from /proc/<pid>/stat, and for the whole machine
/// from /proc/stat, split into busy and stolen (taken by the hypervisor).
#[derive(Clone, Copy, Default)]
pub struct CpuTicks {
    /// The server under load: hookd, or the baseline in its rounds.
    pub server: u64,
    /// The part of `server` spent in the kernel (system time).
    pub server_kernel: u64,
    /// The Redis that server stores into.
    pub redis: u64,
    /// This process: the sink, plus the in-repo driver when wrk is absent.
    pub bench: u64,
    pub machine_busy: u64,
    pub machine_steal: u64,
}

pub const TICKS_PER_SECOND: f64 = 100.0;

/// (user, system) ticks of a process.
fn process_ticks(pid: u32) -> (u64, u64) {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the parenthesised command name; utime and stime
            // are the 14th and 15th fields of the whole line.
            let rest = s.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Some((fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?))
        })
        .unwrap_or_default()
}

fn process_total(pid: u32) -> u64 {
    let (user, system) = process_ticks(pid);
    user + system
}

impl CpuTicks {
    pub fn now(server: u32, redis: u32) -> Self {
        let (mut busy, mut steal) = (0, 0);
        if let Some(line) = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| s.lines().next().map(str::to_owned))
        {
            // cpu user nice system idle iowait irq softirq steal ...
            let ticks: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|t| t.parse().ok())
                .collect();
            if ticks.len() >= 8 {
                busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6];
                steal = ticks[7];
            }
        }
        let (server_user, server_kernel) = process_ticks(server);
        Self {
            server: server_user + server_kernel,
            server_kernel,
            redis: process_total(redis),
            bench: process_total(std::process::id()),
            machine_busy: busy,
            machine_steal: steal,
        }
    }

    pub fn since(self, earlier: Self) -> Self {
        Self {
            server: self.server - earlier.server,
            server_kernel: self.server_kernel - earlier.server_kernel,
            redis: self.redis - earlier.redis,
            bench: self.bench - earlier.bench,
            machine_busy: self.machine_busy - earlier.machine_busy,
            machine_steal: self.machine_steal - earlier.machine_steal,
        }
    }

    /// Accumulates another phase's ticks (from [`CpuTicks::since`]).
    pub fn add(&mut self, phase: Self) {
        self.server += phase.server;
        self.server_kernel += phase.server_kernel;
        self.redis += phase.redis;
        self.bench += phase.bench;
        self.machine_busy += phase.machine_busy;
        self.machine_steal += phase.machine_steal;
    }

    /// Microseconds of CPU per event.
    pub fn per_event(ticks: u64, events: u64) -> f64 {
        ticks as f64 / TICKS_PER_SECOND * 1e6 / events.max(1) as f64
    }
}
