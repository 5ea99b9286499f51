//! Helpers shared by the campaign and Canvas test files: the fixed `now`, JSON objects, users
//! tracked with a plan, launched campaigns, errors' fields, and an outbox that can be made to fail
//! mid-write.

// Each test file is its own crate and uses only some of these.
#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use domain::campaign::{self, Campaign, CampaignInput};
use domain::entity::webhook_send;
use domain::segment::{Comparison, Filter};
use domain::{DomainError, WorkspaceId, profile};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend};
use serde_json::{Map, Value, json};

pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0).unwrap()
}

pub fn props(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

pub fn plan_is(plan: &str) -> Filter {
    Filter::Attribute {
        name: "plan".into(),
        custom: true,
        comparison: Comparison::Equals,
        value: json!(plan),
    }
}

/// The field an error names, failing the test on success or on an error without one.
pub fn field_of<T: std::fmt::Debug>(result: Result<T, DomainError>) -> &'static str {
    match result {
        Err(error) => error
            .field()
            .unwrap_or_else(|| panic!("error without a field: {error}")),
        Ok(value) => panic!("expected an error, got {value:?}"),
    }
}

/// `/users/track` as of `at` (event times after the call's time are read as the call's time),
/// asserting it took everything.
pub async fn track(db: &DatabaseConnection, ws: &WorkspaceId, body: Value, at: DateTime<Utc>) {
    let outcome = profile::track(db, ws, &body, at).await.unwrap();
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
}

/// Users by external id, each with a `plan` attribute.
pub async fn users(db: &DatabaseConnection, ws: &WorkspaceId, plans: &[(&str, &str)]) {
    let attributes: Vec<Value> = plans
        .iter()
        .map(|(id, plan)| json!({"external_id": id, "plan": plan}))
        .collect();
    track(db, ws, json!({ "attributes": attributes }), now()).await;
}

/// A campaign created and launched at `at`.
pub async fn launched(
    db: &DatabaseConnection,
    ws: &WorkspaceId,
    input: CampaignInput,
    at: DateTime<Utc>,
) -> Campaign {
    let draft = campaign::create_campaign(db, ws, input, at).await.unwrap();
    campaign::launch_campaign(db, ws, &draft.id, at)
        .await
        .unwrap()
}

/// A send's render context, as JSON.
pub fn context(send: &webhook_send::Model) -> Value {
    serde_json::from_str(&send.context).unwrap()
}

/// Makes the outbox refuse a send to `recipient`, as if the process died while writing it.
pub async fn break_outbox_at(db: &DatabaseConnection, recipient: &str) {
    let statements = match db.get_database_backend() {
        DbBackend::Postgres => vec![
            format!(
                "CREATE FUNCTION crash_here() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF NEW.recipient = '{recipient}' THEN RAISE EXCEPTION 'simulated crash'; END IF; \
                 RETURN NEW; END $$"
            ),
            "CREATE TRIGGER crash_here BEFORE INSERT ON webhook_send FOR EACH ROW \
             EXECUTE FUNCTION crash_here()"
                .to_owned(),
        ],
        _ => vec![format!(
            "CREATE TRIGGER crash_here BEFORE INSERT ON webhook_send \
             WHEN NEW.recipient = '{recipient}' BEGIN SELECT RAISE(ABORT, 'simulated crash'); END"
        )],
    };
    for sql in statements {
        db.execute_unprepared(&sql).await.unwrap();
    }
}

/// Undoes [`break_outbox_at`].
pub async fn repair_outbox(db: &DatabaseConnection) {
    let sql = match db.get_database_backend() {
        DbBackend::Postgres => "DROP TRIGGER crash_here ON webhook_send",
        _ => "DROP TRIGGER crash_here",
    };
    db.execute_unprepared(sql).await.unwrap();
}
