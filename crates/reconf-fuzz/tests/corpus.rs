//! Every file of every committed fuzz corpus (`fuzz/corpus/{target}/`) through the
//! target's check, as a plain test: what a fuzzer once found stays fixed, with no
//! cargo-fuzz in CI. `write_seeds` (ignored) writes the hand-made seed inputs the corpora
//! started from.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use reconf_core::upgrade::{
    CompatibilityContract, Member, PlanId, RuntimeUpgradeRequest, StepId, UpgradeId, UpgradePlan, UpgradeStep,
};
use reconf_core::{
    AuthorityId, BundleId, Change, Command, ComposedBundle, Delegation, Fact, SessionId, State,
};
use reconf_effects::codec;

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target)
}

#[test]
fn every_corpus_input_passes_its_check() {
    let mut total = 0;
    for target in reconf_fuzz::TARGETS {
        let dir = corpus(target);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut n = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| reconf_fuzz::check(target, &data));
            assert!(outcome.is_ok(), "{target}: {} fails its check", path.display());
            n += 1;
        }
        assert!(n > 0, "the {target} corpus is empty");
        total += n;
    }
    println!("{total} corpus inputs replayed");
}

#[test]
fn the_checks_catch_what_they_claim_to() {
    // A check that could never fail would replay any corpus happily: each one rejects an
    // input it must reject.
    let bad_head = {
        let mut data = vec![0u8; 44];
        data[43] = 1; // a checksum that matches nothing
        data
    };
    reconf_fuzz::rocksdb_meta(&bad_head); // refused by the decoder: no panic
    let frame = sample_frame(3);
    reconf_fuzz::record_frame(&frame);
    let mut flipped = frame.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x40;
    reconf_fuzz::record_frame(&flipped); // refused by the checksum: no panic
    assert!(std::panic::catch_unwind(|| reconf_fuzz::check("no_such_target", &[])).is_err());
}

fn facts() -> Vec<Fact> {
    let b = BundleId::new("seed").unwrap();
    let (a, c) = (AuthorityId::from_label("a"), AuthorityId::from_label("c"));
    let s = SessionId::from_u128(7);
    let mut state = State::new();
    let mut out = Vec::new();
    for cmd in [
        Command::RegisterBundle(ComposedBundle::new(b.clone())),
        Command::OpenSession { session: s, authority: a, bundle: Some(b.clone()) },
        Command::Delegate(Delegation::new(s, a, c, b.clone())),
        Command::CloseSession { session: s, authority: c },
    ] {
        let f = state.check(&cmd, 5).unwrap();
        state.apply(out.len() as u64 + 1, &f);
        out.push(f);
    }
    out.push(Fact::new(Change::SessionClosed { session: SessionId::from_u128(8), authority: a }));
    out
}

fn sample_frame(i: usize) -> Vec<u8> {
    let fact = &facts()[i % facts().len()];
    let sequence = i as u64 + 1;
    let (frame, _) =
        codec::encode_record(sequence, &[i as u8; 32], &codec::encode_fact(fact).unwrap()).unwrap();
    let mut data = sequence.to_be_bytes().to_vec();
    data.extend(frame);
    data
}

#[test]
#[ignore = "writes the seed inputs into fuzz/corpus/ (run once, then fuzz)"]
fn write_seeds() {
    let write = |target: &str, name: &str, data: &[u8]| {
        let dir = corpus(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), data).unwrap();
    };
    for i in 0..facts().len() {
        write("record_frame", &format!("seed-{i}"), &sample_frame(i));
    }
    // RocksDB head: sequence ‖ hash ‖ crc32c; format: u16.
    let mut head = 42u64.to_be_bytes().to_vec();
    head.extend([3u8; 32]);
    let crc = crc32c(&head);
    head.extend(crc.to_be_bytes());
    write("rocksdb_meta", "seed-head", &head);
    write("rocksdb_meta", "seed-format", &[0, 1]);
    write("rocksdb_meta", "seed-key", &7u64.to_be_bytes());
    // etcd: a head (sequence ‖ hash ‖ commit id ‖ crc), and a chunk behind its sequence.
    let mut ehead = 5u64.to_be_bytes().to_vec();
    ehead.extend([1u8; 32]);
    ehead.extend([2u8; 16]);
    let crc = crc32c(&ehead);
    ehead.extend(crc.to_be_bytes());
    write("etcd_layout", "seed-head", &ehead);
    write("etcd_layout", "seed-format", &[0, 1]);
    let mut chunk = 2u64.to_be_bytes().to_vec();
    chunk.extend(1u16.to_be_bytes());
    chunk.extend([9u8; 16]);
    chunk.extend(1u64.to_be_bytes());
    chunk.extend(2u32.to_be_bytes());
    let crc = crc32c(&chunk[8..]);
    chunk.extend(crc.to_be_bytes());
    for i in 0..2 {
        let frame = &sample_frame(i)[8..];
        chunk.extend((frame.len() as u32).to_be_bytes());
        chunk.extend(frame);
    }
    write("etcd_layout", "seed-chunk", &chunk);
    // A state snapshot, framed, behind its sequence.
    let state = State::replay(facts().iter().enumerate().map(|(i, f)| (i as u64 + 1, f)).take(3));
    let bytes = postcard::to_allocvec(&state).unwrap();
    let mut snap = 3u64.to_be_bytes().to_vec();
    snap.extend(codec::encode_snapshot(3, &bytes));
    write("state_snapshot", "seed-framed", &snap);
    let mut raw = 3u64.to_be_bytes().to_vec();
    raw.extend(&bytes);
    write("state_snapshot", "seed-raw", &raw);
    // An upgrade request as `reconf upgrade` reads it.
    let step = UpgradeStep::new(
        StepId::new("s1").unwrap(),
        [Member::new("m1").unwrap(), Member::new("m2").unwrap()],
    );
    let request = RuntimeUpgradeRequest::new(
        UpgradeId::new("u1").unwrap(),
        UpgradePlan::new(PlanId::new("p").unwrap(), vec![step]),
        CompatibilityContract::default(),
    );
    write("upgrade_json", "seed-request", serde_json::to_string_pretty(&request).unwrap().as_bytes());
    // The shipped protocol specs.
    for dir in ["../reconf-manifests/protocols", "../../examples/custom-protocol/protocols"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            write("choreo_spec", &format!("seed-{name}"), &std::fs::read(&path).unwrap());
        }
    }
    write("ids", "seed-session", SessionId::from_u128(0xabc).to_string().as_bytes());
    write("ids", "seed-authority", AuthorityId::from_label("a").to_string().as_bytes());
    write("ids", "seed-bundle", b"device_migration");
}

/// crc32c, as the layouts use it (Castagnoli, the `crc32c` crate).
fn crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}
