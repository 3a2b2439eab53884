//! Transports to the LIS. `mllp`: one TCP (optionally TLS, optionally with a client
//! certificate) connection, one outstanding message, connect, write and ACK timeouts, TCP
//! keepalive, reconnect on the next send after any failure; after an enhanced-mode commit ACK
//! (CA) it waits for the application ACK.
//! `file`: one `<control id>.hl7` file per message, written to a temporary name, fsynced, renamed
//! and the directory fsynced, so a file that exists is complete.

use super::ack::{self, Ack, AckCode};
use super::mllp::MllpCodec;
use crate::config::{LisSettings, LisTransport};
use futures::{SinkExt, StreamExt};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::codec::Framed;

mod tls;

/// What came back for a message that reached the other end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The LIS answered with an ACK whose MSA-2 is ours.
    Ack(Ack),
    /// Written and fsynced by the file transport.
    Written(PathBuf),
}

/// Failures after which the same bytes are sent again later. Whether the LIS may hold the
/// message decides whether the failure counts toward `lis.max_attempts` and whether a later
/// duplicate-key answer means it was delivered.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The message never reached the LIS: connect, TLS or the write failed (an outage).
    #[error("{0}")]
    Io(String),
    /// Written; no ACK in time.
    #[error("no ACK within {0:?}")]
    Timeout(Duration),
    /// Written; the connection closed or failed (or the write never finished) before an ACK.
    #[error("{0}")]
    Dropped(String),
    /// The LIS committed the message (CA) but sent no application ACK in time.
    #[error("CA, then no application ACK within {1:?}")]
    CommitOnly(Ack, Duration),
}

impl SendError {
    /// Whether the LIS may hold the message: it was written and went unanswered.
    pub fn unanswered(&self) -> bool {
        !matches!(self, SendError::Io(_))
    }
}

/// The transport could not be set up from the settings (a configuration error).
#[derive(Debug, thiserror::Error)]
#[error("lis transport: {0}")]
pub struct SetupError(pub String);

trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Stream for T {}

pub enum Transport {
    Mllp(Box<MllpClient>),
    File(FileSink),
}

impl Transport {
    pub fn from_settings(lis: &LisSettings) -> Result<Transport, SetupError> {
        Ok(match lis.transport {
            LisTransport::Mllp => Transport::Mllp(Box::new(MllpClient::new(lis)?)),
            LisTransport::File => Transport::File(FileSink {
                dir: lis.dir.clone(),
            }),
        })
    }

    /// Sends one message and waits for its outcome.
    pub async fn send(&mut self, control_id: &str, payload: &[u8]) -> Result<Delivery, SendError> {
        match self {
            Transport::Mllp(c) => c.send(control_id, payload).await.map(Delivery::Ack),
            Transport::File(f) => f.write(control_id, payload).await.map(Delivery::Written),
        }
    }

    /// Closes any open connection (after a configuration error, or at shutdown).
    pub fn disconnect(&mut self) {
        if let Transport::Mllp(c) = self {
            c.conn = None;
        }
    }
}

pub struct MllpClient {
    addr: String,
    connect_timeout: Duration,
    write_timeout: Duration,
    ack_timeout: Duration,
    app_ack_timeout: Duration,
    max_frame: usize,
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
    conn: Option<Framed<Box<dyn Stream>, MllpCodec>>,
}

impl MllpClient {
    pub fn new(lis: &LisSettings) -> Result<MllpClient, SetupError> {
        let tls = if lis.tls {
            Some(tls::connector(lis)?)
        } else {
            None
        };
        Ok(MllpClient {
            addr: lis.addr.clone(),
            connect_timeout: Duration::from_millis(lis.connect_timeout_ms),
            write_timeout: Duration::from_millis(lis.write_timeout_ms),
            ack_timeout: Duration::from_millis(lis.ack_timeout_ms),
            app_ack_timeout: Duration::from_millis(lis.app_ack_timeout_ms),
            max_frame: lis.max_frame_bytes,
            tls,
            conn: None,
        })
    }

