//! Read-your-writes: an OK answer to a write says which group revisions it
//! created, in the response header [`HEADER`], one value per group:
//! `<service> <group> <revision>`, e.g.
//! `reviews cycles/2026/groups/districts 17`. A caller hands the revision
//! to the aggregator's `GetStandings` (`min_service_revisions`) to read
//! standings that include its write.
//!
//! The write sequence ([`crate::write`]) notes the revisions it bumped, and
//! a replayed write those its first answer noted, in a task-local of the
//! call ([`note`]); the host runs every call inside [`collect`] and adds
//! the header when the call answers OK. Handlers do nothing of their own.

use std::cell::RefCell;

use crate::changes::Change;

/// The response header that carries a write's revisions.
pub const HEADER: &str = "jixiao-revision";

tokio::task_local! {
    static NOTED: RefCell<Vec<Change>>;
}

/// Notes revisions the current call's write created (or replayed); the
/// newest per group is kept. Outside a call (a background task), nothing.
pub fn note<'a>(changes: impl IntoIterator<Item = &'a Change>) {
    let _ = NOTED.try_with(|noted| {
        let mut noted = noted.borrow_mut();
        for c in changes {
            merge(&mut noted, c);
        }
    });
}

fn merge(into: &mut Vec<Change>, c: &Change) {
    match into.iter_mut().find(|k| k.group == c.group) {
        Some(k) => k.revision = k.revision.max(c.revision),
        None => into.push(c.clone()),
    }
}

/// Runs one call and returns, with its output, the revisions it noted.
pub async fn collect<F: Future>(call: F) -> (F::Output, Vec<Change>) {
    NOTED
        .scope(RefCell::new(Vec::new()), async move {
            let out = call.await;
            let noted = NOTED.with(|n| n.take());
            (out, noted)
        })
        .await
}

/// The service a gRPC path belongs to, as the header names it:
/// `/jixiao.reviews.v1.ReviewsService/PushResponses` is `reviews`.
pub fn service_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/jixiao.")?;
    let (service, _) = rest.split_once('.')?;
    (!service.is_empty()).then_some(service)
}

/// One header value.
pub fn value(service: &str, change: &Change) -> String {
    format!("{service} {} {}", change.group, change.revision)
}

/// What one header value says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// `plans`, `indicators`, `reviews` or `inspections`.
    pub service: String,
    /// `cycles/{cycle}/groups/{group}`.
    pub group: String,
    pub revision: i64,
}

/// Reads a header value, which may hold several entries joined by ", "
/// (as HTTP joins repeated headers).
pub fn parse(value: &str) -> Result<Vec<Written>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let mut parts = entry.split_whitespace();
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(service), Some(group), Some(revision), None) => Ok(Written {
                    service: service.to_string(),
                    group: group.to_string(),
                    revision: revision
                        .parse()
                        .map_err(|_| format!("{entry:?}: the revision is not a number"))?,
                }),
                _ => Err(format!("{entry:?} is not `<service> <group> <revision>`")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(group: &str, revision: i64) -> Change {
        Change {
            group: group.into(),
            revision,
            traceparent: None,
            time_ms: None,
        }
    }

    #[tokio::test]
    async fn a_call_collects_the_newest_revision_per_group() {
        let a = "cycles/2026/groups/districts";
        let b = "cycles/2026/groups/departments";
        let ((), noted) = collect(async {
            note(&[change(a, 3)]);
            note(&[change(b, 9), change(a, 5)]);
            // An older revision of a group never hides a newer one.
            note(&[change(a, 4)]);
        })
        .await;
        assert_eq!(noted, [change(a, 5), change(b, 9)]);
    }

    #[tokio::test]
    async fn calls_do_not_share_what_they_noted() {
        let (first, second) = tokio::join!(
            collect(async { note(&[change("cycles/1/groups/a", 1)]) }),
            collect(async {
                tokio::task::yield_now().await;
                note(&[change("cycles/1/groups/b", 2)])
            }),
        );
        assert_eq!(first.1, [change("cycles/1/groups/a", 1)]);
        assert_eq!(second.1, [change("cycles/1/groups/b", 2)]);
        // Outside a call, noting is a no-op.
        note(&[change("cycles/1/groups/c", 3)]);
    }

    #[test]
    fn the_service_comes_from_the_path() {
        assert_eq!(
            service_of("/jixiao.reviews.v1.ReviewsService/PushResponses"),
            Some("reviews")
        );
        assert_eq!(
            service_of("/jixiao.plans.v1.PlansService/UpdateScheme"),
            Some("plans")
        );
        assert_eq!(service_of("/grpc.health.v1.Health/Check"), None);
        assert_eq!(service_of("/jixiao./X"), None);
    }

    #[test]
    fn values_round_trip_and_joined_values_split() {
        let v = value("reviews", &change("cycles/2026/groups/districts", 17));
        assert_eq!(v, "reviews cycles/2026/groups/districts 17");
        let joined = format!("{v}, inspections cycles/2026/groups/departments 4");
        assert_eq!(
            parse(&joined).unwrap(),
            [
                Written {
                    service: "reviews".into(),
                    group: "cycles/2026/groups/districts".into(),
                    revision: 17
                },
                Written {
                    service: "inspections".into(),
                    group: "cycles/2026/groups/departments".into(),
                    revision: 4
                },
            ]
        );
        assert!(parse("reviews cycles/2026/groups/districts").is_err());
        assert!(parse("reviews cycles/2026/groups/districts x").is_err());
        assert!(parse("a b 1 2").is_err());
    }
}
