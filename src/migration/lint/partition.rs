//! Whether ATTACH PARTITION scans: PostgreSQL's own proof, run on the live catalog. The
//! bound is transformed against the parent, turned into the partition constraint (with
//! the parent's own, when it is a partition too) and tested with the planner's implication
//! prover against the table's validated CHECKs and NOT NULLs, as ALTER TABLE does before it
//! decides to scan; the same for the parent's default partition. Only ACCESS SHARE locks,
//! taken without waiting, inside a subtransaction that is rolled back.

use super::model::Name;
use crate::infra::subxact::{self, Outcome};
use pgrx::pg_sys;
use std::ffi::CStr;

unsafe extern "C-unwind" {
    // parser/parse_utilcmd.h, utils/partcache.h, catalog/partition.h: not in pgrx's
    // bindings; called through pg_guard_ffi_boundary
    fn transformPartitionBound(
        pstate: *mut pg_sys::ParseState,
        parent: pg_sys::Relation,
        spec: *mut pg_sys::PartitionBoundSpec,
    ) -> *mut pg_sys::PartitionBoundSpec;
    fn RelationGetPartitionQual(rel: pg_sys::Relation) -> *mut pg_sys::List;
    fn map_partition_varattnos(
        expr: *mut pg_sys::List,
        fromrel_varno: i32,
        to_rel: pg_sys::Relation,
        from_rel: pg_sys::Relation,
    ) -> *mut pg_sys::List;
    fn get_proposed_default_constraint(
        new_part_constraints: *mut pg_sys::List,
    ) -> *mut pg_sys::List;
}

/// What the attach will scan.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AttachProof {
    /// the partition's own constraints prove the bound, so it is not scanned (None: not
    /// tested: a table that does not exist yet, a lock not granted at once, a bad bound)
    pub proven: Option<bool>,
    /// the parent's default partition, and whether its constraints prove that none of its
    /// rows fall in the new bound (when not, it is scanned under ACCESS EXCLUSIVE)
    pub default_partition: Option<(Name, bool)>,
}

unsafe fn name_of(oid: pg_sys::Oid) -> Name {
    let s = |p: *mut std::ffi::c_char| {
        if p.is_null() {
            String::new()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    };
    Name::new(
        Some(s(pg_sys::get_namespace_name(pg_sys::get_rel_namespace(
            oid,
        )))),
        s(pg_sys::get_rel_name(oid)),
    )
}

/// Open a relation under ACCESS SHARE if that is granted at once.
unsafe fn open_oid(oid: pg_sys::Oid) -> Option<pg_sys::Relation> {
    if oid == pg_sys::InvalidOid
        || !pg_sys::ConditionalLockRelationOid(oid, pg_sys::AccessShareLock as pg_sys::LOCKMODE)
    {
        return None;
    }
    Some(pg_sys::relation_open(
        oid,
        pg_sys::NoLock as pg_sys::LOCKMODE,
    ))
}

unsafe fn open(rv: *mut pg_sys::RangeVar) -> Option<pg_sys::Relation> {
    open_oid(super::tree::relid(rv))
}

unsafe fn close(r: pg_sys::Relation) {
    pg_sys::relation_close(r, pg_sys::NoLock as pg_sys::LOCKMODE);
}

/// The proof for `ALTER TABLE parent ATTACH PARTITION partition <bound>`.
///
/// # Safety
/// The pointers are null or nodes of a raw parse tree from `raw_parser`.
pub unsafe fn attach(
    parent: *mut pg_sys::RangeVar,
    partition: *mut pg_sys::RangeVar,
    bound: *mut pg_sys::PartitionBoundSpec,
) -> AttachProof {
    if bound.is_null() {
        return AttachProof::default();
    }
    subxact::run(Outcome::Rollback, || {
        let Some(parent) = open(parent) else {
            return AttachProof::default();
        };
        let out = if (*(*parent).rd_rel).relkind as u8 == pg_sys::RELKIND_PARTITIONED_TABLE {
            prove(parent, partition, bound)
        } else {
            AttachProof::default()
        };
        close(parent);
        out
    })
    .unwrap_or_default()
}

unsafe fn prove(
    parent: pg_sys::Relation,
    partition: *mut pg_sys::RangeVar,
    bound: *mut pg_sys::PartitionBoundSpec,
) -> AttachProof {
    let pstate = pg_sys::make_parsestate(std::ptr::null_mut());
    let spec =
        pg_sys::ffi::pg_guard_ffi_boundary(|| transformPartitionBound(pstate, parent, bound));
    // the partition constraint, as ATTACH PARTITION builds it
    let bound_qual = pg_sys::get_qual_from_partbound(parent, spec);
    let parent_qual = pg_sys::ffi::pg_guard_ffi_boundary(|| RelationGetPartitionQual(parent));
    let qual = pg_sys::list_concat(bound_qual, parent_qual);
    let part = open(partition);
    let part_oid = part.map(|r| (*r).rd_id).unwrap_or(pg_sys::InvalidOid);
    let proven = part.map(|r| {
        let implied = if qual.is_null() {
            true
        } else {
            let q = pg_sys::eval_const_expressions(std::ptr::null_mut(), qual as *mut pg_sys::Node);
            let q = pg_sys::canonicalize_qual(q as *mut pg_sys::Expr, false);
            let q = pg_sys::lappend(
                std::ptr::null_mut(),
                pg_sys::make_ands_explicit(q as *mut pg_sys::List) as *mut std::ffi::c_void,
            );
            let q = pg_sys::ffi::pg_guard_ffi_boundary(|| map_partition_varattnos(q, 1, r, parent));
            pg_sys::PartConstraintImpliedByRelConstraint(r, q)
        };
        close(r);
        implied
    });
    // a default partition gives up the new bound's rows: it is scanned unless proven
    let default_oid =
        pg_sys::get_default_oid_from_partdesc(pg_sys::RelationGetPartitionDesc(parent, true));
    let default_partition = if default_oid != pg_sys::InvalidOid && default_oid != part_oid {
        let implied = match open_oid(default_oid) {
            Some(d) => {
                let dq = pg_sys::ffi::pg_guard_ffi_boundary(|| {
                    get_proposed_default_constraint(
                        pg_sys::copyObjectImpl(qual as *const _) as *mut pg_sys::List
                    )
                });
                let dq = pg_sys::ffi::pg_guard_ffi_boundary(|| {
                    map_partition_varattnos(dq, 1, d, parent)
                });
                let r = pg_sys::PartConstraintImpliedByRelConstraint(d, dq);
                close(d);
                r
            }
            None => false,
        };
        Some((name_of(default_oid), implied))
    } else {
        None
    };
    AttachProof {
        proven,
        default_partition,
    }
}
