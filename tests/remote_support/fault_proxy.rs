//! A fault-injecting HTTP proxy in front of Azurite: each request (one per client connection,
//! forwarded with `Connection: close`) is numbered and logged, and chosen requests are dropped
//! without an answer, stalled, or answered 500/503 by the proxy itself.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Close the connection after reading the request, answering nothing.
    Drop,
    /// Wait, then forward as usual.
    Stall(Duration),
    /// Answer this status with an empty body; the request never reaches the storage.
    Status(u16),
    /// Forward the request (the storage carries it out), then close without the answer.
    LoseAnswer,
}

/// The `nth` (1-based) request whose request line contains `contains` gets `fault`.
#[derive(Debug, Clone)]
pub struct Rule {
    pub contains: String,
    pub nth: usize,
    pub fault: Fault,
    seen: usize,
}

impl Rule {
    pub fn new(contains: &str, nth: usize, fault: Fault) -> Rule {
        Rule {
            contains: contains.to_string(),
            nth,
            fault,
            seen: 0,
        }
    }
}

/// One request as the proxy saw it: its request line and the fault it got, if any.
#[derive(Debug, Clone)]
pub struct Seen {
    pub line: String,
    pub fault: Option<Fault>,
}

pub struct FaultProxy {
    pub port: u16,
    rules: Arc<Mutex<Vec<Rule>>>,
    log: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Listens on a free port and forwards to `upstream_port` on 127.0.0.1.
    pub fn start(upstream_port: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let rules: Arc<Mutex<Vec<Rule>>> = Arc::default();
        let log: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (r, l, s) = (rules.clone(), log.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (r, l) = (r.clone(), l.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, upstream_port, &r, &l);
                });
            }
        });
        FaultProxy {
            port,
            rules,
            log,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/devstoreaccount1", self.port)
    }

    pub fn add(&self, rule: Rule) {
        self.rules.lock().unwrap().push(rule);
    }

    pub fn log(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Reads one request head and body from `conn`.
fn read_request(conn: &mut TcpStream) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Some((head, body)))
}

fn serve(
    mut conn: TcpStream,
    upstream_port: u16,
    rules: &Mutex<Vec<Rule>>,
    log: &Mutex<Vec<Seen>>,
) -> std::io::Result<()> {
    let Some((head, body)) = read_request(&mut conn)? else {
        return Ok(());
    };
    let line = head.lines().next().unwrap_or_default().to_string();
    let fault = {
        let mut rules = rules.lock().unwrap();
        let mut hit = None;
        for r in rules.iter_mut().filter(|r| line.contains(&r.contains)) {
            r.seen += 1;
            if r.seen == r.nth && hit.is_none() {
                hit = Some(r.fault.clone());
            }
        }
        hit
    };
    log.lock().unwrap().push(Seen {
        line: line.clone(),
        fault: fault.clone(),
    });
    match &fault {
        Some(Fault::Drop) => {
            let _ = conn.shutdown(Shutdown::Both);
            return Ok(());
        }
        Some(Fault::Status(s)) => {
            let reason = if *s == 503 {
                "Service Unavailable"
            } else {
                "Internal Server Error"
            };
            write!(
                conn,
                "HTTP/1.1 {s} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
            return Ok(());
        }
        Some(Fault::Stall(d)) => std::thread::sleep(*d),
        Some(Fault::LoseAnswer) | None => {}
    }
    let mut up = TcpStream::connect(("127.0.0.1", upstream_port))?;
    let mut out = String::new();
    for l in head.trim_end().lines() {
        if !l.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(l);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    up.write_all(out.as_bytes())?;
    up.write_all(&body)?;
    if fault == Some(Fault::LoseAnswer) {
        std::io::copy(&mut up, &mut std::io::sink())?;
    } else {
        std::io::copy(&mut up, &mut conn)?;
    }
    let _ = conn.shutdown(Shutdown::Both);
    Ok(())
}
