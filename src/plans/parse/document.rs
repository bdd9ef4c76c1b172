//! The document around the plan: the array, wrapper or object that holds `"Plan"`, and the plan-level values.

use super::*;

/// Top-level keys: the plan, a client's wrapper, and the small plan-level objects,
/// which are kept as `Value`s (a handful per plan) and read as before.
pub(super) enum TopKey {
    Plan,
    QueryPlan,
    Small(&'static str),
    Other,
}

pub(super) fn top_key(k: &str) -> TopKey {
    const SMALL: [&str; 7] = [
        "Settings",
        "Triggers",
        "Planning",
        "JIT",
        "Planning Time",
        "Execution Time",
        "Query Text",
    ];
    match k {
        "Plan" => TopKey::Plan,
        "QUERY PLAN" => TopKey::QueryPlan,
        _ => SMALL
            .iter()
            .find(|s| **s == k)
            .map_or(TopKey::Other, |s| TopKey::Small(s)),
    }
}

/// The document, or the part of it that holds the `"Plan"` object: the first element of
/// an array, the object with a `"Plan"` key, or what `"QUERY PLAN"` holds.
pub(super) struct Top {
    pub(super) hops: usize,
}

impl Top {
    fn no_plan(&self, what: &str) -> Result<ExplainResult, PlanError> {
        Err(PlanError::NoPlan(if self.hops > 4 {
            "nested arrays".to_string()
        } else {
            what.to_string()
        }))
    }
}

impl<'de> DeserializeSeed<'de> for Top {
    type Value = Result<ExplainResult, PlanError>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Top {
    type Value = Result<ExplainResult, PlanError>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the output of EXPLAIN (FORMAT JSON)")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(self.no_plan("a boolean"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(self.no_plan("a number"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(self.no_plan("a number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(self.no_plan("a number"))
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(self.no_plan("a string"))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(self.no_plan("null"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        if self.hops > 4 {
            IgnoredAny.visit_seq(seq)?;
            return Ok(self.no_plan("an array"));
        }
        let first = seq.next_element_seed(Top {
            hops: self.hops + 1,
        })?;
        // the other statements are read (so the text must be valid), not kept
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(first.unwrap_or(Err(PlanError::Empty)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        if self.hops > 4 {
            IgnoredAny.visit_map(map)?;
            return Ok(self.no_plan("an object"));
        }
        let mut plan: Option<Node> = None;
        let mut wrapped: Option<Result<ExplainResult, PlanError>> = None;
        let mut small = Map::new();
        while let Some(k) = map.next_key_seed(Key(top_key))? {
            match k {
                TopKey::Plan => {
                    plan = Some(map.next_value_seed(NodeSeed {
                        path: Path::Root,
                        depth: 0,
                    })?)
                }
                TopKey::QueryPlan => {
                    wrapped = Some(map.next_value_seed(Top {
                        hops: self.hops + 1,
                    })?)
                }
                TopKey::Small(name) => {
                    small.insert(name.to_string(), map.next_value_seed(Bounded(SMALL_DEPTH))?);
                }
                TopKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(match (plan, wrapped) {
            (Some(Node::Ok(root)), _) => Ok(top_result(*root, &small)),
            (Some(Node::Err(e)), _) => Err(e),
            (Some(Node::NotObject), _) => Err(PlanError::WrongType {
                path: "$".to_string(),
                field: "Plan",
                expected: "an object",
            }),
            (None, Some(r)) => r,
            (None, None) => self.no_plan("an object without a \"Plan\" key"),
        })
    }
}

/// How deep a plan-level value (Settings, Triggers, JIT, ...) is read; EXPLAIN nests
/// them at most three levels.
pub(super) const SMALL_DEPTH: usize = 16;

/// A JSON value read as a `Value` down to a depth; what lies deeper reads as null.
pub(super) struct Bounded(pub(super) usize);

impl<'de> DeserializeSeed<'de> for Bounded {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Bounded {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        if self.0 == 0 {
            IgnoredAny.visit_seq(seq)?;
            return Ok(Value::Null);
        }
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Bounded(self.0 - 1))? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        if self.0 == 0 {
            IgnoredAny.visit_map(map)?;
            return Ok(Value::Null);
        }
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(Bounded(self.0 - 1))?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

pub(super) fn top_result(root: PlanNode, top: &Map<String, Value>) -> ExplainResult {
    let mut settings = BTreeMap::new();
    if let Some(Value::Object(s)) = top.get("Settings") {
        for (k, v) in s {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            settings.insert(k.clone(), text);
        }
    }

    let mut triggers = Vec::new();
    if let Some(Value::Array(items)) = top.get("Triggers") {
        for item in items {
            if let Value::Object(t) = item {
                triggers.push(TriggerTime {
                    trigger_name: text(t, "Trigger Name").unwrap_or_default(),
                    constraint_name: text(t, "Constraint Name"),
                    relation: text(t, "Relation"),
                    time: num(t, "Time"),
                    calls: num(t, "Calls"),
                });
            }
        }
    }

    let (planning_shared_hit, planning_shared_read) = match top.get("Planning") {
        Some(Value::Object(p)) => (int(p, "Shared Hit Blocks"), int(p, "Shared Read Blocks")),
        _ => (None, None),
    };

    ExplainResult {
        root,
        planning_time: num(top, "Planning Time"),
        execution_time: num(top, "Execution Time"),
        settings,
        triggers,
        planning_shared_hit,
        planning_shared_read,
        query_text: text(top, "Query Text"),
        jit: match top.get("JIT") {
            Some(Value::Object(j)) => Some(read_jit(j)),
            _ => None,
        },
    }
}

pub(super) fn read_jit(j: &Map<String, Value>) -> Jit {
    let timing = match j.get("Timing") {
        Some(Value::Object(t)) => Some(t),
        _ => None,
    };
    // PG15+ nests Generation as {"Deform", "Total"}; older majors print a number
    let t = |k: &str| {
        timing.and_then(|t| match t.get(k) {
            Some(Value::Object(o)) => num(o, "Total"),
            _ => num(t, k),
        })
    };
    Jit {
        functions: int(j, "Functions"),
        generation_ms: t("Generation"),
        inlining_ms: t("Inlining"),
        optimization_ms: t("Optimization"),
        emission_ms: t("Emission"),
        total_ms: t("Total"),
    }
}

pub(super) fn text(m: &Map<String, Value>, key: &str) -> Option<String> {
    match m.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

pub(super) fn num(m: &Map<String, Value>, key: &str) -> Option<f64> {
    m.get(key).and_then(|v| NUM.deserialize(v).ok().flatten())
}

pub(super) fn int(m: &Map<String, Value>, key: &str) -> Option<i64> {
    m.get(key).and_then(|v| INT.deserialize(v).ok().flatten())
}
