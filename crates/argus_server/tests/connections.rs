//! Slow and idle clients over real sockets: a header or a body that never finishes is cut off, the
//! number of open connections is capped, and a graceful stop does not wait for a client forever.

use argus_server::{Loader, Server, Settings};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn loader() -> Loader {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    Arc::new(move || {
        let cfg = argus_engine::Config::load(&root.join("examples/starter/argus.toml"))?;
        Ok((cfg, None))
    })
}

struct Running {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn start(tune: impl FnOnce(&mut Settings)) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings {
        data_dir: dir.path().to_path_buf(),
        fsync: argus_server::wal::Fsync::Never,
        ..Settings::default()
    };
    tune(&mut settings);
    let server = Server::start(settings.clone(), loader()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = server.router.clone();
    let done = tokio::spawn(async move {
        argus_server::serve_connections(listener, app, &settings, async {
            let _ = rx.await;
        })
        .await;
        server.shutdown().await;
    });
    Running {
        addr,
        stop: Some(tx),
        done,
        _dir: dir,
    }
}

/// Reads until the peer closes (or `limit` passes): what the server sent.
fn read_all(s: &mut TcpStream, limit: Duration) -> (String, bool) {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (String::from_utf8_lossy(&out).into_owned(), true)
            }
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_header_is_cut_off() {
    let r = start(|s| s.header_timeout = Duration::from_millis(300)).await;
    let addr = r.addr;
    let closed = tokio::task::spawn_blocking(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"POST /v1/events HTTP/1.1\r\nHost: argus\r\n")
            .unwrap();
        read_all(&mut c, Duration::from_secs(20)).1
    })
    .await
    .unwrap();
    assert!(
        closed,
        "the server kept a connection whose header never finished"
    );
    // An idle keep-alive connection (a request answered, then nothing) is closed as well.
    let idle_closed = tokio::task::spawn_blocking(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: argus\r\n\r\n")
            .unwrap();
        let (got, closed) = read_all(&mut c, Duration::from_secs(20));
        (got, closed)
    })
    .await
    .unwrap();
    assert!(
        idle_closed.0.starts_with("HTTP/1.1 200"),
        "{}",
        idle_closed.0
    );
    assert!(
        idle_closed
            .0
            .to_ascii_lowercase()
            .contains("keep-alive: timeout=1"),
        "clients are told when an idle connection closes: {}",
        idle_closed.0
    );
    assert!(idle_closed.1, "an idle connection was kept open");
    let _ = r.stop.map(|s| s.send(()));
    r.done.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_body_gets_408_in_the_error_shape() {
    let r = start(|s| s.body_timeout = Duration::from_millis(300)).await;
    let addr = r.addr;
    let (got, _) = tokio::task::spawn_blocking(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"POST /v1/events HTTP/1.1\r\nHost: argus\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"id\":").unwrap();
        read_all(&mut c, Duration::from_secs(20))
    })
    .await
    .unwrap();
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(got.contains("\"code\":\"body_timeout\""), "{got}");
    let _ = r.stop.map(|s| s.send(()));
    r.done.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_capped_and_a_stop_does_not_wait_for_slow_clients() {
    let r = start(|s| {
        s.max_connections = 2;
        s.header_timeout = Duration::from_secs(60);
        s.body_timeout = Duration::from_secs(60);
        s.shutdown_grace = Duration::from_millis(300);
    })
    .await;
    let addr = r.addr;
    let (held, third) = tokio::task::spawn_blocking(move || {
        // Two connections hold both slots with requests whose bodies never finish.
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(b"POST /v1/events HTTP/1.1\r\nHost: argus\r\nContent-Length: 50\r\n\r\n{")
                .unwrap();
            held.push(c);
        }
        std::thread::sleep(Duration::from_millis(200));
        // A third is accepted by the kernel but not served while both slots are taken…
        let mut third = TcpStream::connect(addr).unwrap();
        third
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: argus\r\nConnection: close\r\n\r\n")
            .unwrap();
        let (early, _) = read_all(&mut third, Duration::from_millis(500));
        assert_eq!(early, "", "a connection beyond the cap was served");
        // …and is served once a slot frees.
        drop(held.pop());
        let (got, _) = read_all(&mut third, Duration::from_secs(20));
        (held, got)
    })
    .await
    .unwrap();
    assert!(third.starts_with("HTTP/1.1 200"), "{third}");
    // A graceful stop with a client still sending: the grace passes, the connection is closed, the
    // server stops (it used to wait until the client left).
    let _ = r.stop.map(|s| s.send(()));
    tokio::time::timeout(Duration::from_secs(30), r.done)
        .await
        .expect("the stop waited for a slow client")
        .unwrap();
    // …and the slow client's connection was closed, not left to run on.
    let closed = tokio::task::spawn_blocking(move || {
        held.into_iter()
            .all(|mut c| read_all(&mut c, Duration::from_secs(20)).1)
    })
    .await
    .unwrap();
    assert!(
        closed,
        "a connection still open after the grace was not closed"
    );
}
