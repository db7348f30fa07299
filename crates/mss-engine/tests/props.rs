//! Properties: hostile bytes never panic the engine, and processing is
//! idempotent — a message processed again after its actions were applied
//! files nothing, deletes nothing and answers nothing.

mod support;

use mss_docs::xdm::Action as XdmAction;
use mss_engine::acknowledge::AckPlan;
use mss_engine::classify::classify;
use mss_engine::matching::LocalPatient;
use mss_engine::process::{Action, Input, State, apply_to_history, process};
use mss_engine::versions::{HeldState, HeldVersion};
use mss_model::IdentityStatus;
use proptest::prelude::*;
use support::*;

const IDS: [&str; 4] = ["9.1", "9.2", "9.3", "9.4"];

fn status() -> impl Strategy<Value = IdentityStatus> {
    prop_oneof![
        Just(IdentityStatus::Qual),
        Just(IdentityStatus::Vali),
        Just(IdentityStatus::Recup),
        Just(IdentityStatus::Prov),
    ]
}

fn held_state() -> impl Strategy<Value = HeldState> {
    prop_oneof![
        Just(HeldState::Current),
        Just(HeldState::Superseded),
        Just(HeldState::Deleted),
        Just(HeldState::PendingDeletion),
    ]
}

fn action() -> impl Strategy<Value = Option<XdmAction>> {
    prop_oneof![
        Just(None),
        Just(Some(XdmAction::Replace)),
        Just(Some(XdmAction::Delete))
    ]
}

#[derive(Debug, Clone)]
struct Scenario {
    docs: Vec<Doc>,
    action: Option<XdmAction>,
    patients: Vec<LocalPatient>,
    history: Vec<HeldVersion>,
    mdn: bool,
    auto_delete: bool,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let doc = (0..IDS.len(), 1u32..4, proptest::option::of(0..IDS.len()));
    (
        proptest::collection::vec(doc, 1..4),
        prop::bool::weighted(0.85),
        prop::bool::weighted(0.85),
        action(),
        proptest::collection::vec((status(), prop::bool::weighted(0.8)), 1..3),
        proptest::collection::vec(
            (
                0..IDS.len(),
                1u32..4,
                held_state(),
                prop_oneof![4 => Just(0usize), 1 => Just(1usize)],
            ),
            0..4,
        ),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(docs, with_ins, same_name, action, patients, history, mdn, auto_delete)| {
                let mut seen = std::collections::HashSet::new();
                let docs = docs
                    .into_iter()
                    .filter(|(i, _, _)| seen.insert(*i))
                    .map(|(i, version, replaces)| {
                        let mut d = Doc::new(IDS[i]).version(version, replaces.map(|r| IDS[r]));
                        if !with_ins {
                            d.ins = None;
                        }
                        if !same_name {
                            d.birth_name = "PAT-QUATRE".into();
                        }
                        d
                    })
                    .collect();
                let patients = patients
                    .into_iter()
                    .enumerate()
                    .map(|(n, (s, with_ins))| {
                        let mut p = patient(&format!("P{n}"), s);
                        if !with_ins {
                            p.ins = None;
                        }
                        p
                    })
                    .collect();
                let history = history
                    .into_iter()
                    .map(|(i, version, state, owner)| HeldVersion {
                        id: id(IDS[i]),
                        set_id: Some(id("1.2.250.1.999.7.9")),
                        version: Some(version),
                        patient: format!("P{owner}"),
                        state,
                        sha1: None,
                        origin: None,
                    })
                    .collect();
                Scenario {
                    docs,
                    action,
                    patients,
                    history,
                    mdn,
                    auto_delete,
                }
            },
        )
}

fn effects(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| {
            matches!(
                a,
                Action::StoreVersion { .. }
                    | Action::MarkDeleted { .. }
                    | Action::AwaitDeletionConfirmation { .. }
                    | Action::Acknowledge(_)
            )
        })
        .count()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn processing_again_after_applying_files_nothing(s in scenario()) {
        let xml: Vec<Vec<u8>> = s.docs.iter().map(Doc::xml).collect();
        let raw = message("prop@hopital.mssante.fr", &xml, s.action, s.mdn);
        let options = mss_engine::Options { auto_delete: s.auto_delete, ..options() };
        let state = State { patients: &s.patients, history: &s.history, acknowledged: false };
        let first = process(Input::Message { raw: &raw }, &state, &options).unwrap();
        // Deterministic.
        prop_assert_eq!(&first, &process(Input::Message { raw: &raw }, &state, &options).unwrap());
        // One store at most per document.
        let stored = first.actions.iter().filter(|a| matches!(a, Action::StoreVersion { .. })).count();
        prop_assert!(stored <= s.docs.len());

        let mut history = s.history.clone();
        for a in &first.actions {
            apply_to_history(&mut history, a);
        }
        let state = State {
            patients: &s.patients,
            history: &history,
            acknowledged: !matches!(first.ack, AckPlan::None(_)),
        };
        let second = process(Input::Message { raw: &raw }, &state, &options).unwrap();
        prop_assert_eq!(effects(&second.actions), 0, "second pass: {:?}", second.actions);
    }

    #[test]
    fn hostile_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = classify(&bytes);
        let state = State { patients: &[], history: &[], acknowledged: false };
        let _ = process(Input::Message { raw: &bytes }, &state, &options());
        let _ = process(Input::Import { zip: &bytes }, &state, &options());
    }

    #[test]
    fn damaged_messages_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16)) {
        let mut raw = message("dmg@hopital.mssante.fr", &[Doc::new("9.9").xml()], None, true);
        for (at, byte) in flips {
            let i = at.index(raw.len());
            raw[i] = byte;
        }
        let patients = [patient("P1", IdentityStatus::Qual)];
        let state = State { patients: &patients, history: &[], acknowledged: false };
        if let Ok(p) = process(Input::Message { raw: &raw }, &state, &options()) {
            prop_assert!(p.documents.iter().all(|d| d.outcome.error_code().is_none_or(|c| (900..=906).contains(&c.code()))));
        }
    }
}
