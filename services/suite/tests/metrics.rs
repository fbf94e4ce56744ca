//! The metrics of a real `jixiao demo` process (issue 21 §1): after the
//! demo year, a scrape of the admin port counts exactly the calls the demo
//! made (it writes them per method to `calls.tsv`), the survey responses it
//! pushed, the refreshes it caused; and every metric the Grafana dashboard
//! in deploy/grafana queries is one the process exports, so the dashboard
//! cannot drift from the code unnoticed.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{BufRead, BufReader, Read, Write},
    path::Path,
    process::{Command, Stdio},
};

const BIN: &str = env!("CARGO_BIN_EXE_jixiao");

/// A plain HTTP/1.1 `GET`: the status code and the body.
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    // A server that does not speak HTTP/1.1 may close with an error.
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A label's value in a series line.
fn label<'a>(line: &'a str, name: &str) -> &'a str {
    let start = line
        .find(&format!("{name}=\""))
        .unwrap_or_else(|| panic!("no {name} in {line}"))
        + name.len()
        + 2;
    let len = line[start..].find('"').expect("closing quote");
    &line[start..start + len]
}

/// The value of a series line.
fn value(line: &str) -> f64 {
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// The value of the one series `series` (name with labels).
fn series(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{series} not in\n{scrape}"))
}

#[test]
fn a_scrape_after_the_demo_counts_the_calls_the_demo_made() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let mut child = Command::new(BIN)
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start jixiao demo");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("stdout");
        let done = line.starts_with("viewer token");
        printed.push(line);
        if done {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let text = printed.join("\n");
    let after = |prefix: &str| {
        printed
            .iter()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|l| l.split(' ').next())
            .unwrap_or_else(|| panic!("no {prefix:?} in:\n{text}"))
            .to_string()
    };
    let public = after("serving on http://");
    let admin = after("metrics on http://")
        .trim_end_matches("/metrics")
        .to_string();
    assert_ne!(public, admin, "the admin port is a port of its own");

    let (status, scrape) = get(&admin, "/metrics");
    assert_eq!(status, 200, "{scrape}");

    // Every call the demo made, per method, and no other client call.
    let made: BTreeMap<String, f64> = std::fs::read_to_string(data.join("calls.tsv"))
        .expect("the demo wrote its calls")
        .lines()
        .map(|l| {
            let (method, n) = l.split_once('\t').expect("method<TAB>count");
            (method.to_string(), n.parse().unwrap())
        })
        .collect();
    let mut counted: BTreeMap<String, f64> = BTreeMap::new();
    for line in scrape
        .lines()
        .filter(|l| l.starts_with("jixiao_rpc_calls_total{") && label(l, "caller") == "client")
    {
        let method = format!("{}/{}", label(line, "service"), label(line, "method"));
        *counted.entry(method).or_default() += value(line);
    }
    assert!(made.len() > 20, "{made:?}");
    assert_eq!(counted, made);
    // The latency histogram saw each of those calls once.
    for (method, n) in &made {
        let (service, method) = method.split_once('/').unwrap();
        let count = format!(
            r#"jixiao_rpc_duration_seconds_count{{service="{service}",method="{method}"}}"#
        );
        assert!(series(&scrape, &count) >= *n, "{count}");
    }

    // The survey responses it pushed, each accepted once.
    let pushed: f64 = after("✓ reviews: ").parse().unwrap();
    assert_eq!(
        series(
            &scrape,
            r#"jixiao_survey_responses_total{outcome="accepted"}"#
        ),
        pushed
    );
    assert_eq!(
        series(
            &scrape,
            r#"jixiao_survey_responses_total{outcome="duplicate"}"#
        ),
        0.0
    );
    // The aggregator refreshed the standings as the changes came in.
    assert!(series(&scrape, "jixiao_standings_refresh_duration_seconds_count") > 0.0);
    assert!(series(&scrape, "jixiao_standings_freshness_seconds_count") > 0.0);
    assert_eq!(series(&scrape, "jixiao_standings_stale_groups"), 0.0);

    // The public port does not answer with the metrics.
    let (_, page) = get(&public, "/metrics");
    assert!(!page.contains("jixiao_rpc_calls_total"), "{page}");

    // Every metric the dashboard queries is exported.
    let exported: BTreeSet<&str> = scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let dashboard = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/grafana/jixiao.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&dashboard).unwrap()).unwrap();
    let queried = queried_metrics(&dashboard);
    assert!(queried.len() >= 10, "{queried:?}");
    for name in &queried {
        let family = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|f| exported.contains(f))
            .unwrap_or(name);
        assert!(
            exported.contains(family),
            "the dashboard queries {name}, which the process does not export"
        );
    }

    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let _ = child.wait();
}

/// The `jixiao_…` metric names in every `expr` of a Grafana dashboard.
fn queried_metrics(dashboard: &serde_json::Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dashboard];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::String(expr)) = m.get("expr") {
                    let mut rest = expr.as_str();
                    while let Some(i) = rest.find("jixiao_") {
                        let name: String = rest[i..]
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        rest = &rest[i + name.len()..];
                        out.insert(name);
                    }
                }
                stack.extend(m.values());
            }
            serde_json::Value::Array(a) => stack.extend(a),
            _ => {}
        }
    }
    out
}
