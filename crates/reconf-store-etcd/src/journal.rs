//! [`EtcdJournal`]: the handle, its commit transaction and the resolution of lost replies.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, GetResponse, KeyValue, SortOrder,
    SortTarget, Txn, TxnOp, TxnOpResponse, TxnResponse,
};
use reconf_core::Fact;
use reconf_effects::codec::{self, Hash, GENESIS_HASH};
use reconf_effects::{
    Committed, Corruption, ExpectedHead, HeadSignal, JournalEffects, JournalError, JournalRecord, Sequence,
    StoredSnapshot,
};
use tokio::task::JoinHandle;

use crate::layout::{self, CommitId, Head, Keys, Manifest, FORMAT_VERSION};
use crate::options::EtcdJournalOptions;
use crate::watch;

/// Chunks fetched per range request of a read. Each chunk is at most `max_commit_bytes`,
/// so a page's reply is bounded by this many commits; the client accepts replies that
/// large (see [`EtcdJournal::reply_limit`]) rather than tonic's default 4 MiB.
const PAGE_CHUNKS: i64 = 16;
/// Bytes of a snapshot per part key (two parts fit one default-sized etcd request).
const PART_BYTES: usize = 512 * 1024;

/// What [`EtcdJournal::verify`] checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// The head, or `None` for an empty journal.
    pub head: Option<Sequence>,
    /// Records checked.
    pub records: u64,
    /// The chain hash at the head (the genesis hash when empty).
    pub chain_hash: Hash,
}

/// What the journal has done that an operator would want to count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EtcdJournalStats {
    /// Commits that lost the head to another writer and were answered `Conflict`.
    pub conflicts: u64,
    /// `ExpectedHead::Any` commits retried because another writer got there first.
    pub cas_retries: u64,
    /// Commits whose reply was lost and which turned out to have landed.
    pub resolved_landed: u64,
    /// Commits whose reply was lost, which had not landed, and were fenced off (and then
    /// retried).
    pub resolved_not_landed: u64,
    /// Commits whose outcome could not be learnt within the resolve timeout.
    pub unresolved: u64,
    /// Times the head watch was re-established.
    pub watch_restarts: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    conflicts: AtomicU64,
    cas_retries: AtomicU64,
    resolved_landed: AtomicU64,
    resolved_not_landed: AtomicU64,
    unresolved: AtomicU64,
    pub(crate) watch_restarts: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A journal on etcd, shared by every manager that connects to the same prefix.
///
/// Each commit is one etcd transaction: *if the head key still holds the head this commit
/// builds on, write the commit's chunk and the new head*. A commit whose reply is lost
/// (timeout, leader change, reset connection) is resolved before it answers: the journal
/// fences the head it built on (one more transaction that replaces the head value only if
/// it is unchanged), so the lost write can no longer land later, and then reads whether
/// its own commit id is in the journal. The caller is told `Ok` exactly when the records
/// are there. Reads are linearizable (etcd's default). [`JournalEffects::wait_for_head`]
/// follows an etcd watch on the head key, resumed after disconnects and re-read after
/// compaction.
pub struct EtcdJournal {
    client: Client,
    keys: Keys,
    options: EtcdJournalOptions,
    /// The last head this handle saw (`None`: the key was absent), the base of the next
    /// commit. A stale value only costs a failed compare, which returns the real head.
    known: Mutex<Option<Head>>,
    signal: HeadSignal,
    counters: Arc<Counters>,
    watcher: JoinHandle<()>,
}

impl std::fmt::Debug for EtcdJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdJournal")
            .field("endpoints", &self.options.endpoints)
            .field("prefix", &self.options.prefix)
            .field("head", &self.signal.current())
            .finish_non_exhaustive()
    }
}

