//! Probe tests against real loopback servers.

use super::*;
use tokio::net::TcpListener;

async fn serve_once(answer: &'static str) -> (u16, tokio::task::JoinHandle<String>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let h = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut req = vec![0u8; 4096];
        let n = s.read(&mut req).await.unwrap();
        s.write_all(answer.as_bytes()).await.unwrap();
        String::from_utf8_lossy(&req[..n]).into_owned()
    });
    (port, h)
}

fn probe(port: u16) -> HttpProbe {
    HttpProbe {
        port,
        method: "GET".into(),
        path: "health".into(),
        https: false,
        host: None,
        headers: vec![("X-Check".into(), "yes".into())],
    }
}

#[tokio::test]
async fn http_2xx_passes_and_sends_method_path_headers() {
    let (port, h) = serve_once("HTTP/1.1 204 No Content\r\n\r\n").await;
    assert!(http(&probe(port)).await.is_ok());
    let req = h.await.unwrap();
    assert!(req.starts_with("GET /health HTTP/1.1\r\n"), "{req}");
    assert!(req.contains("X-Check: yes\r\n"), "{req}");
}

#[tokio::test]
async fn http_redirect_and_5xx_fail() {
    let (port, _h) = serve_once("HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n").await;
    let e = http(&probe(port)).await.unwrap_err();
    assert!(e.contains("302"), "{e}");
    let (port, _h) = serve_once("HTTP/1.1 503 Unavailable\r\n\r\n").await;
    assert!(http(&probe(port)).await.unwrap_err().contains("503"));
}

#[tokio::test]
async fn tcp_fails_on_a_closed_port() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    assert!(tcp(port).await.is_ok());
    drop(l);
    assert!(tcp(port).await.unwrap_err().contains("connect"));
}
