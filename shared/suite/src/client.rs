//! Calling the suite as a person or a program does: a channel carrying a
//! bearer token.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tonic::{
    Status,
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::Channel,
};

pub use jixiao_runtime::tls::Tls;

/// Adds `authorization: Bearer <token>` to every call (nothing when
/// anonymous), and counts the calls when asked to.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>, Option<Calls>);

impl Bearer {
    pub fn new(token: &str) -> Result<Self, String> {
        format!("Bearer {}", token.trim())
            .parse()
            .map(|v| Bearer(Some(v), None))
            .map_err(|_| "the token is not ASCII".to_string())
    }

    pub fn anonymous() -> Self {
        Bearer(None, None)
    }

    /// Counts every call sent with this token in `calls`.
    pub fn counting(self, calls: &Calls) -> Self {
        Bearer(self.0, Some(calls.clone()))
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        if let (Some(calls), Some(m)) = (&self.1, req.extensions().get::<tonic::GrpcMethod<'_>>()) {
            calls.add(m.service(), m.method());
        }
        Ok(req)
    }
}

/// Calls sent, per `package.Service/Method`: what a client made, to
/// compare with what the server counted (its metrics).
#[derive(Clone, Debug, Default)]
pub struct Calls(Arc<Mutex<BTreeMap<String, u64>>>);

impl Calls {
    fn add(&self, service: &str, method: &str) {
        *self
            .0
            .lock()
            .expect("calls lock")
            .entry(format!("{service}/{method}"))
            .or_default() += 1;
    }

    /// The counts so far.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.0.lock().expect("calls lock").clone()
    }
}

/// A channel that authenticates as one principal.
pub type Authed = InterceptedService<Channel, Bearer>;

/// Connects to `addr` (`http://host:port`) as the holder of `token`.
pub async fn connect(addr: &str, token: &str) -> Result<Authed, String> {
    connect_with(addr, token, &Tls::default()).await
}

/// [`connect`] to an `https://` address too, trusting the authority in `tls`.
pub async fn connect_with(addr: &str, token: &str, tls: &Tls) -> Result<Authed, String> {
    let channel = tls
        .endpoint(addr)?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| format!("cannot reach {addr}: {e}"))?;
    Ok(InterceptedService::new(channel, Bearer::new(token)?))
}
