//! Placement observations: where each role of a step's membership runs.
//!
//! Observations are checked in a fixed order so the same invalid set always reports the
//! same error: (1) one observation per role, in the order given; then, role by role in
//! sorted order, (2) the role is a member after the step, (3) a remote placement names an
//! endpoint, (4) a colocated placement names a peer that is another member, and a
//! non-blank region if any; then (5) colocation peers form no cycle; then (6) no role is
//! colocated, directly or through a chain of peers, with a role declaring another region.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::error::PlacementError;
use super::names::Member;

/// Where a role runs, as observed by the operator or runtime.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Placement {
    /// In this process.
    Local,
    /// Elsewhere, reachable at `endpoint` (which must not be blank).
    Remote {
        /// How to reach it.
        endpoint: String,
    },
    /// In the same place as another role.
    Colocated {
        /// The role it runs alongside (another member after the step).
        peer: String,
        /// The region it runs in, if declared; must agree with its peers'.
        #[serde(default)]
        region: Option<String>,
    },
}

impl Placement {
    /// A remote placement.
    pub fn remote(endpoint: impl Into<String>) -> Self {
        Self::Remote { endpoint: endpoint.into() }
    }

    /// A colocated placement without a region.
    pub fn colocated(peer: impl Into<String>) -> Self {
        Self::Colocated { peer: peer.into(), region: None }
    }

    /// A colocated placement in a region.
    pub fn colocated_in(peer: impl Into<String>, region: impl Into<String>) -> Self {
        Self::Colocated { peer: peer.into(), region: Some(region.into()) }
    }
}

/// One role's placement.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlacementObservation {
    /// The role.
    pub role: Member,
    /// Where it runs.
    pub placement: Placement,
}

/// A checked colocation: the peer as a member and the declared region.
struct Colocation<'a> {
    peer: Member,
    region: Option<&'a str>,
}

/// Checks `observations` for a step whose membership is `members`, in the order the
/// module documents.
///
/// ```
/// use std::collections::BTreeSet;
/// use reconf_core::upgrade::{validate_placements, Member, Placement, PlacementError, PlacementObservation};
/// let m = |s: &str| Member::new(s).unwrap();
/// let members: BTreeSet<Member> = [m("a"), m("b")].into();
/// let ok = [PlacementObservation { role: m("a"), placement: Placement::colocated("b") }];
/// assert!(validate_placements(&members, &ok).is_ok());
/// let bad = [PlacementObservation { role: m("b"), placement: Placement::remote("") }];
/// assert_eq!(validate_placements(&members, &bad), Err(PlacementError::MissingEndpoint { role: m("b") }));
/// ```
pub fn validate_placements(
    members: &BTreeSet<Member>,
    observations: &[PlacementObservation],
) -> Result<(), PlacementError> {
    let mut by_role: BTreeMap<&Member, &Placement> = BTreeMap::new();
    for o in observations {
        if by_role.insert(&o.role, &o.placement).is_some() {
            return Err(PlacementError::DuplicateRole { role: o.role.clone() });
        }
    }

    let mut colocations: BTreeMap<&Member, Colocation<'_>> = BTreeMap::new();
    for (&role, &placement) in &by_role {
        if !members.contains(role) {
            return Err(PlacementError::NotAMember { role: role.clone() });
        }
        match placement {
            Placement::Local => {}
            Placement::Remote { endpoint } => {
                if endpoint.trim().is_empty() {
                    return Err(PlacementError::MissingEndpoint { role: role.clone() });
                }
            }
            Placement::Colocated { peer, region } => {
                let peer = Member::new(peer.as_str())
                    .map_err(|_| PlacementError::MissingPeer { role: role.clone() })?;
                if peer == *role {
                    return Err(PlacementError::SelfPeer { role: role.clone() });
                }
                if !members.contains(&peer) {
                    return Err(PlacementError::UnknownPeer { role: role.clone(), peer: peer.into() });
                }
                if region.as_deref().is_some_and(|r| r.trim().is_empty()) {
                    return Err(PlacementError::BlankRegion { role: role.clone() });
                }
                colocations.insert(role, Colocation { peer, region: region.as_deref() });
            }
        }
    }

    for &role in colocations.keys() {
        if let Some(cycle) = cycle_from(role, &colocations) {
            // A cycle is reported from its smallest role so every entry point into the
            // same cycle gives the same error.
            let start = cycle.iter().enumerate().min_by(|x, y| x.1.cmp(y.1)).map_or(0, |(i, _)| i);
            let mut rotated: Vec<Member> = cycle[start..].iter().chain(&cycle[..start]).cloned().collect();
            let role = rotated.first().cloned().unwrap_or_else(|| role.clone());
            rotated.push(role.clone());
            return Err(PlacementError::ColocationCycle { role, cycle: rotated });
        }
    }

    for (&role, c) in &colocations {
        let Some(region) = c.region else { continue };
        let mut next = Some(&c.peer);
        // Acyclic by now, so the chain ends within as many hops as there are colocations.
        for _ in 0..colocations.len() {
            let Some(peer) = next else { break };
            let Some(pc) = colocations.get(peer) else { break };
            if let Some(peer_region) = pc.region {
                if peer_region != region {
                    return Err(PlacementError::RegionConflict {
                        role: role.clone(),
                        region: region.to_owned(),
                        peer: peer.clone(),
                        peer_region: peer_region.to_owned(),
                    });
                }
            }
            next = Some(&pc.peer);
        }
    }
    Ok(())
}

