use super::*;

/// Lines 1–3 of most inputs below, so errors in the body are on line 4 and later.
const HEAD: &str = "protocol p.q\nnamespace n\nroles A, B\n";

fn err(body: &str) -> SpecError {
    parse("t.choreo", &format!("{HEAD}{body}")).unwrap_err()
}

fn at(line: u32, column: u32) -> Location {
    Location::new("t.choreo", line, column)
}

#[test]
fn a_full_spec_parses() {
    let spec = parse(
        "t.choreo",
        "# comment\n\
         protocol demo.p  # trailing comment\n\
         namespace demo\n\
         \n\
         roles A, B, C\n\
         A -> B : Hello @link bundle = x, exports = [x.a, x.b,], imports = x.a\n\
         B -> C : Pass\n\
         \x20 @link bundle = y, role = C, imports = [x.b]\n\
         \x20 @link bundle = x, exports = [] @link bundle = z\n",
    )
    .unwrap();
    assert_eq!(spec.id, "demo.p");
    assert_eq!(spec.namespace, "demo");
    assert_eq!(spec.roles, ["A", "B", "C"]);
    assert_eq!(spec.declared_at, at(2, 10));
    assert_eq!(spec.interactions.len(), 2);
    let pass = &spec.interactions[1];
    assert_eq!((pass.from.as_str(), pass.to.as_str(), pass.message.as_str()), ("B", "C", "Pass"));
    let roles_and_bundles: Vec<_> = pass.links.iter().map(|l| (l.role.as_str(), l.bundle.as_str())).collect();
    assert_eq!(roles_and_bundles, [("C", "y"), ("B", "x"), ("B", "z")]);
    let merged: Vec<_> = spec.merged_links().into_iter().map(|l| (l.role, l.bundle)).collect();
    let expected = [("A", "x"), ("C", "y"), ("B", "x"), ("B", "z")];
    assert_eq!(merged, expected.map(|(r, b)| (r.to_owned(), b.to_owned())));
}

#[test]
fn roles_may_share_names_with_keywords() {
    let spec = parse("t", "protocol p\nnamespace n\nroles roles, protocol\nroles -> protocol : M\n").unwrap();
    assert_eq!(spec.interactions[0].from, "roles");
}

#[test]
fn unexpected_character() {
    assert_eq!(err("A -> B : M!\n"), SpecError::UnexpectedCharacter { at: at(4, 11), found: '!' });
}

#[test]
fn syntax_errors_say_what_was_expected() {
    assert_eq!(
        err("A -> B Hello\n"),
        SpecError::Syntax { at: at(4, 8), expected: "`:` before the message name", found: "`Hello`".into() }
    );
    assert_eq!(
        err("A -> B :\n"),
        SpecError::Syntax { at: at(4, 9), expected: "a message name", found: "end of line".into() }
    );
    let unknown_statement = err("protcol x\n");
    assert!(matches!(&unknown_statement, SpecError::Syntax { found, .. } if found == "`protcol`"));
    assert_eq!(unknown_statement.location(), &at(4, 1));
    assert!(matches!(err("A -> B : M junk\n"), SpecError::Syntax { at: a, .. } if a == at(4, 12)));
    assert!(matches!(err("A -> B : M @link bundle = x imports = y\n"), SpecError::Syntax { .. }));
    assert!(matches!(err("A -> B : M @link bundle = x, exports = [a b]\n"), SpecError::Syntax { .. }));
    assert!(matches!(err("A -> B : M @link bundle = x,\n"), SpecError::Syntax { .. }));
    assert!(matches!(err("A.b -> B : M\n"), SpecError::Syntax { .. }));
}

#[test]
fn duplicate_and_missing_statements() {
    assert_eq!(
        err("namespace m\n"),
        SpecError::DuplicateStatement { at: at(4, 1), keyword: "namespace", first: at(2, 11) }
    );
    assert_eq!(
        err("roles C\n"),
        SpecError::DuplicateStatement { at: at(4, 1), keyword: "roles", first: at(3, 1) }
    );
    let missing = parse("t.choreo", "namespace n\nroles A\n").unwrap_err();
    assert_eq!(missing, SpecError::MissingStatement { at: at(1, 1), keyword: "protocol" });
    let missing = parse("t.choreo", "protocol p\nroles A\n").unwrap_err();
    assert_eq!(missing, SpecError::MissingStatement { at: at(1, 1), keyword: "namespace" });
    let missing = parse("t.choreo", "protocol p\nnamespace n\n").unwrap_err();
    assert_eq!(missing, SpecError::MissingStatement { at: at(1, 1), keyword: "roles" });
}

#[test]
fn duplicate_role() {
    let e = parse("t.choreo", "protocol p\nnamespace n\nroles A, B, A\n").unwrap_err();
    assert_eq!(e, SpecError::DuplicateRole { at: at(3, 13), role: "A".into() });
}

#[test]
fn unknown_role() {
    assert_eq!(
        err("A -> C : M\n"),
        SpecError::UnknownRole { at: at(4, 6), role: "C".into(), declared: "A, B".into() }
    );
    assert_eq!(
        err("A -> B : M @link bundle = x, role = Z\n"),
        SpecError::UnknownRole { at: at(4, 37), role: "Z".into(), declared: "A, B".into() }
    );
    let before_roles = parse("t.choreo", "protocol p\nnamespace n\nA -> B : M\nroles A, B\n").unwrap_err();
    assert_eq!(
        before_roles,
        SpecError::UnknownRole { at: at(3, 1), role: "A".into(), declared: "none".into() }
    );
}

