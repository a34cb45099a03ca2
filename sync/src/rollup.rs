//! The control-plane object's `.status`, rolled up from its members' copies (pure).
//!
//! A federated workload's status in the control plane says what the federation runs,
//! not what the template asks for: the members' counts summed (Federation v1 summed
//! `replicas`, `updatedReplicas`, `fullyLabeledReplicas`, `readyReplicas` and
//! `availableReplicas`), `observedGeneration` the control-plane object's own generation
//! (Federation v1 took the highest of the members', which are unrelated numbers), and
//! for Deployments `unavailableReplicas` and an `Available` condition measured against
//! the replicas asked for, so that 6 ready out of 10 wanted reads as 6/10 and not
//! Available. The controller writes it through the status subresource, and the same
//! value, with each member's own counts, into the `meridian.io/sync-status` annotation.

use serde_json::{Map, Value, json};

use crate::kinds::{Builtin, Kind};

/// Status counts of a kind that are summed over the members.
fn summed(kind: &Kind) -> &'static [&'static str] {
    match kind.builtin {
        Some(Builtin::Deployment) => &["replicas", "updatedReplicas", "readyReplicas", "availableReplicas"],
        Some(Builtin::ReplicaSet) => &["replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas"],
        Some(Builtin::DaemonSet) => &[
            "desiredNumberScheduled",
            "currentNumberScheduled",
            "updatedNumberScheduled",
            "numberReady",
            "numberAvailable",
            "numberUnavailable",
            "numberMisscheduled",
        ],
        _ => &[],
    }
}

/// True for the kinds whose status is rolled up.
pub(crate) fn applies(kind: &Kind) -> bool {
    !summed(kind).is_empty()
}

/// One member's counts, for its entry in the sync-status annotation: the summed fields
/// its copy reports.
pub(crate) fn member_counts(kind: &Kind, status: &Value) -> Value {
    let counts: Map<String, Value> = summed(kind)
        .iter()
        .filter_map(|f| status.get(*f).filter(|v| v.is_i64()).map(|v| ((*f).to_owned(), v.clone())))
        .collect();
    Value::Object(counts)
}

/// What a roll-up is computed from.
pub(crate) struct Input<'a> {
    pub(crate) kind: &'a Kind,
    /// The control-plane object (its generation and spec).
    pub(crate) obj: &'a Value,
    /// `.status` of every member copy that reported one.
    pub(crate) members: &'a [Value],
    /// Replicas the federation should run (Deployments): the template's `spec.replicas`,
    /// or, when the members' autoscalers own replicas, the sum of theirs.
    pub(crate) desired: i64,
    /// Replicas given to members, summed (less than `desired` when some found no place).
    pub(crate) placed: i64,
    /// The previous roll-up (or the object's status): keeps a condition's transition time
    /// while its status stays.
    pub(crate) previous: Option<&'a Value>,
    /// RFC 3339 time for a condition that changes now.
    pub(crate) now: &'a str,
}

/// The control-plane object's rolled-up `.status`.
pub(crate) fn roll_up(input: &Input<'_>) -> Value {
    let mut out = Map::new();
    let generation = input.obj.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
    out.insert("observedGeneration".into(), json!(generation));
    for f in summed(input.kind) {
        let sum: i64 = input.members.iter().filter_map(|s| s.get(*f).and_then(Value::as_i64)).sum();
        out.insert((*f).to_owned(), json!(sum));
    }
    if input.kind.is(Builtin::Deployment) {
        let available = out.get("availableReplicas").and_then(Value::as_i64).unwrap_or(0);
        out.insert("unavailableReplicas".into(), json!((input.desired - available).max(0)));
        out.insert("conditions".into(), json!([available_condition(input, available)]));
    }
    Value::Object(out)
}

/// `Available`: true when every replica asked for is available somewhere.
fn available_condition(input: &Input<'_>, available: i64) -> Value {
    let (status, reason) =
        if available >= input.desired { ("True", "AllReplicasAvailable") } else { ("False", "ReplicasUnavailable") };
    let mut message = format!("{available} of {} replicas available in the member clusters", input.desired);
    if input.placed < input.desired {
        let unplaced = input.desired - input.placed;
        message.push_str(&format!("; {unplaced} placed in no cluster (every placed cluster is full or unavailable)"));
    }
    let since = input
        .previous
        .and_then(|p| p.get("conditions"))
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Available" && c["status"] == status))
        .and_then(|c| c.get("lastTransitionTime"))
        .cloned()
        .unwrap_or_else(|| json!(input.now));
    json!({"type": "Available", "status": status, "reason": reason, "message": message, "lastTransitionTime": since})
}

/// True when `live` (the control-plane object's `.status`) already says what `rollup`
/// says: the same counts (a count the server left out, as it does zeros, is 0) and the
/// same condition statuses. Reasons, messages and times are descriptive and may differ.
pub(crate) fn shown(rollup: &Value, live: Option<&Value>) -> bool {
    let Some(fields) = rollup.as_object() else { return false };
    let empty = Value::Null;
    let live = live.unwrap_or(&empty);
    fields.iter().all(|(k, want)| match want {
        Value::Array(conditions) => conditions.iter().all(|c| has_condition(live.get(k.as_str()), c)),
        _ => live.get(k.as_str()).and_then(Value::as_i64).unwrap_or(0) == want.as_i64().unwrap_or(0),
    })
}

fn has_condition(live: Option<&Value>, want: &Value) -> bool {
    live.and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c.get("type") == want.get("type") && c.get("status") == want.get("status")))
}