/// The cycle reached by following peers from `start`, if any (without repeating its
/// first role).
fn cycle_from(start: &Member, colocations: &BTreeMap<&Member, Colocation<'_>>) -> Option<Vec<Member>> {
    let mut path: Vec<&Member> = vec![start];
    let mut cur = start;
    while let Some(c) = colocations.get(cur) {
        if let Some(at) = path.iter().position(|m| **m == c.peer) {
            return Some(path[at..].iter().map(|m| (*m).clone()).collect());
        }
        path.push(&c.peer);
        cur = &c.peer;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Member {
        Member::new(s).unwrap()
    }

    fn set(names: &[&str]) -> BTreeSet<Member> {
        names.iter().map(|s| m(s)).collect()
    }

    fn obs(role: &str, placement: Placement) -> PlacementObservation {
        PlacementObservation { role: m(role), placement }
    }

    #[test]
    fn a_valid_mixed_set_passes() {
        let members = set(&["a", "b", "c", "d"]);
        let o = [
            obs("a", Placement::Local),
            obs("b", Placement::remote("tcp://b:7000")),
            obs("c", Placement::colocated_in("a", "eu")),
            obs("d", Placement::colocated_in("c", "eu")),
        ];
        assert_eq!(validate_placements(&members, &o), Ok(()));
        assert_eq!(validate_placements(&members, &[]), Ok(()));
    }

    #[test]
    fn each_shape_error_names_the_role() {
        let members = set(&["a", "b"]);
        let cases = [
            (
                vec![obs("a", Placement::Local), obs("a", Placement::Local)],
                PlacementError::DuplicateRole { role: m("a") },
            ),
            (vec![obs("z", Placement::Local)], PlacementError::NotAMember { role: m("z") }),
            (vec![obs("b", Placement::remote(" "))], PlacementError::MissingEndpoint { role: m("b") }),
            (vec![obs("b", Placement::colocated(""))], PlacementError::MissingPeer { role: m("b") }),
            (vec![obs("b", Placement::colocated("b"))], PlacementError::SelfPeer { role: m("b") }),
            (
                vec![obs("a", Placement::colocated("q"))],
                PlacementError::UnknownPeer { role: m("a"), peer: "q".into() },
            ),
            (vec![obs("a", Placement::colocated_in("b", ""))], PlacementError::BlankRegion { role: m("a") }),
        ];
        for (o, want) in cases {
            let got = validate_placements(&members, &o).unwrap_err();
            assert_eq!(got, want);
            let role = match &want {
                PlacementError::DuplicateRole { role }
                | PlacementError::NotAMember { role }
                | PlacementError::MissingEndpoint { role }
                | PlacementError::MissingPeer { role }
                | PlacementError::SelfPeer { role }
                | PlacementError::UnknownPeer { role, .. }
                | PlacementError::BlankRegion { role } => role.clone(),
                other => panic!("unexpected {other:?}"),
            };
            assert!(got.to_string().contains(&format!("role {role}")), "{got}");
        }
    }

    #[test]
    fn a_cycle_is_reported_from_its_smallest_role_whatever_the_entry() {
        let members = set(&["a", "b", "c", "d"]);
        let o = [
            obs("a", Placement::colocated("c")),
            obs("c", Placement::colocated("d")),
            obs("d", Placement::colocated("b")),
            obs("b", Placement::colocated("c")),
        ];
        let err = validate_placements(&members, &o).unwrap_err();
        assert_eq!(
            err,
            PlacementError::ColocationCycle { role: m("b"), cycle: vec![m("b"), m("c"), m("d"), m("b")] }
        );
        assert_eq!(err.to_string(), "role b is on a colocation cycle: b -> c -> d -> b");
    }

    #[test]
    fn regions_must_agree_along_the_colocation_chain() {
        let members = set(&["a", "b", "c"]);
        let direct =
            [obs("a", Placement::colocated_in("b", "eu")), obs("b", Placement::colocated_in("c", "us"))];
        assert_eq!(
            validate_placements(&members, &direct),
            Err(PlacementError::RegionConflict {
                role: m("a"),
                region: "eu".into(),
                peer: m("b"),
                peer_region: "us".into()
            })
        );
        // Through a peer that declares no region.
        let chained = [
            obs("a", Placement::colocated_in("b", "eu")),
            obs("b", Placement::colocated("c")),
            obs("c", Placement::Local),
        ];
        assert_eq!(validate_placements(&members, &chained), Ok(()));
        let members = set(&["a", "b", "c", "d"]);
        let chained = [
            obs("a", Placement::colocated_in("b", "eu")),
            obs("b", Placement::colocated("c")),
            obs("c", Placement::colocated_in("d", "us")),
        ];
        let err = validate_placements(&members, &chained).unwrap_err();
        assert!(
            matches!(err, PlacementError::RegionConflict { ref role, ref peer, .. } if *role == m("a") && *peer == m("c"))
        );
    }
}
