//! Building and opening a manager.

use std::sync::Arc;

use reconf_core::ComposedBundle;
use reconf_core::OwnerLabel;
use reconf_effects::capability::{CapabilityEffects, StaticCapabilities};
use reconf_effects::memory::MemoryJournal;
use reconf_effects::time::{PhysicalTimeEffects, SystemClock};
use reconf_effects::{JournalEffects, OwnerRegistryEffects};
use tokio::sync::mpsc;

use crate::actor::Actor;
use crate::error::ManagerError;
use crate::events;
use crate::manager::ReconfigurationManager;
use crate::owners::Registry;
use crate::recovery::{recover, resolve_interrupted_upgrades};
use crate::shared::Shared;

/// Default mailbox capacity.
pub const DEFAULT_MAILBOX_CAPACITY: usize = 32;
/// Default number of records between snapshots.
pub const DEFAULT_SNAPSHOT_INTERVAL: u64 = 100_000;

/// Configures and opens a [`ReconfigurationManager`].
///
/// Defaults: system clock, every capability admitted, mailbox of
/// [`DEFAULT_MAILBOX_CAPACITY`], a snapshot every [`DEFAULT_SNAPSHOT_INTERVAL`] records
/// (or every half as many records as the state has sessions, when that is more),
/// and the linked manifests registered at open. A journal must be chosen.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), reconf_runtime::ManagerError> {
/// use reconf_effects::time::SimulatedClock;
/// use reconf_runtime::ManagerBuilder;
/// let manager = ManagerBuilder::new()
///     .memory_journal()
///     .clock(SimulatedClock::new(1_700_000_000_000))
///     .mailbox_capacity(64)
///     .snapshot_interval(Some(10_000))
///     .open()
///     .await?;
/// assert_eq!(manager.stats().mailbox_capacity, 64);
/// # Ok(()) }
/// ```
pub struct ManagerBuilder {
    journal: Option<Arc<dyn JournalEffects>>,
    #[cfg(feature = "etcd")]
    etcd: Option<reconf_store_etcd::EtcdJournalOptions>,
    clock: Arc<dyn PhysicalTimeEffects>,
    capabilities: Arc<dyn CapabilityEffects>,
    mailbox_capacity: usize,
    snapshot_interval: Option<u64>,
    authority_limit: Option<u64>,
    manifests: Option<Vec<ComposedBundle>>,
    owner_registry: Option<Arc<dyn OwnerRegistryEffects>>,
    #[cfg(feature = "upgrade-executor")]
    upgrade_hook: Arc<dyn crate::hook::UpgradeStepHook>,
}

impl Default for ManagerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ManagerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagerBuilder")
            .field("journal", &self.journal.is_some())
            .field("mailbox_capacity", &self.mailbox_capacity)
            .field("snapshot_interval", &self.snapshot_interval)
            .field("authority_limit", &self.authority_limit)
            .finish_non_exhaustive()
    }
}

impl ManagerBuilder {
    /// A builder with the defaults.
    pub fn new() -> Self {
        Self {
            journal: None,
            #[cfg(feature = "etcd")]
            etcd: None,
            clock: Arc::new(SystemClock::new()),
            capabilities: Arc::new(StaticCapabilities::full()),
            mailbox_capacity: DEFAULT_MAILBOX_CAPACITY,
            snapshot_interval: Some(DEFAULT_SNAPSHOT_INTERVAL),
            authority_limit: None,
            manifests: None,
            owner_registry: None,
            #[cfg(feature = "upgrade-executor")]
            upgrade_hook: Arc::new(crate::hook::NoStepWork),
        }
    }

    /// Uses any journal.
    pub fn journal(mut self, journal: impl JournalEffects + 'static) -> Self {
        self.journal = Some(Arc::new(journal));
        #[cfg(feature = "etcd")]
        {
            self.etcd = None;
        }
        self
    }

    /// Uses a shared journal.
    pub fn journal_arc(mut self, journal: Arc<dyn JournalEffects>) -> Self {
        self.journal = Some(journal);
        #[cfg(feature = "etcd")]
        {
            self.etcd = None;
        }
        self
    }

    /// Shares live owners with other nodes through `registry` (for a journal shared by a
    /// backend of the embedder's own; the etcd journal brings its registry itself): attach,
    /// handoff, detach and close become fenced writes of the registry, and this node's view
    /// of other nodes' owners follows its events.
    pub fn owner_registry(mut self, registry: Arc<dyn OwnerRegistryEffects>) -> Self {
        self.owner_registry = Some(registry);
        self
    }

    /// Uses a fresh in-memory journal (nothing survives the process).
    pub fn memory_journal(self) -> Self {
        self.journal(MemoryJournal::new())
    }

    /// Opens (or creates) a RocksDB journal at `path` with default options.
    #[cfg(feature = "rocksdb")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rocksdb")))]
    pub fn rocksdb_journal(self, path: impl AsRef<std::path::Path>) -> Result<Self, ManagerError> {
        self.rocksdb_journal_with(path, reconf_store_rocksdb::RocksJournalOptions::default())
    }

