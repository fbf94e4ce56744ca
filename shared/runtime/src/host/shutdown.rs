//! Shutdown as long-lived streams see it, and how long the drain may take.

use std::time::Duration;

/// How long shutdown waits for calls and connections to end once it has
/// begun (an orchestrator's grace period is typically 30 s).
pub const DRAIN_GRACE: Duration = Duration::from_secs(15);

/// Runs `serve` until it ends, or until [`DRAIN_GRACE`] after `begun`:
/// graceful shutdown waits for every connection to close, and an HTTP/2
/// peer that stops reading never takes its GOAWAY, which would keep the
/// process from exiting at all.
pub(super) async fn bounded<E>(
    serve: impl Future<Output = Result<(), E>>,
    begun: tokio::sync::oneshot::Receiver<()>,
) -> Result<(), E> {
    let grace = async {
        match begun.await {
            Ok(()) => tokio::time::sleep(DRAIN_GRACE).await,
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        served = serve => served,
        () = grace => {
            tracing::warn!(grace_secs = DRAIN_GRACE.as_secs(), "connections still open after the drain's grace; closing them");
            Ok(())
        }
    }
}

/// Tells long-lived streams that the process is shutting down, so that
/// graceful shutdown never waits on a watcher that would never hang up.
#[derive(Clone, Debug)]
pub struct Shutdown(tokio::sync::watch::Receiver<bool>);

/// The sending side of [`Shutdown`].
#[derive(Debug)]
pub struct ShutdownTrigger(tokio::sync::watch::Sender<bool>);

impl Shutdown {
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (ShutdownTrigger(tx), Shutdown(rx))
    }

    /// Completes once shutdown has begun.
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|down| *down).await;
    }

    /// Whether shutdown has begun.
    pub fn begun(&self) -> bool {
        *self.0.borrow()
    }

    /// Ends `stream` when shutdown begins.
    pub fn cut<S: futures::Stream>(
        &self,
        stream: S,
    ) -> futures::stream::TakeUntil<S, futures::future::BoxFuture<'static, ()>> {
        use futures::{FutureExt, StreamExt};
        stream.take_until(self.clone().wait().boxed())
    }
}

impl ShutdownTrigger {
    pub fn fire(&self) {
        let _ = self.0.send(true);
    }
}
