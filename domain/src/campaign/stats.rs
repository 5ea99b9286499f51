//! Campaign analytics and live progress, read from the outbox, its attempts, the receipts and the
//! tracked events; and the workspace home page's totals.
//!
//! Every figure is a `GROUP BY` in the database (on the `webhook_send_by_source` index), so a
//! campaign of any size costs a handful of small result sets; time buckets are formatted by the
//! database and parsed here.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, Order, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Value,
};
use serde::{Deserialize, Serialize};

use super::model::{
    Bucket, Campaign, CampaignStats, CampaignStatus, Progress, SeriesPoint, Trigger, VariantStats,
};
use crate::entity::{campaign, webhook_send};
use crate::outbox::{SourceKind, status as send_status};
use crate::report::{bucket_label, bucket_start, count, query};
use crate::{CampaignId, DomainResult, VariantId, WorkspaceId};

/// Live progress of a campaign's sends; of one dispatch when `dispatch_id` is given.
pub async fn progress(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    campaign: &CampaignId,
    dispatch_id: Option<&str>,
) -> DomainResult<Progress> {
    let mut sql = String::from(
        "SELECT CASE WHEN status = 'pending' AND attempts > 0 THEN 'retrying' \
                     WHEN status = 'pending' THEN 'queued' ELSE status END AS state, \
                COUNT(*) AS n \
         FROM webhook_send \
         WHERE workspace_id = ? AND source_kind = ? AND source_id = ?",
    );
    let mut values: Vec<Value> = vec![
        ws.as_str().into(),
        SourceKind::Campaign.as_str().into(),
        campaign.as_str().into(),
    ];
    if let Some(dispatch) = dispatch_id {
        sql.push_str(" AND dispatch_id = ?");
        values.push(dispatch.into());
    }
    sql.push_str(" GROUP BY 1");
    let mut progress = Progress::default();
    for row in query(db, &sql, values).await? {
        let state: String = row.try_get("", "state")?;
        let n = count(row.try_get("", "n")?);
        match state.as_str() {
            "queued" => progress.queued += n,
            "retrying" => progress.retrying += n,
            send_status::DELIVERED => progress.delivered += n,
            send_status::FAILED => progress.failed += n,
            send_status::ABORTED => progress.aborted += n,
            _ => {}
        }
    }
    // A running occurrence records how many recipients it has written, not how many remain, so
    // the remainder is not known without evaluating the audience again.
    progress.remaining_to_queue = None;
    Ok(progress)
}