impl Drop for EtcdJournal {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

pub(crate) fn storage(what: &str, e: impl std::fmt::Display) -> JournalError {
    JournalError::Storage { reason: format!("etcd {what}: {e}") }
}

fn sequence_of(head: &Option<Head>) -> Sequence {
    head.map_or(0, |h| h.sequence)
}

fn visible(sequence: Sequence) -> Option<Sequence> {
    (sequence > 0).then_some(sequence)
}

/// `base` again under a fresh commit id: writing it makes every transaction that compared
/// `base` fail, without moving the head.
fn fence_of(base: &Option<Head>) -> Head {
    match base {
        None => Head::fenced_empty(rand::random()),
        Some(h) => Head { commit: rand::random(), ..*h },
    }
}

/// The compare a commit building on `base` makes.
fn unchanged(keys: &Keys, base: &Option<Head>) -> Compare {
    match base {
        None => Compare::version(keys.head(), CompareOp::Equal, 0),
        Some(h) => Compare::value(keys.head(), CompareOp::Equal, h.encode()),
    }
}

fn decode_head_kv(kv: Option<&KeyValue>) -> Result<Option<Head>, JournalError> {
    kv.map(|kv| Head::decode(kv.value())).transpose()
}

fn gets(response: &TxnResponse) -> Vec<GetResponse> {
    response
        .op_responses()
        .into_iter()
        .filter_map(|r| match r {
            TxnOpResponse::Get(g) => Some(g),
            _ => None,
        })
        .collect()
}

/// Extra compares and writes a commit makes in its transaction, and what to read when
/// they fail (the live-owner registry's records).
#[derive(Default)]
pub(crate) struct Guard {
    pub(crate) compares: Vec<Compare>,
    pub(crate) ops: Vec<TxnOp>,
    pub(crate) reads: Vec<TxnOp>,
}

/// Why a guarded commit did not land.
pub(crate) enum Guarded {
    Journal(JournalError),
    /// The head was as expected but a guard's compare failed: the guard's reads, in order.
    Guard(Vec<GetResponse>),
    /// A write without facts lost its reply. When it compared the head, that head has been
    /// fenced since, so the write cannot land any more; the caller reads what is there.
    Lost(String),
}

impl From<JournalError> for Guarded {
    fn from(e: JournalError) -> Self {
        Guarded::Journal(e)
    }
}

pub(crate) fn revision_of(r: &TxnResponse) -> i64 {
    r.header().map_or(0, |h| h.revision())
}

enum Resolved {
    /// At the revision of the read that found it.
    Landed(i64),
    NotLanded(Option<Head>),
    Unknown(String),
}

impl EtcdJournal {
    /// Connects to the cluster, creates the journal under the prefix if there is none, and
    /// checks what is there: the format version, the head, and that the head's chunk exists
    /// and ends with the head's chain hash.
    ///
    /// # Errors
    /// [`JournalError::Storage`] when the cluster cannot be reached in time,
    /// [`JournalError::UnsupportedFormat`] for a journal written by a newer format, and
    /// [`JournalError::Corrupt`] when the head or the record it names is damaged.
    pub async fn connect(options: EtcdJournalOptions) -> Result<Self, JournalError> {
        if options.endpoints.is_empty() {
            return Err(storage("connect", "no endpoints given"));
        }
        let connect = ConnectOptions::new()
            .with_connect_timeout(options.connect_timeout)
            .with_timeout(options.request_timeout)
            .with_keep_alive(Duration::from_secs(2), options.request_timeout);
        let client = tokio::time::timeout(
            options.connect_timeout,
            Client::connect(options.endpoints.clone(), Some(connect)),
        )
        .await
        .map_err(|_| storage("connect", format!("no answer within {:?}", options.connect_timeout)))?
        .map_err(|e| storage("connect", e))?;
        let keys = Keys::new(&options.prefix);
        let mut journal = Self {
            client,
            keys,
            known: Mutex::new(None),
            signal: HeadSignal::new(0),
            counters: Arc::default(),
            watcher: tokio::spawn(async {}),
            options,
        };
        // A member that is down can take the first requests (the client balances over every
        // endpoint), so a storage failure is retried until the connect timeout; what the
        // checks find wrong with the data is not.
        let deadline = Instant::now() + journal.options.connect_timeout;
        let mut pause = Duration::from_millis(20);
        let (head, revision) = loop {
            match journal.startup_checks().await {
                Err(JournalError::Storage { reason }) if Instant::now() < deadline => {
                    tracing::debug!(name: "reconf.journal.connect_retry", reason = %reason);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                outcome => break outcome?,
            }
        };
        journal.signal = HeadSignal::new(sequence_of(&head));
        journal.watcher = tokio::spawn(watch::follow_head(
            journal.client.clone(),
            journal.keys.head(),
            journal.signal.clone(),
            revision + 1,
            Arc::clone(&journal.counters),
        ));
        tracing::info!(name: "reconf.journal.opened", prefix = %journal.options.prefix, head = sequence_of(&head), "etcd journal connected");
        Ok(journal)
    }

    async fn startup_checks(&self) -> Result<(Option<Head>, i64), JournalError> {
        self.check_format().await?;
        let (head, revision) = self.fetch_head().await?;
        self.check_head(&head).await?;
        Ok((head, revision))
    }

    /// What this handle has counted so far.
    pub fn stats(&self) -> EtcdJournalStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        EtcdJournalStats {
            conflicts: get(&c.conflicts),
            cas_retries: get(&c.cas_retries),
            resolved_landed: get(&c.resolved_landed),
            resolved_not_landed: get(&c.resolved_not_landed),
            unresolved: get(&c.unresolved),
            watch_restarts: get(&c.watch_restarts),
        }
    }

