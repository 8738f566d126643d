//! Tests for what a sampled `cargo mutants` run over this crate found nothing asserted:
//! each fails if the named mutation is made.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use reconf_effects::capability::CapabilityError;
use reconf_effects::codec::chain_hash;
use reconf_effects::{CapabilityEffects, StaticCapabilities};

#[test]
fn the_chain_hash_is_blake3_of_its_documented_input() {
    // `chain_hash` replaced by a constant: every record would chain to the same hash and a
    // reordered or rewritten journal would still verify. Computed here independently.
    let prev = [9u8; 32];
    let mut input = prev.to_vec();
    input.extend_from_slice(&7u64.to_be_bytes());
    input.extend_from_slice(b"payload");
    assert_eq!(chain_hash(&prev, 7, b"payload"), *blake3::hash(&input).as_bytes());
    let base = chain_hash(&prev, 7, b"payload");
    assert_ne!(chain_hash(&[8; 32], 7, b"payload"), base);
    assert_ne!(chain_hash(&prev, 8, b"payload"), base);
    assert_ne!(chain_hash(&prev, 7, b"payloae"), base);
}

#[test]
fn capabilities_behind_an_arc_or_a_reference_are_the_same_capabilities() {
    // The forwarding impls for `Arc<T>` and `&T` replaced by constants.
    let caps = StaticCapabilities::none().admit("a");
    // Called through a generic parameter: a method call on `&caps` itself would resolve
    // to `StaticCapabilities`' own impl and never reach the one for `&T`.
    fn through<C: CapabilityEffects>(
        c: C,
    ) -> (bool, bool, Result<(), CapabilityError>, Result<(), CapabilityError>) {
        (c.admits("a"), c.admits("b"), c.require(&["a", "b"]), c.require(&["a"]))
    }
    for (admits_a, admits_b, both, only_a) in [through(Arc::new(caps.clone())), through(&caps)] {
        assert!(admits_a && !admits_b);
        assert_eq!(both, Err(CapabilityError::NotAdmitted { surface: "b".to_owned() }));
        assert_eq!(only_a, Ok(()));
    }
}

#[test]
fn a_record_chains_only_to_its_own_predecessor() {
    // `check_chain` replaced by `Ok(())`: a record moved, or one whose predecessor was
    // rewritten, must be refused as a broken chain.
    use reconf_effects::codec::{check_chain, decode_record, encode_record};
    use reconf_effects::{Corruption, JournalError};
    let genesis = [0u8; 32];
    let (bytes, hash) = encode_record(1, &genesis, b"first").unwrap();
    let frame = decode_record(1, &bytes).unwrap();
    assert_eq!(check_chain(1, &genesis, &frame), Ok(()));
    assert_eq!(frame.hash, hash);
    let broken = Err(JournalError::Corrupt { sequence: 1, corruption: Corruption::BrokenChain });
    assert_eq!(check_chain(1, &[1; 32], &frame), broken);
}

#[test]
fn a_conflict_says_which_head_it_found() {
    // `fmt_head` replaced by an empty string: the message must name the head (or say the
    // journal is empty), since it is all an operator sees of a lost race.
    use reconf_effects::{ExpectedHead, JournalError};
    let empty = JournalError::Conflict { expected: ExpectedHead::At(3), actual: None };
    assert_eq!(empty.to_string(), "journal head conflict: expected head 3, actual head none (empty)");
    let moved = JournalError::Conflict { expected: ExpectedHead::Empty, actual: Some(7) };
    assert_eq!(moved.to_string(), "journal head conflict: expected an empty journal, actual head 7");
}

#[test]
fn a_fact_from_a_newer_schema_is_refused_and_the_current_one_decodes() {
    // `decode_fact`'s version test turned around (`>` → `<`): a fact written by a newer
    // build must be refused, never half-understood.
    use reconf_core::{AuthorityId, Change, Fact, SessionId, FACT_SCHEMA_VERSION};
    use reconf_effects::codec::{decode_fact, encode_fact};
    use reconf_effects::JournalError;
    let change =
        Change::SessionClosed { session: SessionId::from_u128(1), authority: AuthorityId::from_label("a") };
    let current = Fact::new(change.clone());
    assert_eq!(decode_fact(4, &encode_fact(&current).unwrap()), Ok(current));
    let newer = Fact { schema_version: FACT_SCHEMA_VERSION + 1, change };
    assert_eq!(
        decode_fact(4, &encode_fact(&newer).unwrap()),
        Err(JournalError::NewerFact {
            sequence: 4,
            found: FACT_SCHEMA_VERSION + 1,
            supported: FACT_SCHEMA_VERSION
        })
    );
}

#[test]
fn head_expectations_and_commit_ranges_say_what_they_hold() {
    // `ExpectedHead::after`'s `==` → `!=`, `Committed::is_empty` → `true` (its doctest
    // is not run by every test tool; these are).
    use reconf_effects::{Committed, ExpectedHead};
    assert_eq!(ExpectedHead::after(0), ExpectedHead::Empty);
    assert_eq!(ExpectedHead::after(7), ExpectedHead::At(7));
    let one = Committed { first: 5, last: 5 };
    assert!(!one.is_empty());
    assert_eq!((one.len(), one.sequences().collect::<Vec<_>>()), (1, vec![5]));
}

#[test]
fn each_corruption_is_described_with_what_was_found() {
    // `Display for Corruption` replaced by an empty message: it is what `reconf verify`
    // and every corrupt-journal error print.
    use reconf_effects::Corruption;
    let cases = [
        (Corruption::ChecksumMismatch, "checksum mismatch"),
        (Corruption::BrokenChain, "hash chain broken (record altered or reordered)"),
        (Corruption::Gap { found: 9 }, "record missing (next stored sequence is 9)"),
        (Corruption::UnknownFormatVersion { version: 3 }, "unknown record format version 3"),
        (Corruption::BadFrame, "malformed record frame"),
        (Corruption::UndecodableFact { reason: "eof".to_owned() }, "undecodable fact: eof"),
        (Corruption::KeyMismatch { key: 4 }, "stored under key 4 but claims another sequence"),
        (
            Corruption::Metadata { reason: "head past records".to_owned() },
            "metadata inconsistent: head past records",
        ),
    ];
    for (corruption, message) in cases {
        assert_eq!(corruption.to_string(), message);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_head_signal_and_a_tail_report_where_they_are() {
    // `HeadSignal::current` → 0 and `Tail::next_sequence` → 0.
    use reconf_core::{AuthorityId, Change, Fact, SessionId};
    use reconf_effects::{ExpectedHead, HeadSignal, JournalEffects, MemoryJournal, Tail};
    let signal = HeadSignal::new(3);
    assert_eq!(signal.current(), 3);
    signal.publish(8);
    signal.publish(5);
    assert_eq!(signal.current(), 8, "a lower head published late is ignored");
    assert_eq!(signal.wait_past(7).await, 8);
    let journal = MemoryJournal::new();
    let fact = |n| {
        Fact::new(Change::SessionClosed {
            session: SessionId::from_u128(n),
            authority: AuthorityId::from_label("a"),
        })
    };
    journal.commit(vec![fact(1), fact(2)], ExpectedHead::Any).await.unwrap();
    let mut tail = Tail::new(journal, 0);
    assert_eq!(tail.next_sequence(), 1);
    assert_eq!(tail.next(1).await.unwrap().len(), 1);
    assert_eq!(tail.next_sequence(), 2);
}
