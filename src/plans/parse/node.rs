//! Plan nodes, read straight into the tree with their path for error messages.

use super::*;

/// Where a node is, for error messages: `Plan`, `Plan.Plans[0].Plans[3]`; rendered
/// only when there is an error to report.
#[derive(Clone, Copy)]
pub(super) enum Path<'a> {
    Root,
    Child(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => f.write_str("Plan"),
            Path::Child(p, i) => write!(f, "{p}.Plans[{i}]"),
        }
    }
}

/// A node as read: the node, the first problem in it or below it, or a JSON value that
/// is not an object.
pub(super) enum Node {
    Ok(Box<PlanNode>),
    Err(PlanError),
    NotObject,
}

pub(super) type StrField = fn(&mut PlanNode) -> &mut Option<String>;
pub(super) type NumField = fn(&mut PlanNode) -> &mut Option<f64>;
pub(super) type IntField = fn(&mut PlanNode) -> &mut Option<i64>;

/// What a node key is read into.
pub(super) enum NodeKey {
    NodeType,
    Plans,
    Workers,
    ParallelAware,
    Disabled,
    StartupCost,
    TotalCost,
    PlanRows,
    FunctionName,
    TableFunctionName,
    IoRead,
    SharedIoRead,
    IoWrite,
    SharedIoWrite,
    Condition(usize),
    Str(StrField),
    Num(NumField),
    Int(IntField),
    Other,
}

pub(super) fn node_key(k: &str) -> NodeKey {
    use NodeKey::*;
    match k {
        "Node Type" => NodeType,
        "Plans" => Plans,
        "Workers" => Workers,
        "Parallel Aware" => ParallelAware,
        "Disabled" => Disabled,
        "Startup Cost" => StartupCost,
        "Total Cost" => TotalCost,
        "Plan Rows" => PlanRows,
        "Function Name" => FunctionName,
        "Table Function Name" => TableFunctionName,
        "I/O Read Time" => IoRead,
        "Shared I/O Read Time" => SharedIoRead,
        "I/O Write Time" => IoWrite,
        "Shared I/O Write Time" => SharedIoWrite,
        "Relation Name" => Str(|n| &mut n.relation_name),
        "Schema" => Str(|n| &mut n.schema),
        "Alias" => Str(|n| &mut n.alias),
        "Index Name" => Str(|n| &mut n.index_name),
        "Join Type" => Str(|n| &mut n.join_type),
        "Parent Relationship" => Str(|n| &mut n.parent_relationship),
        "Subplan Name" => Str(|n| &mut n.subplan_name),
        "Strategy" => Str(|n| &mut n.strategy),
        "Partial Mode" => Str(|n| &mut n.partial_mode),
        "Operation" => Str(|n| &mut n.operation),
        "CTE Name" => Str(|n| &mut n.cte_name),
        "Sort Method" => Str(|n| &mut n.sort_method),
        "Sort Space Type" => Str(|n| &mut n.sort_space_type),
        "Actual Rows" => Num(|n| &mut n.actual_rows),
        "Actual Loops" => Num(|n| &mut n.actual_loops),
        "Actual Startup Time" => Num(|n| &mut n.actual_startup_time),
        "Actual Total Time" => Num(|n| &mut n.actual_total_time),
        "Rows Removed by Filter" => Num(|n| &mut n.rows_removed_by_filter),
        "Rows Removed by Join Filter" => Num(|n| &mut n.rows_removed_by_join_filter),
        "Rows Removed by Index Recheck" => Num(|n| &mut n.rows_removed_by_index_recheck),
        "Shared Hit Blocks" => Int(|n| &mut n.shared_hit),
        "Shared Read Blocks" => Int(|n| &mut n.shared_read),
        "Shared Dirtied Blocks" => Int(|n| &mut n.shared_dirtied),
        "Shared Written Blocks" => Int(|n| &mut n.shared_written),
        "Temp Read Blocks" => Int(|n| &mut n.temp_read),
        "Temp Written Blocks" => Int(|n| &mut n.temp_written),
        "Index Searches" => Int(|n| &mut n.index_searches),
        "Heap Fetches" => Int(|n| &mut n.heap_fetches),
        "Workers Planned" => Int(|n| &mut n.workers_planned),
        "Workers Launched" => Int(|n| &mut n.workers_launched),
        "Sort Space Used" => Int(|n| &mut n.sort_space_kb),
        "Hash Buckets" => Int(|n| &mut n.hash_buckets),
        "Hash Batches" => Int(|n| &mut n.hash_batches),
        "Original Hash Batches" => Int(|n| &mut n.original_hash_batches),
        "Peak Memory Usage" => Int(|n| &mut n.peak_memory_kb),
        "HashAgg Batches" => Int(|n| &mut n.hashagg_batches),
        "Disk Usage" => Int(|n| &mut n.disk_usage_kb),
        "Cache Hits" => Int(|n| &mut n.cache_hits),
        "Cache Misses" => Int(|n| &mut n.cache_misses),
        "Cache Evictions" => Int(|n| &mut n.cache_evictions),
        "Cache Overflows" => Int(|n| &mut n.cache_overflows),
        "Exact Heap Blocks" => Int(|n| &mut n.exact_heap_blocks),
        "Lossy Heap Blocks" => Int(|n| &mut n.lossy_heap_blocks),
        "WAL Records" => Int(|n| &mut n.wal_records),
        "WAL FPI" => Int(|n| &mut n.wal_fpi),
        "WAL Bytes" => Int(|n| &mut n.wal_bytes),
        _ => CONDITION_KEYS
            .iter()
            .position(|c| *c == k)
            .map_or(Other, Condition),
    }
}

