//! The controller's HTTP endpoints: `/metrics` (Prometheus), `/healthz` (the process
//! runs) and `/readyz` (it reached the apiserver and is leading or standing by).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::metrics::Metrics;

/// What the endpoints report on.
pub struct Health {
    pub metrics: Arc<Metrics>,
    pub ready: AtomicBool,
    pub leading: AtomicBool,
}

async fn metrics(State(health): State<Arc<Health>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        health.metrics.encode(),
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(health): State<Arc<Health>>) -> (StatusCode, String) {
    let leading = health.leading.load(Ordering::Relaxed);
    if health.ready.load(Ordering::Relaxed) {
        let role = if leading { "leading" } else { "standing by" };
        (StatusCode::OK, format!("ok ({role})\n"))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the apiserver was not reached yet\n".into(),
        )
    }
}

/// Binds `address` and serves until the task is dropped; returns the bound address (for
/// port 0).
pub async fn serve(
    address: SocketAddr,
    health: Arc<Health>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), std::io::Error> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(health);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the HTTP endpoint stopped");
        }
    });
    Ok((bound, task))
}