/// Per-variant figures and a time series of sends created in `[since, until)`; `send_tag` narrows
/// to one Braze `send_id`.
///
/// Sends count every outbox row (pending and aborted ones too); errors are final failures,
/// split by their last status code: 5xx, 408 and 429 are server errors, other codes (4xx, and
/// 3xx, since redirects are not followed) client errors, no code at all a network error.
/// Unique recipients count distinct recipients of delivered or failed sends. Conversions count
/// receipts last received in the period whose user performed the primary conversion event within
/// its window after that receipt (property filters of a custom-event conversion are not
/// applied). With `send_tag`, receipts count only for users sent a webhook under that tag, which
/// leaves the control group out.
pub async fn campaign_stats(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    campaign: &CampaignId,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    bucket: Bucket,
    send_tag: Option<&str>,
) -> DomainResult<CampaignStats> {
    let row = campaign::Entity::find_by_id((ws.to_string(), campaign.to_string()))
        .one(db)
        .await?
        .ok_or(crate::DomainError::NotFound("campaign"))?;
    let campaign = super::store::decode(row)?;
    let scope = SendScope {
        ws,
        campaign: &campaign.id,
        since,
        until,
        send_tag,
    };

    let mut figures: BTreeMap<Option<String>, VariantStats> = BTreeMap::new();
    let mut total = VariantStats {
        name: "Total".into(),
        ..VariantStats::default()
    };
    let (sql, values) = scope.sql(
        "SELECT variant_id, status, \
                CASE WHEN status <> 'failed' THEN '' \
                     WHEN last_status_code IS NULL THEN 'network' \
                     WHEN last_status_code >= 500 OR last_status_code IN (408, 429) THEN 'server' \
                     ELSE 'client' END AS class, \
                COUNT(*) AS n, SUM(attempts) AS attempts, \
                SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END) AS attempted \
         FROM webhook_send WHERE ",
        " GROUP BY 1, 2, 3",
    );
    for row in query(db, &sql, values).await? {
        let variant: Option<String> = row.try_get("", "variant_id")?;
        let status: String = row.try_get("", "status")?;
        let class: String = row.try_get("", "class")?;
        let n = count(row.try_get("", "n")?);
        let retries = count(row.try_get("", "attempts")?)
            .saturating_sub(count(row.try_get("", "attempted")?));
        for stats in [figures.entry(variant).or_default(), &mut total] {
            stats.sends += n;
            stats.retries += retries;
            match (status.as_str(), class.as_str()) {
                (send_status::DELIVERED, _) => stats.delivered += n,
                (send_status::ABORTED, _) => stats.aborted += n,
                (send_status::FAILED, "network") => stats.errors_network += n,
                (send_status::FAILED, "server") => stats.errors_server += n,
                (send_status::FAILED, _) => stats.errors_client += n,
                _ => {}
            }
        }
    }

    let (sql, values) = scope.sql(
        "SELECT variant_id, COUNT(DISTINCT recipient) AS n FROM webhook_send WHERE ",
        " AND status = 'delivered' GROUP BY 1",
    );
    for row in query(db, &sql, values).await? {
        let variant: Option<String> = row.try_get("", "variant_id")?;
        figures.entry(variant).or_default().unique_recipients = count(row.try_get("", "n")?);
    }
    // As in Braze, errors count as sends but not as recipients. A recipient sent two variants
    // (after a percentage change) counts once in the total.
    let (sql, values) = scope.sql(
        "SELECT COUNT(DISTINCT recipient) AS n FROM webhook_send WHERE ",
        " AND status = 'delivered'",
    );
    if let Some(row) = query(db, &sql, values).await?.into_iter().next() {
        total.unique_recipients = count(row.try_get("", "n")?);
    }

    let mut control_recipients = 0;
    let mut control_conversions = 0;
    for (variant, receipts, converted) in receipts(db, &campaign, &scope).await? {
        match variant {
            None => {
                control_recipients += receipts;
                control_conversions += converted;
            }
            Some(variant) => {
                figures.entry(Some(variant)).or_default().conversions += converted;
                total.conversions += converted;
            }
        }
    }

    let series = series(db, &scope, bucket).await?;
    let variants = campaign
        .variants
        .iter()
        .filter_map(|variant| {
            let id = variant.id.clone()?;
            let stats = figures
                .get(&Some(id.as_str().to_owned()))
                .cloned()
                .unwrap_or_default();
            Some(VariantStats {
                variant_id: Some(id),
                name: variant.name.clone(),
                ..stats
            })
        })
        .collect();
    Ok(CampaignStats {
        total,
        variants,
        control_recipients,
        control_conversions,
        series,
    })
}

/// The workspace home page: totals over a period and the latest failed sends.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceOverview {
    pub active_campaigns: u64,
    pub sends: u64,
    pub delivered: u64,
    pub failed: u64,
    pub pending: u64,
    /// (send id, when, recipient, source name, status code, error), newest first.
    pub latest_errors: Vec<RecentError>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentError {
    pub send_id: String,
    pub at: DateTime<Utc>,
    pub recipient: Option<String>,
    pub source_name: Option<String>,
    pub status_code: Option<i32>,
    pub error: Option<String>,
}

