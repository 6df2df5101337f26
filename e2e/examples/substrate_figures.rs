//! Measures the test substrate: time until a control plane is ready and its memory, for
//! a few sequential starts. `cargo run --release -p strata-e2e --example substrate_figures`

use std::time::Instant;

use strata_e2e::control_plane::{ControlPlane, ControlPlaneOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs = 3;
    let mut times = Vec::new();
    for run in 1..=runs {
        let started = Instant::now();
        let cp = ControlPlane::start(ControlPlaneOptions::named("figures")).await?;
        let ready = started.elapsed();
        // Memory after the controllers have settled.
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        let memory: Vec<(String, u64)> = cp.resident_memory();
        let total: u64 = memory.iter().map(|(_, bytes)| bytes).sum();
        println!(
            "run {run}: ready in {:.2}s (etcd, apiserver, controller-manager, default service account); resident {} MiB: {}",
            ready.as_secs_f64(),
            total / (1024 * 1024),
            memory
                .iter()
                .map(|(name, bytes)| format!("{name} {} MiB", bytes / (1024 * 1024)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        times.push(ready.as_secs_f64());
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    println!("mean time to ready over {runs} runs: {mean:.2}s");
    Ok(())
}
