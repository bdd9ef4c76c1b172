//! The ground floor: what every gate shares and no gate owns. Nothing in here imports a
//! gate (or `report`/`triage`); a gate reaches these modules as `crate::infra::…`.

pub mod chart;
pub mod error;
pub mod evidence;
pub mod format;
pub mod gucs;
pub mod json;
pub mod owner;
pub mod parse;
pub mod regclass;
pub mod search_path;
pub mod spi;
pub mod sql_lex;
pub mod subxact;
pub mod worker;
