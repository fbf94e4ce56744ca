//! The deployment files: every service of the suite runs from one image in
//! docker-compose with a health check, its own PostgreSQL database, the
//! token key, and the address of every service it calls. (No
//! Docker engine runs on the CI machines, so the files are checked by
//! parsing them.)

use std::path::Path;

use jixiao::Target;
use yaml_rust2::{Yaml, YamlLoader};

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)).unwrap()
}

fn env_of<'a>(service: &'a Yaml, key: &str) -> Option<&'a str> {
    service["environment"][key].as_str()
}

#[test]
fn every_service_runs_in_compose_with_health_database_and_dependencies() {
    let compose = YamlLoader::load_from_str(&read("deploy/docker-compose.yml"))
        .unwrap()
        .remove(0);
    let services = &compose["services"];
    let initdb = read("deploy/initdb/10-databases.sql");
    for target in Target::ALL {
        let name = target.as_str();
        let s = &services[name];
        assert!(!s.is_badvalue(), "compose has no service {name}");
        let command: Vec<&str> = s["command"]
            .as_vec()
            .unwrap()
            .iter()
            .filter_map(Yaml::as_str)
            .collect();
        assert_eq!(command, ["serve", "--target", name]);
        let check: Vec<&str> = s["healthcheck"]["test"]
            .as_vec()
            .unwrap()
            .iter()
            .filter_map(Yaml::as_str)
            .collect();
        assert_eq!(
            &check[1..3],
            ["jixiao", "healthcheck"],
            "{name} checks its health with the binary"
        );
        let url = env_of(s, target.database_env())
            .unwrap_or_else(|| panic!("{name} has no {}", target.database_env()));
        let database = format!("jixiao_{name}");
        assert!(
            url.starts_with("postgres://") && url.ends_with(&format!("@postgres:5432/{database}")),
            "{url}"
        );
        assert!(
            initdb.contains(&format!("CREATE DATABASE {database};")),
            "initdb creates {database}"
        );
        assert!(
            env_of(s, "JIXIAO_TOKEN_KEY").is_some(),
            "{name} verifies tokens with the shared key"
        );
        assert_eq!(
            s["depends_on"]["postgres"]["condition"].as_str(),
            Some("service_healthy")
        );
        for called in target.calls() {
            let peer = called.as_str();
            assert_eq!(
                env_of(s, called.addr_env()),
                Some(format!("http://{peer}:50051").as_str()),
                "{name} finds {peer}"
            );
            assert_eq!(
                s["depends_on"][peer]["condition"].as_str(),
                Some("service_healthy"),
                "{name} starts after {peer} is healthy"
            );
        }
        let volumes: Vec<&str> = s["volumes"]
            .as_vec()
            .unwrap()
            .iter()
            .filter_map(Yaml::as_str)
            .collect();
        assert!(
            volumes
                .iter()
                .any(|v| v.starts_with(&format!("{name}-data:"))),
            "{name} keeps a named volume"
        );
        assert!(!compose["volumes"][format!("{name}-data").as_str()].is_badvalue());
    }
    // Nothing in compose that the binary does not know.
    for (key, _) in services.as_hash().unwrap() {
        let key = key.as_str().unwrap();
        assert!(
            key == "postgres" || key.parse::<Target>().is_ok(),
            "unknown service {key}"
        );
    }
}

#[test]
fn the_image_builds_the_binary_and_runs_it_unprivileged() {
    let dockerfile = read("deploy/Dockerfile");
    let build = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("RUN cargo build"))
        .expect("the image builds with cargo");
    assert_eq!(build, " --release --locked --bin jixiao");
    assert!(
        read(".ci/run")
            .lines()
            .any(|l| l == format!("cargo build{build}")),
        "CI runs the image's build command"
    );
    assert!(
        dockerfile
            .lines()
            .any(|l| l.starts_with("USER ") && !l.contains("root"))
    );
    assert!(dockerfile.contains("HEALTHCHECK"));
}
