//! Per-worker figures: a node's `"Workers"` array.

use super::*;

pub(super) type WStrField = fn(&mut WorkerStats) -> &mut Option<String>;
pub(super) type WNumField = fn(&mut WorkerStats) -> &mut Option<f64>;
pub(super) type WIntField = fn(&mut WorkerStats) -> &mut Option<i64>;

pub(super) enum WorkerKey {
    Number,
    Str(WStrField),
    Num(WNumField),
    Int(WIntField),
    Other,
}

pub(super) fn worker_key(k: &str) -> WorkerKey {
    use WorkerKey::*;
    match k {
        "Worker Number" => Number,
        "Actual Startup Time" => Num(|w| &mut w.actual_startup_time),
        "Actual Total Time" => Num(|w| &mut w.actual_total_time),
        "Actual Rows" => Num(|w| &mut w.actual_rows),
        "Actual Loops" => Num(|w| &mut w.actual_loops),
        "Sort Method" => Str(|w| &mut w.sort_method),
        "Sort Space Type" => Str(|w| &mut w.sort_space_type),
        "Sort Space Used" => Int(|w| &mut w.sort_space_kb),
        "HashAgg Batches" => Int(|w| &mut w.hashagg_batches),
        "Peak Memory Usage" => Int(|w| &mut w.peak_memory_kb),
        "Disk Usage" => Int(|w| &mut w.disk_usage_kb),
        "Shared Hit Blocks" => Int(|w| &mut w.shared_hit),
        "Shared Read Blocks" => Int(|w| &mut w.shared_read),
        "Shared Dirtied Blocks" => Int(|w| &mut w.shared_dirtied),
        "Shared Written Blocks" => Int(|w| &mut w.shared_written),
        "Temp Read Blocks" => Int(|w| &mut w.temp_read),
        "Temp Written Blocks" => Int(|w| &mut w.temp_written),
        _ => Other,
    }
}

/// A node's `"Workers"`: each object with a `"Worker Number"`; anything else is skipped.
pub(super) struct WorkersSeed;

impl<'de> DeserializeSeed<'de> for WorkersSeed {
    type Value = Vec<WorkerStats>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for WorkersSeed {
    type Value = Vec<WorkerStats>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of workers")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_map(map)?;
        Ok(Vec::new())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(w) = seq.next_element_seed(WorkerSeed)? {
            out.extend(w);
        }
        Ok(out)
    }
}

pub(super) struct WorkerSeed;

impl<'de> DeserializeSeed<'de> for WorkerSeed {
    type Value = Option<WorkerStats>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for WorkerSeed {
    type Value = Option<WorkerStats>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a worker object")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq)?;
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut w = WorkerStats::default();
        let mut number = None;
        while let Some(k) = map.next_key_seed(Key(worker_key))? {
            match k {
                WorkerKey::Number => number = map.next_value_seed(INT)?,
                WorkerKey::Str(field) => *field(&mut w) = map.next_value_seed(STR)?,
                WorkerKey::Num(field) => *field(&mut w) = map.next_value_seed(NUM)?,
                WorkerKey::Int(field) => *field(&mut w) = map.next_value_seed(INT)?,
                WorkerKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        // memory is kept for hash aggregation only (as text prints it, beside its batches)
        if w.hashagg_batches.is_none() {
            w.peak_memory_kb = None;
        }
        Ok(number.map(|n| {
            w.worker_number = n;
            w
        }))
    }
}
