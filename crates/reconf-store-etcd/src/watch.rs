//! Following the head key with an etcd watch, for `wait_for_head`.
//!
//! The watch only says the head moved; records are always read through the journal's
//! checked read path. So the rules here are about never missing a move: a watch resumes
//! from the revision after the last event it delivered, and when etcd has compacted that
//! revision away, the head is read afresh and the watch starts after the read.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, WatchOptions};
use reconf_effects::HeadSignal;

use crate::journal::Counters;
use crate::layout::Head;

pub(crate) async fn follow_head(
    client: Client,
    key: String,
    signal: HeadSignal,
    mut next_revision: i64,
    counters: Arc<Counters>,
) {
    let mut pause = Duration::from_millis(50);
    loop {
        // A compacted watch is counted before the head is re-read, so anyone who learns the
        // new head from that read also sees the restart counted.
        let mut counted = false;
        let mut watcher = client.watch_client();
        let options = WatchOptions::new().with_start_revision(next_revision);
        match watcher.watch(key.clone(), Some(options)).await {
            Ok(mut stream) => loop {
                match stream.message().await {
                    Ok(Some(response)) => {
                        pause = Duration::from_millis(50);
                        if response.compact_revision() > 0 || response.canceled() {
                            tracing::info!(name: "reconf.journal.watch_compacted", compact_revision = response.compact_revision());
                            counters.watch_restarts.fetch_add(1, Ordering::Relaxed);
                            counted = true;
                            next_revision = reread(&client, &key, &signal).await.unwrap_or(next_revision);
                            break;
                        }
                        for event in response.events() {
                            if let Some(kv) = event.kv() {
                                if let Ok(head) = Head::decode(kv.value()) {
                                    signal.publish(head.sequence);
                                }
                                next_revision = next_revision.max(kv.mod_revision() + 1);
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(name: "reconf.journal.watch_lost", error = %e);
                        break;
                    }
                }
            },
            Err(e) => tracing::debug!(name: "reconf.journal.watch_failed", error = %e),
        }
        if !counted {
            counters.watch_restarts.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// Reads the head, publishes it, and returns the revision to watch from.
async fn reread(client: &Client, key: &str, signal: &HeadSignal) -> Option<i64> {
    let mut kv = client.kv_client();
    let response = kv.get(key, None).await.ok()?;
    if let Some(head) = response.kvs().first().and_then(|kv| Head::decode(kv.value()).ok()) {
        signal.publish(head.sequence);
    }
    response.header().map(|h| h.revision() + 1)
}
