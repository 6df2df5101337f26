//! The test substrate for Strata: real Kubernetes control planes on loopback, the
//! simulated cloud and kubelet, and the end-to-end tests. Built by the substrate work.
