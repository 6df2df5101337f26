//! The contracts between Strata's crates, and between Strata and the clusters it writes to:
//! what one side writes and another reads. Labels and annotations, the names of well-known
//! objects, field managers, condition types, and the Cluster API kinds. Each is defined here
//! once, with who writes it and who reads it; nothing here does I/O.

pub mod capi;
pub mod capi_views;
pub mod conditions;
pub mod field_managers;
pub mod labels;
pub mod names;
