//! The `jixiao` binary as a newcomer runs it: `jixiao serve` on the embedded
//! default prints where it listens and an office token; a Python grpcio
//! client following the README's caller guide lists the services by
//! reflection, checks health and creates a cycle, and another sets up and
//! publishes a whole year from the contracts alone; `jixiao healthcheck`
//! answers; SIGTERM stops the server cleanly with exit code 0.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_jixiao");

struct Server {
    child: Child,
    addr: String,
    token: String,
}

/// A test that fails half-way must not leave its server running.
impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn start(data_dir: &Path) -> Server {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("JIXIAO_TOKEN_KEY")
        .env_remove("JIXIAO_PLANS_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start jixiao serve");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let (mut addr, mut token) = (String::new(), String::new());
    let mut want_token = false;
    for line in lines.by_ref() {
        let line = line.expect("stdout");
        if let Some(rest) = line.strip_prefix("jixiao serving ") {
            addr = rest
                .split(" on ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .to_string();
        } else if line.contains("office token") {
            want_token = true;
        } else if want_token {
            token = line.trim().to_string();
            break;
        }
    }
    assert!(
        !addr.is_empty() && !token.is_empty(),
        "serve printed its address and a token"
    );
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server { child, addr, token }
}

fn healthcheck(addr: &str) -> bool {
    Command::new(BIN)
        .args([
            "healthcheck",
            "--addr",
            &format!("http://{addr}"),
            "--timeout-secs",
            "2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn wait_healthy(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !healthcheck(addr) {
        assert!(
            Instant::now() < deadline,
            "server at {addr} never became healthy"
        );
    }
}

#[test]
fn serve_prints_a_working_token_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(&dir.path().join("data"));
    wait_healthy(&server.addr);

    // The printed token works for a client in another language.
    let guide = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/caller_guide.py");
    let out = Command::new("python3")
        .arg(&guide)
        .args([
            "--addr",
            &server.addr,
            "--token",
            &server.token,
            "--cycle",
            "2031",
        ])
        .output()
        .expect("python3 runs (install tests/python/requirements.txt)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "caller guide failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("health: SERVING"), "{stdout}");
    assert!(stdout.contains("jixiao.plans.v1.PlansService"), "{stdout}");
    assert!(stdout.contains("created: cycles/2031"), "{stdout}");
    assert!(stdout.contains("retry returned the same: True"), "{stdout}");
    assert!(
        stdout.contains(
            "INVALID_ARGUMENT VALIDATION_FAILED ['cycle_id', 'cycle.year', 'cycle.title']"
        ),
        "{stdout}"
    );

    // `token issue` mints tokens with the same generated key.
    let issued = Command::new(BIN)
        .args([
            "token",
            "issue",
            "--role",
            "unit",
            "--unit",
            "siming",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(issued.status.success());
    assert_eq!(
        String::from_utf8_lossy(&issued.stdout)
            .trim()
            .split('.')
            .count(),
        3
    );

    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(exit.code(), Some(0), "SIGTERM exits 0");
    assert!(!healthcheck(&server.addr), "nothing listens after shutdown");

    // The data survives a restart: the cycle is still there.
    let mut again = start(&dir.path().join("data"));
    wait_healthy(&again.addr);
    let out = Command::new("python3")
        .arg(&guide)
        .args([
            "--addr",
            &again.addr,
            "--token",
            &again.token,
            "--cycle",
            "2032",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("cycles: cycles/2032, cycles/2031"),
        "{stdout}"
    );
    again.child.kill().ok();
    again.child.wait().ok();
}

/// The caller guide's second part: a year set up and published through
/// the contracts alone by a Python client, each party with its own token,
/// whose table it predicts from the rounding rules the contracts state.
#[test]
fn a_python_caller_sets_up_and_publishes_a_year_from_the_contracts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = start(&data);
    wait_healthy(&server.addr);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/publish_a_year.py");
    let issue = format!("{BIN} token issue --data-dir {}", data.display());
    let out = Command::new("python3")
        .arg(&script)
        .args(["--addr", &server.addr, "--token", &server.token])
        .args(["--issue", &issue, "--cycle", "2041"])
        .output()
        .expect("python3 runs (install tests/python/requirements.txt)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    server.child.kill().ok();
    server.child.wait().ok();
    assert!(
        out.status.success(),
        "the year guide failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "publish: FAILED_PRECONDITION INCOMPLETE",
        "decisions: units/haicang MISSING_CATEGORY, units/haicang INSUFFICIENT_SAMPLE",
        "published: cycles/2041/groups/districts/publications/1",
        "predicted table matches: True",
        "verified: True",
    ] {
        assert!(stdout.contains(line), "{line:?} missing from:\n{stdout}");
    }
}

#[test]
fn healthcheck_fails_when_nothing_listens() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    assert!(!healthcheck(&addr));
}

#[test]
fn token_issue_refuses_unit_roles_without_a_unit() {
    let out = Command::new(BIN)
        .args([
            "token",
            "issue",
            "--role",
            "unit",
            "--token-key",
            &"ab".repeat(32),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("need a unit"));
}

/// Runs `jixiao` with arguments; (success, stdout, stderr).
fn jixiao(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The README's first command: `jixiao demo` loads and publishes a year,
/// prints both ranked tables and a working token, and the client commands
/// read what it published; Ctrl-C ends it with exit code 0.
/// A running `jixiao demo`: the process, its address (`http://…`), its
/// office token and everything it printed up to the tokens.
struct Demo {
    child: Child,
    addr: String,
    office: String,
    text: String,
}

fn start_demo(data: &Path) -> Demo {
    let mut child = Command::new(BIN)
        .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
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
    let office = printed
        .iter()
        .position(|l| l.starts_with("office token"))
        .map(|i| printed[i + 1].trim().to_string())
        .unwrap_or_else(|| panic!("no office token in:\n{text}"));
    let addr = printed
        .iter()
        .find_map(|l| l.strip_prefix("serving on "))
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("no address in:\n{text}"))
        .to_string();
    Demo {
        child,
        addr,
        office,
        text,
    }
}

fn wait_exit(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "no exit after {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn demo_prints_ranked_tables_and_tokens_the_client_commands_work_with() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let Demo {
        mut child,
        addr,
        office,
        text,
    } = start_demo(&data);
    for heading in [
        "区人民政府 (cycles/2026/groups/districts), published version 1",
        "市直部门",
    ] {
        assert!(text.contains(heading), "{text}");
    }
    assert!(text.contains("   1  xiangan  翔安区人民政府"), "{text}");

    // The office token reads the published table as CSV.
    let (ok, csv, err) = jixiao(&[
        "standings",
        "--addr",
        &addr,
        "--token",
        &office,
        "--cycle",
        "2026",
        "--group",
        "districts",
        "--published",
        "--csv",
    ]);
    assert!(ok, "{err}");
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 7, "{csv}");
    assert!(rows[0].starts_with("rank,unit,name,indicator,survey"));
    assert!(
        rows[1].starts_with("1,xiangan,翔安区人民政府,54.909,"),
        "{csv}"
    );

    // A unit reads its own feedback and no one else's.
    let (ok, issued, err) = jixiao(&[
        "token",
        "issue",
        "--role",
        "unit",
        "--unit",
        "tongan",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let unit = issued.trim();
    let (ok, feedback, err) = jixiao(&[
        "feedback",
        "--addr",
        &addr,
        "--token",
        unit,
        "--cycle",
        "2026",
        "--group",
        "districts",
        "--unit",
        "tongan",
    ]);
    assert!(ok, "{err}");
    assert!(feedback.contains("plan submitted late"), "{feedback}");
    assert!(feedback.contains("points lost:"), "{feedback}");
    let (ok, _, err) = jixiao(&[
        "feedback",
        "--addr",
        &addr,
        "--token",
        unit,
        "--cycle",
        "2026",
        "--group",
        "districts",
        "--unit",
        "huli",
    ]);
    assert!(!ok);
    assert!(err.contains("PermissionDenied"), "{err}");

    // The audit trail shows huli's plan returned with its reason, as JSON.
    let (ok, audit, err) = jixiao(&[
        "audit",
        "cycles/2026/plans/huli",
        "--addr",
        &addr,
        "--token",
        &office,
        "--json",
    ]);
    assert!(ok, "{err}");
    assert!(audit.contains("\"action\": \"plans.return\""), "{audit}");
    // Every service's audit chain verifies, the aggregator's publications too.
    let (ok, chains, err) = jixiao(&[
        "audit", "--verify", "--addr", &addr, "--token", &office, "--csv",
    ]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = chains.lines().collect();
    assert_eq!(lines.len(), 6, "{chains}");
    assert!(lines[1..].iter().all(|l| l.contains(",true,")), "{chains}");
    assert!(lines[5].starts_with("aggregator,true,2,"), "{chains}");

    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(wait_exit(&mut child, "Ctrl-C").code(), Some(0));
}

#[test]
fn demo_refuses_a_folder_it_did_not_make() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("thesis.tex"), "precious").unwrap();
    let (ok, _, err) = jixiao(&[
        "demo",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("did not make"), "{err}");
    assert!(dir.path().join("thesis.tex").exists());
}

/// SIGTERM while a survey platform's stream is in flight: the stream may
/// still finish and everything it sent is counted, new connections are
/// refused, and the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_stream_finish_and_refuses_new_calls() {
    use jixiao_proto::reviews::{
        Answer, Channel, GetGroupReviewScoresRequest, PushResponsesRequest, SurveyResponse,
        reviews_service_client::ReviewsServiceClient,
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let data_arg = data.clone();
    let mut demo = tokio::task::spawn_blocking(move || start_demo(&data_arg))
        .await
        .unwrap();
    let (ok, token, err) = jixiao(&[
        "token",
        "issue",
        "--role",
        "survey_platform",
        "--subject",
        "survey-firm",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let batch = |from: usize| PushResponsesRequest {
        campaign: "cycles/2026/campaigns/survey-districts".into(),
        responses: (from..from + 100)
            .map(|i| SurveyResponse {
                response_id: format!("late-{i}"),
                unit: "units/siming".into(),
                category: "residents".into(),
                channel: Channel::Phone as i32,
                answer_time: Some(prost_types::Timestamp {
                    seconds: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs() as i64
                        - 86_400,
                    nanos: 0,
                }),
                answers: ["efficiency", "attitude", "openness", "integrity", "overall"]
                    .iter()
                    .map(|q| Answer {
                        question: q.to_string(),
                        answer: "satisfied".into(),
                    })
                    .collect(),
                respondent: String::new(),
            })
            .collect(),
    };
    let sample = |office: String, addr: String| async move {
        let channel = jixiao::client::connect(&addr, &office).await?;
        ReviewsServiceClient::new(channel)
            .get_group_review_scores(GetGroupReviewScoresRequest {
                group: "cycles/2026/groups/districts".into(),
                known_revision: 0,
                ..Default::default()
            })
            .await
            .map_err(|s| s.to_string())
            .map(|r| {
                r.into_inner()
                    .units
                    .iter()
                    .find(|u| u.unit == "units/siming")
                    .map_or(0, |u| u.survey_sample)
            })
    };
    let before = sample(demo.office.clone(), demo.addr.clone())
        .await
        .unwrap();

    let mut client = ReviewsServiceClient::new(
        jixiao::client::connect(&demo.addr, token.trim())
            .await
            .unwrap(),
    );
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let call = tokio::spawn(async move {
        client
            .stream_responses(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    tx.send(batch(0)).await.unwrap();
    // The first batch is committed (its tally is visible) before the signal.
    let deadline = Instant::now() + Duration::from_secs(20);
    while sample(demo.office.clone(), demo.addr.clone())
        .await
        .unwrap()
        < before + 100
    {
        assert!(Instant::now() < deadline, "the first batch never showed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Command::new("kill")
        .args(["-TERM", &demo.child.id().to_string()])
        .status()
        .unwrap();
    // New connections are refused once the server drains.
    let deadline = Instant::now() + Duration::from_secs(20);
    while sample(demo.office.clone(), demo.addr.clone()).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "new calls still served after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The stream in flight finishes, and both batches count.
    tx.send(batch(100)).await.unwrap();
    drop(tx);
    let summary = call.await.unwrap().expect("the in-flight stream completes");
    assert_eq!(
        (summary.get_ref().accepted, summary.get_ref().duplicates),
        (200, 0)
    );
    let exit = tokio::task::spawn_blocking(move || wait_exit(&mut demo.child, "SIGTERM"))
        .await
        .unwrap();
    assert_eq!(exit.code(), Some(0));
}
