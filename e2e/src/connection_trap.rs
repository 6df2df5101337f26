//! A TCP listener on loopback that answers nothing and records every connection made to
//! it: the address a test hands to code that must never connect there (a hostile
//! kubeconfig's server or proxy), and the witness that it did not.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum ConnectionTrapError {
    #[error("cannot listen on a loopback port for a connection trap: {0}")]
    Bind(#[source] std::io::Error),
}

/// Listens until dropped.
pub struct ConnectionTrap {
    address: SocketAddr,
    accepted: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl ConnectionTrap {
    /// Listens on a free port of 127.0.0.1 (inside a Tokio runtime).
    pub async fn start() -> Result<ConnectionTrap, ConnectionTrapError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(ConnectionTrapError::Bind)?;
        let address = listener.local_addr().map_err(ConnectionTrapError::Bind)?;
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let record = accepted.clone();
        let task = tokio::spawn(async move {
            loop {
                // A failed accept (a connection reset before it was taken) was still an
                // attempt to connect.
                let accepted = listener.accept().await;
                let seen = match &accepted {
                    Ok((_, peer)) => format!("a connection from {peer}"),
                    Err(e) => format!("a connection that failed before it was taken: {e}"),
                };
                record.lock().unwrap_or_else(|p| p.into_inner()).push(seen);
                if accepted.is_err() {
                    // Not a busy loop when the error persists (out of descriptors).
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        });
        Ok(ConnectionTrap {
            address,
            accepted,
            task,
        })
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Every connection (or attempt) so far, described.
    pub fn accepted(&self) -> Vec<String> {
        self.accepted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for ConnectionTrap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_each_connection() {
        let trap = ConnectionTrap::start().await.unwrap();
        assert!(trap.accepted().is_empty());
        let stream = tokio::net::TcpStream::connect(trap.address())
            .await
            .unwrap();
        let local = stream.local_addr().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while trap.accepted().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "no connection recorded"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(trap.accepted(), vec![format!("a connection from {local}")]);
    }
}
