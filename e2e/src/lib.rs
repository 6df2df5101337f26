//! Strata's test substrate: real Kubernetes control planes on loopback, simulated
//! kubelets (for pods, and as local processes for Strata's own agent), a fault proxy, an
//! OCI registry (and a deliberately hostile one) and a Helm executable on the real Helm
//! engine. Only the clouds and the kubelets are simulated.

pub mod access_review;
pub mod agent_endpoints;
pub mod agent_footprint;
pub mod audit_log;
pub mod bench_table;
pub mod binaries;
pub mod capi_crds;
pub mod cli_run;
pub mod cloud_sim;
pub mod connection_trap;
pub mod control_plane;
pub mod dynamic_objects;
pub mod fault_proxy;
pub mod hostile_registry;
pub mod kubelet_sim;
pub mod loss_watch;
pub mod management;
pub mod management_trust;
pub mod move_checks;
pub mod oci_images;
pub mod pivoted_cluster;
pub mod pki;
pub mod process_kubelet;
pub mod provider_packs;
pub mod registry;
pub mod samples;
pub mod site_link;
pub mod token_server;
pub mod wait;
pub mod workload_cluster_status;
