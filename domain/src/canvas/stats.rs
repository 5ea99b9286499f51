//! Canvas analytics (per step, per branch, over time) and one user's journeys, from the step
//! events, the journeys and the outbox.
//!
//! Every figure is a `GROUP BY` in the database (journeys on `canvas_journey_by_canvas`, step
//! events on `canvas_step_event_by_step`, sends on `webhook_send_by_source`, conversion events
//! looked up per journey on `profile_event_by_profile` or `profile_purchase_by_profile`), so a
//! Canvas of any size costs a handful of small result sets; time buckets are formatted by the
//! database and parsed here, as for campaigns.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Value,
};

use super::model::{
    CanvasStats, ConversionPoint, Definition, JourneyStep, StepId, StepKind, StepStats,
};
use crate::campaign::{Bucket, Conversion, Trigger};
use crate::entity::{canvas, canvas_step_event, canvas_version};
use crate::outbox::{SourceKind, status as send_status};
use crate::report::{bucket_label, bucket_start, count, query};
use crate::{CanvasId, DomainError, DomainResult, JourneyId, ProfileId, WorkspaceId};

/// The most journey steps [`user_journeys`] returns.
const MAX_JOURNEY_STEPS: u64 = 500;
/// How far before a period the conversion series looks for journeys whose window reaches into
/// it (conversion windows are at most 30 days).
const MAX_WINDOW_LOOKBACK_SECONDS: u64 = 31 * 86_400;

