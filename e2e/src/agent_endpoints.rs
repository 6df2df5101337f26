//! Reads an agent replica's `/metrics`, `/healthz` and `/readyz` at its pod IP, as a
//! kubelet's probes and a Prometheus scrape would.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use strata_shared::contracts::names::AGENT_HTTP_PORT;

use crate::process_kubelet::AgentProcess;

/// An endpoint's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// A bare HTTP/1.0 GET of `path` on the replica's pod IP and the agent's default port.
pub async fn get(agent: &AgentProcess, path: &str) -> Result<Answer, String> {
    let address = (agent.pod_ip, AGENT_HTTP_PORT);
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", agent.pod_ip);
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .await
            .map_err(|e| format!("read: {e}"))?;
        Ok::<_, String>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| "no answer in 5 s".to_string())
        .and_then(|r| r)
        .map_err(|e| {
            format!(
                "{} {path} at {}:{}: {e}",
                agent.pod_name, address.0, address.1
            )
        })?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{path}: not an HTTP response: {response:?}"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("{path}: no status in {head:?}"))?;
    Ok(Answer {
        status,
        body: body.to_string(),
    })
}

/// The value of one sample line of a metrics text (`name{labels}` exactly as written).
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}
