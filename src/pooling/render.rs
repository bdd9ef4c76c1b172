//! The pool sizing as text: one row (term) per number with its unit, source and
//! explanation, the summary and the JSON forms. Pure formatting over what `sizing`
//! measured; it reads nothing from the server.

use super::math;
use super::server::PGSS_HINT;
use super::sizing::{Measured, Params};
use crate::infra::format::mb;
use serde_json::{json, Value};

/// One row of the sizing.
#[derive(Debug, Clone)]
pub struct Term {
    pub section: &'static str,
    pub term: &'static str,
    pub value: Option<f64>,
    pub unit: &'static str,
    pub source: String,
    pub explanation: String,
}

pub fn term(
    section: &'static str,
    term: &'static str,
    value: Option<f64>,
    unit: &'static str,
    source: impl Into<String>,
    explanation: impl Into<String>,
) -> Term {
    Term {
        section,
        term,
        value,
        unit,
        source: source.into(),
        explanation: explanation.into(),
    }
}

fn fmt1(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// The sizing written out term by term: what each number is, where it came from.
pub fn terms(p: &Params, m: &Measured) -> Vec<Term> {
    let settings = &m.settings;
    let pgss = &m.pgss;
    let tick = m.tick;
    let n_samples = m.n_samples;
    let seconds = m.seconds;
    let l_active = m.l_active;
    let l_busy = m.l_busy;
    let mean_clients = m.mean_clients;
    let peak_clients = m.peak_clients;
    let hidden = m.hidden;
    let pools = m.pools;
    let xacts = m.xacts;
    let lambda = m.lambda;
    let sufficient = m.sufficient;
    let calls = m.calls;
    let exec_ms = m.exec_ms;
    let l_pgss = m.l_pgss;
    let l_demand = m.l_demand;
    let cpu_busy = m.cpu_busy;
    let cores = m.cores;
    let cores_source = &m.cores_source;
    let bound = m.bound;
    let ram = m.ram;
    let ram_source = &m.ram_source;
    let overhead = m.overhead;
    let overhead_source = &m.overhead_source;
    let page_tables = m.page_tables;
    let per_backend = m.per_backend;
    let ceiling = m.ceiling;
    let plan = &m.plan;
    let mut t: Vec<Term> = Vec::new();
    t.push(term(
        "cores",
        "cores",
        Some(cores as f64),
        "cores",
        cores_source,
        "CPUs that run backends; everything below scales with them",
    ));
    t.push(term("cores", "core_factor", Some(p.core_factor), "connections per core",
        if p.core_factor == 2.0 { "default 2 (parameter core_factor)" } else { "parameter core_factor" },
        "busy connections per core before throughput stops growing: a backend alternates between the CPU and waits (a client or pooler round trip, I/O, a lock), so about two per core keep a core busy when the working set is cached; raise it for I/O-bound servers (the old rule adds the effective spindle count), lower it towards 1 for pure CPU work"));
    t.push(term("cores", "core_bound", Some(bound as f64), "connections",
        format!("ceil(cores × core_factor) = ceil({cores} × {})", p.core_factor),
        "past this many busy server connections a CPU-bound server only adds context switches and lock contention: TPS flattens and latency climbs; extra clients should queue in PgBouncer, which is cheap, not in the kernel run queue"));

    t.push(term("littles_law", "sample_window", Some(seconds), "s",
        format!("measured: wall time between the first and last counter read; {} pg_stat_activity samples every {} ms", n_samples, tick.as_millis()),
        "λ and L are averages over this window; pg_stat_database counters are flushed by each backend about once a second, so windows under ~5 s are noisy"));
    let verdict = if sufficient {
        format!(
            "{xacts:.0} transactions finished in the window (at least {:.0} needed): λ is measured",
            math::MIN_TRANSACTIONS
        )
    } else {
        format!(
            "the sample is too small: {xacts:.0} transactions in {seconds:.1} s (λ≈0; at least {:.0} are needed), so Little's law has nothing to measure and the recommendation falls back to the core-bound estimate ({bound}); run pool_size while the application is under its usual load, with a longer sample",
            math::MIN_TRANSACTIONS
        )
    };
    t.push(term("littles_law", "transactions", Some(xacts), "transactions",
        "Δ(xact_commit + xact_rollback) summed over pg_stat_database, with pg_stat_clear_snapshot() before each read",
        verdict));
    t.push(term("littles_law", "lambda", Some(lambda), "xact/s", "transactions / sample_window",
        "λ, the arrival rate (= throughput in steady state), server-wide: every database and user behind the pooler shares the cores"));
    let hidden_note = if hidden > 0 {
        format!(" {hidden} backends showed no state to this role (grant pg_read_all_stats for an exact count).")
    } else {
        String::new()
    };
    t.push(term("littles_law", "L_active", Some(l_active), "connections",
        "mean over the samples of client backends (other than this one) with state 'active' in pg_stat_activity",
        format!("statements executing at once: the server's own view of concurrency.{hidden_note}")));
    t.push(term("littles_law", "L_busy", Some(l_busy), "connections",
        "mean over the samples of client backends 'active' or 'idle in transaction'",
        "L measured directly: server connections held by an open transaction. In transaction mode PgBouncer keeps a server connection for the whole transaction, idle-in-transaction gaps included, so this is what the pool must cover. Behind a pooler that is already full, L cannot exceed its pool size: SHOW POOLS cl_waiting is demand the server never sees"));
    let w_direct = math::little_w(l_busy, lambda);
    t.push(term(
        "littles_law",
        "W_from_L",
        w_direct.map(|w| w * 1000.0),
        "ms",
        "W = L_busy / λ (Little's law solved for W)",
        match w_direct {
            Some(w) => format!(
                "mean time a transaction holds a server connection: {:.3} ms",
                w * 1000.0
            ),
            None => "undefined: no transactions finished in the window (λ = 0)".into(),
        },
    ));
    match (calls, exec_ms) {
        (Some(c), Some(e)) => {
            let w_stmt = if c > 0.0 { Some(e / c) } else { None };
            let w_xact = if xacts > 0.0 { Some(e / xacts) } else { None };
            let l_pgss = l_pgss.unwrap_or(0.0);
            t.push(term(
                "littles_law",
                "statements",
                Some(c),
                "statements",
                "Δ calls of top-level statements in pg_stat_statements",
                match math::rate(c, seconds) {
                    Some(r) if xacts > 0.0 => {
                        format!("{} statements/s, {:.2} per transaction", fmt1(r), c / xacts)
                    }
                    Some(r) => format!("{} statements/s", fmt1(r)),
                    None => "no window".into(),
                },
            ));
            t.push(term(
                "littles_law",
                "W_exec_statement",
                w_stmt,
                "ms",
                "Δ total_exec_time / Δ calls in pg_stat_statements",
                "mean execution time per statement, from the statistics rather than from sampling",
            ));
            t.push(term("littles_law", "W_exec_transaction", w_xact, "ms",
                "Δ total_exec_time / Δ transactions",
                "execution time per transaction; W_from_L minus this is time a transaction holds its connection without executing (client round trips inside the transaction, idle in transaction)"));
            t.push(term("littles_law", "L_from_statements", Some(l_pgss), "connections",
                "L = λ·W = Δ total_exec_time / sample_window",
                match w_direct {
                    Some(_) if l_busy > 0.0 && l_busy >= l_pgss => format!(
                        "Little's law the other way round: statements executing on average; L_busy / this = {:.2} (1 = connections are held only while executing, more = held while not executing)",
                        l_busy / l_pgss.max(1e-9)),
                    Some(_) if l_pgss > 0.0 => format!(
                        "Little's law the other way round: statements executing on average; L_busy / this = {:.2}. Below 1 the sampling undercounted: statements this short slip between samples, and on a busy host the sampler itself waits for a core, so demand uses this figure instead",
                        l_busy / l_pgss.max(1e-9)),
                    _ => "Little's law the other way round: the mean number of statements executing".into(),
                }));
        }
        _ => {
            let why = match &pgss {
                Err(w) => w.clone(),
                Ok(_) => "pg_stat_statements could not be read".into(),
            };
            for (name, what) in [
                ("statements", "statement count"),
                ("W_exec_statement", "mean execution time per statement"),
                ("W_exec_transaction", "execution time per transaction"),
                ("L_from_statements", "L = λ·W from execution times"),
            ] {
                t.push(term(
                    "littles_law",
                    name,
                    None,
                    "",
                    "pg_stat_statements",
                    format!("not measured ({what}): {why}. Hint: {PGSS_HINT}"),
                ));
            }
        }
    }
    t.push(term("littles_law", "cpu_busy", cpu_busy, "fraction",
        if cpu_busy.is_some() { "Δ busy / Δ total jiffies of the cpu line in /proc/stat (the whole host)" } else { "unavailable: /proc/stat not readable" },
        format!("decides whether demand above core_bound is capped (cores saturated at ≥ {:.0}%) or let through (backends are waiting, not computing)", math::CPU_SATURATED * 100.0)));
    t.push(term("littles_law", "client_connections", Some(mean_clients), "connections",
        format!("mean client backends over the samples; peak {peak_clients}"),
        if mean_clients > 0.0 {
            format!("{:.1}% of connected backends were busy on average: the rest hold a backend (and a max_connections slot) for nothing, which is what a transaction pool reclaims", 100.0 * l_busy / mean_clients)
        } else {
            "no other client backends were connected".into()
        }));
    let cycle = if lambda > 0.0 && mean_clients > 0.0 {
        Some(mean_clients / lambda * 1000.0)
    } else {
        None
    };
    t.push(term("littles_law", "connection_cycle", cycle, "ms",
        "client_connections / λ: Little's law with every connected backend counted as busy",
        match (cycle, w_direct) {
            (Some(c), Some(w)) if w > 0.0 => format!(
                "time between transactions on one connection; {:.0}× W_from_L. If these backends are a full pool's server connections (SHOW POOLS cl_waiting > 0), each spends this per transaction and only W_from_L of it in the server: the rest is the round trip through the pooler and its queue, which server-side L cannot see",
                c / (w * 1000.0)),
            (Some(_), _) => "time between transactions on one connection".into(),
            _ => "undefined: no transactions or no other connections in the window".into(),
        }));
    t.push(term("littles_law", "pools", Some(pools as f64), "pools",
        "distinct (database, user) pairs with busy backends in the samples (at least 1)",
        "PgBouncer keeps one pool per (database, user): default_pool_size applies to each, so the server connections are split across them"));
    t.push(term("littles_law", "demand", Some(plan.demand as f64), "connections",
        format!("ceil(max(L_busy, L_from_statements) × headroom) = ceil({} × {})", fmt1(l_demand), p.headroom),
        "server connections the measured load needs with room for bursts: arrivals are not evenly spaced, and a pool running at 100% utilization queues without bound"));

    t.push(term(
        "memory",
        "ram",
        ram.map(|r| r as f64),
        "bytes",
        ram_source,
        match ram {
            Some(r) => mb(r),
            None => "unknown: the memory ceiling is skipped".into(),
        },
    ));
    t.push(term("memory", "shared_buffers", Some(settings.shared_buffers as f64), "bytes",
        "current_setting('shared_buffers')", "allocated once, shared by every backend; the rest of RAM is what backends and the page cache share"));
    t.push(term(
        "memory",
        "work_mem",
        Some(settings.work_mem as f64),
        "bytes",
        "current_setting('work_mem')",
        format!(
            "each sort or hash node may use this much; hash nodes up to × hash_mem_multiplier = {}",
            settings.hash_mem_multiplier
        ),
    ));
    t.push(term("memory", "nodes_per_query", Some(p.nodes as f64), "nodes",
        if p.nodes == 2 { "default 2 (parameter nodes_per_query)" } else { "parameter nodes_per_query" },
        "sort/hash nodes a busy query runs at once; an OLTP point query uses none, a report may use several (parallel workers each get their own)"));
    t.push(term(
        "memory",
        "backend_overhead",
        Some((overhead + page_tables) as f64),
        "bytes",
        format!(
            "{overhead_source}; plus page tables to map shared_buffers ({}, {})",
            mb(page_tables),
            settings.huge_pages_source
        ),
        format!(
            "{} private + {} page tables per backend",
            mb(overhead),
            mb(page_tables)
        ),
    ));
    t.push(term("memory", "per_backend_peak", Some(per_backend as f64), "bytes",
        format!("backend_overhead + work_mem × nodes_per_query × hash_mem_multiplier = {} + {} × {} × {}", mb(overhead + page_tables), mb(settings.work_mem), p.nodes, settings.hash_mem_multiplier),
        "worst case for one busy backend: every node a hash node at its full allowance"));
    t.push(term("memory", "memory_ceiling", ceiling.map(|c| c as f64), "connections",
        "floor((ram − shared_buffers) / per_backend_peak)",
        match ceiling {
            Some(c) => format!("at most {c} backends fit at their worst case; this leaves nothing for the OS page cache, so it is a hard ceiling, not a target"),
            None => "not computed: RAM is unknown on this platform".into(),
        }));

    let basis_txt = match plan.basis {
        math::Basis::QuietFallback => format!("the sample is too small, so the core-bound estimate ({bound}) stands in"),
        math::Basis::CoreBound => format!("measured demand {} fits under the core bound {bound}; the pool size is a ceiling (PgBouncer opens server connections only while clients wait and closes idle ones after server_idle_timeout), so it stays at the core bound: a smaller pool makes clients queue whenever round trips through the pooler, not work, keep connections busy", plan.demand),
        math::Basis::CoreCapped => format!("demand {} exceeds the core bound {bound} and the cores are busy ({}): capped at the core bound; the excess clients wait in PgBouncer", plan.demand,
            cpu_busy.map(|u| format!("{:.0}% CPU", u * 100.0)).unwrap_or_else(|| "CPU unknown".into())),
        math::Basis::DemandOverCores => format!("demand {} exceeds the core bound {bound} but the host CPU is only {:.0}% busy: backends are waiting, not computing, so the pool follows demand; if they wait on locks or on clients inside transactions, fix that instead of growing the pool",
            plan.demand, cpu_busy.unwrap_or(0.0) * 100.0),
    };
    let mem_note = if plan.memory_capped {
        "; capped by the memory ceiling"
    } else {
        ""
    };
    t.push(term(
        "recommendation",
        "default_pool_size",
        Some(plan.default_pool_size as f64),
        "connections per pool",
        format!(
            "basis {}: {} server connections / {pools} pool(s){mem_note}",
            plan.basis.as_str(),
            plan.server_connections
        ),
        basis_txt,
    ));
    t.push(term("recommendation", "max_connections", Some(plan.max_connections as f64), "connections",
        format!("ceil(default_pool_size × pools × headroom) + {} reserved slots (superuser_reserved_connections + reserved_connections){mem_note}", settings.reserved_slots),
        format!("room for the pools plus direct sessions (migrations, monitoring, an operator); the server has {} now, and each slot costs a backend's memory whether busy or not", settings.max_connections)));
    t.push(term("recommendation", "max_client_conn", Some(plan.max_client_conn as f64), "connections",
        match p.clients {
            Some(c) => format!("parameter clients {c} × headroom, rounded up to 100"),
            None => format!("max(peak client connections {peak_clients}, max_connections now {} × {}) × headroom, rounded up to 100", settings.max_connections, math::CLIENTS_PER_SERVER_SLOT),
        },
        "client slots are cheap in PgBouncer (a socket and a few kB each), so size the client side an order of magnitude above the server side; its open-file limit (ulimit -n) must exceed max_client_conn + the server connections"));
    t.push(term(
        "recommendation",
        "headroom",
        Some(p.headroom),
        "×",
        if p.headroom == 1.5 {
            "default 1.5 (parameter headroom)"
        } else {
            "parameter headroom"
        },
        "the multiplier applied to measured demand, to max_connections and to the client side",
    ));

    t
}

/// The evidence for a sizing: (settings, payload); the payload's summary, table and
/// verdict are what capstone.report() renders for a capture.
pub fn evidence(p: &Params, m: &Measured, t: &[Term]) -> (Value, Value) {
    let settings = &m.settings;
    let pgss = &m.pgss;
    let tick = m.tick;
    let n_samples = m.n_samples;
    let seconds = m.seconds;
    let l_active = m.l_active;
    let l_busy = m.l_busy;
    let peak_clients = m.peak_clients;
    let pool_keys = &m.pool_keys;
    let pools = m.pools;
    let xacts = m.xacts;
    let lambda = m.lambda;
    let calls = m.calls;
    let exec_ms = m.exec_ms;
    let cpu_busy = m.cpu_busy;
    let cores = m.cores;
    let bound = m.bound;
    let plan = &m.plan;
    let summary = format!(
        "default_pool_size {} per pool ({} pool(s), basis {}), max_connections {}, max_client_conn {}: λ = {} xact/s over {:.1} s, L_busy = {}, core bound {} ({cores} cores × {}).",
        plan.default_pool_size,
        pools,
        plan.basis.as_str(),
        plan.max_connections,
        plan.max_client_conn,
        fmt1(lambda),
        seconds,
        fmt1(l_busy),
        bound,
        p.core_factor
    );
    let table: Vec<Value> = t
        .iter()
        .map(|x| json!({"term": x.term, "value": x.value, "unit": x.unit, "source": x.source}))
        .collect();
    let payload = json!({
        "summary": summary,
        "table": table,
        "verdict": format!("recommended default_pool_size {} ({})", plan.default_pool_size, plan.basis.as_str()),
        "terms": t.iter().map(term_json).collect::<Vec<_>>(),
        "recommendation": plan_json(plan),
        "window": {
            "seconds": seconds, "samples": n_samples, "tick_ms": tick.as_millis() as u64,
            "transactions": xacts, "statements": calls, "exec_ms": exec_ms,
            "l_active": l_active, "l_busy": l_busy, "peak_clients": peak_clients,
            "pools": pool_keys.iter().collect::<Vec<_>>(), "cpu_busy": cpu_busy,
        },
        "pg_stat_statements": match &pgss { Ok(s) => json!({"schema": s}), Err(w) => json!({"missing": w}) },
    });
    let settings_json = json!({
        "work_mem": settings.work_mem, "shared_buffers": settings.shared_buffers,
        "hash_mem_multiplier": settings.hash_mem_multiplier,
        "max_connections": settings.max_connections,
        "cores": cores, "core_factor": p.core_factor, "headroom": p.headroom,
        "nodes_per_query": p.nodes,
    });
    (settings_json, payload)
}

pub fn term_json(t: &Term) -> Value {
    json!({
        "section": t.section, "term": t.term, "value": t.value, "unit": t.unit,
        "source": t.source, "explanation": t.explanation,
    })
}

pub fn plan_json(p: &math::Plan) -> Value {
    json!({
        "basis": p.basis.as_str(),
        "default_pool_size": p.default_pool_size,
        "server_connections": p.server_connections,
        "max_connections": p.max_connections,
        "max_client_conn": p.max_client_conn,
        "demand": p.demand,
        "memory_capped": p.memory_capped,
    })
}
