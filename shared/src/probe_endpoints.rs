//! The HTTP endpoints the controller and the agent both serve: `/metrics` (Prometheus'
//! text format), `/healthz` (the process answers) and `/readyz` (whatever the binary's
//! [`Probes`] says). Kubernetes' probes and a Prometheus scrape read the same port.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

/// What `/readyz` answers, with the line it prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready(String),
    NotReady(String),
}

/// What a binary reports through the endpoints.
pub trait Probes: Send + Sync + 'static {
    /// The metrics in Prometheus' text exposition format.
    fn metrics_text(&self) -> String;
    fn readiness(&self) -> Readiness;
}

type Shared = Arc<dyn Probes>;

async fn metrics(State(probes): State<Shared>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        probes.metrics_text(),
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(probes): State<Shared>) -> (StatusCode, String) {
    match probes.readiness() {
        Readiness::Ready(line) => (StatusCode::OK, format!("ok ({line})\n")),
        Readiness::NotReady(line) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {line}\n"),
        ),
    }
}

/// Binds `address` and serves until the task is dropped or aborted; returns the bound
/// address (for port 0).
pub async fn serve(
    address: SocketAddr,
    probes: Shared,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), std::io::Error> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(probes);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the HTTP endpoint stopped");
        }
    });
    Ok((bound, task))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    struct Fixed {
        ready: AtomicBool,
    }

    impl Probes for Fixed {
        fn metrics_text(&self) -> String {
            "# TYPE x gauge\nx 1\n# EOF\n".into()
        }
        fn readiness(&self) -> Readiness {
            if self.ready.load(Ordering::Relaxed) {
                Readiness::Ready("leading".into())
            } else {
                Readiness::NotReady("no apiserver yet".into())
            }
        }
    }

    /// A bare HTTP/1.0 GET: the status code and the body.
    async fn get_text(address: SocketAddr, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let request = format!("GET {path} HTTP/1.0\r\nHost: probe\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let code = head.split(' ').nth(1).unwrap().parse().unwrap();
        (code, body.to_string())
    }

    #[tokio::test]
    async fn the_endpoints_answer_what_the_probes_say() {
        let probes = Arc::new(Fixed {
            ready: AtomicBool::new(false),
        });
        let (address, task) = serve("127.0.0.1:0".parse().unwrap(), probes.clone())
            .await
            .unwrap();
        assert_eq!(get_text(address, "/healthz").await, (200, "ok\n".into()));
        assert_eq!(
            get_text(address, "/readyz").await,
            (503, "not ready: no apiserver yet\n".into())
        );
        probes.ready.store(true, Ordering::Relaxed);
        assert_eq!(
            get_text(address, "/readyz").await,
            (200, "ok (leading)\n".into())
        );
        assert_eq!(
            get_text(address, "/metrics").await.1,
            "# TYPE x gauge\nx 1\n# EOF\n"
        );
        assert_eq!(get_text(address, "/nothing").await.0, 404);
        task.abort();
    }
}
