//! # reconf-bench
//!
//! Baselines for the benchmarks in `benches/`, measured in the same process as what they
//! are compared with: raw RocksDB synced writes of the journal's record size (one writer,
//! 64 writer threads, one writer with 64 records per batch) and a sample delegation fact.
//! Not published; nothing depends on it.
//!
//! - `cargo bench -p reconf-bench --bench journal`: the RocksDB journal's commits against
//!   raw synced writes.
//! - `cargo bench -p reconf-bench --bench manager`: the manager over 1e6 live sessions, 64
//!   callers, on the memory and the RocksDB journal, against the core alone and raw RocksDB.
//!
//! - `cargo bench -p reconf-bench --bench etcd`: the manager on a loopback etcd (1 and 3
//!   managers) against raw etcd transactions, and recovery from etcd.
//!
//! [`workload`] holds the sessions and authorities the manager benches share.
//!
//! It must not be a dependency of anything.
#![forbid(unsafe_code)]

pub mod workload {
    //! The benches' workload: one bundle, sessions numbered from a fixed base, authorities
    //! named by label, and the facts that register the bundle and open the sessions.

    use std::time::{Duration, Instant};

    use reconf_runtime::crates::core::{Command, State};
    use reconf_runtime::{
        AuthorityId, BundleId, CommandError, ComposedBundle, DelegationRequest, Fact, ManagerError,
        ReconfigurationManager, SessionId,
    };

    /// `n` authorities, `authority-0` … (hashed once, so a request costs no hashing).
    pub fn authorities(n: usize) -> Vec<AuthorityId> {
        (0..n).map(|i| AuthorityId::from_label(&format!("authority-{i}"))).collect()
    }

    /// Session `i` of the workload.
    pub fn session(i: usize) -> SessionId {
        SessionId::from_u128(0xbe_0000_0000 | i as u128)
    }

    /// The workload's bundle.
    pub fn bundle() -> BundleId {
        BundleId::new("bench").unwrap_or_else(|_| unreachable!("a literal non-empty id"))
    }

    /// The facts of the registered bundle and `sessions` open sessions, dealt round-robin
    /// to `authorities`.
    ///
    /// # Errors
    /// The core's refusal, which would mean the workload itself is wrong.
    pub fn setup_facts(sessions: usize, authorities: &[AuthorityId]) -> Result<Vec<Fact>, CommandError> {
        let mut state = State::new();
        let mut facts = Vec::with_capacity(sessions + 1);
        let mut push = |state: &mut State, cmd: Command| -> Result<(), CommandError> {
            let f = state.check(&cmd, 1)?;
            state.apply(facts.len() as u64 + 1, &f);
            facts.push(f);
            Ok(())
        };
        push(&mut state, Command::RegisterBundle(ComposedBundle::new(bundle())))?;
        for i in 0..sessions {
            let authority = authorities[i % authorities.len()];
            push(&mut state, Command::OpenSession { session: session(i), authority, bundle: None })?;
        }
        Ok(facts)
    }

    /// Concurrent closed-loop callers: caller `c` owns sessions `i ≡ c (mod callers)` and
    /// walks them, delegating each to the next authority. It tracks its holders, so no
    /// request is refused, and keeps its place between rounds.
    #[derive(Debug)]
    pub struct Callers {
        authorities: Vec<AuthorityId>,
        holders: Vec<Vec<usize>>,
        cursor: Vec<usize>,
    }

    impl Callers {
        /// `callers` callers over `sessions` sessions opened by [`setup_facts`] with
        /// `authorities`.
        pub fn new(callers: usize, sessions: usize, authorities: Vec<AuthorityId>) -> Self {
            let n = authorities.len();
            let holders =
                (0..callers).map(|c| (c..sessions).step_by(callers).map(|i| i % n).collect()).collect();
            Self { authorities, holders, cursor: vec![0; callers] }
        }

