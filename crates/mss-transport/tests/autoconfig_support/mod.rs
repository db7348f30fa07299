//! Shared by the autoconfig_* tests: a small HTTP/1.1 server on 127.0.0.1 (plain or TLS)
//! that serves fixed responses by path and records the requests it got, and a resolver that
//! answers SRV queries from a table.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mss_transport::autoconfig::{SrvError, SrvRecord, SrvResolver};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the server answers for a path.
#[derive(Clone)]
pub struct Reply {
    pub status: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn xml(body: &str) -> Reply {
        Reply {
            status: "200 OK",
            headers: vec![("Content-Type".into(), "text/xml".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    pub fn redirect(to: &str) -> Reply {
        Reply {
            status: "302 Found",
            headers: vec![("Location".into(), to.into())],
            body: Vec::new(),
        }
    }
}

pub struct HttpServer {
    pub addr: SocketAddr,
    /// Each request head as received (request line and headers).
    pub requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpServer {
    pub async fn start(
        routes: HashMap<String, Reply>,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let routes = Arc::new(routes);
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let routes = routes.clone();
                let seen = seen.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let work = async {
                        match tls {
                            Some(acceptor) => {
                                if let Ok(stream) = acceptor.accept(tcp).await {
                                    serve(stream, &routes, &seen).await;
                                }
                            }
                            None => serve(tcp, &routes, &seen).await,
                        }
                    };
                    let _ = tokio::time::timeout(Duration::from_secs(10), work).await;
                });
            }
        });
        HttpServer {
            addr,
            requests,
            task,
        }
    }

    pub fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://{}{path}", self.addr)
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    routes: &HashMap<String, Reply>,
    seen: &Mutex<Vec<String>>,
) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    seen.lock().unwrap().push(head);
    let reply = routes.get(&path).cloned().unwrap_or(Reply {
        status: "404 Not Found",
        headers: Vec::new(),
        body: b"not here".to_vec(),
    });
    let mut out = format!(
        "HTTP/1.1 {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (name, value) in &reply.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    let _ = stream.write_all(out.as_bytes()).await;
    let _ = stream.write_all(&reply.body).await;
    let _ = stream.shutdown().await;
}

/// Answers SRV queries from a table, and remembers every name asked.
#[derive(Default)]
pub struct TableResolver {
    pub records: HashMap<String, Result<Vec<SrvRecord>, SrvError>>,
    pub asked: Mutex<Vec<String>>,
}

impl TableResolver {
    pub fn with(mut self, name: &str, records: &[(u16, u16, u16, &str)]) -> Self {
        let records = records
            .iter()
            .map(|(priority, weight, port, target)| SrvRecord {
                priority: *priority,
                weight: *weight,
                port: *port,
                target: (*target).to_owned(),
            })
            .collect();
        self.records.insert(name.to_owned(), Ok(records));
        self
    }

    pub fn failing(mut self, name: &str, why: &str) -> Self {
        self.records
            .insert(name.to_owned(), Err(SrvError::Failed(why.to_owned())));
        self
    }
}

impl SrvResolver for TableResolver {
    async fn lookup(&self, name: &str) -> Result<Vec<SrvRecord>, SrvError> {
        self.asked.lock().unwrap().push(name.to_owned());
        self.records
            .get(name)
            .cloned()
            .unwrap_or(Err(SrvError::NotFound))
    }
}
