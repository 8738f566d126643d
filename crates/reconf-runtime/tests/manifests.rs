//! Opening a manager registers every linked manifest bundle — the shipped ones and a
//! downstream crate's — exactly once.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use reconf_effects::{JournalEffects, MemoryJournal};
use reconf_runtime::ManagerBuilder;

#[tokio::test]
async fn open_registers_linked_manifests_once() {
    // The link anchor: without it the linker may drop the example crate's manifest.
    custom_protocol::link();
    let journal: Arc<dyn JournalEffects> = Arc::new(MemoryJournal::new());
    let m = ManagerBuilder::new().journal_arc(journal.clone()).open().await.unwrap();
    let ids: Vec<String> = m.bundles().iter().map(|b| b.id.to_string()).collect();
    for want in ["device_migration", "guardian_handoff", "epoch_rotation_transfer", "firmware_update"] {
        assert!(ids.iter().any(|i| i == want), "{want} missing from {ids:?}");
    }
    let registered = m.recovery_report().manifests_registered.len();
    assert_eq!(registered, ids.len());
    let dm = m.bundle(&reconf_core::BundleId::new("device_migration").unwrap()).unwrap();
    assert!(
        dm.exports.contains("device_migration.request") && dm.imports.contains("device_migration.accept")
    );
    let head = journal.head().await.unwrap();
    m.shutdown().await.unwrap();

    let again = ManagerBuilder::new().journal_arc(journal.clone()).open().await.unwrap();
    assert!(again.recovery_report().manifests_registered.is_empty(), "registered twice");
    assert_eq!(journal.head().await.unwrap(), head, "the reopen wrote nothing");
    assert_eq!(again.bundles().len(), ids.len());
}
