//! The aggregator (DOMAIN.md §3, §8). This crate starts with the composite
//! rules as plain functions (`rules`); the service that keeps standings
//! current, publishes versions and answers dashboards is built on them.

pub mod rules;
