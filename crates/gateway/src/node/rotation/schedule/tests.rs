use super::*;
use crate::node::rotation::LEGACY_ROTATION_ID;

const EPOCH: Duration = Duration::from_secs(3600);
const RETRY: Duration = Duration::from_secs(240);

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

/// Rotations of 4 epochs from epoch 10; nym-api in `epoch`, which began at `t(0)`.
fn info(epoch: u32) -> RotationInfo {
    RotationInfo {
        state: KeyRotationState {
            validity_epochs: 4,
            initial_epoch_id: 10,
        },
        current_epoch: epoch,
        current_epoch_start: t(0),
        epoch_duration: EPOCH,
    }
}

#[test]
fn nym_apis_answer_parses_and_garbage_is_refused() {
    let body = br#"{"key_rotation_state":{"validity_epochs":24,"initial_epoch_id":0},
        "current_absolute_epoch_id":50,"current_epoch_start":"2026-12-04T17:00:00Z",
        "epoch_duration":{"secs":3600,"nanos":0},
        "progress":{"current_key_rotation_id":2,"current_rotation_starting_epoch":48,"current_rotation_ending_epoch":71}}"#;
    let info = RotationInfo::parse(body).unwrap();
    assert_eq!(info.current_rotation(), 2);
    assert_eq!(info.epoch_duration, EPOCH);
    assert_eq!(
        info.current_epoch_start,
        humantime::parse_rfc3339("2026-12-04T17:00:00Z").unwrap()
    );
    let offset = String::from_utf8_lossy(body).replace("17:00:00Z", "17:00:00.5+00:00");
    assert!(RotationInfo::parse(offset.as_bytes()).is_ok());

    let cases: [(&str, &[u8]); 5] = [
        ("not json", b"<html>busy</html>"),
        ("missing fields", br#"{"key_rotation_state":{"validity_epochs":24,"initial_epoch_id":0}}"#),
        ("zero validity", br#"{"key_rotation_state":{"validity_epochs":0,"initial_epoch_id":0},"current_absolute_epoch_id":1,"current_epoch_start":"2026-12-04T17:00:00Z","epoch_duration":{"secs":3600,"nanos":0}}"#),
        ("zero epoch", br#"{"key_rotation_state":{"validity_epochs":2,"initial_epoch_id":0},"current_absolute_epoch_id":1,"current_epoch_start":"2026-12-04T17:00:00Z","epoch_duration":{"secs":0,"nanos":0}}"#),
        ("bad time", br#"{"key_rotation_state":{"validity_epochs":2,"initial_epoch_id":0},"current_absolute_epoch_id":1,"current_epoch_start":"yesterday","epoch_duration":{"secs":60,"nanos":0}}"#),
    ];
    for (name, body) in cases {
        assert!(RotationInfo::parse(body).is_err(), "{name} was accepted");
    }
}

#[test]
fn epochs_and_rotations_are_counted_from_the_initial_epoch() {
    let i = info(17); // rotation 1 = epochs 14..=17
    assert_eq!(i.current_rotation(), 1);
    assert_eq!(i.rotation_of(9), 0, "before the initial epoch: rotation 0");
    assert_eq!(i.rotation_start_epoch(2), 18);
    assert_eq!(i.epoch_start(18), t(3600));
    assert_eq!(i.epoch_start(15), t(0) - EPOCH * 2);
    assert_eq!(i.epoch_at(t(3599)), 17);
    assert_eq!(i.epoch_at(t(7200)), 19);
    assert_eq!(i.rotation_at(t(3600)), 2);
    assert_eq!(i.advanced_to(t(7300)).current_epoch, 19);
    assert_eq!(i.advanced_to(t(7300)).current_epoch_start, t(7200));
    assert!(!i.is_stuck(t(3600 + 700)));
    assert!(i.is_stuck(t(3600 + 721)));
}

/// Every branch of the plan, named.
#[test]
fn the_plan_for_each_state_of_the_keys() {
    use Step::*;
    // (name, nym-api epoch, now, primary, secondary, expected step, expected time)
    type Case = (
        &'static str,
        u32,
        SystemTime,
        u32,
        Option<u32>,
        Step,
        SystemTime,
    );
    let cases: &[Case] = &[
        (
            "a never-rotated gateway adopts its key for the current rotation",
            15,
            t(10),
            LEGACY_ROTATION_ID,
            None,
            Adopt { rotation: 1 },
            t(10),
        ),
        (
            "mid-rotation: pre-announce at the start of the rotation's last epoch",
            15,
            t(10),
            1,
            None,
            PreAnnounce { rotation: 2 },
            t(0) + EPOCH * 2,
        ),
        (
            "in the last epoch: pre-announce now (its start)",
            17,
            t(10),
            1,
            None,
            PreAnnounce { rotation: 2 },
            t(0),
        ),
        (
            "pre-announced: swap at the boundary",
            17,
            t(10),
            1,
            Some(2),
            Swap { rotation: 2 },
            t(3600),
        ),
        (
            "the boundary passed before the swap: swap now",
            18,
            t(10),
            1,
            Some(2),
            Swap { rotation: 2 },
            t(10),
        ),
        (
            "overlap: purge the old key at the start of the second epoch",
            18,
            t(10),
            2,
            Some(1),
            Purge,
            t(3600),
        ),
        (
            "an older secondary: purge now",
            18,
            t(10),
            2,
            Some(0),
            Purge,
            t(10),
        ),
        (
            "a secondary from the future: purge now",
            18,
            t(10),
            2,
            Some(7),
            Purge,
            t(10),
        ),
        (
            "offline for rotations: a key for the current rotation now",
            19,
            t(10),
            0,
            None,
            PreAnnounce { rotation: 2 },
            t(10),
        ),
        (
            "offline, in the rotation's last epoch: still a key for the current one",
            21,
            t(10),
            0,
            None,
            PreAnnounce { rotation: 2 },
            t(10),
        ),
        (
            "a primary from the future: a key for the current rotation",
            19,
            t(10),
            9,
            None,
            PreAnnounce { rotation: 2 },
            t(10),
        ),
        (
            "nym-api behind the clock: wait a little",
            17,
            t(3600 + 60),
            1,
            None,
            Wait,
            t(3600 + 60 + 30),
        ),
        (
            "stuck epoch: wait the retry",
            17,
            t(3600 * 3),
            1,
            None,
            Wait,
            t(3600 * 3) + RETRY,
        ),
        (
            "seconds before the boundary: wait until just after it",
            17,
            t(3600 - 5),
            1,
            None,
            Wait,
            t(3600 + 30),
        ),
    ];
    for (name, epoch, now, primary, secondary, step, at) in cases {
        let got = plan(&info(*epoch), *primary, *secondary, *now, RETRY);
        assert_eq!(
            got,
            Plan {
                step: *step,
                at: *at
            },
            "{name}"
        );
    }
}

/// Following the plan step by step from a fresh gateway through two boundaries gives the
/// keys nym-node would hold at each moment.
#[test]
fn following_the_plan_rotates_with_one_epoch_of_overlap() {
    let epoch = Duration::from_secs(60);
    let genesis = t(0);
    let info_at = |now: SystemTime| {
        let e = (now.duration_since(genesis).unwrap().as_secs() / 60) as u32;
        RotationInfo {
            state: KeyRotationState {
                validity_epochs: 3,
                initial_epoch_id: 0,
            },
            current_epoch: e,
            current_epoch_start: genesis + epoch * e,
            epoch_duration: epoch,
        }
    };
    let (mut primary, mut secondary) = (LEGACY_ROTATION_ID, None);
    let mut now = t(5);
    let mut log = Vec::new();
    while now < t(60 * 7) {
        let p = plan(&info_at(now), primary, secondary, now, RETRY);
        now = now.max(p.at);
        match p.step {
            Step::Adopt { rotation } => primary = rotation,
            Step::PreAnnounce { rotation } => secondary = Some(rotation),
            Step::Swap { rotation } => {
                assert_eq!(secondary, Some(rotation));
                secondary = Some(primary);
                primary = rotation;
            }
            Step::Purge => secondary = None,
            Step::Wait => {}
        }
        log.push((
            now.duration_since(genesis).unwrap().as_secs(),
            primary,
            secondary,
        ));
    }
    assert_eq!(
        log,
        [
            (5, 0, None),      // adopted for rotation 0 (epochs 0..=2)
            (120, 0, Some(1)), // pre-announced in epoch 2
            (180, 1, Some(0)), // swapped at epoch 3; the old key overlaps
            (240, 1, None),    // purged at epoch 4
            (300, 1, Some(2)), // pre-announced in epoch 5
            (360, 2, Some(1)), // swapped at epoch 6
            (420, 2, None),
        ]
    );
}
