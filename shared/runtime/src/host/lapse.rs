//! A stream does not outlive its token: the host checks the token when a
//! call opens, so a watch or a client stream opened with it would
//! otherwise run on for as long as the connection lasts. When the token
//! lapses (its `exp` and the leeway behind it), a server stream ends with
//! UNAUTHENTICATED in its trailers and a client stream's request ends with
//! that error, which its handler answers like any broken stream: what it
//! stored before stays stored, nothing after is read.

use std::{
    collections::HashSet,
    pin::Pin,
    sync::LazyLock,
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
pub(super) fn streams(path: &str) -> bool {
    STREAMING.contains(path)
}

/// When a token that holds `until` (wall clock) lapses on the runtime's
/// clock; `None` when that is too far off to matter.
pub(super) fn lapses_at(until: SystemTime) -> Option<Instant> {
    let left = until.duration_since(SystemTime::now()).unwrap_or_default();
    Instant::now().checked_add(left)
}

/// The moment a call's token lapses, with a timer set only once the call
/// waits (a stream that keeps sending is checked against the clock).
pub(super) struct Lapse {
    at: Instant,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Lapse {
    pub(super) fn at(at: Instant) -> Lapse {
        Lapse { at, timer: None }
    }

    /// Whether the token has lapsed.
    fn passed(&self) -> bool {
        Instant::now() >= self.at
    }

    /// Whether the token has lapsed, for a body that waits; when it has
    /// not, `cx` is woken once it does.
    fn passed_while_waiting(&mut self, cx: &mut Context<'_>) -> bool {
        let at = self.at;
        self.timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)))
            .as_mut()
            .poll(cx)
            .is_ready()
    }
}

/// What a caller whose token lapsed mid-stream is told.
pub(super) fn lapsed() -> tonic::Status {
    crate::Error::Unauthenticated(
        "the token expired while the call streamed; open the call again with a fresh token".into(),
    )
    .into_status("jixiao.auth")
}

/// Polls `inner`, unless `lapse` has passed: then `Err(lapsed())` once.
pub(super) fn poll_unless_lapsed<T>(
    lapse: &mut Option<Lapse>,
    cx: &mut Context<'_>,
    inner: impl FnOnce(&mut Context<'_>) -> Poll<Option<T>>,
) -> Poll<Option<Result<T, tonic::Status>>> {
    let Some(l) = lapse else {
        return inner(cx).map(|frame| frame.map(Ok));
    };
    if !l.passed() {
        match inner(cx) {
            Poll::Pending if !l.passed_while_waiting(cx) => return Poll::Pending,
            Poll::Pending => {}
            ready => return ready.map(|frame| frame.map(Ok)),
        }
    }
    *lapse = None;
    Poll::Ready(Some(Err(lapsed())))
}

/// A client stream's request body that ends with [`lapsed`] once the
/// caller's token lapses.
pub(super) struct Lapsing {
    inner: Body,
    lapse: Option<Lapse>,
    method: String,
    done: bool,
}

impl Lapsing {
    pub(super) fn new(inner: Body, at: Instant, method: String) -> Lapsing {
        Lapsing {
            inner,
            lapse: Some(Lapse::at(at)),
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
        match poll_unless_lapsed(&mut this.lapse, cx, |cx| Pin::new(inner).poll_frame(cx)) {
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(frame)),
            Poll::Ready(Some(Err(lapsed))) => {
                tracing::info!(method = %this.method, "token lapsed: request stream ended");
                this.done = true;
                Poll::Ready(Some(Err(lapsed)))
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;

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

    /// The next frame of `body`: its data, or the error it ended with.
    async fn next(body: &mut Pin<&mut Lapsing>) -> Option<Result<bytes::Bytes, tonic::Status>> {
        std::future::poll_fn(|cx| body.as_mut().poll_frame(cx))
            .await
            .map(|f| f.map(|f| f.into_data().expect("data")))
    }

    use http_body::Body as _;

    #[tokio::test]
    async fn a_waiting_body_ends_when_its_token_lapses() {
        let (tx, rx) =
            tokio::sync::mpsc::unbounded_channel::<Result<bytes::Bytes, tonic::Status>>();
        let chunks = tokio_stream::wrappers::UnboundedReceiverStream::new(rx);
        let inner = Body::new(axum::body::Body::from_stream(chunks));
        let at = Instant::now() + Duration::from_millis(100);
        let mut body = std::pin::pin!(Lapsing::new(inner, at, "/test".into()));
        tx.send(Ok("a".into())).unwrap();
        assert_eq!(next(&mut body).await.unwrap().unwrap(), "a");
        // Nothing more arrives: the body waits until the token lapses.
        let end = next(&mut body).await.unwrap().unwrap_err();
        assert!(Instant::now() >= at);
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
        let at = Instant::now() + Duration::from_millis(50);
        let mut body = std::pin::pin!(Lapsing::new(inner, at, "/test".into()));
        let mut frames = 0;
        let end = loop {
            match next(&mut body).await.expect("an endless body") {
                Ok(_) => frames += 1,
                Err(e) => break e,
            }
        };
        assert!(frames > 0 && Instant::now() >= at);
        assert_eq!(end.code(), tonic::Code::Unauthenticated);
    }
}
