//! `strata-agent`: the agent Strata installs into each workload cluster.
//!
//! This build only identifies itself; the pivot, scaling and layer installation are
//! built on top of it.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "strata-agent",
    version,
    about = "Strata's in-cluster agent (pivot, scale-out, layer installation)"
)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    eprintln!(
        "strata-agent {}: no reconcilers are built into this version yet",
        env!("CARGO_PKG_VERSION")
    );
    std::process::exit(1);
}
