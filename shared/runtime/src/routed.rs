//! A generated tonic server with some of its methods answered by hand
//! (the aggregator's pre-encoded standings, the reviews service's survey
//! batches decoded without copies): those paths go to the service's own
//! handlers, every other path to the generated server.

use std::{
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll},
};

use tonic::{body::Body, server::NamedService};

/// A call's answer, as the generated servers give it.
pub type Answer = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

/// The methods a server answers by hand.
pub trait HandAnswered: Clone + Send + 'static {
    /// The generated server, for every other method.
    type Generated: tower::Service<
            http::Request<Body>,
            Response = http::Response<Body>,
            Error = Infallible,
            Future: Send,
        > + NamedService
        + Clone
        + Send
        + 'static;

    fn generated(&self) -> &Self::Generated;

    /// Whether the method at `path` is answered by hand.
    fn answers(&self, path: &str) -> bool;

    /// The answer to a call of a method it [`answers`](Self::answers).
    fn answer(&self, req: http::Request<Body>) -> Answer;
}

/// The mountable server of a [`HandAnswered`].
#[derive(Clone)]
pub struct Routed<H>(pub H);

impl<H: HandAnswered> NamedService for Routed<H> {
    const NAME: &'static str = <H::Generated as NamedService>::NAME;
}

impl<H: HandAnswered> tower::Service<http::Request<Body>> for Routed<H> {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Answer {
        if self.0.answers(req.uri().path()) {
            return self.0.answer(req);
        }
        let mut generated = self.0.generated().clone();
        Box::pin(async move { tower::Service::call(&mut generated, req).await })
    }
}
