//! Debian's nginx as a gRPC load balancer for tests: started with a
//! configuration of its own in a temporary folder, on loopback ports.

use std::{
    net::TcpStream,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// nginx in a folder of its own, in the foreground, killed on drop (also
/// when the test panics).
pub struct Nginx {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// One `server` per entry: its port and, per component (a name and
    /// its gRPC service), the replicas its upstream balances over, round
    /// robin. gRPC paths name their service, so one port routes to every
    /// component; anything else (health, reflection) goes to the first.
    pub fn start(
        bin: &str,
        components: &[(&str, &str)],
        servers: &[(u16, Vec<Vec<String>>)],
    ) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let first = components[0].0;
        let mut http = String::new();
        for (s, (port, replicas)) in servers.iter().enumerate() {
            let mut locations = String::new();
            for ((name, service), addrs) in components.iter().zip(replicas) {
                let servers: String = addrs.iter().map(|a| format!("server {a}; ")).collect();
                http += &format!("upstream {name}_{s} {{ {servers}keepalive 16; }}\n");
                locations += &format!("location /{service}/ {{ grpc_pass grpc://{name}_{s}; }}\n");
            }
            // Watch streams stay open for as long as the watcher runs.
            http += &format!(
                "server {{ listen 127.0.0.1:{port} http2;
                    grpc_read_timeout 1h; grpc_send_timeout 1h; client_body_timeout 1h;
                    client_max_body_size 0;
                    {locations}location / {{ grpc_pass grpc://{first}_{s}; }} }}\n"
            );
        }
        let conf = format!(
            "daemon off; master_process off; worker_processes 1;
             pid {d}/nginx.pid; error_log {d}/error.log warn;
             events {{ worker_connections 1024; }}
             http {{ access_log off;
               client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
               fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
               {http} }}"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nginx");
        let nginx = Nginx { child, _dir: dir };
        for (port, _) in servers {
            let deadline = Instant::now() + Duration::from_secs(10);
            while TcpStream::connect(("127.0.0.1", *port)).is_err() {
                assert!(Instant::now() < deadline, "nginx never listened on {port}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        nginx
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's nginx (tests/run.sh installs it), also where `/usr/sbin` is
/// not on the PATH.
pub fn nginx_bin() -> Option<&'static str> {
    ["nginx", "/usr/sbin/nginx"].into_iter().find(|bin| {
        Command::new(bin)
            .arg("-v")
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}