    /// Opens a RocksDB journal at `path` with `options` (whether to create it, verify it
    /// at open, how many snapshots to keep, …).
    #[cfg(feature = "rocksdb")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rocksdb")))]
    pub fn rocksdb_journal_with(
        self,
        path: impl AsRef<std::path::Path>,
        options: reconf_store_rocksdb::RocksJournalOptions,
    ) -> Result<Self, ManagerError> {
        let path = path.as_ref();
        let j = reconf_store_rocksdb::RocksJournal::open(path, options)
            .map_err(|source| ManagerError::OpenJournal { path: path.to_path_buf(), source })?;
        Ok(self.journal(j))
    }

    /// Uses the journal on etcd described by `options` (endpoints, key prefix, timeouts),
    /// connected when the manager opens. Every manager opened on the same endpoints and
    /// prefix shares the journal: each follows the others' commits, and a command is
    /// refused only when re-checking it against their changes refuses it.
    ///
    /// They share live owners too: each manager is a node (named by
    /// [`EtcdJournalOptions::node`](reconf_store_etcd::EtcdJournalOptions::node)) holding an
    /// etcd lease ([`lease_ttl`](reconf_store_etcd::EtcdJournalOptions::lease_ttl)), and
    /// every live owner is a record bound to its node's lease, changed only by fenced
    /// writes. See [`ReconfigurationManager`]'s "Live owners across nodes".
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), reconf_runtime::ManagerError> {
    /// use reconf_runtime::crates::store_etcd::EtcdJournalOptions;
    /// let manager = reconf_runtime::ManagerBuilder::new()
    ///     .etcd_journal(EtcdJournalOptions::new(["http://127.0.0.1:2379"]).prefix("/reconf/prod"))
    ///     .open()
    ///     .await?;
    /// manager.sync().await?; // see every other manager's writes before reading
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "etcd")]
    #[cfg_attr(docsrs, doc(cfg(feature = "etcd")))]
    pub fn etcd_journal(mut self, options: reconf_store_etcd::EtcdJournalOptions) -> Self {
        self.journal = None;
        self.etcd = Some(options);
        self
    }

    /// Uses a clock.
    pub fn clock(mut self, clock: impl PhysicalTimeEffects + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Uses a capability policy.
    pub fn capabilities(mut self, capabilities: impl CapabilityEffects + 'static) -> Self {
        self.capabilities = Arc::new(capabilities);
        self
    }

    /// Sets the mailbox capacity (at least 1).
    pub fn mailbox_capacity(mut self, capacity: usize) -> Self {
        self.mailbox_capacity = capacity;
        self
    }

    /// Writes a snapshot once `n` records have been written since the last one — or, when
    /// the state holds more than `2n` sessions, once half as many records as it has
    /// sessions have (a snapshot writes the whole state; this keeps the bytes snapshots
    /// write below the records' own). `None`: never; `Some(0)` is refused. Recovery
    /// replays the latest snapshot plus at most that many records.
    pub fn snapshot_interval(mut self, n: Option<u64>) -> Self {
        self.snapshot_interval = n;
        self
    }

    /// Refuses any command that would bring in more than `max` distinct authorities
    /// (default: [`MAX_AUTHORITIES`](crate::MAX_AUTHORITIES), what one state can hold; `0`
    /// is refused at open). An authority, once seen, is kept for the life of the journal,
    /// so a manager that takes authority ids from untrusted callers bounds its memory this
    /// way. The refusal is the core's `TooManyAuthorities`; authorities already known stay
    /// usable, and a journal that already holds more still opens whole.
    pub fn max_authorities(mut self, max: u64) -> Self {
        self.authority_limit = Some(max);
        self
    }

    /// Registers no manifest bundles at open (by default the ones linked into the binary
    /// are registered).
    pub fn without_manifests(mut self) -> Self {
        self.manifests = Some(Vec::new());
        self
    }

    /// Registers these bundles at open instead of the linked manifests.
    pub fn manifest_bundles(mut self, bundles: Vec<ComposedBundle>) -> Self {
        self.manifests = Some(bundles);
        self
    }

    /// Uses `hook` for the cutover work of each upgrade step (default: [`NoStepWork`]).
    ///
    /// [`NoStepWork`]: crate::NoStepWork
    #[cfg(feature = "upgrade-executor")]
    #[cfg_attr(docsrs, doc(cfg(feature = "upgrade-executor")))]
    pub fn upgrade_hook(mut self, hook: impl crate::hook::UpgradeStepHook + 'static) -> Self {
        self.upgrade_hook = Arc::new(hook);
        self
    }

    /// Recovers the state from the journal, starts the actor and registers the manifest
    /// bundles that are not registered yet.
    pub async fn open(self) -> Result<ReconfigurationManager, ManagerError> {
        #[allow(unused_mut)]
        let mut registry = self.owner_registry;
        #[cfg(feature = "etcd")]
        let chosen = match (self.journal, self.etcd) {
            (None, Some(options)) => {
                let target = format!("{} under {}", options.endpoints().join(","), options.key_prefix());
                let journal = reconf_store_etcd::EtcdJournal::connect(options)
                    .await
                    .map(Arc::new)
                    .map_err(|source| ManagerError::ConnectJournal { target: target.clone(), source })?;
                // A shared journal shares live owners too: one registry under the same
                // prefix, bound to this node's lease.
                let owners = reconf_store_etcd::EtcdOwners::start(Arc::clone(&journal))
                    .await
                    .map_err(|source| ManagerError::ConnectJournal { target, source })?;
                registry = Some(Arc::new(owners) as Arc<dyn reconf_effects::OwnerRegistryEffects>);
                Some(journal as Arc<dyn JournalEffects>)
            }
            (journal, _) => journal,
        };
        #[cfg(not(feature = "etcd"))]
        let chosen = self.journal;
        let journal = chosen.ok_or_else(|| ManagerError::Config("no journal chosen".to_owned()))?;
        if self.mailbox_capacity == 0 {
            return Err(ManagerError::Config("mailbox capacity must be at least 1".to_owned()));
        }
        if self.snapshot_interval == Some(0) {
            return Err(ManagerError::Config("snapshot interval must be at least 1 (or None)".to_owned()));
        }
        if self.authority_limit == Some(0) {
            return Err(ManagerError::Config("the authority limit must be at least 1".to_owned()));
        }
        let (mut state, mut report) = recover(journal.as_ref()).await?;
        if let Some(max) = self.authority_limit {
            state.set_authority_limit(max);
        }
        report.upgrades_rolled_back = resolve_interrupted_upgrades(&mut state, journal.as_ref()).await?;
        report.head = state.head();
        let last_snapshot = report.snapshot_sequence.unwrap_or(0);
        let shared = Arc::new(Shared { state: std::sync::RwLock::new(state), ..Shared::default() });
        let (registry, owner_events) = match registry {
            Some(effects) => {
                let node = OwnerLabel::new(effects.node())
                    .map_err(|e| ManagerError::Config(format!("the live-owner registry's node name: {e}")))?;
                let events = effects.events();
                let registry = Arc::new(Registry { effects, node, mirror: Default::default() });
                load_owners(&registry, &shared).await?;
                (Some(registry), events)
            }
            None => (None, None),
        };
        let (tx, rx) = mpsc::channel(self.mailbox_capacity);
        let actor = Actor {
            shared: Arc::clone(&shared),
            journal,
            clock: self.clock,
            snapshot_interval: self.snapshot_interval,
            last_snapshot,
            snapshot_task: None,
            registry: registry.clone(),
            owner_events,
        };
        tokio::spawn(actor.run(rx));
        let manifests = match self.manifests {
            Some(b) => b,
            None => crate::manifests::linked_bundles()?,
        };
        let mut registered = Vec::new();
        let manager_for_reg = ReconfigurationManager {
            tx: tx.clone(),
            shared: Arc::clone(&shared),
            registry: registry.clone(),
            capabilities: Arc::clone(&self.capabilities),
            recovery: Arc::default(),
            mailbox_capacity: self.mailbox_capacity,
            #[cfg(feature = "upgrade-executor")]
            upgrade_hook: Arc::clone(&self.upgrade_hook),
        };
        for b in manifests {
            // Idempotent: a reopen finds them in the journal and registers nothing twice.
            if manager_for_reg.bundle(&b.id).is_some() {
                continue;
            }
            let id = b.id.clone();
            if let Err(e) = manager_for_reg.register_bundle(b).await {
                // Managers sharing a journal open together: one that lost the race finds the
                // winner's registration after catching up, which is what it wanted.
                if manager_for_reg.bundle(&id).is_some() {
                    continue;
                }
                return Err(e);
            }
            tracing::info!(name: events::MANIFEST_REGISTERED, bundle = %id);
            registered.push(id);
        }
        report.manifests_registered = registered;
        Ok(ReconfigurationManager {
            tx,
            shared,
            registry,
            capabilities: self.capabilities,
            recovery: Arc::new(report),
            mailbox_capacity: self.mailbox_capacity,
            #[cfg(feature = "upgrade-executor")]
            upgrade_hook: self.upgrade_hook,
        })
    }
}

/// Mirrors every record of the shared registry into the live table, before the actor starts
/// (so this node sees other nodes' owners from the start).
async fn load_owners(registry: &Registry, shared: &Shared) -> Result<(), ManagerError> {
    let (entries, _) = registry.effects.list().await.map_err(ManagerError::Journal)?;
    let mut live = crate::shared::write(&shared.live);
    let mut mirror = registry.mirror();
    for entry in entries {
        crate::owners::apply_entry(&mut live, &mut mirror, &entry, &registry.node);
    }
    Ok(())
}