    /// The options it was connected with.
    pub fn options(&self) -> &EtcdJournalOptions {
        &self.options
    }

    async fn timed<T, E: std::fmt::Display>(
        &self,
        what: &str,
        call: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(self.options.request_timeout, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(format!("etcd {what}: {e}")),
            Err(_) => Err(format!("etcd {what}: no answer within {:?}", self.options.request_timeout)),
        }
    }

    async fn get(
        &self,
        what: &str,
        key: String,
        options: Option<GetOptions>,
    ) -> Result<GetResponse, JournalError> {
        // Reads are idempotent, so one that failed (the client may route it to a member that
        // is down; a leader election may be under way) is tried again, for up to one
        // request timeout in all, before it is reported.
        let deadline = Instant::now() + self.options.request_timeout;
        let mut pause = Duration::from_millis(10);
        loop {
            let mut kv = self.client.kv_client().max_decoding_message_size(self.reply_limit());
            match self.timed(what, kv.get(key.clone(), options.clone())).await {
                Ok(response) => return Ok(response),
                Err(reason) if Instant::now() + pause >= deadline => {
                    return Err(JournalError::Storage { reason })
                }
                Err(_) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
            }
        }
    }

    /// The largest reply a read may get: a page of the largest chunks, with room for keys
    /// and headers.
    fn reply_limit(&self) -> usize {
        let page = PAGE_CHUNKS as usize * (self.options.max_commit_bytes + 4096);
        page.max(codec_reply_floor()) + (1 << 20)
    }

    async fn check_format(&self) -> Result<(), JournalError> {
        let key = self.keys.format();
        let txn = Txn::new()
            .when([Compare::version(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.clone(), layout::encode_format(FORMAT_VERSION), None)])
            .or_else([TxnOp::get(key, None)]);
        let mut kv = self.client.kv_client();
        let response = self
            .timed("format check", kv.txn(txn))
            .await
            .map_err(|reason| JournalError::Storage { reason })?;
        if response.succeeded() {
            return Ok(());
        }
        let stored =
            gets(&response).into_iter().next().and_then(|g| g.kvs().first().map(|kv| kv.value().to_vec()));
        let Some(stored) = stored else { return Ok(()) };
        let found = layout::decode_format(&stored)?;
        if found > FORMAT_VERSION {
            return Err(JournalError::UnsupportedFormat { found, supported: FORMAT_VERSION });
        }
        if found < FORMAT_VERSION {
            return Err(codec::metadata(0, format!("format version {found} was never written by reconf")));
        }
        Ok(())
    }

    /// Reads the head (linearizably) and remembers it; returns it with the store revision.
    async fn fetch_head(&self) -> Result<(Option<Head>, i64), JournalError> {
        let response = self.get("head read", self.keys.head(), None).await?;
        let head = decode_head_kv(response.kvs().first())?;
        self.remember(head);
        Ok((head, response.header().map_or(0, |h| h.revision())))
    }

    fn remember(&self, head: Option<Head>) {
        *self.known.lock().unwrap_or_else(PoisonError::into_inner) = head;
        self.signal.publish(sequence_of(&head));
    }

