//! Where a stream ends whatever its handler does: when the token it opened
//! with lapses (its `exp` and the leeway behind it), or when its caller's
//! deadline comes. The host checks the token and the deadline when a call
//! opens, so a watch or a client stream would otherwise run on for as long
//! as the connection lasts.
//!
//! At the cutoff a server stream ends with the cutoff's status in its
//! trailers, and a client stream's request ends with UNAUTHENTICATED,
//! which its handler answers like any broken stream: what it stored before
//! stays stored, nothing after is read. A client that stops reading is
//! not polled by the HTTP/2 server at all, so a timer also drops what the
//! stream holds (its subscription, its place among the caller's calls) at
//! the cutoff.

use std::{
    collections::HashSet,
    pin::Pin,
    sync::{Arc, LazyLock, Mutex, MutexGuard},
    task::{Context, Poll},
    time::SystemTime,
};

use prost::Message;
use tokio::time::{Instant, Sleep};
use tonic::body::Body;

/// The paths (`/package.Service/Method`) of the methods that stream one
/// way or both, from the suite's descriptors.
static STREAMING: LazyLock<HashSet<String>> = LazyLock::new(|| {
    let set = prost_types::FileDescriptorSet::decode(jixiao_proto::FILE_DESCRIPTOR_SET)
        .expect("the suite's own descriptors decode");
    let mut paths = HashSet::new();
    for file in set.file {
        for service in &file.service {
            for method in &service.method {
                if method.client_streaming() || method.server_streaming() {
                    paths.insert(format!(
                        "/{}.{}/{}",
                        file.package(),
                        service.name(),
                        method.name()
                    ));
                }
            }
        }
    }
    paths
});

/// Whether the method at `path` streams requests or responses.
pub(crate) fn streams(path: &str) -> bool {
    STREAMING.contains(path)
}

/// Why a stream was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Why {
    TokenLapsed,
    Deadline,
}

/// When a stream is cut, and why.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cutoff {
    pub(super) at: Instant,
    pub(super) why: Why,
}

impl Cutoff {
    /// When a token that holds `until` (wall clock) lapses on the
    /// runtime's clock; `None` when that is too far off to matter.
    pub(super) fn lapse(until: SystemTime) -> Option<Cutoff> {
        let left = until.duration_since(SystemTime::now()).unwrap_or_default();
        Some(Cutoff {
            at: Instant::now().checked_add(left)?,
            why: Why::TokenLapsed,
        })
    }

    pub(super) fn deadline(d: crate::deadline::Deadline) -> Cutoff {
        Cutoff {
            at: d.host_cutoff(),
            why: Why::Deadline,
        }
    }