#[test]
fn message_to_self() {
    assert_eq!(
        err("B -> B : Echo\n"),
        SpecError::SelfMessage { at: at(4, 6), role: "B".into(), message: "Echo".into() }
    );
}

#[test]
fn annotation_without_interaction() {
    let e = parse("t.choreo", "protocol p\nnamespace n\nroles A, B\n  @link bundle = x\n").unwrap_err();
    assert_eq!(e, SpecError::AnnotationWithoutInteraction { at: at(4, 3) });
}

#[test]
fn unknown_annotation_and_key() {
    assert_eq!(
        err("A -> B : M @lnk bundle = x\n"),
        SpecError::UnknownAnnotation { at: at(4, 13), name: "lnk".into() }
    );
    assert_eq!(
        err("A -> B : M @link bundle = x, export = y\n"),
        SpecError::UnknownAnnotationKey { at: at(4, 30), key: "export".into() }
    );
    assert_eq!(
        err("A -> B : M @link bundle = x, bundle = y\n"),
        SpecError::DuplicateAnnotationKey { at: at(4, 30), key: "bundle".into() }
    );
}

#[test]
fn missing_bundle_id() {
    assert_eq!(err("A -> B : M @link exports = x\n"), SpecError::MissingBundleId { at: at(4, 12) });
    assert_eq!(err("A -> B : M\n@link\n"), SpecError::MissingBundleId { at: at(5, 1) });
}

#[test]
fn empty_bundle_id() {
    assert_eq!(err("A -> B : M @link bundle =\n"), SpecError::EmptyBundleId { at: at(4, 18) });
    assert_eq!(err("A -> B : M @link bundle = , exports = x\n"), SpecError::EmptyBundleId { at: at(4, 18) });
    assert_eq!(
        err("A -> B : M @link bundle= @link bundle = y\n"),
        SpecError::EmptyBundleId { at: at(4, 18) }
    );
}

#[test]
fn import_that_nothing_exports() {
    assert_eq!(
        err("A -> B : M @link bundle = x, exports = x.a, imports = [x.a, x.b]\n"),
        SpecError::UnresolvedImport { at: at(4, 61), interface: "x.b".into(), protocol: "p.q".into() }
    );
    // An export later in the file satisfies an earlier import.
    parse(
        "t",
        &format!(
            "{HEAD}A -> B : M @link bundle = x, imports = y.a\nB -> A : N @link bundle = y, exports = y.a\n"
        ),
    )
    .unwrap();
}

#[test]
fn duplicate_protocol_across_files() {
    let a = "protocol same\nnamespace n\nroles A\n";
    let b = "# other file\nprotocol   same\nnamespace m\nroles A\n";
    let e = parse_all(&[SpecSource { path: "a.choreo", text: a }, SpecSource { path: "b.choreo", text: b }])
        .unwrap_err();
    assert_eq!(
        e,
        SpecError::DuplicateProtocol {
            at: Location::new("b.choreo", 2, 12),
            id: "same".into(),
            first: Location::new("a.choreo", 1, 10),
        }
    );
    assert_eq!(e.to_string(), "b.choreo:2:12: protocol id `same` is already declared at a.choreo:1:10");
}

#[test]
fn every_error_message_starts_with_its_position() {
    for e in [err("A -> C : M\n"), err("A -> B : M @link\n"), err("A -> B : M @link bundle = x, q = 1\n")] {
        assert!(e.to_string().starts_with(&format!("{}: ", e.location())), "{e}");
    }
}

/// Printing a spec and parsing the text gives the same spec (its declaration then sits at
/// the printed `protocol` line).
fn assert_reprints(spec: &ProtocolSpec) {
    let printed = spec.to_string();
    let again = parse("t.choreo", &printed).unwrap_or_else(|e| panic!("{e}\n{printed}"));
    assert_eq!(again, ProtocolSpec { declared_at: at(1, 10), ..spec.clone() }, "{printed}");
    assert_eq!(again.to_string(), printed, "printing is a fixed point");
}

#[test]
fn a_printed_spec_parses_back_to_itself() {
    let spec = parse(
        "t.choreo",
        "protocol demo.p\nnamespace demo\nroles roles, B, C\n\
         roles -> B : Hello @link bundle = x, exports = [x.a, x.b], imports = x.a\n\
         B -> C : Pass\n  @link bundle = y, role = C, imports = [x.b]\n  @link bundle = x.y @link bundle = z\n\
         C -> roles : Done\n",
    )
    .unwrap();
    assert_reprints(&spec);
    for (name, text) in [
        ("device_enrollment", include_str!("../../protocols/device_enrollment.choreo")),
        ("epoch_rotation", include_str!("../../protocols/epoch_rotation.choreo")),
        ("guardian_membership", include_str!("../../protocols/guardian_membership.choreo")),
    ] {
        let shipped = parse("t.choreo", text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_reprints(&shipped);
    }
}