    fn known(&self) -> Option<Head> {
        *self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The chunk ending at the head must exist and end with the head's chain hash.
    async fn check_head(&self, head: &Option<Head>) -> Result<(), JournalError> {
        let Some(head) = head.filter(|h| h.sequence > 0) else { return Ok(()) };
        let response = self.get("head record read", self.keys.chunk(head.sequence), None).await?;
        let Some(kv) = response.kvs().first() else {
            return Err(codec::metadata(head.sequence, "the head names a record that is not stored"));
        };
        let chunk = layout::decode_chunk(head.sequence, kv.value())?;
        let last = chunk.frames.last().ok_or_else(|| codec::metadata(head.sequence, "empty chunk"))?;
        let frame = codec::decode_record(head.sequence, last)?;
        if frame.hash != head.hash {
            return Err(codec::metadata(head.sequence, "the head's chain hash differs from its record's"));
        }
        Ok(())
    }

    /// The base for a commit expecting `expected`: the remembered head if it satisfies the
    /// expectation (any head does for `Any`: a stale one only fails the compare, which
    /// answers with the real head), else a fresh read.
    async fn base_for(&self, expected: ExpectedHead) -> Result<Option<Head>, JournalError> {
        let known = self.known();
        if expected.matches(visible(sequence_of(&known))) {
            return Ok(known);
        }
        Ok(self.fetch_head().await?.0)
    }

    /// Walks the whole journal from sequence 1 to the head and checks every record: chunk
    /// headers, frames, checksums, contiguity, the hash chain, fact decoding, and agreement
    /// with the head. Returns the head.
    ///
    /// # Errors
    /// The first problem, as [`JournalError::Corrupt`] naming its sequence.
    pub async fn verify(&self) -> Result<VerifyReport, JournalError> {
        let (head, _) = self.fetch_head().await?;
        let head_sequence = sequence_of(&head);
        let mut from = 1;
        let mut hash = GENESIS_HASH;
        while from <= head_sequence {
            let page = self.read_checked(from, 4096, Some(hash)).await?;
            let Some(last) = page.records.last() else {
                return Err(codec::corrupt(from, Corruption::Gap { found: head_sequence + 1 }));
            };
            from = last.sequence + 1;
            hash = page.hash;
        }
        if from != head_sequence + 1 {
            return Err(codec::metadata(head_sequence, "records stored past the head"));
        }
        if head_sequence > 0 && head.map(|h| h.hash) != Some(hash) {
            return Err(codec::metadata(head_sequence, "the head's chain hash differs from the records'"));
        }
        Ok(VerifyReport { head: visible(head_sequence), records: head_sequence, chain_hash: hash })
    }

    /// The size of the etcd member's database (the whole store, as `etcdctl endpoint
    /// status` reports it), for a figure of what the journal occupies.
    ///
    /// # Errors
    /// [`JournalError::Storage`] when the member does not answer.
    pub async fn store_bytes(&self) -> Result<u64, JournalError> {
        let mut maintenance = self.client.maintenance_client();
        let status = self
            .timed("status", maintenance.status())
            .await
            .map_err(|reason| JournalError::Storage { reason })?;
        Ok(u64::try_from(status.db_size()).unwrap_or(0))
    }

    /// Up to `limit` checked records from `from`, chained to `prev` when it is given (the
    /// hash of record `from - 1`), else to the stored hash of record `from - 1`.
    async fn read_checked(
        &self,
        from: Sequence,
        limit: usize,
        prev: Option<Hash>,
    ) -> Result<Page, JournalError> {
        let from = from.max(1);
        let mut prev = if from == 1 { Some(GENESIS_HASH) } else { prev };
        let mut cursor = if prev.is_some() { from } else { from - 1 };
        // Frames before this are neither returned nor needed for the chain: with `prev`
        // given the chain starts at `from`, without it at the stored record `from - 1`.
        let first_needed = cursor;
        let mut records = Vec::new();
        let mut expected_first: Option<Sequence> = None;
        let end = etcd_client::GetOptions::new().with_range(prefix_end(&self.keys.records()));
        loop {
            let options = end.clone().with_limit(PAGE_CHUNKS);
            let response = self.get("record read", self.keys.chunk(cursor), Some(options)).await?;
            let kvs = response.kvs();
            for kv in kvs {
                let Some(last) = self.keys.sequence_in(kv.key(), &self.keys.records()) else {
                    return Err(codec::metadata(cursor, "a record key that is not a sequence"));
                };
                let chunk = layout::decode_chunk(last, kv.value())?;
                let must_start = expected_first.unwrap_or(cursor);
                let starts_ok = match expected_first {
                    Some(first) => chunk.first == first,
                    None => chunk.first <= cursor,
                };
                if !starts_ok {
                    return Err(codec::corrupt(must_start, Corruption::Gap { found: chunk.first }));
                }
                expected_first = Some(last + 1);
                for (frame, sequence) in chunk.frames.iter().zip(chunk.first..) {
                    if sequence < first_needed {
                        continue;
                    }
                    let frame = codec::decode_record(sequence, frame)?;
                    if let Some(p) = prev {
                        codec::check_chain(sequence, &p, &frame)?;
                    }
                    prev = Some(frame.hash);
                    if sequence >= from {
                        records.push(JournalRecord {
                            sequence,
                            fact: codec::decode_fact(sequence, frame.payload)?,
                        });
                        if records.len() == limit {
                            return Ok(Page { records, hash: frame.hash });
                        }
                    }
                }
                cursor = last + 1;
            }
            if (kvs.len() as i64) < PAGE_CHUNKS {
                return Ok(Page { records, hash: prev.unwrap_or(GENESIS_HASH) });
            }
        }
    }

    /// Learns whether the commit building on `base` with id `commit` (ending at `last`)
    /// landed, fencing `base` so that it cannot land afterwards.
    async fn resolve(&self, base: Option<Head>, last: Sequence, commit: CommitId) -> Resolved {
        let deadline = Instant::now() + self.options.resolve_timeout;
        let mut pause = Duration::from_millis(20);
        let mut last_error = String::new();
        while Instant::now() < deadline {
            let fence = fence_of(&base);
            let txn = Txn::new()
                .when([unchanged(&self.keys, &base)])
                .and_then([TxnOp::put(self.keys.head(), fence.encode(), None)])
                .or_else([TxnOp::get(self.keys.head(), None), TxnOp::get(self.keys.chunk(last), None)]);
            let mut kv = self.client.kv_client();
            match self.timed("fence", kv.txn(txn)).await {
                Ok(r) if r.succeeded() => {
                    self.remember(Some(fence));
                    return Resolved::NotLanded(Some(fence));
                }
                Ok(r) => {
                    let responses = gets(&r);
                    let head = responses.first().map(|g| decode_head_kv(g.kvs().first()));
                    // The chunk's own revision is the commit's: what a follower comparing
                    // revisions needs.
                    let ours = responses.get(1).and_then(|g| g.kvs().first()).and_then(|kv| {
                        let chunk = layout::decode_chunk(last, kv.value()).ok()?;
                        (chunk.commit == commit).then_some(kv.mod_revision())
                    });
                    let head = match head {
                        Some(Ok(h)) => h,
                        Some(Err(e)) => return Resolved::Unknown(format!("the head is unreadable: {e}")),
                        None => return Resolved::Unknown("etcd answered without the head".to_owned()),
                    };
                    self.remember(head);
                    return match ours {
                        Some(revision) => Resolved::Landed(revision),
                        None => Resolved::NotLanded(head),
                    };
                }
                Err(e) => last_error = e,
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
        Resolved::Unknown(last_error)
    }

    /// Commits `batch` after `expected` with `guard`'s compares and writes in the same
    /// transaction; returns the records written and the revision of the write.
    pub(crate) async fn commit_guarded(
        &self,
        batch: &[Fact],
        expected: ExpectedHead,
        guard: &Guard,
    ) -> Result<(Committed, i64), Guarded> {
        if batch.is_empty() {
            return Err(JournalError::EmptyBatch.into());
        }
        let payloads = batch.iter().map(codec::encode_fact).collect::<Result<Vec<_>, _>>()?;
        let size: usize = payloads.iter().map(|p| p.len() + codec::RECORD_HEADER_LEN + 4).sum();
        if size > self.options.max_commit_bytes {
            return Err(Guarded::Journal(JournalError::Encode {
                reason: format!(
                    "a commit of {} facts is {size} bytes, over the etcd journal's limit of {} (a commit is never split)",
                    payloads.len(),
                    self.options.max_commit_bytes
                ),
            }));
        }
        let deadline = Instant::now() + self.options.resolve_timeout;
        let mut base = self.base_for(expected).await?;
        let mut pause = Duration::from_millis(1);
        loop {
            let base_sequence = sequence_of(&base);
            if !expected.matches(visible(base_sequence)) {
                bump(&self.counters.conflicts);
                return Err(JournalError::Conflict { expected, actual: visible(base_sequence) }.into());
            }
            let commit: CommitId = rand::random();
            let first = base_sequence + 1;
            let chunk =
                layout::encode_chunk(&commit, first, &base.map_or(GENESIS_HASH, |h| h.hash), &payloads)?;
            let last = first + payloads.len() as u64 - 1;
            let head = Head { sequence: last, hash: chunk.hash, commit };
            let mut when = vec![unchanged(&self.keys, &base)];
            when.extend(guard.compares.iter().cloned());
            let mut then = vec![
                TxnOp::put(self.keys.chunk(last), chunk.bytes, None),
                TxnOp::put(self.keys.head(), head.encode(), None),
            ];
            then.extend(guard.ops.iter().cloned());
            let mut otherwise = vec![TxnOp::get(self.keys.head(), None)];
            otherwise.extend(guard.reads.iter().cloned());
            let txn = Txn::new().when(when).and_then(then).or_else(otherwise);
            let mut kv = self.client.kv_client();
            let outcome = self.timed("commit", kv.txn(txn)).await;
            let next_base = match outcome {
                Ok(r) if r.succeeded() => {
                    self.remember(Some(head));
                    return Ok((Committed { first, last }, revision_of(&r)));
                }
                Ok(r) => {
                    let mut responses = gets(&r);
                    let now =
                        responses.first().map(|g| decode_head_kv(g.kvs().first())).transpose()?.flatten();
                    self.remember(now);
                    if now == base && !guard.compares.is_empty() {
                        // The head is as expected, so a guard's compare failed.
                        responses.remove(0);
                        return Err(Guarded::Guard(responses));
                    }
                    now
                }
                Err(reason) => match self.resolve(base, last, commit).await {
                    Resolved::Landed(revision) => {
                        bump(&self.counters.resolved_landed);
                        tracing::info!(name: "reconf.journal.commit_resolved", first, last, landed = true, reason = %reason);
                        return Ok((Committed { first, last }, revision));
                    }
                    Resolved::NotLanded(now) => {
                        bump(&self.counters.resolved_not_landed);
                        tracing::info!(name: "reconf.journal.commit_resolved", first, last, landed = false, reason = %reason);
                        now
                    }
                    Resolved::Unknown(why) => {
                        bump(&self.counters.unresolved);
                        return Err(JournalError::Ambiguous {
                            reason: format!("{reason}; its outcome could not be learnt: {why}"),
                        }
                        .into());
                    }
                },
            };
            // A head at the same sequence was only fenced: the expectation still holds.
            if sequence_of(&next_base) != base_sequence && expected == ExpectedHead::Any {
                bump(&self.counters.cas_retries);
            }
            if Instant::now() > deadline {
                return Err(JournalError::Storage {
                    reason: format!(
                        "etcd commit: the head kept moving for {:?}",
                        self.options.resolve_timeout
                    ),
                }
                .into());
            }
            if expected == ExpectedHead::Any && sequence_of(&next_base) != base_sequence {
                // Spread competing writers so the next attempt is not another collision.
                let jitter = Duration::from_micros(rand::random::<u64>() % (pause.as_micros() as u64 + 1));
                tokio::time::sleep(jitter).await;
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            base = next_base;
        }
    }

    /// One transaction of `guard`'s compares and writes alone, also comparing the head with
    /// `expected` when it is given; returns the write's revision.
    pub(crate) async fn guarded_write(
        &self,
        expected: Option<ExpectedHead>,
        guard: &Guard,
    ) -> Result<i64, Guarded> {
        let base = match expected {
            Some(expected) => {
                let base = self.base_for(expected).await?;
                if !expected.matches(visible(sequence_of(&base))) {
                    bump(&self.counters.conflicts);
                    return Err(
                        JournalError::Conflict { expected, actual: visible(sequence_of(&base)) }.into()
                    );
                }
                Some(base)
            }
            None => None,
        };
        let mut when = Vec::new();
        let mut otherwise = Vec::new();
        if let Some(base) = &base {
            when.push(unchanged(&self.keys, base));
            otherwise.push(TxnOp::get(self.keys.head(), None));
        }
        when.extend(guard.compares.iter().cloned());
        otherwise.extend(guard.reads.iter().cloned());
        let txn = Txn::new().when(when).and_then(guard.ops.clone()).or_else(otherwise);
        let mut kv = self.client.kv_client();
        match self.timed("owner write", kv.txn(txn)).await {
            Ok(r) if r.succeeded() => Ok(revision_of(&r)),
            Ok(r) => {
                let mut responses = gets(&r);
                let (Some(base), Some(expected)) = (base, expected) else {
                    return Err(Guarded::Guard(responses));
                };
                let now = responses.first().map(|g| decode_head_kv(g.kvs().first())).transpose()?.flatten();
                self.remember(now);
                responses.remove(0);
                if now == base {
                    return Err(Guarded::Guard(responses));
                }
                // Only fenced (same sequence, fresh id): the expectation still holds and
                // the caller may try again.
                if expected.matches(visible(sequence_of(&now))) {
                    return Err(Guarded::Lost("the head was fenced".to_owned()));
                }
                bump(&self.counters.conflicts);
                Err(JournalError::Conflict { expected, actual: visible(sequence_of(&now)) }.into())
            }
            Err(reason) => {
                if let Some(base) = base {
                    self.fence(base).await?;
                }
                Err(Guarded::Lost(reason))
            }
        }
    }

    /// Replaces the head `base` with itself under a fresh commit id, if it is still the
    /// head, so a transaction that compared `base` can no longer land.
    async fn fence(&self, base: Option<Head>) -> Result<(), JournalError> {
        let deadline = Instant::now() + self.options.resolve_timeout;
        let mut pause = Duration::from_millis(20);
        loop {
            let fence = fence_of(&base);
            let txn = Txn::new()
                .when([unchanged(&self.keys, &base)])
                .and_then([TxnOp::put(self.keys.head(), fence.encode(), None)])
                .or_else([TxnOp::get(self.keys.head(), None)]);
            let mut kv = self.client.kv_client();
            match self.timed("fence", kv.txn(txn)).await {
                Ok(r) if r.succeeded() => {
                    self.remember(Some(fence));
                    return Ok(());
                }
                Ok(r) => {
                    let now =
                        gets(&r).first().map(|g| decode_head_kv(g.kvs().first())).transpose()?.flatten();
                    self.remember(now);
                    return Ok(());
                }
                Err(reason) if Instant::now() + pause >= deadline => {
                    return Err(JournalError::Ambiguous { reason: format!("fencing a lost write: {reason}") })
                }
                Err(_) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
            }
        }
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn keys(&self) -> &Keys {
        &self.keys
    }

    pub(crate) async fn timed_get(
        &self,
        what: &str,
        key: String,
        options: Option<GetOptions>,
    ) -> Result<GetResponse, JournalError> {
        self.get(what, key, options).await
    }

    async fn put_all(&self, what: &str, puts: Vec<TxnOp>) -> Result<(), JournalError> {
        let mut kv = self.client.kv_client();
        self.timed(what, kv.txn(Txn::new().and_then(puts)))
            .await
            .map(|_| ())
            .map_err(|reason| JournalError::Storage { reason })
    }

    async fn delete_prefix(&self, what: &str, prefix: String) -> Result<(), JournalError> {
        let mut kv = self.client.kv_client();
        self.timed(what, kv.delete(prefix, Some(DeleteOptions::new().with_prefix())))
            .await
            .map(|_| ())
            .map_err(|reason| JournalError::Storage { reason })
    }

    /// Keeps the newest `snapshots_to_keep` snapshots and the parts of their manifests.
    async fn prune_snapshots(&self, sequence: Sequence, write: &CommitId) -> Result<(), JournalError> {
        let parts = self
            .get(
                "snapshot parts list",
                self.keys.parts_of(sequence),
                Some(GetOptions::new().with_prefix().with_keys_only()),
            )
            .await?;
        let ours = self.keys.parts(sequence, write);
        let mut stale: Vec<String> = parts
            .kvs()
            .iter()
            .filter_map(|kv| std::str::from_utf8(kv.key()).ok())
            .filter(|k| !k.starts_with(&ours))
            .filter_map(|k| k.rsplit_once('/').map(|(dir, _)| format!("{dir}/")))
            .collect();
        stale.dedup();
        for prefix in stale {
            self.delete_prefix("stale snapshot parts delete", prefix).await?;
        }
        let manifests = self
            .get(
                "snapshot list",
                self.keys.manifests(),
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_keys_only()
                        .with_sort(SortTarget::Key, SortOrder::Descend),
                ),
            )
            .await?;
        for kv in manifests.kvs().iter().skip(self.options.snapshots_to_keep) {
            if let Some(old) = self.keys.sequence_in(kv.key(), &self.keys.manifests()) {
                let mut client = self.client.kv_client();
                self.timed("snapshot delete", client.delete(self.keys.manifest(old), None))
                    .await
                    .map_err(|reason| JournalError::Storage { reason })?;
                self.delete_prefix("snapshot parts delete", self.keys.parts_of(old)).await?;
            }
        }
        Ok(())
    }
}

/// Replies up to tonic's default are always accepted.
const fn codec_reply_floor() -> usize {
    4 << 20
}

struct Page {
    records: Vec<JournalRecord>,
    /// The chain hash of the last record read (or of the record before `from`).
    hash: Hash,
}

/// The first key after every key starting with `prefix`.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[async_trait]
impl JournalEffects for EtcdJournal {
    async fn commit(&self, batch: Vec<Fact>, expected: ExpectedHead) -> Result<Committed, JournalError> {
        match self.commit_guarded(&batch, expected, &Guard::default()).await {
            Ok((committed, _)) => Ok(committed),
            Err(Guarded::Journal(e)) => Err(e),
            // No guard compares were made, so none failed.
            Err(Guarded::Guard(_)) => Err(storage("commit", "a compare the commit did not make failed")),
            Err(Guarded::Lost(reason)) => Err(JournalError::Ambiguous { reason }),
        }
    }

    async fn read(&self, from: Sequence, limit: usize) -> Result<Vec<JournalRecord>, JournalError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let result = self.read_checked(from, limit, None).await.map(|p| p.records);
        if let Err(JournalError::Corrupt { sequence, corruption }) = &result {
            tracing::warn!(name: "reconf.journal.corrupt", sequence, corruption = %corruption, "corrupt record read");
        }
        result
    }

    async fn head(&self) -> Result<Option<Sequence>, JournalError> {
        Ok(visible(sequence_of(&self.fetch_head().await?.0)))
    }

    async fn write_snapshot(&self, sequence: Sequence, bytes: Vec<u8>) -> Result<(), JournalError> {
        let head = visible(sequence_of(&self.fetch_head().await?.0));
        if sequence == 0 || head.is_none_or(|h| sequence > h) {
            return Err(JournalError::SnapshotOutOfRange { sequence, head });
        }
        let write: CommitId = rand::random();
        let framed = codec::encode_snapshot(sequence, &bytes);
        let header = framed.get(..codec::SNAPSHOT_HEADER_LEN).unwrap_or_default().to_vec();
        let parts: Vec<&[u8]> = bytes.chunks(PART_BYTES).collect();
        for (n, pair) in parts.chunks(2).enumerate() {
            let puts = pair
                .iter()
                .enumerate()
                .map(|(i, part)| {
                    TxnOp::put(self.keys.part(sequence, &write, (n * 2 + i) as u64), part.to_vec(), None)
                })
                .collect();
            self.put_all("snapshot part write", puts).await?;
        }
        let count = u32::try_from(parts.len())
            .map_err(|_| JournalError::Encode { reason: "snapshot too large".to_owned() })?;
        let manifest = Manifest { write, parts: count, header };
        self.put_all(
            "snapshot manifest write",
            vec![TxnOp::put(self.keys.manifest(sequence), manifest.encode(), None)],
        )
        .await?;
        self.prune_snapshots(sequence, &write).await
    }

    async fn latest_snapshot(&self) -> Result<Option<StoredSnapshot>, JournalError> {
        let options =
            GetOptions::new().with_prefix().with_sort(SortTarget::Key, SortOrder::Descend).with_limit(1);
        let response = self.get("snapshot read", self.keys.manifests(), Some(options)).await?;
        let Some(kv) = response.kvs().first() else { return Ok(None) };
        let Some(sequence) = self.keys.sequence_in(kv.key(), &self.keys.manifests()) else {
            return Err(codec::metadata(0, "a snapshot key that is not a sequence"));
        };
        let manifest = Manifest::decode(sequence, kv.value())?;
        let mut framed = manifest.header.clone();
        for part in 0..u64::from(manifest.parts) {
            let response =
                self.get("snapshot part read", self.keys.part(sequence, &manifest.write, part), None).await?;
            let Some(kv) = response.kvs().first() else {
                return Err(codec::metadata(
                    sequence,
                    format!("snapshot at {sequence}: part {part} is missing"),
                ));
            };
            framed.extend_from_slice(kv.value());
        }
        let bytes = codec::decode_snapshot(sequence, &framed)?;
        Ok(Some(StoredSnapshot { sequence, bytes }))
    }

    async fn wait_for_head(&self, after: Sequence) -> Result<Sequence, JournalError> {
        Ok(self.signal.wait_past(after).await)
    }
}