/// Campaigns running now (active or scheduled), sends of every source created in
/// `[since, now]` by outcome, sends pending now, and the ten latest failures.
pub async fn workspace_overview(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DomainResult<WorkspaceOverview> {
    let active_campaigns = campaign::Entity::find()
        .filter(campaign::Column::WorkspaceId.eq(ws.as_str()))
        .filter(campaign::Column::Status.is_in([
            CampaignStatus::Active.as_str(),
            CampaignStatus::Scheduled.as_str(),
        ]))
        .count(db)
        .await?;
    let by_status: Vec<(String, i64)> = webhook_send::Entity::find()
        .select_only()
        .column(webhook_send::Column::Status)
        .column_as(webhook_send::Column::Id.count(), "n")
        .filter(webhook_send::Column::WorkspaceId.eq(ws.as_str()))
        .filter(webhook_send::Column::CreatedAt.gte(since))
        .filter(webhook_send::Column::CreatedAt.lte(now))
        .group_by(webhook_send::Column::Status)
        .into_tuple()
        .all(db)
        .await?;
    let mut overview = WorkspaceOverview {
        active_campaigns,
        ..WorkspaceOverview::default()
    };
    for (status, n) in by_status {
        let n = count(n);
        overview.sends += n;
        match status.as_str() {
            send_status::DELIVERED => overview.delivered += n,
            send_status::FAILED => overview.failed += n,
            _ => {}
        }
    }
    overview.pending = webhook_send::Entity::find()
        .filter(webhook_send::Column::WorkspaceId.eq(ws.as_str()))
        .filter(webhook_send::Column::Status.eq(send_status::PENDING))
        .count(db)
        .await?;
    // COALESCE: both databases then order the same way (they disagree on where NULLs go).
    let failures = webhook_send::Entity::find()
        .filter(webhook_send::Column::WorkspaceId.eq(ws.as_str()))
        .filter(webhook_send::Column::Status.eq(send_status::FAILED))
        .order_by(
            Expr::cust("COALESCE(completed_at, created_at)"),
            Order::Desc,
        )
        .order_by_desc(webhook_send::Column::Id)
        .limit(10)
        .all(db)
        .await?;
    overview.latest_errors = failures
        .into_iter()
        .map(|send| RecentError {
            at: send.completed_at.unwrap_or(send.created_at),
            send_id: send.id,
            recipient: send.recipient,
            source_name: send.source_name,
            status_code: send.last_status_code,
            error: send.last_error,
        })
        .collect();
    Ok(overview)
}

/// The campaign's sends a statistics query reads.
struct SendScope<'a> {
    ws: &'a WorkspaceId,
    campaign: &'a CampaignId,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    send_tag: Option<&'a str>,
}

impl SendScope<'_> {
    /// `head`, the scope's conditions on `webhook_send`, then `tail`, with their values.
    fn sql(&self, head: &str, tail: &str) -> (String, Vec<Value>) {
        let mut sql = format!(
            "{head}workspace_id = ? AND source_kind = ? AND source_id = ? \
             AND created_at >= ? AND created_at < ?"
        );
        let mut values: Vec<Value> = vec![
            self.ws.as_str().into(),
            SourceKind::Campaign.as_str().into(),
            self.campaign.as_str().into(),
            self.since.into(),
            self.until.into(),
        ];
        if let Some(tag) = self.send_tag {
            sql.push_str(" AND send_tag = ?");
            values.push(tag.into());
        }
        sql.push_str(tail);
        (sql, values)
    }
}

