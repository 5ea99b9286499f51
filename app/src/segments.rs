//! Segments: the filter tree the builder edits (the same JSON as `domain::segment::Filter`), and
//! the server functions to list, count, save and archive segments.

use leptos::prelude::*;
use leptos::server_fn::codec::Json;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
use crate::ssr::{authorize, ctx, fail, when};
#[cfg(feature = "ssr")]
use domain::{Capability, SegmentId};

/// One node of a segment's filter tree, as the builder edits it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FilterDraft {
    And {
        filters: Vec<FilterDraft>,
    },
    Or {
        filters: Vec<FilterDraft>,
    },
    Attribute {
        name: String,
        #[serde(default)]
        custom: bool,
        comparison: String,
        #[serde(default)]
        value: serde_json::Value,
    },
    Event {
        name: String,
        comparison: String,
        count: u32,
        days: Option<u32>,
    },
    Purchase {
        product_id: Option<String>,
        comparison: String,
        count: u32,
        days: Option<u32>,
    },
    RandomBucket {
        min: u32,
        max: u32,
    },
    TimeZone {
        zones: Vec<String>,
    },
}

impl Default for FilterDraft {
    fn default() -> Self {
        FilterDraft::And {
            filters: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub size: u64,
    pub updated: String,
    pub archived: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentsView {
    pub segments: Vec<SegmentRow>,
    pub can_build: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentDetails {
    pub id: Option<String>,
    pub name: String,
    pub description: String,
    pub filter: FilterDraft,
    pub can_build: bool,
}

/// A segment's size and its first members, while it is being edited.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentEstimate {
    pub size: u64,
    /// External ids (or Herald ids) of up to 10 members.
    pub sample: Vec<String>,
}

#[cfg(feature = "ssr")]
fn to_filter(draft: &FilterDraft) -> Result<domain::segment::Filter, domain::DomainError> {
    let json = serde_json::to_value(draft).expect("drafts serialize");
    serde_json::from_value(json).map_err(|e| domain::DomainError::invalid("filter", e.to_string()))
}

#[cfg(feature = "ssr")]
fn to_draft(filter: &domain::segment::Filter) -> FilterDraft {
    serde_json::to_value(filter)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

#[server(prefix = "/srv", endpoint = "segments")]
pub async fn list_segments(ws: String) -> Result<SegmentsView, ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Read).await?;
    let ctx = ctx()?;
    let workspace = access.workspace_id();
    let now = ctx.clock.now();
    let segments = domain::segment::list(&ctx.db, &workspace, true)
        .await
        .map_err(fail)?;
    let mut rows = Vec::with_capacity(segments.len());
    for segment in segments {
        let size = domain::segment::count(&ctx.reads, &workspace, &segment.filter, now)
            .await
            .map_err(fail)?;
        rows.push(SegmentRow {
            id: segment.id.to_string(),
            name: segment.name,
            description: segment.description,
            size,
            updated: when(segment.updated_at),
            archived: segment.archived_at.is_some(),
        });
    }
    Ok(SegmentsView {
        segments: rows,
        can_build: access.role.allows(Capability::Build),
    })
}

#[server(prefix = "/srv", endpoint = "segment")]
pub async fn get_segment(ws: String, id: String) -> Result<SegmentDetails, ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Read).await?;
    let can_build = access.role.allows(Capability::Build);
    if id == "new" {
        return Ok(SegmentDetails {
            id: None,
            name: String::new(),
            description: String::new(),
            filter: FilterDraft::default(),
            can_build,
        });
    }
    let ctx = ctx()?;
    let id = SegmentId::parse(&id).map_err(fail)?;
    let segment = domain::segment::find(&ctx.db, &access.workspace_id(), &id)
        .await
        .map_err(fail)?;
    Ok(SegmentDetails {
        id: Some(segment.id.to_string()),
        name: segment.name,
        description: segment.description,
        filter: to_draft(&segment.filter),
        can_build,
    })
}

/// The live size of a filter being edited, with a few members.
#[server(prefix = "/srv", endpoint = "estimate_segment", input = Json)]
pub async fn estimate_segment(
    ws: String,
    filter: FilterDraft,
) -> Result<SegmentEstimate, ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Read).await?;
    let ctx = ctx()?;
    let filter = to_filter(&filter).map_err(fail)?;
    filter.validate().map_err(fail)?;
    let workspace = access.workspace_id();
    let now = ctx.clock.now();
    let size = domain::segment::count(&ctx.reads, &workspace, &filter, now)
        .await
        .map_err(fail)?;
    let sample = domain::segment::members(&ctx.reads, &workspace, &filter, now, 10, None)
        .await
        .map_err(fail)?;
    Ok(SegmentEstimate {
        size,
        sample: sample
            .into_iter()
            .map(|p| p.external_id.unwrap_or(p.id))
            .collect(),
    })
}

/// Saves a segment; returns its id.
#[server(prefix = "/srv", endpoint = "save_segment", input = Json)]
pub async fn save_segment(
    ws: String,
    id: Option<String>,
    name: String,
    description: String,
    filter: FilterDraft,
) -> Result<String, ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Build).await?;
    let ctx = ctx()?;
    let filter = to_filter(&filter).map_err(fail)?;
    let workspace = access.workspace_id();
    let now = ctx.clock.now();
    let saved = match id {
        Some(id) => {
            let id = SegmentId::parse(&id).map_err(fail)?;
            domain::segment::update(&ctx.db, &workspace, &id, &name, &description, &filter, now)
                .await
        }
        None => {
            domain::segment::create(&ctx.db, &workspace, &name, &description, &filter, now).await
        }
    }
    .map_err(fail)?;
    Ok(saved.id.to_string())
}

#[server(prefix = "/srv", endpoint = "archive_segment")]
pub async fn archive_segment(ws: String, id: String) -> Result<(), ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Build).await?;
    let ctx = ctx()?;
    let id = SegmentId::parse(&id).map_err(fail)?;
    domain::segment::archive(&ctx.db, &access.workspace_id(), &id, ctx.clock.now())
        .await
        .map_err(fail)?;
    Ok(())
}
