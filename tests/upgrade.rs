//! Upgrades: a WebSocket is tunnelled once the origin answers 101; a
//! refused upgrade leaves the connection speaking HTTP, so bytes pipelined
//! after it are parsed (and routed, and filtered) as a new request.

mod common;

use common::*;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;

/// An origin that accepts WebSocket handshakes and echoes every message.
async fn websocket_echo_origin() -> Origin {
    raw_origin(|stream| async move {
        let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else { return };
        while let Some(Ok(message)) = ws.next().await {
            if message.is_close() {
                break;
            }
            if ws.send(message).await.is_err() {
                break;
            }
        }
    })
    .await
}

#[tokio::test]
async fn websocket_echo_through_the_tunnel() {
    within(async {
        let origin = websocket_echo_origin().await;
        let proxy = proxy().origin(&origin).run().await;
        let stream = tokio::net::TcpStream::connect(proxy.http).await.unwrap();
        let (mut ws, response) =
            tokio_tungstenite::client_async(format!("ws://{HOST}/socket"), stream).await.unwrap();
        assert_eq!(response.status(), http::StatusCode::SWITCHING_PROTOCOLS);

        ws.send(Message::text("hello")).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello"));
        let big = vec![7u8; 256 * 1024];
        ws.send(Message::binary(big.clone())).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(big));
        ws.close(None).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_refused_upgrade_keeps_parsing_http() {
    within(async {
        // The origin answers the handshake with a plain response.
        let origin = origin()
            .route_fn("/socket", |_| async {
                let mut response = http::Response::new(consentry::body::full("no websocket here"));
                *response.status_mut() = http::StatusCode::BAD_REQUEST;
                response
            })
            .run()
            .await;
        let proxy = proxy().origin(&origin).run().await;
        let mut conn = raw(proxy.http).await;
        // The handshake and, in the same write, a second request: if the
        // proxy opened a tunnel anyway, the second request would reach the
        // origin unparsed and unfiltered.
        conn.send(format!(
            "GET /socket HTTP/1.1\r\nHost: {HOST}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n\
             GET /after HTTP/1.1\r\nHost: {HOST}\r\nX-Second: yes\r\nConnection: close\r\n\r\n"
        ))
        .await;
        let both = conn.read_to_close().await;
        assert!(both.starts_with("HTTP/1.1 400 "), "{both}");
        assert!(both.contains("no websocket here"), "{both}");
        let second_at =
            both.find("\r\n\r\nno websocket here").map(|i| i + 4 + "no websocket here".len()).unwrap();
        let second = &both[second_at..];
        assert!(second.starts_with("HTTP/1.1 200 "), "second response: {second}");
        let body = &second[second.find("\r\n\r\n").unwrap() + 4..];
        let echo = Echo::parse(body.as_bytes());
        assert_eq!(echo.path, "/after");
        assert_eq!(echo.one("x-second"), "yes");
        assert_eq!(echo.one("via"), "1.1 consentry", "the second request went through the proxy's pipeline");
    })
    .await;
}

#[tokio::test]
async fn only_websocket_upgrades_are_forwarded() {
    within(async {
        let origin = demo_origin().await;
        let proxy = proxy().origin(&origin).run().await;
        let mut conn = raw(proxy.http).await;
        conn.send(format!(
            "GET /echo HTTP/1.1\r\nHost: {HOST}\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\
             HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: close\r\n\r\n"
        ))
        .await;
        let answer = conn.read_to_close().await;
        assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
        let echo = Echo::parse(&answer.as_bytes()[answer.find("\r\n\r\n").unwrap() + 4..]);
        assert!(
            !echo.has("upgrade") && !echo.has("http2-settings") && !echo.has("connection"),
            "{:?}",
            echo.headers
        );
    })
    .await;
}
