//! Helpers of the tests that run the `argus` binary as a server: the repository, one HTTP/1.1
//! request over a fresh connection, and a server started on a free port (killed when dropped).
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub const ADMIN: &str = "admin-key-0123456789";
pub const INGEST: &str = "ingest-key-0123456789";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One HTTP/1.1 request over a fresh connection: (status, JSON body).
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    key: &str,
    body: &str,
    ctype: &str,
) -> (u16, Value) {
    let mut s = std::net::TcpStream::connect(addr).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    // The server answers with Content-Length (no chunking) for these routes.
    (status, serde_json::from_str(rest).unwrap_or(Value::Null))
}

/// A child process killed (and reaped) when dropped.
pub struct Killed(pub std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `argus serve` with `conf` and `policies` on a free port; the running server and its address.
pub fn serve(conf: &Path, policies: &[PathBuf], data: &Path) -> (Killed, String) {
    serve_env(conf, policies, data, &[])
}

/// [`serve`] with environment variables set for the server.
pub fn serve_env(
    conf: &Path,
    policies: &[PathBuf],
    data: &Path,
    env: &[(&str, &str)],
) -> (Killed, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_argus"));
    cmd.args(["serve", "--config"]).arg(conf);
    for p in policies {
        cmd.arg("--policies").arg(p);
    }
    cmd.envs(env.iter().copied());
    let mut child = cmd
        .arg("--data-dir")
        .arg(data)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Killed(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("argus: listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_string();
    (server, addr)
}

/// A configuration that includes the starter one, with an ingest and an admin key, `fsync = never`
/// and `extra` appended.
pub fn starter_config(extra: &str) -> String {
    format!(
        "include = [\"{starter}\"]\n[server]\nfsync = \"never\"\n[[server.api_keys]]\nname = \"loader\"\nrole = \"ingest\"\nkey = \"{INGEST}\"\n[[server.api_keys]]\nname = \"ops\"\nrole = \"admin\"\nkey = \"{ADMIN}\"\n{extra}",
        starter = repo().join("examples/starter/argus.toml").display()
    )
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// xorshift64*: seeded, so that a failure can be replayed.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A card number with a valid Luhn check digit.
pub fn card(n: u64) -> String {
    let body = format!("41111111111{n:04}");
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            let d = u32::from(c - b'0');
            match (i % 2 == 0, d * 2 > 9) {
                (true, true) => d * 2 - 9,
                (true, false) => d * 2,
                _ => d,
            }
        })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

/// One HTTP/1.1 request on a fresh connection: `Err` when the server is gone.
pub fn try_http(addr: &str, method: &str, path: &str, body: &str) -> std::io::Result<(u16, Value)> {
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: argus\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line: {text:?}")))?;
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

/// Every file under `dir` whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p)
                .map(|b| b.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
            {
                hits.push(p.display().to_string());
            }
        }
    }
    hits
}

/// What a browser test needs and this machine lacks: `/usr/bin/chromium`, `node` and
/// `console-tests/node_modules` (`npm ci` there); `None` when nothing is missing.
pub fn browser_prerequisites() -> Option<String> {
    let modules = repo().join("console-tests/node_modules/playwright-core");
    let missing: Vec<&str> = [
        (!Path::new("/usr/bin/chromium").exists()).then_some("/usr/bin/chromium"),
        std::process::Command::new("node")
            .arg("--version")
            .output()
            .is_err()
            .then_some("node"),
        (!modules.exists()).then_some("console-tests/node_modules (run `npm ci` in console-tests)"),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!missing.is_empty()).then(|| missing.join(", "))
}
