//! Pool-sizing arithmetic, free of pgrx types so plain `#[test]`s cover it.
//!
//! Three independent bounds meet here:
//! - the cores: past `cores × factor` busy server connections a CPU-bound server
//!   only adds context switches and lock contention, so throughput stops growing;
//! - the workload (Little's law, L = λ·W): the mean number of server connections
//!   the measured arrival rate keeps busy, times a headroom for bursts;
//! - memory: how many backends fit in RAM beside shared_buffers when each uses
//!   its work_mem allowance in every sort/hash node.

/// Fewer finished transactions than this in the window and λ is noise: a Poisson
/// count of 30 still has a relative error of about 1/√30 ≈ 18%.
pub const MIN_TRANSACTIONS: f64 = 30.0;

/// Host CPU busy fraction at or above which the cores count as saturated.
pub const CPU_SATURATED: f64 = 0.8;

/// PgBouncer client slots per server slot assumed when the client fleet is unknown:
/// a client costs the pooler a socket and a few kB, a server slot costs a backend.
pub const CLIENTS_PER_SERVER_SLOT: f64 = 10.0;

/// Arrival rate: events per second over the window, None for an empty window.
pub fn rate(count: f64, seconds: f64) -> Option<f64> {
    if seconds > 0.0 && count.is_finite() {
        Some(count.max(0.0) / seconds)
    } else {
        None
    }
}

/// Little's law: mean number in the system from arrival rate (1/s) and mean time in it (s).
pub fn little_l(lambda: f64, w_seconds: f64) -> f64 {
    lambda * w_seconds
}

/// Little's law solved for W (seconds): undefined when nothing arrived.
pub fn little_w(l: f64, lambda: f64) -> Option<f64> {
    if lambda > 0.0 && l.is_finite() {
        Some(l / lambda)
    } else {
        None
    }
}

/// Enough transactions in the window to trust λ.
pub fn sample_is_sufficient(transactions: f64) -> bool {
    transactions >= MIN_TRANSACTIONS
}

/// Busy server connections the cores can serve before throughput flattens.
pub fn core_bound(cores: u32, factor: f64) -> u32 {
    ((cores as f64) * factor).ceil().max(1.0) as u32
}

/// Connections a measured mean concurrency needs with headroom for bursts.
pub fn demand(l: f64, headroom: f64) -> u32 {
    (l.max(0.0) * headroom).ceil().max(1.0) as u32
}

/// Page-table bytes one backend needs to map all of shared_buffers
/// (8 bytes per page, 4 kB pages unless huge pages are in use).
pub fn page_table_bytes(shared_buffers: u64, huge_pages: bool) -> u64 {
    let page = if huge_pages { 2 * 1024 * 1024 } else { 4096 };
    shared_buffers.div_ceil(page) * 8
}

/// Worst-case memory of one busy backend: fixed overhead plus work_mem in each
/// sort/hash node (hash nodes may use work_mem × hash_mem_multiplier).
pub fn per_backend_bytes(
    overhead: u64,
    work_mem: u64,
    nodes_per_query: u32,
    hash_mem_multiplier: f64,
) -> u64 {
    let per_node = (work_mem as f64) * hash_mem_multiplier.max(1.0);
    overhead + (per_node * nodes_per_query as f64).ceil() as u64
}

/// Backends that fit in RAM beside shared_buffers at the worst case each.
/// None when RAM is unknown; Some(0) when shared_buffers alone fills it.
pub fn memory_ceiling(ram: Option<u64>, shared_buffers: u64, per_backend: u64) -> Option<u64> {
    let ram = ram?;
    if per_backend == 0 {
        return None;
    }
    Some(ram.saturating_sub(shared_buffers) / per_backend)
}

/// Round up to a multiple of `step`.
pub fn round_up(n: u64, step: u64) -> u64 {
    if step == 0 {
        n
    } else {
        n.div_ceil(step) * step
    }
}

