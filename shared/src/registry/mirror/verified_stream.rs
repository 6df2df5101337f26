//! A blob on its way from one registry to another, checked while it flows: counted against
//! the size its manifest declares and hashed. The last piece is held back until the source
//! has ended and the bytes hash to the digest, so a target never receives all of a blob
//! that does not match: the upload breaks off short of its `Content-Length` and nothing is
//! committed (the target's own check of `?digest=` is the second line).

use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use oci_client::errors::OciDistributionError;
use sha2::{Digest, Sha256};

use crate::registry::failure::error_chain;

/// Pieces of a blob, or why the source stopped sending them.
pub(crate) type SourcePieces = Pin<Box<dyn Stream<Item = Result<Bytes, String>> + Send>>;

/// Why a verified stream stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StreamProblem {
    /// The source's answer broke off (worth another attempt).
    Source { received: u64, reason: String },
    /// The source ended before the declared size.
    Short { received: u64 },
    /// The source sent more than the declared size.
    Long { received: u64 },
    /// Everything arrived and hashes to another digest.
    Mismatch { found: String },
}

#[derive(Debug, Default)]
struct Outcome {
    problem: Option<StreamProblem>,
    received: u64,
}

/// What became of a verified stream, readable once the upload returned.
#[derive(Debug, Clone, Default)]
pub(crate) struct StreamReport(Arc<Mutex<Outcome>>);

impl StreamReport {
    fn update(&self, change: impl FnOnce(&mut Outcome)) {
        // Plain values: a panic elsewhere cannot leave them half-updated.
        let mut outcome = self.0.lock().unwrap_or_else(|p| p.into_inner());
        change(&mut outcome);
    }

    /// Why the stream stopped, if it did.
    pub(crate) fn problem(&self) -> Option<StreamProblem> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .problem
            .clone()
    }

    /// Bytes read from the source so far.
    pub(crate) fn received(&self) -> u64 {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).received
    }
}

/// The pieces of a registry's answer.
pub(crate) fn response_pieces(response: reqwest::Response) -> SourcePieces {
    Box::pin(futures_util::stream::unfold(
        Some(response),
        |response| async move {
            let mut response = response?;
            match response.chunk().await {
                Ok(Some(piece)) => Some((Ok(piece), Some(response))),
                Ok(None) => None,
                Err(error) => Some((Err(error_chain(&error)), None)),
            }
        },
    ))
}

struct State {
    pieces: SourcePieces,
    hasher: Sha256,
    received: u64,
    held: Option<Bytes>,
    done: bool,
    digest: String,
    size: u64,
    report: StreamReport,
}

impl State {
    fn stop(&mut self, problem: StreamProblem) -> OciDistributionError {
        self.done = true;
        let message = format!("the copy of {} stopped: {problem:?}", self.digest);
        self.report.update(|o| o.problem = Some(problem));
        OciDistributionError::GenericError(Some(message))
    }

    /// The next piece to pass on, an error that ends the upload, or the end.
    async fn next(&mut self) -> Option<Result<Bytes, OciDistributionError>> {
        loop {
            if self.done {
                return None;
            }
            match self.pieces.next().await {
                Some(Ok(piece)) => {
                    self.received += piece.len() as u64;
                    let received = self.received;
                    self.report.update(|o| o.received = received);
                    if received > self.size {
                        return Some(Err(self.stop(StreamProblem::Long { received })));
                    }
                    self.hasher.update(&piece);
                    if let Some(previous) = self.held.replace(piece) {
                        return Some(Ok(previous));
                    }
                }
                Some(Err(reason)) => {
                    let received = self.received;
                    return Some(Err(self.stop(StreamProblem::Source { received, reason })));
                }
                None => {
                    self.done = true;
                    if self.received < self.size {
                        let received = self.received;
                        return Some(Err(self.stop(StreamProblem::Short { received })));
                    }
                    let hash = std::mem::take(&mut self.hasher).finalize();
                    let mut found = String::with_capacity(71);
                    found.push_str("sha256:");
                    for byte in hash {
                        found.push_str(&format!("{byte:02x}"));
                    }
                    if found != self.digest {
                        return Some(Err(self.stop(StreamProblem::Mismatch { found })));
                    }
                    return self.held.take().map(Ok);
                }
            }
        }
    }
}