    async fn connect(&self) -> Result<Framed<Box<dyn Stream>, MllpCodec>, SendError> {
        let tcp = timeout(self.connect_timeout, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| SendError::Io(format!("connect to {} timed out", self.addr)))?
            .map_err(|e| SendError::Io(format!("connect to {}: {e}", self.addr)))?;
        tcp.set_nodelay(true)
            .map_err(|e| SendError::Io(e.to_string()))?;
        // Keepalive finds a half-open connection (LIS rebooted, firewall dropped state) while idle.
        let ka = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(30))
            .with_interval(Duration::from_secs(10));
        socket2::SockRef::from(&tcp)
            .set_tcp_keepalive(&ka)
            .map_err(|e| SendError::Io(format!("keepalive: {e}")))?;
        let stream: Box<dyn Stream> = match &self.tls {
            None => Box::new(tcp),
            Some((connector, name)) => {
                let handshake = connector.connect(name.clone(), tcp);
                let s = timeout(self.connect_timeout, handshake)
                    .await
                    .map_err(|_| SendError::Io("TLS handshake timed out".into()))?
                    .map_err(|e| SendError::Io(format!("TLS: {e}")))?;
                Box::new(s)
            }
        };
        tracing::info!(addr = %self.addr, tls = self.tls.is_some(), "connected to the LIS");
        Ok(Framed::new(stream, MllpCodec::new(self.max_frame)))
    }

    /// Writes one frame and waits for the ACK carrying our MSH-10. Any failure drops the
    /// connection: a late ACK on a reused connection could be mistaken for the next message's.
    pub async fn send(&mut self, control_id: &str, payload: &[u8]) -> Result<Ack, SendError> {
        let result = self.send_inner(control_id, payload).await;
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    async fn send_inner(&mut self, control_id: &str, payload: &[u8]) -> Result<Ack, SendError> {
        if self.conn.is_none() {
            self.conn = Some(self.connect().await?);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(SendError::Io("not connected".into()));
        };
        match timeout(self.write_timeout, conn.send(payload)).await {
            // The LIS is up but not reading: part of the frame may be there.
            Err(_) => {
                return Err(SendError::Dropped(format!(
                    "write not finished within {:?}",
                    self.write_timeout
                )));
            }
            Ok(Err(e)) => return Err(SendError::Io(format!("write: {e}"))),
            Ok(Ok(())) => {}
        }
        let mut deadline = Instant::now() + self.ack_timeout;
        let mut committed: Option<Ack> = None;
        loop {
            let frame = match timeout_at(deadline, conn.next()).await {
                Err(_) => {
                    return Err(match committed {
                        Some(ca) => SendError::CommitOnly(ca, self.app_ack_timeout),
                        None => SendError::Timeout(self.ack_timeout),
                    });
                }
                Ok(None) => return Err(SendError::Dropped("connection closed by the LIS".into())),
                Ok(Some(Err(e))) => return Err(SendError::Dropped(format!("read: {e}"))),
                Ok(Some(Ok(frame))) => frame,
            };
            match ack::parse(&frame) {
                Ok(a) if !a.is_for(control_id) => {
                    tracing::warn!(ours = control_id, theirs = %a.control_id, "ignoring an ACK for another message");
                }
                // Enhanced mode: the LIS stored it; the application ACK follows on its own clock.
                Ok(a) if a.code == AckCode::CA => {
                    tracing::debug!(control_id, "commit ACK; waiting for the application ACK");
                    deadline = Instant::now() + self.app_ack_timeout;
                    committed = Some(a);
                }
                Ok(a) => return Ok(a),
                Err(e) => tracing::warn!(error = %e, "ignoring an unreadable frame from the LIS"),
            }
        }
    }
}

pub struct FileSink {
    dir: PathBuf,
}

impl FileSink {
    pub async fn write(&self, control_id: &str, payload: &[u8]) -> Result<PathBuf, SendError> {
        let (dir, id, bytes) = (self.dir.clone(), control_id.to_string(), payload.to_vec());
        tokio::task::spawn_blocking(move || write_durably(&dir, &id, &bytes))
            .await
            .map_err(|e| SendError::Io(format!("file writer: {e}")))?
            .map_err(|e| SendError::Io(format!("file transport: {e}")))
    }
}

fn write_durably(
    dir: &std::path::Path,
    control_id: &str,
    bytes: &[u8],
) -> std::io::Result<PathBuf> {
    use std::io::Write;
    // MSH-10 is ours ('IARI' + digits), but keep the name safe whatever the database holds.
    let safe: String = control_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    std::fs::create_dir_all(dir)?;
    let final_path = dir.join(format!("{safe}.hl7"));
    let tmp = dir.join(format!(".{safe}.hl7.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, &final_path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(final_path)
}