/// Why the recommendation has the size it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// Too few transactions in the window: the core-bound estimate stands in.
    QuietFallback,
    /// Measured demand (with headroom) fits under the core bound. The pool is a
    /// ceiling (PgBouncer opens server connections only when clients wait), so
    /// it stays at the core bound rather than shrinking to today's demand.
    CoreBound,
    /// Demand exceeds the core bound and the cores are saturated: cap there.
    CoreCapped,
    /// Demand exceeds the core bound but the cores are not busy: backends wait
    /// on something else (I/O, locks, clients inside transactions).
    DemandOverCores,
}

impl Basis {
    pub fn as_str(&self) -> &'static str {
        match self {
            Basis::QuietFallback => "quiet_fallback",
            Basis::CoreBound => "core_bound",
            Basis::CoreCapped => "core_capped",
            Basis::DemandOverCores => "demand_over_cores",
        }
    }
}

/// Everything the recommendation depends on, already measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs {
    pub cores: u32,
    pub core_bound: u32,
    /// Transactions finished in the window (server-wide).
    pub transactions: f64,
    /// Mean busy server connections: the larger of the sampled L (active + idle
    /// in transaction) and λ·W from execution times.
    pub l_busy: f64,
    pub headroom: f64,
    /// Host CPU busy fraction over the window, if /proc/stat was readable.
    pub cpu_busy: Option<f64>,
    /// Distinct (database, user) pairs with busy backends: PgBouncer pools.
    pub pools: u32,
    pub memory_ceiling: Option<u64>,
    /// superuser_reserved_connections + reserved_connections.
    pub reserved_slots: u32,
    /// Most client backends seen at once.
    pub peak_clients: u32,
    /// The server's max_connections now.
    pub current_max_connections: u32,
    /// Client connections the application fleet may open, if the caller knows.
    pub clients: Option<u32>,
}

/// The recommendation.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub basis: Basis,
    pub demand: u32,
    /// Server connections across all pools.
    pub server_connections: u32,
    pub default_pool_size: u32,
    pub max_connections: u32,
    pub max_client_conn: u32,
    /// max_connections had to shrink to the memory ceiling.
    pub memory_capped: bool,
}

/// Size the pool. default_pool_size is a ceiling: PgBouncer opens server
/// connections only while clients wait for one and closes idle ones after
/// server_idle_timeout, so a pool larger than today's demand costs nothing until
/// it is needed, and a pool smaller than the core bound only makes clients queue
/// when round trips (not work) fill the connections. So: the core bound, unless
/// measured demand exceeds it while the cores are idle (backends are waiting on
/// I/O, locks or clients), in which case demand. Then max_connections with
/// headroom, within the memory ceiling.
pub fn recommend(i: &Inputs) -> Plan {
    let headroom = if i.headroom.is_finite() && i.headroom >= 1.0 {
        i.headroom
    } else {
        1.0
    };
    let bound = i.core_bound.max(1);
    let d = demand(i.l_busy, headroom);
    let (basis, mut servers) = if !sample_is_sufficient(i.transactions) {
        (Basis::QuietFallback, bound)
    } else if d <= bound {
        (Basis::CoreBound, bound)
    } else if i.cpu_busy.is_none_or(|u| u >= CPU_SATURATED) {
        (Basis::CoreCapped, bound)
    } else {
        (Basis::DemandOverCores, d)
    };
    let pools = i.pools.max(1);
    let reserved = i.reserved_slots;
    let headroomed = |s: u32| ((s as f64) * headroom).ceil() as u32 + reserved;
    let mut pool = servers.div_ceil(pools).max(1);
    let mut max_connections = headroomed(pool * pools);
    let mut memory_capped = false;
    if let Some(ceiling) = i.memory_ceiling {
        let ceiling = ceiling.min(u32::MAX as u64) as u32;
        if max_connections > ceiling {
            memory_capped = true;
            max_connections = ceiling.max(reserved + 1);
            let usable = ((max_connections - reserved) as f64 / headroom).floor() as u32;
            servers = servers.min(usable.max(1));
            pool = (servers / pools).max(1);
        }
    }
    let fleet = match i.clients {
        Some(c) => c as f64,
        None => {
            (i.peak_clients as f64).max(i.current_max_connections as f64 * CLIENTS_PER_SERVER_SLOT)
        }
    };
    let max_client_conn = round_up((fleet * headroom).ceil() as u64, 100).max(100) as u32;
    Plan {
        basis,
        demand: d,
        server_connections: pool * pools,
        default_pool_size: pool,
        max_connections,
        max_client_conn,
        memory_capped,
    }
}

