//! Instructions per DNS answer in user space, under valgrind's callgrind (repeatable on a
//! busy machine): parsing the kernel's bytes (`dns::parse_answer`), learning the answer in
//! the attribution tables, naming a connection from them, and writing the DNS query record
//! as its JSON line. Run with 1 and 3 passes and divide the difference by the answers of
//! the two extra passes, so set-up cancels out:
//!
//! ```text
//! cargo bench -p monitor --bench dns_icount --no-run   # prints the binary's path
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/dns1.cg BIN 1
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/dns3.cg BIN 3
//! ```

use std::hint::black_box;
use std::sync::Arc;

use monitor::dns::testing::{Answer, response};
use monitor::dns::{NameTables, parse_answer};
use monitor::record::{ConnectionRecord, Endpoint, ProcessInfo, Timestamp, Transport};

/// Answers per pass.
const ANSWERS: u32 = 10_000;

fn main() {
    let passes: usize = std::env::args()
        .skip(1)
        .find(|a| a != "--bench")
        .map(|p| p.parse().expect("PASSES is a number"))
        .unwrap_or(1);
    // A typical answer: a CNAME to a CDN name and two addresses.
    let answers: Vec<Vec<u8>> = (0..ANSWERS)
        .map(|i| {
            let name = format!("www{i}.example.org");
            let edge = format!("e{i}.cdn.example.net");
            let a = i.to_be_bytes();
            response(
                i as u16,
                &name,
                1,
                &[
                    Answer::cname(&name, &edge, 300),
                    Answer::a(&edge, [198, 51, a[2], a[3]], 60),
                    Answer::a(&edge, [203, 0, a[2], a[3]], 60),
                ],
            )
        })
        .collect();
    let process = Arc::new(ProcessInfo {
        pid: 4242,
        name: Some("curl".into()),
        executable: Some("/usr/bin/curl".into()),
        command_line: Some("curl -s https://www.example.org/".into()),
        args: vec![
            "curl".into(),
            "-s".into(),
            "https://www.example.org/".into(),
        ],
        ..ProcessInfo::default()
    });
    let mut rec = ConnectionRecord {
        timestamp: Timestamp(1_800_000_000_000_000_000),
        host_name: "bench-host".into(),
        process,
        source: None,
        destination: Endpoint {
            ip: "192.0.2.53".parse().unwrap(),
            port: 53,
        },
        transport: Transport::Udp,
        partial: false,
        suppressed: 0,
        probe: Some("raw_tracepoint"),
        dns_resolver: false,
        domain: None,
        domain_source: None,
        dns: None,
        connection_id: None,
        life: None,
    };
    let mut conn = rec.clone();
    conn.transport = Transport::Tcp;
    conn.destination.port = 443;
    let mut tables = NameTables::new();
    let mut out = Vec::with_capacity(4096);
    let mut named = 0u64;
    for _ in 0..passes {
        for (i, a) in answers.iter().enumerate() {
            let q = parse_answer(black_box(a), false, false).expect("a valid answer");
            conn.destination.ip = q.resolved_ip[0];
            rec.dns = Some(Arc::new(q));
            tables.learn(&rec);
            out.clear();
            rec.write_json(&mut out);
            black_box(&out);
            named += u64::from(tables.lookup(&conn).is_some());
            rec.timestamp.0 += i as i64;
        }
    }
    eprintln!(
        "{passes} pass(es), {} answers, {named} named",
        passes * answers.len()
    );
}