/// `pieces`, passed on only as far as they are `size` bytes hashing to `digest`; what went
/// wrong ends up in `report`.
pub(crate) fn verified(
    pieces: SourcePieces,
    digest: &str,
    size: u64,
    report: StreamReport,
) -> impl Stream<Item = Result<Bytes, OciDistributionError>> + Send + 'static {
    let state = State {
        pieces,
        hasher: Sha256::new(),
        received: 0,
        held: None,
        done: false,
        digest: digest.to_owned(),
        size,
        report,
    };
    futures_util::stream::unfold(state, |mut state| async move {
        let item = state.next().await?;
        Some((item, state))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::pack::archive::sha256_digest;

    fn pieces(parts: Vec<Result<&'static [u8], &'static str>>) -> SourcePieces {
        Box::pin(futures_util::stream::iter(
            parts
                .into_iter()
                .map(|part| part.map(Bytes::from_static).map_err(str::to_owned)),
        ))
    }

    /// What the target would receive before the stream ended, and how it ended.
    async fn run(
        parts: Vec<Result<&'static [u8], &'static str>>,
        digest: &str,
        size: u64,
    ) -> (Vec<u8>, bool, Option<StreamProblem>) {
        let report = StreamReport::default();
        let mut stream = Box::pin(verified(pieces(parts), digest, size, report.clone()));
        let mut passed = Vec::new();
        let mut failed = false;
        while let Some(item) = stream.next().await {
            match item {
                Ok(piece) => passed.extend_from_slice(&piece),
                Err(_) => failed = true,
            }
        }
        (passed, failed, report.problem())
    }

    #[tokio::test]
    async fn passes_a_blob_that_matches() {
        let digest = sha256_digest(b"hello world");
        let (passed, failed, problem) = run(vec![Ok(b"hello "), Ok(b"world")], &digest, 11).await;
        assert_eq!(passed, b"hello world");
        assert!(!failed);
        assert_eq!(problem, None);
    }

    #[tokio::test]
    async fn holds_back_the_last_piece_of_a_blob_that_does_not_match() {
        let digest = sha256_digest(b"hello world");
        let (passed, failed, problem) = run(vec![Ok(b"hello "), Ok(b"WORLD")], &digest, 11).await;
        assert_eq!(passed, b"hello ", "the target never gets the whole blob");
        assert!(failed);
        assert_eq!(
            problem,
            Some(StreamProblem::Mismatch {
                found: sha256_digest(b"hello WORLD")
            })
        );
    }

    #[tokio::test]
    async fn stops_on_short_long_and_broken_sources() {
        let digest = sha256_digest(b"hello world");
        let (passed, failed, problem) = run(vec![Ok(b"hello")], &digest, 11).await;
        assert!(passed.is_empty() && failed);
        assert_eq!(problem, Some(StreamProblem::Short { received: 5 }));

        let (_, failed, problem) = run(vec![Ok(b"hello "), Ok(b"world!")], &digest, 11).await;
        assert!(failed);
        assert_eq!(problem, Some(StreamProblem::Long { received: 12 }));

        let (passed, failed, problem) =
            run(vec![Ok(b"hello "), Err("reset"), Ok(b"world")], &digest, 11).await;
        assert!(passed.is_empty() && failed);
        assert_eq!(
            problem,
            Some(StreamProblem::Source {
                received: 6,
                reason: "reset".into()
            })
        );
    }

    #[tokio::test]
    async fn an_empty_blob_passes_when_it_is_declared_empty() {
        let digest = sha256_digest(b"");
        let (passed, failed, problem) = run(vec![], &digest, 0).await;
        assert!(passed.is_empty() && !failed && problem.is_none());
    }
}
