//! Server functions and shared types for audience data: user search, profiles with their event
//! timeline and received messages, the event catalogue, and a user's data for composer previews.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
use crate::ssr::{authorize, ctx, fail, when};
#[cfg(feature = "ssr")]
use domain::Capability;

use crate::webhooks::SendRow;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRow {
    pub id: String,
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub name: String,
    pub updated: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogRow {
    pub kind: String,
    pub name: String,
    pub property_keys: Vec<String>,
    pub last_seen: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsersView {
    pub users: Vec<UserRow>,
    pub catalog: Vec<CatalogRow>,
}

/// One line of a profile's timeline: a custom event or a purchase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineRow {
    pub kind: String,
    pub name: String,
    pub time: String,
    pub details: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDetails {
    pub id: String,
    pub external_id: Option<String>,
    pub attributes: Vec<(String, String)>,
    /// Custom attributes as pretty JSON.
    pub custom_attributes: String,
    pub aliases: Vec<String>,
    pub timeline: Vec<TimelineRow>,
    pub messages: Vec<SendRow>,
}

#[server(prefix = "/srv", endpoint = "users")]
pub async fn search_users(
    ws: String,
    #[server(default)] query: String,
) -> Result<UsersView, ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Read).await?;
    let ctx = ctx()?;
    let workspace = access.workspace_id();
    let users = domain::profile::search(&ctx.db, &workspace, &query, 50)
        .await
        .map_err(fail)?;
    let catalog = domain::profile::event_catalog(&ctx.db, &workspace)
        .await
        .map_err(fail)?;
    Ok(UsersView {
        users: users
            .into_iter()
            .map(|u| UserRow {
                id: u.id.to_string(),
                external_id: u.external_id,
                email: u.email,
                name: [u.first_name, u.last_name]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" "),
                updated: when(u.updated_at),
            })
            .collect(),
        catalog: catalog
            .into_iter()
            .map(|c| CatalogRow {
                kind: c.kind.as_str().into(),
                name: c.name,
                property_keys: c.property_keys,
                last_seen: when(c.last_seen),
            })
            .collect(),
    })
}

#[server(prefix = "/srv", endpoint = "user")]
pub async fn get_user(ws: String, id: String) -> Result<UserDetails, ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Read).await?;
    let ctx = ctx()?;
    let workspace = access.workspace_id();
    let id = domain::ProfileId::parse(&id).map_err(fail)?;
    let view = domain::profile::find(&ctx.db, &workspace, &id)
        .await
        .map_err(fail)?;
    let mut timeline: Vec<(chrono::DateTime<chrono::Utc>, TimelineRow)> = Vec::new();
    for event in &view.events {
        let details = serde_json::Value::Object(event.properties.clone()).to_string();
        timeline.push((
            event.time,
            TimelineRow {
                kind: "event".into(),
                name: event.name.clone(),
                time: when(event.time),
                details,
            },
        ));
    }
    for purchase in &view.purchases {
        let details = format!(
            "{} × {:.2} {}",
            purchase.quantity, purchase.price, purchase.currency
        );
        timeline.push((
            purchase.time,
            TimelineRow {
                kind: "purchase".into(),
                name: purchase.product_id.clone(),
                time: when(purchase.time),
                details,
            },
        ));
    }
    timeline.sort_by_key(|(time, _)| std::cmp::Reverse(*time));
    let messages = match &view.profile.external_id {
        Some(external_id) => {
            let filter = domain::outbox::SendFilter {
                recipient: Some(external_id.clone()),
                limit: 50,
                ..Default::default()
            };
            domain::outbox::list_sends(&ctx.db, &workspace, &filter)
                .await
                .map_err(fail)?
        }
        None => Vec::new(),
    };
    Ok(UserDetails {
        id: view.id.to_string(),
        external_id: view.profile.external_id.clone(),
        attributes: view
            .attributes
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        custom_attributes: serde_json::to_string_pretty(&view.custom_attributes)
            .unwrap_or_default(),
        aliases: view
            .aliases
            .iter()
            .map(|a| format!("{}: {}", a.alias_label, a.alias_name))
            .collect(),
        timeline: timeline.into_iter().map(|(_, row)| row).collect(),
        messages: messages.iter().map(crate::webhooks::send_row).collect(),
    })
}

/// A user's attributes as composer test data (the JSON the preview takes).
#[server(prefix = "/srv", endpoint = "user_test_data")]
pub async fn user_test_data(ws: String, external_id: String) -> Result<String, ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Read).await?;
    let ctx = ctx()?;
    let external_id = external_id.trim();
    let profile =
        domain::profile::find_by_external_id(&ctx.db, &access.workspace_id(), external_id)
            .await
            .map_err(fail)?
            .ok_or_else(|| {
                fail(domain::DomainError::invalid(
                    "external_id",
                    format!("no user has the external id “{external_id}”"),
                ))
            })?;
    let context = domain::profile::render_context(&profile);
    Ok(serde_json::to_string_pretty(&context).unwrap_or_default())
}
