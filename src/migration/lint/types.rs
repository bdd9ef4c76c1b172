//! Does `ALTER COLUMN ... TYPE` rewrite the table? PostgreSQL skips the rewrite when the
//! old type is binary-coercible to the new one (pg_cast castmethod 'b', e.g. varchar ->
//! text, cidr -> inet) and any length coercion left is a no-op (its support function
//! proves it: varchar/varbit widening, numeric precision increase at the same scale,
//! timestamp/time precision increase), and for timestamp -> timestamptz when TimeZone is
//! UTC. Pure: the catalog answers (coercibility, TimeZone) come in as arguments.

pub const INT2: u32 = 21;
pub const INT4: u32 = 23;
pub const INT8: u32 = 20;
pub const TEXT: u32 = 25;
pub const JSON: u32 = 114;
pub const CIDR: u32 = 650;
pub const INET: u32 = 869;
pub const BPCHAR: u32 = 1042;
pub const VARCHAR: u32 = 1043;
pub const TIME: u32 = 1083;
pub const TIMESTAMP: u32 = 1114;
pub const TIMESTAMPTZ: u32 = 1184;
pub const INTERVAL: u32 = 1186;
pub const TIMETZ: u32 = 1266;
pub const VARBIT: u32 = 1562;
pub const NUMERIC: u32 = 1700;

/// (precision, scale) of a numeric typmod, None for unconstrained.
pub fn numeric_ps(typmod: i32) -> Option<(i32, i32)> {
    if typmod < 4 {
        return None;
    }
    let t = typmod - 4;
    let precision = (t >> 16) & 0xffff;
    // the scale is an 11-bit signed field (negative scales since PG 15)
    let scale = ((t & 0x7ff) ^ 1024) - 1024;
    Some((precision, scale))
}

/// Is a change of typmod within the same type free of a rewrite?
fn same_type_no_rewrite(oid: u32, old: i32, new: i32) -> bool {
    if old == new {
        return true;
    }
    match oid {
        // length limits: widening or removing the limit is a no-op
        VARCHAR | VARBIT => new < 0 || (old >= 0 && new >= old),
        NUMERIC => match (numeric_ps(old), numeric_ps(new)) {
            (_, None) => true,
            (Some((p0, s0)), Some((p1, s1))) => s1 == s0 && p1 >= p0,
            (None, Some(_)) => false,
        },
        // fractional-second precision: -1 is the maximum (6)
        TIMESTAMP | TIMESTAMPTZ | TIME | TIMETZ => {
            let p = |t: i32| if t < 0 { 6 } else { t };
            p(new) >= p(old)
        }
        _ => false,
    }
}

/// Can the change fail on existing values (a shorter length, fewer integer digits)?
pub fn narrows(old_oid: u32, old_typmod: i32, new_oid: u32, new_typmod: i32) -> bool {
    if new_typmod < 0 {
        return false;
    }
    match (old_oid, new_oid) {
        (VARCHAR, VARCHAR) | (VARBIT, VARBIT) | (BPCHAR, BPCHAR) => {
            old_typmod < 0 || new_typmod < old_typmod
        }
        (TEXT, VARCHAR) | (TEXT, BPCHAR) | (VARCHAR, BPCHAR) | (BPCHAR, VARCHAR) => true,
        (NUMERIC, NUMERIC) => match (numeric_ps(old_typmod), numeric_ps(new_typmod)) {
            (Some((p0, s0)), Some((p1, s1))) => p1 - s1 < p0 - s0,
            (None, Some(_)) => true,
            _ => false,
        },
        _ => false,
    }
}