/// Host CPU counters from one `cpu ` line of /proc/stat: (busy, total) jiffies.
pub fn parse_proc_stat(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 4 {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest is inside user)
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// Busy fraction between two /proc/stat readings.
pub fn cpu_busy(before: (u64, u64), after: (u64, u64)) -> Option<f64> {
    let busy = after.0.checked_sub(before.0)?;
    let total = after.1.checked_sub(before.1)?;
    if total == 0 {
        None
    } else {
        Some(busy as f64 / total as f64)
    }
}

/// A `Key:   123 kB` field of /proc/meminfo or /proc/self/smaps_rollup, in bytes.
pub fn parse_kb_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        let mut it = rest.split_whitespace();
        let n: u64 = it.next()?.parse().ok()?;
        match it.next() {
            Some("kB") | None => Some(n * 1024),
            _ => None,
        }
    })
}

/// Processors listed in /proc/cpuinfo.
pub fn count_cpuinfo_processors(text: &str) -> u32 {
    text.lines()
        .filter(|l| {
            l.split(':')
                .next()
                .is_some_and(|k| k.trim_end() == "processor")
        })
        .count() as u32
}

#[cfg(test)]
mod unit {
    use super::*;

    fn base() -> Inputs {
        Inputs {
            cores: 2,
            core_bound: 4,
            transactions: 100_000.0,
            l_busy: 1.0,
            headroom: 1.5,
            cpu_busy: Some(0.95),
            pools: 1,
            memory_ceiling: Some(1000),
            reserved_slots: 3,
            peak_clients: 10,
            current_max_connections: 100,
            clients: None,
        }
    }

    #[test]
    fn littles_law_both_ways() {
        // 2000 transactions/s of 5 ms each keep 10 connections busy on average
        let l = little_l(2000.0, 0.005);
        assert!((l - 10.0).abs() < 1e-9);
        let w = little_w(l, 2000.0).unwrap();
        assert!((w - 0.005).abs() < 1e-12);
        assert_eq!(little_w(3.0, 0.0), None);
        assert_eq!(rate(50.0, 10.0), Some(5.0));
        assert_eq!(rate(5.0, 0.0), None);
        assert_eq!(rate(-3.0, 1.0), Some(0.0));
    }

    #[test]
    fn quiet_sample_falls_back_to_the_cores() {
        let p = recommend(&Inputs {
            transactions: 0.0,
            l_busy: 0.0,
            ..base()
        });
        assert_eq!(p.basis, Basis::QuietFallback);
        assert_eq!(p.default_pool_size, 4);
        assert!(!sample_is_sufficient(29.0));
        assert!(sample_is_sufficient(30.0));
    }

    #[test]
    fn light_demand_keeps_the_core_bound_as_ceiling() {
        let p = recommend(&base());
        assert_eq!(p.basis, Basis::CoreBound);
        assert_eq!(p.demand, 2); // ceil(1.0 × 1.5)
        assert_eq!(p.default_pool_size, 4);
        // max_connections: ceil(4 × 1.5) + 3 reserved
        assert_eq!(p.max_connections, 9);
    }

    #[test]
    fn demand_with_headroom_at_the_bound() {
        let p = recommend(&Inputs {
            cores: 8,
            core_bound: 16,
            l_busy: 10.6,
            ..base()
        });
        assert_eq!(p.demand, 16); // ceil(10.6 × 1.5) = 16: still fits
        assert_eq!(p.basis, Basis::CoreBound);
        assert_eq!(p.default_pool_size, 16);
        assert_eq!(p.max_connections, 24 + 3); // ceil(16 × 1.5) + 3
        let p = recommend(&Inputs {
            cores: 8,
            core_bound: 16,
            l_busy: 10.7,
            cpu_busy: Some(0.5),
            ..base()
        });
        assert_eq!(p.basis, Basis::DemandOverCores);
        assert_eq!(p.default_pool_size, 17);
    }