pub(super) struct NodeSeed<'p> {
    pub(super) path: Path<'p>,
    pub(super) depth: usize,
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_> {
    type Value = Node;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_> {
    type Value = Node;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a plan node object")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
        Ok(Node::NotObject)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
        Ok(Node::NotObject)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
        Ok(Node::NotObject)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
        Ok(Node::NotObject)
    }
    fn visit_str<E>(self, _: &str) -> Result<Node, E> {
        Ok(Node::NotObject)
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::NotObject)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Node, A::Error> {
        IgnoredAny.visit_seq(seq)?;
        Ok(Node::NotObject)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        if self.depth > MAX_PLAN_DEPTH {
            IgnoredAny.visit_map(map)?;
            return Ok(Node::Err(PlanError::TooDeep {
                limit: MAX_PLAN_DEPTH,
            }));
        }
        // on the heap: this frame recurses once per plan level, and a deep plan must not
        // need a deep stack
        let mut n = Box::<PlanNode>::default();
        // None: no "Node Type" key; Some(None): not a string
        let mut node_type: Option<Option<String>> = None;
        let mut kids: Option<Kids> = None;
        let mut conditions: Box<[Option<String>; 10]> = Box::default();
        let (mut function, mut table_function) = (None, None);
        let (mut io_read, mut shared_io_read, mut io_write, mut shared_io_write) =
            (None, None, None, None);
        let mut parallel_aware = None;
        while let Some(k) = map.next_key_seed(Key(node_key))? {
            match k {
                NodeKey::NodeType => node_type = Some(map.next_value_seed(STR)?),
                NodeKey::Plans => {
                    kids = Some(map.next_value_seed(KidsSeed {
                        parent: &self.path,
                        depth: self.depth,
                    })?)
                }
                NodeKey::Workers => n.workers = map.next_value_seed(WorkersSeed)?,
                NodeKey::ParallelAware => parallel_aware = map.next_value_seed(BOOL)?,
                NodeKey::Disabled => n.disabled = map.next_value_seed(BOOL)?,
                NodeKey::StartupCost => n.startup_cost = map.next_value_seed(NUM)?.unwrap_or(0.0),
                NodeKey::TotalCost => n.total_cost = map.next_value_seed(NUM)?.unwrap_or(0.0),
                NodeKey::PlanRows => n.plan_rows = map.next_value_seed(NUM)?.unwrap_or(0.0),
                NodeKey::FunctionName => function = map.next_value_seed(STR)?,
                NodeKey::TableFunctionName => table_function = map.next_value_seed(STR)?,
                NodeKey::IoRead => io_read = map.next_value_seed(NUM)?,
                NodeKey::SharedIoRead => shared_io_read = map.next_value_seed(NUM)?,
                NodeKey::IoWrite => io_write = map.next_value_seed(NUM)?,
                NodeKey::SharedIoWrite => shared_io_write = map.next_value_seed(NUM)?,
                NodeKey::Condition(i) => {
                    let v = map.next_value_seed(STR)?;
                    if let Some(slot) = conditions.get_mut(i) {
                        *slot = v;
                    }
                }
                NodeKey::Str(field) => *field(&mut n) = map.next_value_seed(STR)?,
                NodeKey::Num(field) => *field(&mut n) = map.next_value_seed(NUM)?,
                NodeKey::Int(field) => *field(&mut n) = map.next_value_seed(INT)?,
                NodeKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let path = &self.path;
        n.node_type = match node_type {
            Some(Some(t)) => t,
            Some(None) => {
                return Ok(Node::Err(PlanError::WrongType {
                    path: path.to_string(),
                    field: "Node Type",
                    expected: "a string",
                }))
            }
            None => {
                return Ok(Node::Err(PlanError::MissingField {
                    path: path.to_string(),
                    field: "Node Type",
                }))
            }
        };
        match kids {
            None | Some(Kids::Null) => {}
            Some(Kids::Ok(children)) => n.children = children,
            Some(Kids::Err(e)) => return Ok(Node::Err(e)),
            Some(Kids::NotArray) => {
                return Ok(Node::Err(PlanError::WrongType {
                    path: path.to_string(),
                    field: "Plans",
                    expected: "an array",
                }))
            }
        }
        n.relation = match (&n.schema, &n.relation_name) {
            (Some(s), Some(r)) => Some(format!("{s}.{r}")),
            (None, Some(r)) => Some(r.clone()),
            _ => None,
        };
        n.conditions = CONDITION_KEYS
            .iter()
            .zip(*conditions)
            .filter_map(|(k, v)| v.map(|v| ((*k).to_string(), v)))
            .collect();
        n.function_name = function.or(table_function);
        n.io_read_time = io_read.or(shared_io_read);
        n.io_write_time = io_write.or(shared_io_write);
        n.parallel_aware = parallel_aware == Some(true);
        Ok(Node::Ok(n))
    }
}

/// A node's `"Plans"` as read.
pub(super) enum Kids {
    Ok(Vec<PlanNode>),
    Err(PlanError),
    Null,
    NotArray,
}

pub(super) struct KidsSeed<'p> {
    pub(super) parent: &'p Path<'p>,
    pub(super) depth: usize,
}

impl<'de> DeserializeSeed<'de> for KidsSeed<'_> {
    type Value = Kids;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Kids, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KidsSeed<'_> {
    type Value = Kids;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of plan nodes")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Kids, E> {
        Ok(Kids::NotArray)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Kids, E> {
        Ok(Kids::NotArray)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Kids, E> {
        Ok(Kids::NotArray)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Kids, E> {
        Ok(Kids::NotArray)
    }
    fn visit_str<E>(self, _: &str) -> Result<Kids, E> {
        Ok(Kids::NotArray)
    }
    fn visit_unit<E>(self) -> Result<Kids, E> {
        Ok(Kids::Null)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Kids, A::Error> {
        IgnoredAny.visit_map(map)?;
        Ok(Kids::NotArray)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kids, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(2));
        let mut i = 0;
        loop {
            let path = Path::Child(self.parent, i);
            let Some(node) = seq.next_element_seed(NodeSeed {
                path,
                depth: self.depth + 1,
            })?
            else {
                return Ok(Kids::Ok(out));
            };
            let err = match node {
                Node::Ok(n) => {
                    out.push(*n);
                    i += 1;
                    continue;
                }
                Node::Err(e) => e,
                Node::NotObject => PlanError::WrongType {
                    path: path.to_string(),
                    field: "Plans",
                    expected: "an array of objects",
                },
            };
            // the first problem is the one reported; the rest is only read
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(Kids::Err(err));
        }
    }
}
