//! Static files served on the gRPC port beside gRPC and gRPC-Web: the
//! dashboard (`web/dist`, built into the binary by `jixiao-suite`). A `GET`
//! or `HEAD` that is not a gRPC call is answered from the files; every other
//! request goes on to gRPC untouched, so the two never meet: gRPC and
//! gRPC-Web calls are always `POST` (and CORS preflights `OPTIONS`).

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use tonic::body::Body;
use tower::{Layer, Service};

/// One file: its URL path (`/index.html`, `/assets/index-1a2b3c.js`) and bytes.
#[derive(Debug)]
pub struct File {
    pub path: &'static str,
    pub body: &'static [u8],
}

/// A set of files; `/` is `/index.html`. Empty serves nothing (every
/// request goes on to gRPC).
#[derive(Debug, Clone, Copy, Default)]
pub struct Site {
    files: &'static [File],
}

impl Site {
    pub const fn new(files: &'static [File]) -> Self {
        Site { files }
    }

    /// The file at a request path.
    pub fn get(&self, path: &str) -> Option<&'static File> {
        let path = if path == "/" { "/index.html" } else { path };
        self.files.iter().find(|f| f.path == path)
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// The media type of a file, by its extension.
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Pages may load their own scripts and styles, draw charts (inline
/// styles), and call gRPC-Web on this server or the one `?api=` names.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self' http: https:; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// True for a request the files answer: a `GET` or `HEAD` that is not gRPC.
fn is_page_request<B>(req: &Request<B>) -> bool {
    (req.method() == Method::GET || req.method() == Method::HEAD)
        && !req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/grpc"))
}

fn respond(site: &Site, path: &str, head: bool) -> Response<Body> {
    let Some(file) = site.get(path) else {
        let mut res = Response::new(if head {
            Body::empty()
        } else {
            Body::new(Once(Some(Bytes::from_static(b"not found\n"))))
        });
        *res.status_mut() = StatusCode::NOT_FOUND;
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        return res;
    };
    let mut res = Response::new(if head {
        Body::empty()
    } else {
        Body::new(Once(Some(Bytes::from_static(file.body))))
    });
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(file.path)),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(file.body.len()));
    // Assets are named by their content's hash: cache them for good. The
    // pages that name them are checked again on every load.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if file.path.starts_with("/assets/") {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if file.path.ends_with(".html") {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    res
}

/// Answers page requests from a [`Site`], passes everything else on.
#[derive(Debug, Clone, Copy)]
pub struct SiteLayer {
    site: Site,
}

impl SiteLayer {
    pub fn new(site: Site) -> Self {
        SiteLayer { site }
    }
}

impl<S> Layer<S> for SiteLayer {
    type Service = SiteService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        SiteService {
            inner,
            site: self.site,
        }
    }
}

/// The service [`SiteLayer`] makes.
#[derive(Debug, Clone)]
pub struct SiteService<S> {
    inner: S,
    site: Site,
}

impl<S, B> Service<Request<B>> for SiteService<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if !self.site.is_empty() && is_page_request(&req) {
            let res = respond(&self.site, req.uri().path(), req.method() == Method::HEAD);
            return Box::pin(async move { Ok(res) });
        }
        // Take the service that was driven to readiness; leave a clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(inner.call(req))
    }
}

/// A body of one chunk.
struct Once(Option<Bytes>);

impl http_body::Body for Once {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.take().map(|b| Ok(http_body::Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.0.as_ref().map_or(0, |b| b.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static FILES: [File; 2] = [
        File {
            path: "/index.html",
            body: b"<!doctype html>",
        },
        File {
            path: "/assets/app-1a2b.js",
            body: b"export {}",
        },
    ];

    fn request(method: Method, path: &str, content_type: Option<&str>) -> Request<()> {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(ct) = content_type {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn pages_are_gets_that_are_not_grpc() {
        assert!(is_page_request(&request(Method::GET, "/", None)));
        assert!(is_page_request(&request(
            Method::HEAD,
            "/",
            Some("text/html")
        )));
        assert!(!is_page_request(&request(
            Method::POST,
            "/jixiao.aggregator.v1.AggregatorService/GetStandings",
            Some("application/grpc-web+proto")
        )));
        assert!(!is_page_request(&request(
            Method::GET,
            "/x",
            Some("application/grpc")
        )));
        assert!(!is_page_request(&request(Method::OPTIONS, "/x", None)));
    }

    #[test]
    fn files_answer_with_their_type_and_caching() {
        let site = Site::new(&FILES);
        let index = respond(&site, "/", false);
        assert_eq!(index.status(), StatusCode::OK);
        assert_eq!(
            index.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert_eq!(index.headers()[header::CACHE_CONTROL], "no-cache");
        assert!(
            index
                .headers()
                .contains_key(header::CONTENT_SECURITY_POLICY)
        );
        let js = respond(&site, "/assets/app-1a2b.js", false);
        assert_eq!(
            js.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(js.headers()[header::CONTENT_LENGTH], "9");
        assert!(
            js.headers()[header::CACHE_CONTROL]
                .to_str()
                .unwrap()
                .contains("immutable")
        );
        assert_eq!(
            respond(&site, "/nope.js", false).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(content_type("/a/b.css"), "text/css; charset=utf-8");
    }
}
