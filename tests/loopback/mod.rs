//! Tiny loopback HTTP peers for end-to-end tests: read one request, and a
//! server that answers every request alike and keeps what it got (a fake
//! Prometheus, a webhook receiver). Only ever binds 127.0.0.1.

#![allow(dead_code)] // Each test binary uses its own part.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// Reads one HTTP request (head and `content-length` body) as text.
pub fn read_request(stream: &mut TcpStream) -> String {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data);
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length = text[..head_end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if data.len() >= head_end + 4 + length {
                break;
            }
        }
    }
    String::from_utf8_lossy(&data).into_owned()
}

/// The body of a request [`read_request`] read.
pub fn body_of(request: &str) -> &str {
    request.split_once("\r\n\r\n").map(|(_, body)| body).unwrap_or("")
}

/// A loopback server that answers every request with `status` and `body`
/// and keeps the requests it got. Returns its address and the requests.
pub fn recorder(status: u16, body: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            seen.lock().unwrap().push(read_request(&mut stream));
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (addr, requests)
}

/// A loopback server that answers every request with 200, the raw header
/// lines `headers` (each ending in `\r\n`) and an empty body. Returns its
/// address.
pub fn with_headers(headers: &'static str) -> String {
    with_switchable_headers(Arc::new(Mutex::new(headers)))
}

/// Like [`with_headers`], with the header lines `headers` holds when a
/// request comes: a test changes them to "fix" the server.
pub fn with_switchable_headers(headers: Arc<Mutex<&'static str>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            read_request(&mut stream);
            let headers = *headers.lock().unwrap();
            let _ = write!(stream, "HTTP/1.1 200 OK\r\n{headers}content-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    addr
}