    /// The earlier of two cutoffs.
    pub(super) fn first(a: Option<Cutoff>, b: Option<Cutoff>) -> Option<Cutoff> {
        match (a, b) {
            (Some(a), Some(b)) => Some(if b.at < a.at { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    /// What the caller is told.
    pub(super) fn status(self) -> tonic::Status {
        match self.why {
            Why::TokenLapsed => crate::Error::Unauthenticated(
                "the token expired while the call streamed; open the call again with a fresh token"
                    .into(),
            )
            .into_status(crate::auth::AUTH_DOMAIN),
            Why::Deadline => super::past_deadline_status(),
        }
    }
}

/// A cutoff with a timer set only once the body waits (a stream that
/// keeps sending is checked against the clock).
pub(super) struct Timed {
    cutoff: Cutoff,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Timed {
    pub(super) fn new(cutoff: Cutoff) -> Timed {
        Timed {
            cutoff,
            timer: None,
        }
    }

    fn passed(&self) -> bool {
        Instant::now() >= self.cutoff.at
    }

    /// Whether the cutoff has passed, for a body that waits; when it has
    /// not, `cx` is woken once it does.
    fn passed_while_waiting(&mut self, cx: &mut Context<'_>) -> bool {
        let at = self.cutoff.at;
        self.timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)))
            .as_mut()
            .poll(cx)
            .is_ready()
    }
}

/// Polls `inner`, unless the cutoff in `timed` has passed: then its
/// `Err(cutoff)`, once.
pub(super) fn poll_until<T>(
    timed: &mut Option<Timed>,
    cx: &mut Context<'_>,
    inner: impl FnOnce(&mut Context<'_>) -> Poll<Option<T>>,
) -> Poll<Option<Result<T, Cutoff>>> {
    let Some(t) = timed else {
        return inner(cx).map(|frame| frame.map(Ok));
    };
    if !t.passed() {
        match inner(cx) {
            Poll::Pending if !t.passed_while_waiting(cx) => return Poll::Pending,
            Poll::Pending => {}
            ready => return ready.map(|frame| frame.map(Ok)),
        }
    }
    let cutoff = t.cutoff;
    *timed = None;
    Poll::Ready(Some(Err(cutoff)))
}

/// A client stream's request body that ends with UNAUTHENTICATED once the
/// caller's token lapses.
pub(super) struct Lapsing {
    inner: Body,
    timed: Option<Timed>,
    method: String,
    done: bool,
}

impl Lapsing {
    pub(super) fn new(inner: Body, lapse: Cutoff, method: String) -> Lapsing {
        Lapsing {
            inner,
            timed: Some(Timed::new(lapse)),
            method,
            done: false,
        }
    }
}

impl http_body::Body for Lapsing {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        let inner = &mut this.inner;
        match poll_until(&mut this.timed, cx, |cx| Pin::new(inner).poll_frame(cx)) {
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(frame)),
            Poll::Ready(Some(Err(cutoff))) => {
                tracing::info!(method = %this.method, why = ?cutoff.why, "request stream cut");
                this.done = true;
                Poll::Ready(Some(Err(cutoff.status())))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A server stream's body and what it holds, dropped by a timer at the
/// cutoff if nothing polled the body by then; dropped with the body
/// otherwise.
pub(super) struct Severable<T> {
    slot: Arc<Mutex<Option<(Body, T)>>>,
    /// Ends the timer when the stream ends first.
    _ended: tokio::sync::oneshot::Sender<()>,
}

impl<T: Send + 'static> Severable<T> {
    pub(super) fn new(body: Body, held: T, at: Instant) -> Severable<T> {
        let slot = Arc::new(Mutex::new(Some((body, held))));
        let (ended, stream_ended) = tokio::sync::oneshot::channel::<()>();
        let severed = Arc::downgrade(&slot);
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep_until(at) => {
                    if let Some(slot) = severed.upgrade() {
                        let taken = lock(&slot).take();
                        drop(taken);
                    }
                }
                _ = stream_ended => {}
            }
        });
        Severable {
            slot,
            _ended: ended,
        }
    }
}

/// A panic while polling leaves the slot whole (the body is only polled or
/// taken), so a poisoned lock is still usable.
fn lock<T>(slot: &Mutex<T>) -> MutexGuard<'_, T> {
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<T> http_body::Body for Severable<T> {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        match &mut *lock(&self.slot) {
            Some((body, _)) => Pin::new(body).poll_frame(cx),
            // Severed at the cutoff: the host answers its status.
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        lock(&self.slot)
            .as_ref()
            .is_none_or(|(body, _)| body.is_end_stream())
    }

    fn size_hint(&self) -> http_body::SizeHint {
        lock(&self.slot)
            .as_ref()
            .map_or_else(http_body::SizeHint::default, |(body, _)| body.size_hint())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;
    use http_body::Body as _;

    use super::*;

    #[test]
    fn the_streaming_methods_are_read_from_the_descriptors() {
        for path in [
            "/jixiao.aggregator.v1.AggregatorService/WatchStandings",
            "/jixiao.reviews.v1.ReviewsService/StreamResponses",
            "/jixiao.plans.v1.PlansService/WatchPlanChanges",
        ] {
            assert!(streams(path), "{path}");
        }
        for path in [
            "/jixiao.aggregator.v1.AggregatorService/GetStandings",
            "/jixiao.reviews.v1.ReviewsService/PushResponses",
            "/jixiao.reviews.v1.ReviewsService/StreamResponsesX",
        ] {
            assert!(!streams(path), "{path}");
        }
    }

    #[test]
    fn the_first_cutoff_wins() {
        let now = Instant::now();
        let lapse = Cutoff {
            at: now + Duration::from_secs(5),
            why: Why::TokenLapsed,
        };
        let deadline = Cutoff {
            at: now + Duration::from_secs(1),
            why: Why::Deadline,
        };
        assert_eq!(
            Cutoff::first(Some(lapse), Some(deadline)).unwrap().why,
            Why::Deadline
        );
        assert_eq!(
            Cutoff::first(Some(lapse), None).unwrap().why,
            Why::TokenLapsed
        );
        assert!(Cutoff::first(None, None).is_none());
        assert_eq!(
            deadline.status().code(),
            tonic::Code::DeadlineExceeded,
            "the host's deadline answer"
        );
    }

    fn lapse_in(ms: u64) -> Cutoff {
        Cutoff {
            at: Instant::now() + Duration::from_millis(ms),
            why: Why::TokenLapsed,
        }
    }

    /// The next frame of `body`: its data, or the error it ended with.
    async fn next<B>(body: &mut Pin<&mut B>) -> Option<Result<bytes::Bytes, tonic::Status>>
    where
        B: http_body::Body<Data = bytes::Bytes, Error = tonic::Status>,
    {
        std::future::poll_fn(|cx| body.as_mut().poll_frame(cx))
            .await
            .map(|f| f.map(|f| f.into_data().expect("data")))
    }

    /// A body fed by the returned sender.
    fn fed() -> (
        tokio::sync::mpsc::UnboundedSender<Result<bytes::Bytes, tonic::Status>>,
        Body,
    ) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let chunks = tokio_stream::wrappers::UnboundedReceiverStream::new(rx);
        (tx, Body::new(axum::body::Body::from_stream(chunks)))
    }

    #[tokio::test]
    async fn a_waiting_body_ends_when_its_token_lapses() {
        let (tx, inner) = fed();
        let lapse = lapse_in(100);
        let mut body = std::pin::pin!(Lapsing::new(inner, lapse, "/test".into()));
        tx.send(Ok("a".into())).unwrap();
        assert_eq!(next(&mut body).await.unwrap().unwrap(), "a");
        // Nothing more arrives: the body waits until the token lapses.
        let end = next(&mut body).await.unwrap().unwrap_err();
        assert!(Instant::now() >= lapse.at);
        assert_eq!(end.code(), tonic::Code::Unauthenticated);
        assert!(end.message().contains("expired"), "{}", end.message());
        // Then it is over, whatever the sender does.
        tx.send(Ok("b".into())).unwrap();
        assert!(next(&mut body).await.is_none());
        assert!(body.is_end_stream());
    }

    #[tokio::test]
    async fn a_busy_body_ends_when_its_token_lapses() {
        let chunks = futures::stream::repeat_with(|| {
            Ok::<_, tonic::Status>(bytes::Bytes::from_static(b"x"))
        });
        let inner = Body::new(axum::body::Body::from_stream(chunks.boxed()));
        let lapse = lapse_in(50);
        let mut body = std::pin::pin!(Lapsing::new(inner, lapse, "/test".into()));
        let mut frames = 0;
        let end = loop {
            match next(&mut body).await.expect("an endless body") {
                Ok(_) => frames += 1,
                Err(e) => break e,
            }
        };
        assert!(frames > 0 && Instant::now() >= lapse.at);
        assert_eq!(end.code(), tonic::Code::Unauthenticated);
    }

    #[tokio::test]
    async fn what_a_stream_holds_goes_at_the_cutoff_even_unpolled() {
        // What the stream holds: its receiver ends once it is dropped.
        let (gone_tx, mut gone) = tokio::sync::mpsc::unbounded_channel::<()>();
        let (feed, inner) = fed();
        let cutoff = lapse_in(100);
        let body = Severable::new(inner, gone_tx, cutoff.at);
        // Never polled: the timer drops the body and what it holds.
        assert!(gone.recv().await.is_none());
        assert!(Instant::now() >= cutoff.at);
        assert!(feed.is_closed(), "the inner body was dropped");
        assert!(body.is_end_stream());
    }

    #[tokio::test]
    async fn a_stream_that_ends_first_lets_go_at_once() {
        // What the stream holds: its receiver ends once it is dropped.
        let (gone_tx, mut gone) = tokio::sync::mpsc::unbounded_channel::<()>();
        let (_feed, inner) = fed();
        let body = Severable::new(inner, gone_tx, lapse_in(3_600_000).at);
        drop(body);
        assert!(gone.recv().await.is_none(), "released with the body");
    }
}
