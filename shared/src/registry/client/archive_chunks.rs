//! A pack's archive as it is written, in chunks: handed to an upload that runs while the
//! rest is still being compressed, and kept whole for an upload of the blob in one piece
//! should the streamed one be refused.

use std::io::{self, Write};

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

/// What the upload receives: the archive's bytes in order, or why no more come.
pub(super) type ChunkItem = Result<Bytes, io::Error>;

/// About a megabyte per chunk: few enough hand-overs, small enough that the upload starts
/// at once.
pub(super) const CHUNK_BYTES: usize = 1 << 20;
/// Chunks made but not sent yet that the upload may fall behind by before the archiving
/// waits for it.
pub(super) const CHUNKS_AHEAD: usize = 8;

/// The archive once written: every chunk, unless it grew past the limit.
#[derive(Debug)]
pub(super) struct KeptArchive {
    pub chunks: Vec<Bytes>,
    /// Every byte written, kept or not.
    pub size: u64,
}

impl KeptArchive {
    /// The archive in one buffer, for an upload of the whole blob.
    pub fn whole(&self) -> Bytes {
        if let [only] = self.chunks.as_slice() {
            return only.clone();
        }
        let mut whole = BytesMut::with_capacity(usize::try_from(self.size).unwrap_or_default());
        for chunk in &self.chunks {
            whole.extend_from_slice(chunk);
        }
        whole.freeze()
    }
}

/// A writer that cuts what it is given into chunks, keeps them and sends each to the
/// upload. Past `limit` bytes it keeps nothing more, ends the upload with an error and
/// only counts, so that the caller can say how large the archive was.
pub(super) struct ArchiveChunks {
    /// `None` once the upload stopped listening (it failed; the kept chunks serve) or the
    /// limit was passed.
    upload: Option<mpsc::Sender<ChunkItem>>,
    pending: BytesMut,
    kept: Vec<Bytes>,
    size: u64,
    limit: u64,
    finished: bool,
}

impl ArchiveChunks {
    pub fn new(upload: mpsc::Sender<ChunkItem>, limit: u64) -> ArchiveChunks {
        ArchiveChunks {
            upload: Some(upload),
            pending: BytesMut::new(),
            kept: Vec::new(),
            size: 0,
            limit,
            finished: false,
        }
    }

    /// The last chunk sent; the upload's stream ends here (the sender is dropped).
    pub fn finish(mut self) -> KeptArchive {
        self.hand_over();
        self.finished = true;
        self.upload = None;
        KeptArchive {
            chunks: std::mem::take(&mut self.kept),
            size: self.size,
        }
    }

    fn over_limit(&self) -> bool {
        self.size > self.limit
    }

    fn hand_over(&mut self) {
        if self.pending.is_empty() || self.over_limit() {
            return;
        }
        let chunk = self.pending.split().freeze();
        self.kept.push(chunk.clone());
        self.send(Ok(chunk));
    }

    /// Blocks while the upload is `CHUNKS_AHEAD` behind: called from the archiving
    /// thread, never from the runtime's.
    fn send(&mut self, item: ChunkItem) {
        if let Some(upload) = &self.upload
            && upload.blocking_send(item).is_err()
        {
            self.upload = None;
        }
    }
}

impl Write for ArchiveChunks {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let was_over = self.over_limit();
        self.size = self.size.saturating_add(buf.len() as u64);
        if self.over_limit() {
            if !was_over {
                self.pending = BytesMut::new();
                self.kept = Vec::new();
                self.send(Err(io::Error::other(format!(
                    "the archive is larger than the limit of {} bytes",
                    self.limit
                ))));
                self.upload = None;
            }
            return Ok(buf.len());
        }
        self.pending.extend_from_slice(buf);
        if self.pending.len() >= CHUNK_BYTES {
            self.hand_over();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ArchiveChunks {
    /// Archiving failed half way: the upload must not commit what it has.
    fn drop(&mut self) {
        if !self.finished {
            self.send(Err(io::Error::other("archiving the pack stopped")));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn received(mut receiver: mpsc::Receiver<ChunkItem>) -> Vec<Result<Vec<u8>, String>> {
        let mut out = Vec::new();
        while let Some(item) = receiver.blocking_recv() {
            out.push(item.map(|b| b.to_vec()).map_err(|e| e.to_string()));
        }
        out
    }

    fn written(sizes: &[usize], limit: u64) -> (Option<KeptArchive>, Vec<Result<Vec<u8>, String>>) {
        let (sender, receiver) = mpsc::channel(1024);
        let mut sink = ArchiveChunks::new(sender, limit);
        for (i, size) in sizes.iter().enumerate() {
            sink.write_all(&vec![i as u8; *size]).unwrap();
        }
        let kept = sink.finish();
        (Some(kept), received(receiver))
    }

    #[test]
    fn the_upload_gets_every_byte_in_order_in_chunks_and_the_whole_is_kept() {
        let sizes = [10, CHUNK_BYTES, 3 * CHUNK_BYTES / 2, 7];
        let (kept, sent) = written(&sizes, u64::MAX);
        let kept = kept.unwrap();
        let expected: Vec<u8> = sizes
            .iter()
            .enumerate()
            .flat_map(|(i, size)| vec![i as u8; *size])
            .collect();
        let sent: Vec<Vec<u8>> = sent.into_iter().map(Result::unwrap).collect();
        assert!(sent.len() >= 2, "sent in chunks, not at the end");
        assert!(sent.iter().all(|c| !c.is_empty()));
        assert_eq!(sent.concat(), expected);
        assert_eq!(kept.size, expected.len() as u64);
        assert_eq!(kept.whole().as_ref(), expected.as_slice());
    }

    #[test]
    fn past_the_limit_the_upload_ends_with_an_error_and_the_size_is_still_counted() {
        let (kept, sent) = written(&[CHUNK_BYTES, CHUNK_BYTES, 100], (CHUNK_BYTES + 50) as u64);
        let kept = kept.unwrap();
        assert_eq!(kept.size, (2 * CHUNK_BYTES + 100) as u64);
        assert!(kept.chunks.is_empty(), "nothing kept past the limit");
        let last = sent.last().unwrap();
        assert!(
            matches!(last, Err(message) if message.contains("larger than the limit")),
            "{last:?}"
        );
    }

    #[test]
    fn archiving_that_stops_half_way_ends_the_upload_with_an_error() {
        let (sender, receiver) = mpsc::channel(1024);
        let mut sink = ArchiveChunks::new(sender, u64::MAX);
        sink.write_all(&vec![1u8; CHUNK_BYTES + 1]).unwrap();
        drop(sink);
        let sent = received(receiver);
        assert!(sent[0].is_ok());
        assert!(
            matches!(sent.last().unwrap(), Err(message) if message.contains("stopped")),
            "{sent:?}"
        );
    }

    #[test]
    fn an_upload_that_stopped_listening_leaves_the_archive_whole() {
        let (sender, receiver) = mpsc::channel(1);
        drop(receiver);
        let mut sink = ArchiveChunks::new(sender, u64::MAX);
        sink.write_all(&vec![5u8; 3 * CHUNK_BYTES]).unwrap();
        let kept = sink.finish();
        assert_eq!(kept.whole().len(), 3 * CHUNK_BYTES);
    }
}
