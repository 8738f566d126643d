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
    let shared = Arc::new(caps.clone());
    let borrowed = &caps;
    for (admits_a, admits_b, required) in [
        (shared.admits("a"), shared.admits("b"), shared.require(&["a", "b"])),
        (borrowed.admits("a"), borrowed.admits("b"), borrowed.require(&["a", "b"])),
    ] {
        assert!(admits_a && !admits_b);
        assert_eq!(required, Err(CapabilityError::NotAdmitted { surface: "b".to_owned() }));
    }
    assert_eq!(shared.require(&["a"]), Ok(()));
    assert_eq!(borrowed.require(&["a"]), Ok(()));
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