/// Figures for `[since, until)`.
///
/// - `entries`: journeys entered in the period (re-entries count again, as in Braze);
///   `in_progress`: journeys active or waiting now, whenever they entered; `finished` and
///   `exited`: journeys that ended in the period, by how (their `finished_at`).
/// - Per step, from the step events of the period: entered, sent, aborted, exited and the
///   users per branch taken; delivered, errors (final failures) and aborted sends (Liquid
///   `abort_message`, which runs at delivery) from the outbox rows of the period that the
///   step's sends made (`variant_id` = the step id). Steps come in the order of the current
///   definition, then steps of earlier versions that had events, by id.
/// - Control-group entries are journeys too (written already finished), so they count in
///   `entries` and `finished`.
/// - `series`: per hour or day (UTC), journeys entered and sends (`sent` step events); only
///   buckets with something in them, oldest first.
/// - Conversions follow the current definition's primary conversion event (read at query time,
///   so changing it re-reads the past, as for campaigns): a journey converts when its user
///   performs the event (tracked custom event by name, or purchase of the product, or of any
///   product) at or after entering the Canvas and at most the window after. `conversions`
///   counts the journeys entered in the period that converted, each once; a step's `converted`
///   counts the journeys that entered the step in the period and converted at or after entering
///   it (see [`StepStats::converted`]); `conversion_series` buckets them by the time of the first
///   qualifying event (within the period) and by entry time.
pub async fn canvas_stats(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &CanvasId,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    bucket: Bucket,
) -> DomainResult<CanvasStats> {
    let row = canvas::Entity::find_by_id((ws.to_string(), id.to_string()))
        .one(db)
        .await?
        .ok_or(DomainError::NotFound("Canvas"))?;
    let canvas = super::store::decode(row)?;
    let mut stats = CanvasStats::default();

    // Journeys.
    let sql = "SELECT status, COUNT(*) AS n, \
                      SUM(CASE WHEN entered_at >= ? AND entered_at < ? THEN 1 ELSE 0 END) \
                        AS entered, \
                      SUM(CASE WHEN COALESCE(finished_at, updated_at) >= ? \
                                AND COALESCE(finished_at, updated_at) < ? THEN 1 ELSE 0 END) \
                        AS ended \
               FROM canvas_journey WHERE workspace_id = ? AND canvas_id = ? GROUP BY status";
    let values: Vec<Value> = vec![
        since.into(),
        until.into(),
        since.into(),
        until.into(),
        ws.as_str().into(),
        id.as_str().into(),
    ];
    for row in query(db, sql, values).await? {
        let status: String = row.try_get("", "status")?;
        let n = count(row.try_get("", "n")?);
        let entered = count(sum(row.try_get("", "entered")?));
        let ended = count(sum(row.try_get("", "ended")?));
        stats.entries += entered;
        match status.as_str() {
            "active" | "waiting" => stats.in_progress += n,
            "finished" => stats.finished += ended,
            "exited" => stats.exited += ended,
            _ => {}
        }
    }

    // Step events.
    let mut steps: BTreeMap<String, StepStats> = BTreeMap::new();
    let sql = "SELECT step_id, kind, branch, COUNT(*) AS n FROM canvas_step_event \
               WHERE workspace_id = ? AND canvas_id = ? AND at >= ? AND at < ? \
                 AND step_id IS NOT NULL \
               GROUP BY step_id, kind, branch";
    let values: Vec<Value> = vec![
        ws.as_str().into(),
        id.as_str().into(),
        since.into(),
        until.into(),
    ];
    for row in query(db, sql, values).await? {
        let Some(step) = row.try_get::<Option<String>>("", "step_id")? else {
            continue;
        };
        let kind: String = row.try_get("", "kind")?;
        let branch: Option<String> = row.try_get("", "branch")?;
        let n = count(row.try_get("", "n")?);
        let figures = step_entry(&mut steps, step);
        match kind.as_str() {
            "entered" => figures.entered += n,
            "sent" => figures.sent += n,
            "aborted" => figures.aborted += n,
            "exited" => figures.exited += n,
            "branch" => {
                let branch = branch.unwrap_or_default();
                match figures.branches.iter_mut().find(|(b, _)| *b == branch) {
                    Some((_, users)) => *users += n,
                    None => figures.branches.push((branch, n)),
                }
            }
            _ => {}
        }
    }

    // Outcomes of the Message steps' sends.
    let sql = "SELECT variant_id, status, COUNT(*) AS n FROM webhook_send \
               WHERE workspace_id = ? AND source_kind = ? AND source_id = ? \
                 AND created_at >= ? AND created_at < ? AND variant_id IS NOT NULL \
               GROUP BY variant_id, status";
    let values: Vec<Value> = vec![
        ws.as_str().into(),
        SourceKind::Canvas.as_str().into(),
        id.as_str().into(),
        since.into(),
        until.into(),
    ];
    for row in query(db, sql, values).await? {
        let Some(step) = row.try_get::<Option<String>>("", "variant_id")? else {
            continue;
        };
        let status: String = row.try_get("", "status")?;
        let n = count(row.try_get("", "n")?);
        let figures = step_entry(&mut steps, step);
        match status.as_str() {
            send_status::DELIVERED => figures.delivered += n,
            send_status::FAILED => figures.errors += n,
            // `abort_message` runs when the send is rendered, after the step moved on.
            send_status::ABORTED => figures.aborted += n,
            _ => {}
        }
    }

    // Conversions of the primary conversion event.
    if let Some(primary) = canvas.draft.conversions.first() {
        let scope = Scope {
            ws,
            id,
            since,
            until,
        };
        for (step, n) in converted_per_step(db, &scope, primary).await? {
            step_entry(&mut steps, step).converted += n;
        }
        stats.conversion_series = conversion_series(db, &scope, primary, bucket).await?;
        stats.conversions = stats
            .conversion_series
            .iter()
            .map(|p| p.conversions_by_entry_time)
            .sum();
    }

    // The current definition's steps first, in its order, each with its branches in the
    // order the step lists them.
    for step in &canvas.draft.steps {
        let mut figures = steps.remove(step.id.as_str()).unwrap_or_else(|| StepStats {
            step_id: step.id.clone(),
            ..StepStats::default()
        });
        order_branches(&mut figures.branches, &branch_order(&step.kind));
        stats.steps.push(figures);
    }
    for (_, mut figures) in steps {
        order_branches(&mut figures.branches, &[]);
        stats.steps.push(figures);
    }

    stats.series = series(db, ws, id, since, until, bucket).await?;
    Ok(stats)
}

