//! The webhook template library: create, edit, duplicate, archive. Messages are validated (Liquid
//! parsed) before they are saved.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, Set,
};

use crate::entity::webhook_template;
use crate::webhook::WebhookMessage;
use crate::{DomainError, DomainResult, TemplateId, WorkspaceId, validate};

/// A template with its message decoded.
#[derive(Clone, Debug)]
pub struct WebhookTemplate {
    pub id: TemplateId,
    pub name: String,
    pub message: WebhookMessage,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub archived_at: Option<DateTime<Utc>>,
}

fn decode(model: webhook_template::Model) -> DomainResult<WebhookTemplate> {
    let message = serde_json::from_str(&model.message)
        .map_err(|e| DomainError::invalid("message", format!("stored template unreadable: {e}")))?;
    Ok(WebhookTemplate {
        id: TemplateId::from_db(model.id),
        name: model.name,
        message,
        created_at: model.created_at,
        updated_at: model.updated_at,
        archived_at: model.archived_at,
    })
}

/// Active templates first, then archived ones; each group by name.
pub async fn list(
    db: &impl ConnectionTrait,
    workspace: &WorkspaceId,
) -> DomainResult<Vec<WebhookTemplate>> {
    let rows = webhook_template::Entity::find()
        .filter(webhook_template::Column::WorkspaceId.eq(workspace.as_str()))
        .order_by_asc(webhook_template::Column::Name)
        .all(db)
        .await?;
    let mut templates = rows
        .into_iter()
        .map(decode)
        .collect::<DomainResult<Vec<_>>>()?;
    templates.sort_by_key(|t| t.archived_at.is_some());
    Ok(templates)
}

async fn find_row(
    db: &impl ConnectionTrait,
    workspace: &WorkspaceId,
    id: &TemplateId,
) -> DomainResult<webhook_template::Model> {
    webhook_template::Entity::find_by_id((workspace.to_string(), id.to_string()))
        .one(db)
        .await?
        .ok_or(DomainError::NotFound("template"))
}

pub async fn find(
    db: &impl ConnectionTrait,
    workspace: &WorkspaceId,
    id: &TemplateId,
) -> DomainResult<WebhookTemplate> {
    decode(find_row(db, workspace, id).await?)
}

/// Saves a new template (`id` None) or changes an existing one.
pub async fn save(
    db: &impl ConnectionTrait,
    workspace: &WorkspaceId,
    id: Option<&TemplateId>,
    name: &str,
    message: &WebhookMessage,
    now: DateTime<Utc>,
) -> DomainResult<WebhookTemplate> {
    let name = validate::name("name", name, 100)?;
    message.compile()?;
    let json = serde_json::to_string(message).expect("messages serialize");
    let model = match id {
        Some(id) => {
            let mut row = find_row(db, workspace, id).await?.into_active_model();
            row.name = Set(name);
            row.message = Set(json);
            row.updated_at = Set(now);
            row.update(db).await?
        }
        None => {
            webhook_template::ActiveModel {
                workspace_id: Set(workspace.to_string()),
                id: Set(TemplateId::generate().into_string()),
                name: Set(name),
                message: Set(json),
                created_at: Set(now),
                updated_at: Set(now),
                archived_at: Set(None),
            }
            .insert(db)
            .await?
        }
    };
    decode(model)
}

/// Copies a template under the name "Copy of …".
pub async fn duplicate(
    db: &impl ConnectionTrait,
    workspace: &WorkspaceId,
    id: &TemplateId,
    now: DateTime<Utc>,
) -> DomainResult<WebhookTemplate> {
    let original = find(db, workspace, id).await?;
    let name: String = format!("Copy of {}", original.name)
        .chars()
        .take(100)
        .collect();
    save(db, workspace, None, &name, &original.message, now).await
}

/// Archives (hides from pickers) or restores a template.
pub async fn set_archived(
    db: &impl ConnectionTrait,
    workspace: &WorkspaceId,
    id: &TemplateId,
    archived: bool,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    let mut row = find_row(db, workspace, id).await?.into_active_model();
    row.archived_at = Set(archived.then_some(now));
    row.update(db).await?;
    Ok(())
}