/// What to do about the control-plane object's `.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusWrite {
    /// It already shows the roll-up.
    Shown,
    /// Write the roll-up.
    Write,
    /// Meridian wrote this roll-up and something else has replaced it since: a workload
    /// controller running in the control plane. Writing again would start a
    /// write-for-write loop with it, so the roll-up is left to the annotation.
    Overwritten,
}

/// Decides the write from the roll-up, the live `.status` and what Meridian last wrote.
pub(crate) fn decide(rollup: &Value, live: Option<&Value>, written: Option<&Value>) -> StatusWrite {
    if shown(rollup, live) {
        StatusWrite::Shown
    } else if written == Some(rollup) {
        StatusWrite::Overwritten
    } else {
        StatusWrite::Write
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{self, DEFAULTS};

    fn kind(name: &str) -> &'static Kind {
        kinds::get(kinds::by_name(name).unwrap_or(kinds::NAMESPACE))
    }

    const NOW: &str = "2026-01-01T00:00:00Z";

    fn deployment_rollup(members: &[Value], desired: i64, placed: i64, previous: Option<&Value>) -> Value {
        let obj = json!({"metadata": {"generation": 4}, "spec": {"replicas": desired}});
        roll_up(&Input { kind: kind("Deployment"), obj: &obj, members, desired, placed, previous, now: NOW })
    }

    fn ready(n: i64) -> Value {
        json!({"replicas": n, "updatedReplicas": n, "readyReplicas": n, "availableReplicas": n, "observedGeneration": 9})
    }

    #[test]
    fn ten_wanted_six_placed_is_six_ready_and_not_available() {
        let got = deployment_rollup(&[ready(2), ready(2), ready(2)], 10, 6, None);
        assert_eq!(
            got,
            json!({"observedGeneration": 4, "replicas": 6, "updatedReplicas": 6, "readyReplicas": 6,
                "availableReplicas": 6, "unavailableReplicas": 4,
                "conditions": [{"type": "Available", "status": "False", "reason": "ReplicasUnavailable",
                    "message": "6 of 10 replicas available in the member clusters; 4 placed in no cluster (every placed cluster is full or unavailable)",
                    "lastTransitionTime": NOW}]})
        );
    }

    #[test]
    fn a_condition_keeps_its_transition_time_while_its_status_stays() {
        let obj = json!({"metadata": {"generation": 4}});
        let members = [ready(3)];
        let first = Input {
            kind: kind("Deployment"),
            obj: &obj,
            members: &members,
            desired: 3,
            placed: 3,
            previous: None,
            now: NOW,
        };
        let before = roll_up(&first);
        let later = Input { previous: Some(&before), now: "2030-01-01T00:00:00Z", ..first };
        let again = roll_up(&later);
        assert_eq!(
            (&again["conditions"][0]["status"], &again["conditions"][0]["lastTransitionTime"]),
            (&json!("True"), &json!(NOW))
        );
        let lost = roll_up(&Input { members: &[], ..later });
        assert_eq!(lost["conditions"][0]["status"], "False");
        assert_eq!(lost["conditions"][0]["lastTransitionTime"], "2030-01-01T00:00:00Z");
    }

    #[test]
    fn other_kinds_sum_their_own_counts_and_have_no_conditions() {
        let obj = json!({"metadata": {"generation": 2}});
        let ds = [json!({"numberReady": 2, "desiredNumberScheduled": 2}), json!({"numberReady": 1})];
        let got = roll_up(&Input {
            kind: kind("DaemonSet"),
            obj: &obj,
            members: &ds,
            desired: 0,
            placed: 0,
            previous: None,
            now: NOW,
        });
        assert_eq!(got["numberReady"], 3);
        assert_eq!(got["desiredNumberScheduled"], 2);
        assert_eq!(got["numberMisscheduled"], 0);
        assert_eq!(got["observedGeneration"], 2);
        assert!(got.get("conditions").is_none() && got.get("replicas").is_none());
        assert!(DEFAULTS.iter().filter(|k| applies(k)).all(|k| k.kind.ends_with("Set") || k.kind == "Deployment"));
        assert_eq!(
            member_counts(kind("ReplicaSet"), &json!({"replicas": 2, "readyReplicas": 1, "conditions": []})),
            json!({"replicas": 2, "readyReplicas": 1})
        );
    }

    #[test]
    fn status_writes_are_decided_against_what_is_shown_and_what_was_written() {
        let rollup = deployment_rollup(&[ready(2)], 2, 2, None);
        // A server leaves zero counts out; other reasons and times are still the roll-up.
        let mut live = rollup.clone();
        live["unavailableReplicas"] = Value::Null;
        live["conditions"][0]["reason"] = json!("MinimumReplicasAvailable");
        live["conditions"][0]["lastTransitionTime"] = json!("2020-01-01T00:00:00Z");
        let sims = json!({"replicas": 9, "readyReplicas": 9, "availableReplicas": 9, "updatedReplicas": 9,
            "observedGeneration": 4, "conditions": [{"type": "Available", "status": "True"}]});
        let cases = [
            (Some(&live), None, StatusWrite::Shown),
            (None, None, StatusWrite::Write),
            (Some(&sims), None, StatusWrite::Write),
            (Some(&sims), Some(&rollup), StatusWrite::Overwritten),
        ];
        for (live, written, want) in cases {
            assert_eq!(decide(&rollup, live, written), want, "live {live:?}, written {written:?}");
        }
    }
}