/// The verdict on a type change: does it rewrite, and why (for the finding text).
pub fn type_change(
    old_oid: u32,
    old_typmod: i32,
    new_oid: u32,
    new_typmod: i32,
    binary_coercible: bool,
    using_transforms: bool,
    utc: bool,
) -> (bool, String) {
    if using_transforms {
        return (
            true,
            "a USING expression computes every row anew: the table is rewritten".into(),
        );
    }
    if old_oid == new_oid {
        return if same_type_no_rewrite(old_oid, old_typmod, new_typmod) {
            (
                false,
                "a wider or unlimited type modifier is a catalog change only".into(),
            )
        } else {
            (
                true,
                "a narrower or different type modifier must check or convert every row: the table is rewritten".into(),
            )
        };
    }
    if old_oid == TIMESTAMP && new_oid == TIMESTAMPTZ {
        return if utc {
            (
                false,
                "timestamp -> timestamptz with TimeZone = UTC is a catalog change only".into(),
            )
        } else {
            (
                true,
                "timestamp -> timestamptz rewrites unless the session's TimeZone is UTC".into(),
            )
        };
    }
    if binary_coercible {
        // the coercion is free; a length limit on the new type is not, unless it is absent
        let limited = new_typmod >= 0;
        if !limited || (old_oid == VARCHAR && new_oid == VARCHAR) {
            return (
                false,
                "the old type is binary-coercible to the new one (pg_cast): no rewrite".into(),
            );
        }
        return (
            true,
            "binary-coercible, but the new length limit must check every row: the table is rewritten".into(),
        );
    }
    (
        true,
        "no binary-coercible cast between the types: every row is converted and the table rewritten".into(),
    )
}

#[cfg(test)]
mod unit {
    use super::*;

    fn vc(n: i32) -> i32 {
        n + 4
    }
    fn num(p: i32, s: i32) -> i32 {
        ((p << 16) | (s & 0x7ff)) + 4
    }

    #[test]
    fn varchar_widening_and_text_are_free() {
        assert!(!type_change(VARCHAR, vc(10), VARCHAR, vc(20), true, false, false).0);
        assert!(!type_change(VARCHAR, vc(10), VARCHAR, -1, true, false, false).0);
        assert!(type_change(VARCHAR, vc(20), VARCHAR, vc(10), true, false, false).0);
        assert!(type_change(VARCHAR, -1, VARCHAR, vc(10), true, false, false).0);
        assert!(!type_change(VARCHAR, vc(10), TEXT, -1, true, false, false).0);
        assert!(type_change(TEXT, -1, VARCHAR, vc(10), true, false, false).0);
        assert!(!type_change(TEXT, -1, VARCHAR, -1, true, false, false).0);
    }

    #[test]
    fn numeric_precision_at_same_scale() {
        assert_eq!(numeric_ps(num(10, 2)), Some((10, 2)));
        assert_eq!(numeric_ps(num(5, -2)), Some((5, -2)));
        assert!(
            !type_change(
                NUMERIC,
                num(10, 2),
                NUMERIC,
                num(12, 2),
                false,
                false,
                false
            )
            .0
        );
        assert!(
            type_change(
                NUMERIC,
                num(10, 2),
                NUMERIC,
                num(12, 3),
                false,
                false,
                false
            )
            .0
        );
        assert!(type_change(NUMERIC, num(10, 2), NUMERIC, num(8, 2), false, false, false).0);
        assert!(!type_change(NUMERIC, num(10, 2), NUMERIC, -1, false, false, false).0);
        assert!(type_change(NUMERIC, -1, NUMERIC, num(10, 2), false, false, false).0);
    }

    #[test]
    fn narrowing_can_fail() {
        assert!(narrows(VARCHAR, vc(10), VARCHAR, vc(5)));
        assert!(!narrows(VARCHAR, vc(10), VARCHAR, vc(20)));
        assert!(narrows(TEXT, -1, VARCHAR, vc(100)));
        assert!(!narrows(NUMERIC, num(10, 2), NUMERIC, num(12, 4)));
        assert!(narrows(NUMERIC, num(10, 2), NUMERIC, num(10, 4)));
        assert!(!narrows(INT4, -1, INT8, -1));
    }

    #[test]
    fn int_to_bigint_rewrites_and_timestamps_depend_on_utc() {
        assert!(type_change(INT4, -1, INT8, -1, false, false, false).0);
        assert!(type_change(TIMESTAMP, -1, TIMESTAMPTZ, -1, false, false, false).0);
        assert!(!type_change(TIMESTAMP, -1, TIMESTAMPTZ, -1, false, false, true).0);
        assert!(!type_change(TIMESTAMPTZ, 3, TIMESTAMPTZ, -1, false, false, false).0);
        assert!(type_change(TIMESTAMPTZ, -1, TIMESTAMPTZ, 3, false, false, false).0);
        assert!(!type_change(CIDR, -1, INET, -1, true, false, false).0);
        assert!(type_change(VARCHAR, vc(10), VARCHAR, vc(20), true, true, false).0);
    }
}
