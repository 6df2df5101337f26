//! A WorkloadCluster's domain beyond its custom resource type (which is in
//! [`crate::crd::workload_cluster`], re-exported here under its older path): the ledger
//! of the controller's decisions about it.

pub mod ledger;

pub use crate::crd::workload_cluster::*;
