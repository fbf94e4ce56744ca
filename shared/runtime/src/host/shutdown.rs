//! Shutdown as long-lived streams see it.

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