    #[test]
    fn saturated_cores_cap_the_pool() {
        let p = recommend(&Inputs {
            l_busy: 20.0,
            ..base()
        });
        assert_eq!(p.basis, Basis::CoreCapped);
        assert_eq!(p.demand, 30);
        assert_eq!(p.default_pool_size, 4);
        // unknown CPU counts as saturated: the conservative side
        let p = recommend(&Inputs {
            l_busy: 20.0,
            cpu_busy: None,
            ..base()
        });
        assert_eq!(p.basis, Basis::CoreCapped);
    }

    #[test]
    fn idle_cores_let_demand_through() {
        let p = recommend(&Inputs {
            l_busy: 20.0,
            cpu_busy: Some(0.3),
            ..base()
        });
        assert_eq!(p.basis, Basis::DemandOverCores);
        assert_eq!(p.default_pool_size, 30);
    }

    #[test]
    fn pools_split_the_server_connections() {
        let p = recommend(&Inputs {
            l_busy: 20.0,
            pools: 3,
            cores: 8,
            core_bound: 16,
            ..base()
        });
        assert_eq!(p.default_pool_size, 6); // ceil(16 / 3)
        assert_eq!(p.server_connections, 18);
        assert_eq!(p.max_connections, 27 + 3);
    }

    #[test]
    fn memory_ceiling_shrinks_max_connections() {
        // 8 GB RAM, 2 GB shared_buffers, 64 MB work_mem, 4 hash nodes at ×2, 10 MB overhead
        let per = per_backend_bytes(10 << 20, 64 << 20, 4, 2.0);
        assert_eq!(per, (10 << 20) + (512 << 20));
        let ceiling = memory_ceiling(Some(8 << 30), 2 << 30, per).unwrap();
        assert_eq!(ceiling, 11);
        let p = recommend(&Inputs {
            cores: 16,
            core_bound: 32,
            l_busy: 40.0,
            memory_ceiling: Some(ceiling),
            ..base()
        });
        assert!(p.memory_capped);
        assert_eq!(p.max_connections, 11);
        // (11 - 3 reserved) / 1.5 = 5 server connections
        assert_eq!(p.default_pool_size, 5);
        assert_eq!(memory_ceiling(None, 1, 1), None);
        assert_eq!(memory_ceiling(Some(1 << 30), 2 << 30, 1 << 20), Some(0));
    }

    #[test]
    fn client_side_is_an_order_of_magnitude_wider() {
        let p = recommend(&base());
        assert_eq!(p.max_client_conn, 1500); // 100 × 10 × 1.5
        let p = recommend(&Inputs {
            clients: Some(333),
            ..base()
        });
        assert_eq!(p.max_client_conn, 500); // 333 × 1.5 = 500 (rounded up to 100s)
    }

    #[test]
    fn bounds_and_rounding() {
        assert_eq!(core_bound(2, 2.0), 4);
        assert_eq!(core_bound(3, 1.5), 5);
        assert_eq!(core_bound(1, 0.1), 1);
        assert_eq!(demand(0.0, 1.5), 1);
        assert_eq!(round_up(1, 100), 100);
        assert_eq!(round_up(200, 100), 200);
        assert_eq!(page_table_bytes(1 << 30, false), 2 << 20);
        assert_eq!(page_table_bytes(1 << 30, true), 4096);
    }

    #[test]
    fn proc_files_parse() {
        let stat = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(parse_proc_stat(stat), Some((150, 1000)));
        assert_eq!(cpu_busy((150, 1000), (300, 1200)), Some(0.75));
        assert_eq!(cpu_busy((150, 1000), (150, 1000)), None);
        let mem = "MemTotal:       24684000 kB\nMemFree:  1 kB\n";
        assert_eq!(parse_kb_field(mem, "MemTotal"), Some(24684000 * 1024));
        assert_eq!(parse_kb_field(mem, "MemAvailable"), None);
        let rollup = "Rss:  14720 kB\nPss_Anon:  531 kB\n";
        assert_eq!(parse_kb_field(rollup, "Pss_Anon"), Some(531 * 1024));
        let cpuinfo = "processor\t: 0\nmodel name\t: x\n\nprocessor\t: 1\n";
        assert_eq!(count_cpuinfo_processors(cpuinfo), 2);
    }
}