        /// One round: every caller sends `per_caller` delegations, to the managers in turn
        /// (caller `c` uses `managers[c % managers.len()]`); returns the round's wall time.
        ///
        /// # Errors
        /// The first refused delegation (the workload never sends an invalid one), or
        /// [`ManagerError::Stopped`] when a caller task died.
        pub async fn round(
            &mut self,
            managers: &[ReconfigurationManager],
            per_caller: usize,
        ) -> Result<Duration, ManagerError> {
            let started = Instant::now();
            let callers = self.holders.len();
            let mut tasks = Vec::with_capacity(callers);
            for c in 0..callers {
                let m = managers[c % managers.len()].clone();
                let authorities = self.authorities.clone();
                let mut holders = std::mem::take(&mut self.holders[c]);
                let mut cur = self.cursor[c];
                tasks.push(tokio::spawn(async move {
                    for _ in 0..per_caller {
                        let k = cur % holders.len();
                        let (from, to) = (holders[k], (holders[k] + 1) % authorities.len());
                        let request = DelegationRequest::new(
                            session(c + k * callers),
                            authorities[from],
                            authorities[to],
                            bundle(),
                        );
                        m.delegate_session(request).await?;
                        holders[k] = to;
                        cur += 1;
                    }
                    Ok::<_, ManagerError>((holders, cur))
                }));
            }
            for (c, t) in tasks.into_iter().enumerate() {
                let (h, cur) = t.await.map_err(|_| ManagerError::Stopped)??;
                self.holders[c] = h;
                self.cursor[c] = cur;
            }
            Ok(started.elapsed())
        }
    }
}

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::RngCore;
use reconf_runtime::crates::store_rocksdb::layout::{RECORDS_CF, RECORD_HEADER_LEN};
use reconf_runtime::{AuthorityId, BundleId, CapabilityScope, Change, ContextId, Fact, SessionId};
use rocksdb::{ColumnFamilyDescriptor, DBCompressionType, Options, WriteBatch, WriteOptions, DB};

/// A realistic fact: a delegation, the journal's most frequent record.
pub fn sample_fact() -> Fact {
    let bundle = BundleId::new("bench.bundle").unwrap_or_else(|_| unreachable!("a literal non-empty id"));
    Fact::new(Change::SessionDelegated(reconf_runtime::crates::core::DelegationFact {
        session: SessionId::from_u128(0x1234_5678_9abc_def0),
        from: AuthorityId([1; 32]),
        to: AuthorityId([2; 32]),
        scope: CapabilityScope::for_bundle(&bundle),
        bundle,
        context: ContextId([3; 32]),
        generation: 7,
        at_ms: 1_700_000_000_000,
    }))
}

/// The size of one journal record holding `fact`: frame header plus the encoded fact.
pub fn record_len(fact: &Fact) -> usize {
    RECORD_HEADER_LEN + postcard::to_allocvec(fact).map_or(0, |v| v.len())
}

/// A bare RocksDB with the journal's records column family options (LZ4), written with
/// synced writes of random records of a fixed size.
pub struct RawRocks {
    db: DB,
    value: Vec<u8>,
    next_key: AtomicU64,
    _dir: tempfile::TempDir,
}

fn synced() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(true);
    w
}

impl RawRocks {
    /// A fresh database in a temporary directory, writing records of `record_len` bytes.
    pub fn new(record_len: usize) -> Result<Self, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let mut records = Options::default();
        records.set_compression_type(DBCompressionType::Lz4);
        let db =
            DB::open_cf_descriptors(&opts, dir.path(), [ColumnFamilyDescriptor::new(RECORDS_CF, records)])?;
        let mut value = vec![0u8; record_len];
        rand::rng().fill_bytes(&mut value);
        Ok(Self { db, value, next_key: AtomicU64::new(1), _dir: dir })
    }

    fn write(&self, records: usize, wo: &WriteOptions) -> Result<(), rocksdb::Error> {
        let Some(cf) = self.db.cf_handle(RECORDS_CF) else { return Ok(()) };
        let mut batch = WriteBatch::default();
        for _ in 0..records {
            batch.put_cf(cf, self.next_key.fetch_add(1, Ordering::Relaxed).to_be_bytes(), &self.value);
        }
        self.db.write_opt(batch, wo)
    }

    /// `ops` synced single-record writes from one thread.
    pub fn one_writer(&self, ops: u64) -> Result<Duration, rocksdb::Error> {
        let wo = synced();
        let start = Instant::now();
        for _ in 0..ops {
            self.write(1, &wo)?;
        }
        Ok(start.elapsed())
    }

    /// `per` synced single-record writes from each of `threads` OS threads: RocksDB's own
    /// group commit (concurrent writes share one WAL write and one sync).
    pub fn many_writers(&self, threads: u64, per: u64) -> Result<Duration, rocksdb::Error> {
        let start = Instant::now();
        std::thread::scope(|s| {
            let writers: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let wo = synced();
                        (0..per).try_for_each(|_| self.write(1, &wo))
                    })
                })
                .collect();
            writers.into_iter().try_for_each(|w| w.join().unwrap_or(Ok(())))
        })?;
        Ok(start.elapsed())
    }

    /// `per` synced batches of `records` records from one thread: perfect batching with no
    /// coordination cost, the ceiling of any group commit.
    pub fn batched(&self, records: usize, per: u64) -> Result<Duration, rocksdb::Error> {
        let wo = synced();
        let start = Instant::now();
        for _ in 0..per {
            self.write(records, &wo)?;
        }
        Ok(start.elapsed())
    }
}
