//! The deployment files: every service of the suite runs from one image in
//! docker-compose with a health check, its own PostgreSQL database, the
//! token key, and the address of every service it calls; and on Kubernetes
//! (deploy/kubernetes) with the same image, command, port and variables.
//! (No Docker engine or cluster runs on the CI machines, so the files are
//! checked by parsing them; deploy/kubernetes/check.sh renders the
//! Kubernetes overlay and validates it against the schemas.)

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

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

fn load(path: &str) -> Yaml {
    YamlLoader::load_from_str(&read(path)).unwrap().remove(0)
}

fn strs(list: &Yaml) -> Vec<&str> {
    list.as_vec()
        .map(|v| v.iter().filter_map(Yaml::as_str).collect())
        .unwrap_or_default()
}

/// What `ENV` in the Dockerfile sets `key` to.
fn dockerfile_env<'a>(dockerfile: &'a str, key: &str) -> &'a str {
    let start = dockerfile
        .find(&format!("{key}="))
        .unwrap_or_else(|| panic!("the Dockerfile sets {key}"))
        + key.len()
        + 1;
    dockerfile[start..].split_whitespace().next().unwrap()
}

#[test]
fn kubernetes_runs_every_service_as_compose_does() {
    const BASE: &str = "deploy/kubernetes/base";
    let compose = load("deploy/docker-compose.yml");
    let dockerfile = read("deploy/Dockerfile");
    let kustomization = load(&format!("{BASE}/kustomization.yaml"));
    let objects: Vec<Yaml> = strs(&kustomization["resources"])
        .iter()
        .flat_map(|file| YamlLoader::load_from_str(&read(&format!("{BASE}/{file}"))).unwrap())
        .collect();
    let find = |kind: &str, name: &str| {
        objects
            .iter()
            .find(|o| {
                o["kind"].as_str() == Some(kind) && o["metadata"]["name"].as_str() == Some(name)
            })
            .unwrap_or_else(|| panic!("Kubernetes has no {kind} {name}"))
    };
    // Every object belongs to a service the binary knows.
    for o in &objects {
        let name = o["metadata"]["name"].as_str().unwrap();
        assert!(name.parse::<Target>().is_ok(), "unknown service {name}");
    }
    // The one ConfigMap, generated by the base.
    let generators = kustomization["configMapGenerator"].as_vec().unwrap();
    assert_eq!(generators.len(), 1);
    assert_eq!(generators[0]["name"].as_str(), Some("jixiao-config"));
    let config: BTreeMap<&str, &str> = strs(&generators[0]["literals"])
        .iter()
        .map(|l| l.split_once('=').unwrap())
        .collect();
    let mut config_read = BTreeSet::new();
    let uid: i64 = dockerfile
        .split("--uid ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .expect("the image's user has a fixed uid");
    let data_dir = dockerfile_env(&dockerfile, "JIXIAO_DATA_DIR");
    let listen_port: i64 = dockerfile_env(&dockerfile, "JIXIAO_LISTEN")
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();

    for &target in Target::ALL {
        let name = target.as_str();
        let s = &compose["services"][name];
        let d = find("Deployment", name);
        let pod = &d["spec"]["template"];
        let labels = &pod["metadata"]["labels"];
        assert_eq!(&d["spec"]["selector"]["matchLabels"], labels);
        // Two replicas of each service (deploy/README.md, Scaling out).
        let replicas = d["spec"]["replicas"].as_i64().unwrap();
        assert_eq!(replicas, 2, "{name} replicas");
        let containers = pod["spec"]["containers"].as_vec().unwrap();
        assert_eq!(containers.len(), 1);
        let c = &containers[0];

        // The image compose builds, with compose's command.
        assert_eq!(
            c["image"].as_str(),
            s["image"].as_str().and_then(|i| i.split(':').next()),
            "{name} runs the image compose builds"
        );
        assert_eq!(strs(&c["args"]), strs(&s["command"]), "{name} command");

        // Exactly compose's variables: what compose takes from the
        // operator's secrets from the Secret, the rest from the ConfigMap
        // with compose's value.
        let env: BTreeMap<&str, &Yaml> = c["env"]
            .as_vec()
            .unwrap()
            .iter()
            .map(|e| (e["name"].as_str().unwrap(), &e["valueFrom"]))
            .collect();
        let compose_env: BTreeMap<&str, &str> = s["environment"]
            .as_hash()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.as_str().unwrap(), v.as_str().unwrap()))
            .collect();
        assert_eq!(
            env.keys().collect::<Vec<_>>(),
            compose_env.keys().collect::<Vec<_>>(),
            "{name}: Kubernetes and compose set the same variables"
        );
        for (key, value) in compose_env {
            let from = env[key];
            if value.contains("${") {
                assert_eq!(
                    from["secretKeyRef"]["name"].as_str(),
                    Some("jixiao-secrets"),
                    "{name} {key}"
                );
                assert_eq!(from["secretKeyRef"]["key"].as_str(), Some(key));
            } else {
                assert_eq!(
                    from["configMapKeyRef"]["name"].as_str(),
                    Some("jixiao-config"),
                    "{name} {key}"
                );
                assert_eq!(from["configMapKeyRef"]["key"].as_str(), Some(key));
                assert_eq!(config.get(key), Some(&value), "{name} {key}: as in compose");
                config_read.insert(key);
            }
        }

        // The port compose publishes and checks, named for the Service.
        let compose_port: i64 = strs(&s["ports"])[0]
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(compose_port, listen_port);
        let ports = c["ports"].as_vec().unwrap();
        assert!(
            ports.iter().any(|p| p["name"].as_str() == Some("grpc")
                && p["containerPort"].as_i64() == Some(compose_port)),
            "{name} declares the gRPC port"
        );
        // Probes: gRPC health on that port, the service's own name for
        // readiness and start (it follows the service's database), the
        // whole process ("") for liveness.
        let health = jixiao_testkit::service_name(target);
        for probe in ["startupProbe", "readinessProbe"] {
            let grpc = &c[probe]["grpc"];
            assert_eq!(grpc["port"].as_i64(), Some(compose_port), "{name} {probe}");
            assert_eq!(grpc["service"].as_str(), Some(health), "{name} {probe}");
        }
        let live = &c["livenessProbe"]["grpc"];
        assert_eq!(
            live["port"].as_i64(),
            Some(compose_port),
            "{name} livenessProbe"
        );
        assert!(
            live["service"].is_badvalue() || live["service"].as_str() == Some(""),
            "{name} liveness checks the process"
        );

        // Unprivileged as the image's user, read-only root, the data
        // folder (compose's volume) writable.
        let security = &pod["spec"]["securityContext"];
        assert_eq!(security["runAsNonRoot"].as_bool(), Some(true));
        assert_eq!(security["runAsUser"].as_i64(), Some(uid));
        assert_eq!(
            c["securityContext"]["readOnlyRootFilesystem"].as_bool(),
            Some(true)
        );
        assert_eq!(
            c["securityContext"]["allowPrivilegeEscalation"].as_bool(),
            Some(false)
        );
        let compose_volume = strs(&s["volumes"])
            .into_iter()
            .find_map(|v| v.strip_prefix(&format!("{name}-data:")))
            .unwrap();
        assert_eq!(compose_volume, data_dir);
        assert!(
            c["volumeMounts"]
                .as_vec()
                .unwrap()
                .iter()
                .any(|m| m["mountPath"].as_str() == Some(data_dir)),
            "{name} mounts a writable {data_dir}"
        );
        for bound in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                assert!(
                    !c["resources"][bound][resource].is_badvalue(),
                    "{name} {bound} {resource}"
                );
            }
        }
        // Prometheus scrapes the admin port (`--admin-listen`), a port of
        // its own that compose keeps on its network and no Service exposes.
        let admin_port = config["JIXIAO_ADMIN_LISTEN"].rsplit(':').next().unwrap();
        assert_ne!(admin_port, compose_port.to_string());
        let annotations = &pod["metadata"]["annotations"];
        assert_eq!(
            annotations["prometheus.io/scrape"].as_str(),
            Some("true"),
            "{name}"
        );
        assert_eq!(
            annotations["prometheus.io/port"].as_str(),
            Some(admin_port),
            "{name}"
        );
        assert_eq!(strs(&s["expose"]), [admin_port], "{name}");
        // A Prometheus scrape annotation names a port the container has.
        if let Some(port) = pod["metadata"]["annotations"]["prometheus.io/port"].as_str() {
            let port: i64 = port.parse().unwrap();
            assert!(
                ports
                    .iter()
                    .any(|p| p["containerPort"].as_i64() == Some(port))
            );
        }

        // The Service peers call (http://<name>:<port>, as in compose).
        let service = find("Service", name);
        assert_eq!(&service["spec"]["selector"], labels);
        let service_ports = service["spec"]["ports"].as_vec().unwrap();
        assert_eq!(service_ports.len(), 1);
        assert_eq!(service_ports[0]["port"].as_i64(), Some(compose_port));
        assert_eq!(service_ports[0]["targetPort"].as_str(), Some("grpc"));

        // A disruption budget that lets a drain proceed.
        let pdb = find("PodDisruptionBudget", name);
        assert_eq!(&pdb["spec"]["selector"]["matchLabels"], labels);
        match pdb["spec"]["minAvailable"].as_i64() {
            Some(min) => assert!(min < replicas, "{name}: a drain could never evict"),
            None => assert!(
                pdb["spec"]["maxUnavailable"]
                    .as_i64()
                    .is_some_and(|m| m >= 1)
            ),
        }
    }
    assert_eq!(
        config_read,
        config.keys().copied().collect(),
        "every ConfigMap entry is read by some service"
    );

    // The production overlay applies the base in a namespace, with the
    // image from a registry.
    let production = load("deploy/kubernetes/overlays/production/kustomization.yaml");
    assert_eq!(strs(&production["bases"]), ["../../base"]);
    assert!(production["namespace"].as_str().is_some());
    assert_eq!(production["images"][0]["name"].as_str(), Some("jixiao"));
}
