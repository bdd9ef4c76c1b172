//! A default, USING or CHECK expression from the raw parse tree: its text rebuilt for the
//! safe alternative, and the functions and operators it calls (their volatility is looked up
//! in pg_proc by the catalog side). Anything it cannot rebuild is marked opaque.

use super::model::{ident, Expr, Name};
use super::tree::{cstr, is, list_name, nodes, strval, type_spec};
use pgrx::pg_sys;

/// Rebuild an expression's text from the raw tree and collect the functions it calls.
unsafe fn expr(n: *mut pg_sys::Node, e: &mut Expr) -> String {
    use pg_sys::NodeTag as T;
    if n.is_null() {
        return String::new();
    }
    match (*n).type_ {
        T::T_A_Const => {
            let c = n as *mut pg_sys::A_Const;
            if (*c).isnull {
                return "NULL".into();
            }
            let v = &(*c).val;
            match v.node.type_ {
                T::T_Integer => v.ival.ival.to_string(),
                T::T_Float => cstr(v.fval.fval),
                T::T_Boolean => v.boolval.boolval.to_string(),
                T::T_String => format!("'{}'", cstr(v.sval.sval).replace('\'', "''")),
                _ => {
                    e.opaque = true;
                    "<constant>".into()
                }
            }
        }
        T::T_FuncCall => {
            let f = n as *mut pg_sys::FuncCall;
            let name = list_name((*f).funcname);
            let args: Vec<String> = nodes((*f).args).into_iter().map(|a| expr(a, e)).collect();
            let text = format!("{}({})", name.sql(), args.join(", "));
            e.funcs.push(name);
            text
        }
        T::T_TypeCast => {
            let c = n as *mut pg_sys::TypeCast;
            let inner = expr((*c).arg, e);
            let ty = type_spec((*c).typeName);
            format!("{inner}::{}", ty.display)
        }
        T::T_A_Expr => {
            let a = n as *mut pg_sys::A_Expr;
            let op = list_name((*a).name).name;
            if (*a).kind != pg_sys::A_Expr_Kind::AEXPR_OP {
                e.opaque = true;
            }
            // an operator is a function too: its volatility is that of its function
            e.funcs.push(Name::new(None, format!("operator:{op}")));
            let l = expr((*a).lexpr, e);
            let r = expr((*a).rexpr, e);
            if l.is_empty() {
                format!("{op} {r}")
            } else {
                format!("{l} {op} {r}")
            }
        }
        T::T_SQLValueFunction => {
            // CURRENT_TIMESTAMP, CURRENT_DATE, CURRENT_USER, ...: stable, never volatile
            "CURRENT_TIMESTAMP".into()
        }
        T::T_ColumnRef => {
            let c = n as *mut pg_sys::ColumnRef;
            let parts: Vec<String> = nodes((*c).fields)
                .into_iter()
                .map(|f| ident(&strval(f)))
                .collect();
            parts.join(".")
        }
        T::T_CoalesceExpr => {
            let c = n as *mut pg_sys::CoalesceExpr;
            let args: Vec<String> = nodes((*c).args).into_iter().map(|a| expr(a, e)).collect();
            format!("COALESCE({})", args.join(", "))
        }
        _ => {
            e.opaque = true;
            "<expression>".into()
        }
    }
}

pub(super) unsafe fn make_expr(n: *mut pg_sys::Node) -> Expr {
    let mut e = Expr::default();
    e.column_only = is(n, pg_sys::NodeTag::T_ColumnRef);
    e.text = expr(n, &mut e);
    e
}
