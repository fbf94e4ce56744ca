//! Calls from one service to another: a lazily connected channel (start
//! order does not matter), a fresh short-lived `service` token on every
//! call, a deadline, the caller's trace context ([`Traced`]), and errors
//! mapped so that a dependency being down reaches the caller as UNAVAILABLE
//! naming it, never as a hang or a panic.

use std::time::Duration;

use tonic::{
    Code, Status,
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};

use crate::{Error, Role, TokenKey, telemetry::Traced, tls::Tls};

/// How long one call to another service may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Signs each outgoing call as the calling service.
#[derive(Clone)]
pub struct ServiceToken {
    key: TokenKey,
    subject: &'static str,
}

impl Interceptor for ServiceToken {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        let token = self
            .key
            .issue(self.subject, &[Role::Service], None, 300)
            .map_err(Status::internal)?;
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| Status::internal("token is not ASCII"))?;
        req.metadata_mut().insert("authorization", value);
        // A change stream lasts as long as the process, and the server
        // ends a stream at its deadline; its opening is still bounded by
        // the channel's own timeout.
        let streams = req
            .extensions()
            .get::<tonic::GrpcMethod<'static>>()
            .is_some_and(|m| crate::host::streams(&format!("/{}/{}", m.service(), m.method())));
        if !streams {
            req.set_timeout(CALL_TIMEOUT);
        }
        Ok(req)
    }
}

/// A channel to another service, authenticated as `subject`.
pub type ServiceChannel = InterceptedService<Traced<Channel>, ServiceToken>;

/// Connects lazily to `addr` (`http://host:port`, or `https://` trusting
/// the authority in `tls`).
pub fn connect(
    addr: &str,
    key: &TokenKey,
    subject: &'static str,
    tls: &Tls,
) -> Result<ServiceChannel, Error> {
    let endpoint: Endpoint = tls
        .endpoint(addr)
        .map_err(|e| Error::invalid("address", e))?
        .connect_timeout(Duration::from_secs(3))
        .timeout(CALL_TIMEOUT)
        .tcp_nodelay(true);
    Ok(InterceptedService::new(
        Traced(endpoint.connect_lazy()),
        ServiceToken {
            key: key.clone(),
            subject,
        },
    ))
}

/// Maps the status of a call to `dependency` (e.g. "plans service").
pub fn dependency_error(dependency: &str, status: Status) -> Error {
    match status.code() {
        Code::NotFound => Error::NotFound {
            resource: status.message().trim_end_matches(" not found").to_string(),
        },
        Code::InvalidArgument => Error::invalid(dependency, status.message()),
        Code::FailedPrecondition => Error::precondition(
            crate::Shared::DependencyPrecondition,
            format!("{dependency}: {}", status.message()),
        ),
        Code::PermissionDenied | Code::Unauthenticated => Error::internal(std::io::Error::other(
            format!("{dependency} refused this service: {}", status.message()),
        )),
        _ => Error::Unavailable {
            dependency: dependency.to_string(),
            message: status.message().to_string(),
        },
    }
}
