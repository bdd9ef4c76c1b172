//! The pool sizing, composed: sample the server over the window, apply the
//! arithmetic of `math`, write the terms out (`render`) and store the evidence.
//! Argument checks belong to the surface (`mod.rs`); text belongs to `render`.

use super::math;
use super::render::{self, Term};
use super::server::{
    detect_backend_overhead, detect_cores, detect_ram, nap, pgss_schema, read_counters,
    read_settings, sample_activity, Sample, Settings, PGSS_HINT,
};
use crate::infra::error::{notice_hint, CapstoneError, Result};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Parameters after validation.
pub struct Params {
    pub window: Duration,
    pub cores: Option<u32>,
    pub headroom: f64,
    pub core_factor: f64,
    pub nodes: u32,
    pub clients: Option<u32>,
    pub require_statements: bool,
}

/// Everything the sizing measured and derived, before it is written out.
pub struct Measured {
    pub settings: Settings,
    pub pgss: std::result::Result<String, String>,
    pub tick: Duration,
    pub n_samples: usize,
    pub seconds: f64,
    pub l_active: f64,
    pub l_busy: f64,
    pub mean_clients: f64,
    pub peak_clients: u32,
    pub hidden: u32,
    pub pool_keys: HashSet<String>,
    pub pools: u32,
    pub xacts: f64,
    pub lambda: f64,
    pub sufficient: bool,
    pub calls: Option<f64>,
    pub exec_ms: Option<f64>,
    pub l_pgss: Option<f64>,
    pub l_demand: f64,
    pub cpu_busy: Option<f64>,
    pub cores: u32,
    pub cores_source: String,
    pub bound: u32,
    pub ram: Option<u64>,
    pub ram_source: String,
    pub overhead: u64,
    pub overhead_source: String,
    pub page_tables: u64,
    pub per_backend: u64,
    pub ceiling: Option<u64>,
    pub plan: math::Plan,
}

/// The full computation: measured terms, the plan, and the evidence id.
pub struct Sizing {
    pub terms: Vec<Term>,
    pub plan: math::Plan,
    pub evidence_id: i64,
}

/// Sample the server for the window and derive demand, bounds and the plan.
pub fn measure(p: &Params) -> Result<Measured> {
    let settings = read_settings()?;
    let pgss = pgss_schema();
    if let Err(why) = &pgss {
        if p.require_statements {
            return Err(CapstoneError::NotSupported(format!(
                "pool_size(require_statements => true) needs pg_stat_statements: {why}"
            ))
            .with_hint(PGSS_HINT));
        }
        notice_hint(
            format!("{why}: W is measured from pg_stat_activity alone"),
            PGSS_HINT,
        );
    }
    let pgss_schema = pgss.as_ref().ok().map(String::as_str);

    // ---- the sampling window
    let tick = (p.window / 100).clamp(Duration::from_millis(10), Duration::from_millis(100));
    let before = read_counters(pgss_schema);
    let end = before.at + p.window;
    let mut samples: Vec<Sample> = Vec::new();
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        nap(tick.min(end - now));
        samples.push(sample_activity());
    }
    if samples.is_empty() {
        samples.push(sample_activity());
    }
    let after = read_counters(pgss_schema);
    let seconds = after.at.duration_since(before.at).as_secs_f64();

    let n = samples.len() as f64;
    let mean = |f: &dyn Fn(&Sample) -> u32| samples.iter().map(|s| f(s) as f64).sum::<f64>() / n;
    let l_active = mean(&|s| s.active);
    let l_busy = mean(&|s| s.active + s.idle_in_xact);
    let mean_clients = mean(&|s| s.clients);
    let peak_clients = samples.iter().map(|s| s.clients).max().unwrap_or(0);
    let hidden = samples.iter().map(|s| s.hidden).max().unwrap_or(0);
    let pool_keys: HashSet<String> = samples
        .iter()
        .flat_map(|s| s.pools.iter().cloned())
        .collect();
    let pools = pool_keys.len().max(1) as u32;

    let xacts = (after.xacts - before.xacts).max(0.0);
    let lambda = math::rate(xacts, seconds).unwrap_or(0.0);
    let sufficient = math::sample_is_sufficient(xacts);
    let calls = match (before.calls, after.calls) {
        (Some(a), Some(b)) => Some((b - a).max(0.0)),
        _ => None,
    };
    let exec_ms = match (before.exec_ms, after.exec_ms) {
        (Some(a), Some(b)) => Some((b - a).max(0.0)),
        _ => None,
    };
    // Little's law the other way round: Δ execution time / window = mean statements executing.
    // Execution is a part of a busy backend's time, so if this exceeds the sampled L_busy
    // the sampling missed short statements (on a saturated host the sampler only runs when
    // it gets a core) and this is the better lower bound.
    let l_pgss = match exec_ms {
        Some(e) if seconds > 0.0 => Some(e / 1000.0 / seconds),
        _ => None,
    };
    let l_demand = l_busy.max(l_pgss.unwrap_or(0.0));
    let cpu_busy = match (before.cpu, after.cpu) {
        (Some(a), Some(b)) => math::cpu_busy(a, b),
        _ => None,
    };

    // ---- cores
    let (cores, cores_source) = match p.cores {
        Some(c) => (c, "parameter cores".to_string()),
        None => detect_cores(),
    };
    let bound = math::core_bound(cores, p.core_factor);

    // ---- memory
    let (ram, ram_source) = detect_ram();
    let (overhead, overhead_source) = detect_backend_overhead();
    let page_tables = math::page_table_bytes(settings.shared_buffers, settings.huge_pages);
    let per_backend = math::per_backend_bytes(
        overhead + page_tables,
        settings.work_mem,
        p.nodes,
        settings.hash_mem_multiplier,
    );
    let ceiling = math::memory_ceiling(ram, settings.shared_buffers, per_backend);

    let plan = math::recommend(&math::Inputs {
        cores,
        core_bound: bound,
        transactions: xacts,
        l_busy: l_demand,
        headroom: p.headroom,
        cpu_busy,
        pools,
        memory_ceiling: ceiling,
        reserved_slots: settings.reserved_slots,
        peak_clients,
        current_max_connections: settings.max_connections,
        clients: p.clients,
    });

    Ok(Measured {
        settings,
        pgss,
        tick,
        n_samples: samples.len(),
        seconds,
        l_active,
        l_busy,
        mean_clients,
        peak_clients,
        hidden,
        pool_keys,
        pools,
        xacts,
        lambda,
        sufficient,
        calls,
        exec_ms,
        l_pgss,
        l_demand,
        cpu_busy,
        cores,
        cores_source,
        bound,
        ram,
        ram_source,
        overhead,
        overhead_source,
        page_tables,
        per_backend,
        ceiling,
        plan,
    })
}

/// Measure, write the terms out and store them as evidence (gate 'pooling').
pub fn compute(p: &Params) -> Result<Sizing> {
    let m = measure(p)?;
    let terms = render::terms(p, &m);
    let (settings_json, payload) = render::evidence(p, &m, &terms);
    let evidence_id = crate::infra::evidence::store(
        crate::infra::evidence::Gate::Pooling,
        Some("pool_size"),
        None,
        settings_json,
        payload,
    );
    Ok(Sizing {
        terms,
        plan: m.plan,
        evidence_id,
    })
}