/// The user's latest journey steps across Canvases, newest first (at most 500), each named
/// after the step in the version the journey ran on (the step id when it has no name).
pub async fn user_journeys(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    profile: &ProfileId,
    limit: u64,
) -> DomainResult<Vec<JourneyStep>> {
    let events = canvas_step_event::Entity::find()
        .filter(canvas_step_event::Column::WorkspaceId.eq(ws.as_str()))
        .filter(canvas_step_event::Column::ProfileId.eq(profile.as_str()))
        .order_by_desc(canvas_step_event::Column::At)
        .order_by_desc(canvas_step_event::Column::Id)
        .limit(limit.min(MAX_JOURNEY_STEPS))
        .all(db)
        .await?;
    if events.is_empty() {
        return Ok(Vec::new());
    }

    let mut canvas_ids: Vec<&str> = events.iter().map(|e| e.canvas_id.as_str()).collect();
    canvas_ids.sort_unstable();
    canvas_ids.dedup();
    let names: HashMap<String, String> = canvas::Entity::find()
        .filter(canvas::Column::WorkspaceId.eq(ws.as_str()))
        .filter(canvas::Column::Id.is_in(canvas_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect();

    let mut versions: Vec<(&str, i32)> = events
        .iter()
        .map(|e| (e.canvas_id.as_str(), e.version))
        .collect();
    versions.sort_unstable();
    versions.dedup();
    let mut which = Condition::any();
    for (canvas_id, version) in &versions {
        which = which.add(
            Condition::all()
                .add(canvas_version::Column::CanvasId.eq(*canvas_id))
                .add(canvas_version::Column::Version.eq(*version)),
        );
    }
    // (Canvas, version) → step id → step name. A definition that can't be read only costs the
    // names: the history still shows, with step ids.
    let mut step_names: HashMap<(String, i32), HashMap<String, String>> = HashMap::new();
    for row in canvas_version::Entity::find()
        .filter(canvas_version::Column::WorkspaceId.eq(ws.as_str()))
        .filter(which)
        .all(db)
        .await?
    {
        let Ok(definition) = serde_json::from_str::<Definition>(&row.definition) else {
            continue;
        };
        let steps = definition
            .steps
            .into_iter()
            .map(|s| (s.id.0, s.name))
            .collect();
        step_names.insert((row.canvas_id, row.version), steps);
    }

    Ok(events
        .into_iter()
        .map(|event| {
            let step_name = event
                .step_id
                .as_ref()
                .map(|step| {
                    step_names
                        .get(&(event.canvas_id.clone(), event.version))
                        .and_then(|steps| steps.get(step))
                        .filter(|name| !name.trim().is_empty())
                        .cloned()
                        .unwrap_or_else(|| step.clone())
                })
                .unwrap_or_default();
            JourneyStep {
                canvas_name: names.get(&event.canvas_id).cloned().unwrap_or_default(),
                canvas_id: CanvasId::from_db(event.canvas_id),
                journey_id: JourneyId::from_db(event.journey_id),
                version: event.version,
                step_id: event.step_id.map(StepId),
                step_name,
                kind: event.kind,
                branch: event.branch,
                at: event.at,
            }
        })
        .collect())
}

/// The figures of one step, made when first seen.
fn step_entry(steps: &mut BTreeMap<String, StepStats>, step: String) -> &mut StepStats {
    steps.entry(step.clone()).or_insert_with(|| StepStats {
        step_id: StepId(step),
        ..StepStats::default()
    })
}

/// The branch labels a step can write, in the order it lists them (the journey engine labels
/// a Decision Split's branches `yes` and `no`, paths by name, the rest `Everyone Else`, and an
/// Experiment's control group `control`).
fn branch_order(kind: &StepKind) -> Vec<String> {
    match kind {
        StepKind::DecisionSplit { .. } => vec!["yes".into(), "no".into()],
        StepKind::AudiencePaths { paths, .. } => paths
            .iter()
            .map(|p| p.name.clone())
            .chain(["Everyone Else".into()])
            .collect(),
        StepKind::ActionPaths { paths, .. } => paths
            .iter()
            .map(|p| p.name.clone())
            .chain(["Everyone Else".into()])
            .collect(),
        StepKind::Experiment { paths, .. } => paths
            .iter()
            .map(|p| p.name.clone())
            .chain(["control".into()])
            .collect(),
        _ => Vec::new(),
    }
}

/// Known labels in `order`, then any others (older versions' paths) by name.
fn order_branches(branches: &mut [(String, u64)], order: &[String]) {
    branches.sort_by(|(a, _), (b, _)| {
        let rank = |label: &String| order.iter().position(|o| o == label).unwrap_or(order.len());
        rank(a).cmp(&rank(b)).then_with(|| a.cmp(b))
    });
}

/// Entries and sends per bucket, oldest first.
async fn series(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &CanvasId,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    bucket: Bucket,
) -> DomainResult<Vec<(DateTime<Utc>, u64, u64)>> {
    let backend = db.get_database_backend();
    let label = |column: &str| bucket_label(backend, bucket, column);
    let mut points: BTreeMap<DateTime<Utc>, (u64, u64)> = BTreeMap::new();
    let entered = format!(
        "SELECT {} AS bucket, COUNT(*) AS n FROM canvas_journey \
         WHERE workspace_id = ? AND canvas_id = ? AND entered_at >= ? AND entered_at < ? \
         GROUP BY 1",
        label("entered_at")
    );
    let sent = format!(
        "SELECT {} AS bucket, COUNT(*) AS n FROM canvas_step_event \
         WHERE workspace_id = ? AND canvas_id = ? AND at >= ? AND at < ? AND kind = 'sent' \
         GROUP BY 1",
        label("at")
    );
    for (sql, is_send) in [(entered, false), (sent, true)] {
        let values: Vec<Value> = vec![
            ws.as_str().into(),
            id.as_str().into(),
            since.into(),
            until.into(),
        ];
        for row in query(db, &sql, values).await? {
            let label: Option<String> = row.try_get("", "bucket")?;
            let Some(time) = label.and_then(|l| bucket_start(&l, bucket)) else {
                continue;
            };
            let n = count(row.try_get("", "n")?);
            let point = points.entry(time).or_default();
            if is_send {
                point.1 += n;
            } else {
                point.0 += n;
            }
        }
    }
    Ok(points
        .into_iter()
        .map(|(time, (entries, sends))| (time, entries, sends))
        .collect())
}

/// The Canvas and period a conversion query reads.
struct Scope<'a> {
    ws: &'a WorkspaceId,
    id: &'a CanvasId,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
}

/// How to find a conversion event in SQL: the table of the user's tracked actions and the
/// condition naming the event, with its value.
struct ConversionEvent {
    table: &'static str,
    what: &'static str,
    value: Option<Value>,
    window_seconds: f64,
}

impl ConversionEvent {
    fn of(conversion: &Conversion) -> Self {
        let (table, what, value) = match &conversion.trigger {
            Trigger::CustomEvent { name, .. } => (
                "profile_event",
                " AND e.name = ?",
                Some(name.as_str().into()),
            ),
            Trigger::Purchase {
                product_id: Some(product),
            } => (
                "profile_purchase",
                " AND e.product_id = ?",
                Some(product.as_str().into()),
            ),
            Trigger::Purchase { product_id: None } => ("profile_purchase", "", None),
        };
        Self {
            table,
            what,
            value,
            window_seconds: conversion.window_seconds as f64,
        }
    }

    /// The conditions, on the event row `e`, that it was performed at or after `after` and at
    /// most the window after the journey `j` entered; pushes their values in order.
    ///
    /// The window is per journey, so the arithmetic is the database's; SQLite keeps times as
    /// text, which `julianday()` reads whatever its precision.
    fn in_window(&self, backend: DbBackend, after: &str, values: &mut Vec<Value>) -> String {
        if let Some(value) = &self.value {
            values.push(value.clone());
        }
        values.push(self.window_seconds.into());
        let what = self.what;
        match backend {
            DbBackend::Postgres => format!(
                "{what} AND e.time >= {after} \
                 AND e.time <= j.entered_at + (CAST(? AS DOUBLE PRECISION) * INTERVAL '1 second')"
            ),
            _ => format!(
                "{what} AND julianday(e.time) >= julianday({after}) \
                 AND julianday(e.time) <= julianday(j.entered_at) + ? / 86400.0"
            ),
        }
    }

    /// `EXISTS` an event of the user of journey `j` performed at or after `after`, within the
    /// window.
    fn exists(&self, backend: DbBackend, after: &str, values: &mut Vec<Value>) -> String {
        let condition = self.in_window(backend, after, values);
        format!(
            "EXISTS (SELECT 1 FROM {} e \
               WHERE e.workspace_id = j.workspace_id AND e.profile_id = j.profile_id{condition})",
            self.table
        )
    }
}

/// Per step id: journeys that entered the step in the period and converted at or after
/// entering it (each journey once per step).
async fn converted_per_step(
    db: &impl ConnectionTrait,
    scope: &Scope<'_>,
    primary: &Conversion,
) -> DomainResult<Vec<(String, u64)>> {
    let backend = db.get_database_backend();
    let event = ConversionEvent::of(primary);
    let mut values: Vec<Value> = vec![
        scope.ws.as_str().into(),
        scope.id.as_str().into(),
        scope.since.into(),
        scope.until.into(),
    ];
    let converted = event.exists(backend, "s.at", &mut values);
    let sql = format!(
        "SELECT s.step_id AS step_id, COUNT(DISTINCT s.journey_id) AS n \
         FROM canvas_step_event s \
         JOIN canvas_journey j ON j.workspace_id = s.workspace_id AND j.id = s.journey_id \
         WHERE s.workspace_id = ? AND s.canvas_id = ? AND s.at >= ? AND s.at < ? \
           AND s.kind = 'entered' AND s.step_id IS NOT NULL AND {converted} \
         GROUP BY s.step_id"
    );
    let mut out = Vec::new();
    for row in query(db, &sql, values).await? {
        let Some(step) = row.try_get::<Option<String>>("", "step_id")? else {
            continue;
        };
        out.push((step, count(row.try_get("", "n")?)));
    }
    Ok(out)
}

/// Converted journeys per bucket, by entry time (journeys entered in the period) and by the time
/// of their first qualifying event (events in the period, of journeys entered in time for their
/// window to reach it); only buckets with some, oldest first.
async fn conversion_series(
    db: &impl ConnectionTrait,
    scope: &Scope<'_>,
    primary: &Conversion,
    bucket: Bucket,
) -> DomainResult<Vec<ConversionPoint>> {
    let backend = db.get_database_backend();
    let event = ConversionEvent::of(primary);
    let mut points: BTreeMap<DateTime<Utc>, ConversionPoint> = BTreeMap::new();

    // Values in the order of their placeholders: the journeys' conditions, then the event's.
    let mut values: Vec<Value> = vec![
        scope.ws.as_str().into(),
        scope.id.as_str().into(),
        scope.since.into(),
        scope.until.into(),
    ];
    let converted = event.exists(backend, "j.entered_at", &mut values);
    let by_entry = format!(
        "SELECT {} AS bucket, COUNT(*) AS n FROM canvas_journey j \
         WHERE j.workspace_id = ? AND j.canvas_id = ? AND j.entered_at >= ? AND j.entered_at < ? \
           AND {converted} \
         GROUP BY 1",
        bucket_label(backend, bucket, "j.entered_at")
    );
    for row in query(db, &by_entry, values).await? {
        let label: Option<String> = row.try_get("", "bucket")?;
        let Some(time) = label.and_then(|l| bucket_start(&l, bucket)) else {
            continue;
        };
        let point = points.entry(time).or_insert_with(|| ConversionPoint {
            time,
            ..ConversionPoint::default()
        });
        point.conversions_by_entry_time += count(row.try_get("", "n")?);
    }

    // A journey's first qualifying event, then the ones that fall in the period. Only journeys
    // entered at most a window before the period can have one there.
    let mut values: Vec<Value> = Vec::new();
    let condition = event.in_window(backend, "j.entered_at", &mut values);
    let (first, in_period) = match backend {
        DbBackend::Postgres => ("MIN(e.time)", "t.first >= ? AND t.first < ?"),
        _ => (
            "MIN(julianday(e.time))",
            "t.first >= julianday(?) AND t.first < julianday(?)",
        ),
    };
    let by_time = format!(
        "SELECT {} AS bucket, COUNT(*) AS n FROM ( \
           SELECT (SELECT {first} FROM {} e \
                   WHERE e.workspace_id = j.workspace_id AND e.profile_id = j.profile_id\
                   {condition}) AS first \
           FROM canvas_journey j \
           WHERE j.workspace_id = ? AND j.canvas_id = ? AND j.entered_at >= ? AND j.entered_at < ? \
         ) t \
         WHERE {in_period} \
         GROUP BY 1",
        bucket_label(backend, bucket, "t.first"),
        event.table,
    );
    // A draft may hold any window; a launched Canvas has at most 30 days.
    let window = primary.window_seconds.min(MAX_WINDOW_LOOKBACK_SECONDS);
    let earliest_entry = scope.since - TimeDelta::seconds(window as i64);
    values.extend([
        scope.ws.as_str().into(),
        scope.id.as_str().into(),
        earliest_entry.into(),
        scope.until.into(),
        scope.since.into(),
        scope.until.into(),
    ]);
    for row in query(db, &by_time, values).await? {
        let label: Option<String> = row.try_get("", "bucket")?;
        let Some(time) = label.and_then(|l| bucket_start(&l, bucket)) else {
            continue;
        };
        let point = points.entry(time).or_insert_with(|| ConversionPoint {
            time,
            ..ConversionPoint::default()
        });
        point.conversions += count(row.try_get("", "n")?);
    }
    Ok(points.into_values().collect())
}

/// `SUM` is `NULL` over no rows.
fn sum(n: Option<i64>) -> i64 {
    n.unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branches_follow_the_step_then_come_by_name() {
        let mut branches = vec![
            ("old".to_string(), 1),
            ("no".to_string(), 2),
            ("another".to_string(), 3),
            ("yes".to_string(), 4),
        ];
        order_branches(&mut branches, &["yes".into(), "no".into()]);
        let labels: Vec<&str> = branches.iter().map(|(b, _)| b.as_str()).collect();
        assert_eq!(labels, ["yes", "no", "another", "old"]);
    }
}
