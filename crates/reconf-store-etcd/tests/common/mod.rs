//! A loopback TCP proxy between a journal and etcd that can drop replies, swallow requests
//! and sever its connections: how a test makes a commit's reply get lost on purpose.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use reconf_core::{AuthorityId, Change, Fact, SessionId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Forward both ways.
    Pass = 0,
    /// Forward requests, discard replies: a request lands, its answer is lost.
    DropReplies = 1,
    /// Discard both ways: a request never reaches etcd.
    Blackhole = 2,
}

pub struct Proxy {
    pub url: String,
    mode: Arc<AtomicU8>,
    sever: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A proxy on a free 127.0.0.1 port in front of `upstream` (`http://127.0.0.1:port`).
    pub async fn start(upstream: &str) -> Self {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mode = Arc::new(AtomicU8::new(Mode::Pass as u8));
        let (sever, _) = watch::channel(0u64);
        let task = {
            let (mode, sever) = (Arc::clone(&mode), sever.clone());
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        panic!("the proxy could not reach etcd at {upstream}");
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::spawn(pump(cr, sw, Arc::clone(&mode), sever.subscribe(), false));
                    tokio::spawn(pump(sr, cw, Arc::clone(&mode), sever.subscribe(), true));
                }
            })
        };
        Self { url, mode, sever, task }
    }

    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Closes every connection made so far (the client reconnects on its next request).
    pub fn sever(&self) {
        self.sever.send_modify(|n| *n += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.sever();
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mode: Arc<AtomicU8>,
    mut sever: watch::Receiver<u64>,
    reply: bool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            _ = sever.changed() => return,
            read = from.read(&mut buf) => {
                let n = match read { Ok(0) | Err(_) => return, Ok(n) => n };
                let m = mode.load(Ordering::SeqCst);
                let drop = m == Mode::Blackhole as u8 || (reply && m == Mode::DropReplies as u8);
                if !drop && to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A distinct fact per `n`.
pub fn fact(n: u128) -> Fact {
    Fact::new(Change::SessionClosed {
        session: SessionId::from_u128(n),
        authority: AuthorityId::from_label("etcd-test"),
    })
}