/// Receipts last received in the period, per variant (`None`: the control group): how many, and
/// how many of those users converted.
async fn receipts(
    db: &impl ConnectionTrait,
    campaign: &Campaign,
    scope: &SendScope<'_>,
) -> DomainResult<Vec<(Option<String>, u64, u64)>> {
    let backend = db.get_database_backend();
    let mut values: Vec<Value> = Vec::new();
    let converted = match campaign.conversions.first() {
        None => "CAST(0 AS BIGINT)".to_owned(),
        Some(primary) => {
            let (table, what) = match &primary.trigger {
                Trigger::CustomEvent { name, .. } => {
                    values.push(name.as_str().into());
                    ("profile_event", " AND e.name = ?")
                }
                Trigger::Purchase {
                    product_id: Some(product),
                } => {
                    values.push(product.as_str().into());
                    ("profile_purchase", " AND e.product_id = ?")
                }
                Trigger::Purchase { product_id: None } => ("profile_purchase", ""),
            };
            // The window is per row (after each receipt), so the arithmetic is the database's.
            let window = match backend {
                DbBackend::Postgres => {
                    " AND e.time >= r.last_received_at \
                     AND e.time <= r.last_received_at + (CAST(? AS DOUBLE PRECISION) * INTERVAL '1 second')"
                }
                // SQLite stores times as text; julianday() reads them whatever their precision.
                _ => {
                    " AND julianday(e.time) >= julianday(r.last_received_at) \
                     AND julianday(e.time) <= julianday(r.last_received_at) + ? / 86400.0"
                }
            };
            values.push((primary.window_seconds as f64).into());
            format!(
                "SUM(CASE WHEN EXISTS (SELECT 1 FROM {table} e \
                   WHERE e.workspace_id = r.workspace_id AND e.profile_id = r.profile_id\
                   {what}{window}) THEN 1 ELSE 0 END)"
            )
        }
    };
    let mut sql = format!(
        "SELECT r.variant_id AS variant_id, COUNT(*) AS n, {converted} AS converted \
         FROM campaign_receipt r \
         WHERE r.workspace_id = ? AND r.campaign_id = ? \
           AND r.last_received_at >= ? AND r.last_received_at < ?"
    );
    values.extend([
        scope.ws.as_str().into(),
        scope.campaign.as_str().into(),
        scope.since.into(),
        scope.until.into(),
    ]);
    if let Some(tag) = scope.send_tag {
        // Sends name their recipient by external id; receipts by profile.
        sql.push_str(
            " AND EXISTS (SELECT 1 FROM profile p JOIN webhook_send s \
               ON s.workspace_id = p.workspace_id AND s.recipient = p.external_id \
               WHERE p.workspace_id = r.workspace_id AND p.id = r.profile_id \
                 AND s.source_kind = ? AND s.source_id = r.campaign_id AND s.send_tag = ?)",
        );
        values.push(SourceKind::Campaign.as_str().into());
        values.push(tag.into());
    }
    sql.push_str(" GROUP BY r.variant_id");
    let mut out = Vec::new();
    for row in query(db, &sql, values).await? {
        let converted: Option<i64> = row.try_get("", "converted")?;
        out.push((
            row.try_get("", "variant_id")?,
            count(row.try_get("", "n")?),
            count(converted.unwrap_or(0)),
        ));
    }
    Ok(out)
}

/// Sends per time bucket and variant, oldest first.
async fn series(
    db: &impl ConnectionTrait,
    scope: &SendScope<'_>,
    bucket: Bucket,
) -> DomainResult<Vec<SeriesPoint>> {
    let backend = db.get_database_backend();
    let bucket_sql = bucket_label(backend, bucket, "created_at");
    let (sql, values) = scope.sql(
        &format!(
            "SELECT {bucket_sql} AS bucket, variant_id, COUNT(*) AS n, \
                    SUM(CASE WHEN status = 'delivered' THEN 1 ELSE 0 END) AS delivered, \
                    SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS errors \
             FROM webhook_send WHERE "
        ),
        " GROUP BY 1, 2",
    );
    let mut points = Vec::new();
    for row in query(db, &sql, values).await? {
        let label: String = row.try_get("", "bucket")?;
        let time = bucket_start(&label, bucket);
        let Some(time) = time else {
            continue;
        };
        let variant: Option<String> = row.try_get("", "variant_id")?;
        points.push(SeriesPoint {
            time,
            variant_id: variant.map(VariantId::from_db),
            sends: count(row.try_get("", "n")?),
            delivered: count(row.try_get("", "delivered")?),
            errors: count(row.try_get("", "errors")?),
        });
    }
    points.sort_by(|a, b| {
        a.time
            .cmp(&b.time)
            .then_with(|| a.variant_id.cmp(&b.variant_id))
    });
    Ok(points)
}
