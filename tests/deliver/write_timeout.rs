//! `lis.write_timeout_ms`: an LIS that accepts the connection and then stops reading must not
//! hold the sender for ever. The frame is larger than the kernel's socket buffers on both ends,
//! so the write cannot finish; the send fails as "dropped" (the LIS may hold part of it) and the
//! connection is closed.

use crate::common::lis_settings;
use iari::deliver::transport::{MllpClient, SendError};
use std::time::Duration;
use tokio::net::TcpListener;

#[tokio::test]
async fn a_lis_that_stops_reading_fails_the_write_in_time() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    // Accepts and keeps the socket open without reading a byte.
    let held = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(sock);
    });
    let mut settings = lis_settings(&addr);
    settings.write_timeout_ms = 300;
    settings.max_frame_bytes = 64 << 20;
    let mut client = MllpClient::new(&settings).unwrap();
    let payload = vec![b'A'; 32 << 20];
    // The guard only turns a hang (no write timeout) into a failure; it is not a timing check.
    let result = tokio::time::timeout(Duration::from_secs(30), client.send("C1", &payload))
        .await
        .expect("the send returned instead of hanging");
    match result {
        Err(SendError::Dropped(m)) => {
            assert!(m.contains("write not finished within 300ms"), "{m}")
        }
        other => panic!("expected a write timeout, got {other:?}"),
    }
    held.abort();
}
