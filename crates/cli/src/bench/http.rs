//! A keep-alive HTTP/1.1 client of one node's API (hyper), for the load generator and
//! its watchers: one connection each, one request at a time.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One connection to an API.
pub(crate) struct Api {
    addr: SocketAddr,
    sender: SendRequest<Full<Bytes>>,
}

/// An answer: its status and body.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
}

impl Api {
    /// Connects to the API at `addr`.
    pub(crate) async fn connect(addr: SocketAddr) -> anyhow::Result<Api> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot reach the API at {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("HTTP handshake with {addr}"))?;
        tokio::spawn(async move {
            // The connection ends with its sender; an error then is the peer's close.
            let _ = connection.await;
        });
        Ok(Api { addr, sender })
    }

    async fn send(&mut self, request: Request<Full<Bytes>>) -> anyhow::Result<Answer> {
        self.sender
            .ready()
            .await
            .with_context(|| format!("the API at {} closed the connection", self.addr))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .with_context(|| format!("request to {}", self.addr))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("reading an answer of {}", self.addr))?
            .to_bytes();
        Ok(Answer { status, body })
    }

    /// `GET path`.
    pub(crate) async fn get(&mut self, path: &str) -> anyhow::Result<Answer> {
        let request = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(header::HOST, self.addr.to_string())
            .body(Full::new(Bytes::new()))?;
        self.send(request).await
    }

    /// `GET path`, expecting 200 and JSON.
    pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
        &mut self,
        path: &str,
    ) -> anyhow::Result<T> {
        let answer = self.get(path).await?;
        if answer.status != StatusCode::OK {
            bail!(
                "{}{path} answered {}: {}",
                self.addr,
                answer.status,
                String::from_utf8_lossy(&answer.body)
            );
        }
        serde_json::from_slice(&answer.body)
            .with_context(|| format!("{}{path} did not answer the expected JSON", self.addr))
    }

    /// `POST path` with a binary body of `content_type`.
    pub(crate) async fn post(
        &mut self,
        path: &str,
        body: Vec<u8>,
        content_type: &'static str,
    ) -> anyhow::Result<Answer> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::HOST, self.addr.to_string())
            .header(header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))?;
        self.send(request).await
    }
}
