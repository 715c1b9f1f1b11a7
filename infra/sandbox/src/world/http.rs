//! Just enough HTTP/1.1 for the world's fronts: one request per connection, bodies by
//! `Content-Length` (what the AWS SDK, moto and the health-probe send), `Connection: close`.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const MAX_HEAD: usize = 64 * 1024;
/// The sandbox's function packages (debug binaries, zipped) cross the fronts too.
const MAX_BODY: usize = 1024 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The request as bytes for the upstream, asking it to close after answering.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.path);
        for (k, v) in &self.headers {
            if !k.eq_ignore_ascii_case("connection") {
                out += &format!("{k}: {v}\r\n");
            }
        }
        out += "Connection: close\r\n\r\n";
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// Reads one request; `Ok(None)` when the peer closed before sending one.
pub async fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return if buf.is_empty() { Ok(None) } else { Err(invalid("connection closed inside a request head")) };
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(&buf).map_err(|e| invalid(&e.to_string()))? {
            httparse::Status::Partial if buf.len() > MAX_HEAD => return Err(invalid("request head too large")),
            httparse::Status::Partial => continue,
            httparse::Status::Complete(head_len) => {
                let headers: Vec<(String, String)> = parsed
                    .headers
                    .iter()
                    .map(|h| (h.name.to_owned(), String::from_utf8_lossy(h.value).into_owned()))
                    .collect();
                let mut request = Request {
                    method: parsed.method.unwrap_or("GET").to_owned(),
                    path: parsed.path.unwrap_or("/").to_owned(),
                    headers,
                    body: buf[head_len..].to_vec(),
                };
                let length: usize = request.header("content-length").and_then(|v| v.trim().parse().ok()).unwrap_or(0);
                if length > MAX_BODY {
                    return Err(invalid("request body too large"));
                }
                if request.header("expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
                    && request.body.len() < length
                {
                    stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
                }
                request.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("expect"));
                while request.body.len() < length {
                    let n = stream.read(&mut chunk).await?;
                    if n == 0 {
                        return Err(invalid("connection closed inside a request body"));
                    }
                    request.body.extend_from_slice(&chunk[..n]);
                }
                request.body.truncate(length);
                return Ok(Some(request));
            }
        }
    }
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

/// Writes a whole response and closes.
pub async fn respond(stream: &mut TcpStream, status: u16, content_type: &str, body: &[u8]) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}

pub async fn respond_json(stream: &mut TcpStream, status: u16, body: &serde_json::Value) -> std::io::Result<()> {
    respond(stream, status, "application/json", body.to_string().as_bytes()).await
}

/// Sends `request` to `127.0.0.1:port` and reads the whole answer (the upstream closes after
/// it). The raw response, head and body.
pub async fn exchange(port: u16, request: &[u8], deadline: Duration) -> std::io::Result<Vec<u8>> {
    tokio::time::timeout(deadline, async {
        let mut upstream = TcpStream::connect(("127.0.0.1", port)).await?;
        upstream.write_all(request).await?;
        let mut response = Vec::new();
        upstream.read_to_end(&mut response).await?;
        Ok(response)
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, format!("127.0.0.1:{port} did not answer")))?
}

/// The status and body of a raw response (chunked bodies are not decoded: moto sends lengths).
pub fn split_response(raw: &[u8]) -> Option<(u16, &[u8])> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    match parsed.parse(raw).ok()? {
        httparse::Status::Complete(head_len) => Some((parsed.code?, &raw[head_len..])),
        httparse::Status::Partial => None,
    }
}

/// A client request with a JSON body (the world's control API, the tests).
pub async fn call(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let raw = exchange(port, request.as_bytes(), Duration::from_secs(30)).await?;
    let (status, body) =
        split_response(&raw).ok_or_else(|| anyhow::anyhow!("127.0.0.1:{port}: not an HTTP response"))?;
    let value = if body.is_empty() { serde_json::Value::Null } else { serde_json::from_slice(body)? };
    Ok((status, value))
}
