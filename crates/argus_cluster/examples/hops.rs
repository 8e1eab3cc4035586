//! The cost of each network hop the cluster path takes, against a running NATS cluster:
//!
//! ```sh
//! cargo run --release -p argus_cluster --example hops -- nats://127.0.0.1:24220 3 20000
//! ```
//!
//! - sequential appends to a fresh stream of R replicas (the entry node's wait per request);
//! - pipelined appends, 256 in flight (the stream's ceiling for single-event entries);
//! - a tail reading the appended entries back (what each node's pump does);
//! - a core NATS request/reply round trip (the hop partition ownership would add per partition).
//!
//! Prints medians and rates; checks that the tail read back every entry in order.

use async_nats::jetstream;
use bytes::Bytes;
use futures_util::StreamExt;
use std::time::{Duration, Instant};

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    v[((v.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .unwrap_or("nats://127.0.0.1:4222".into());
    let replicas: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let n: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let stream = format!("hops_r{replicas}_{}", std::process::id());
    let log = argus_cluster::Log::connect(&argus_cluster::Settings {
        servers: vec![url.clone()],
        stream: stream.clone(),
        replicas,
        ack_timeout: Duration::from_secs(5),
    })
    .await?;
    // A stored single event is ~400 bytes.
    let payload = Bytes::from(vec![b'x'; 400]);

    let mut lat = Vec::with_capacity(n / 4);
    for _ in 0..n / 4 {
        let t = Instant::now();
        log.append("events", "hops/1", None, payload.clone())
            .await?;
        lat.push(t.elapsed());
    }
    println!(
        "sequential append, {replicas} replica(s): p50 {:.3} ms, p99 {:.3} ms ({} appends)",
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
        lat.len()
    );

    let client = async_nats::connect(&url).await?;
    let js = jetstream::new(client.clone());
    let subject = format!("{stream}.log");
    let t = Instant::now();
    let mut inflight = std::collections::VecDeque::new();
    for _ in 0..n {
        inflight.push_back(js.publish(subject.clone(), payload.clone()).await?);
        if inflight.len() >= 256 {
            inflight.pop_front().unwrap().await?;
        }
    }
    while let Some(f) = inflight.pop_front() {
        f.await?;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "pipelined append (256 in flight), {replicas} replica(s): {:.0} entries/s ({n} entries)",
        n as f64 / secs
    );

    let total = (n / 4 + n) as u64;
    let t = Instant::now();
    let mut tail = log.tail(1).await?;
    let mut last = 0;
    while last < total {
        let e = tail.next().await?;
        assert_eq!(e.seq, last + 1, "the tail reads every entry in order");
        last = e.seq;
    }
    println!(
        "tail (ordered consumer) read back {total} entries at {:.0} entries/s",
        total as f64 / t.elapsed().as_secs_f64()
    );

    let mut sub = client.subscribe("hops.echo").await?;
    let c2 = client.clone();
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            if let Some(r) = m.reply {
                let _ = c2.publish(r, m.payload).await;
            }
        }
    });
    client.flush().await?;
    let mut rtt = Vec::with_capacity(n / 4);
    for _ in 0..n / 4 {
        let t = Instant::now();
        client.request("hops.echo", payload.clone()).await?;
        rtt.push(t.elapsed());
    }
    println!(
        "core NATS request/reply round trip: p50 {:.3} ms, p99 {:.3} ms",
        pct(&mut rtt, 0.5),
        pct(&mut rtt, 0.99)
    );
    js.delete_stream(&stream).await?;
    Ok(())
}
