//! `GET /api/openapi.json`: the OpenAPI 3.1 description of the management API (`/api/v1`) and the
//! Braze-compatible campaign and messaging endpoints. Served without a key, like any public
//! document; every endpoint it describes still needs one.

use axum::Json;
use serde_json::{Value, json};

fn ok(schema: Value) -> Value {
    json!({
        "200": { "description": "success", "content": { "application/json": { "schema": schema } } },
        "400": { "$ref": "#/components/responses/BadRequest" },
        "401": { "$ref": "#/components/responses/Unauthorized" },
        "403": { "$ref": "#/components/responses/Forbidden" },
        "404": { "$ref": "#/components/responses/NotFound" },
        "429": { "$ref": "#/components/responses/RateLimited" }
    })
}

/// [`ok`] for a change carrying the `version` it was based on: a stale one answers 409.
fn versioned(schema: Value) -> Value {
    let mut responses = ok(schema);
    responses["409"] = json!({
        "description": "the `version` sent is no longer the current one (someone else saved a change); nothing was saved",
        "content": { "application/json": { "schema": { "type": "object" } } }
    });
    responses
}

fn body(schema: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema } } })
}

fn path_id() -> Value {
    json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string", "format": "uuid" } })
}

fn query(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": { "type": "string" } })
}

fn operation(summary: &str, permission: &str, extra: Value) -> Value {
    let mut op = json!({
        "summary": summary,
        "description": format!("Needs an API key with the `{permission}` permission."),
        "security": [{ "bearer": [] }],
    });
    if let (Some(op), Some(extra)) = (op.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            op.insert(k.clone(), v.clone());
        }
    }
    op
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn success_with(field: &str, schema: Value) -> Value {
    json!({
        "type": "object",
        "properties": { "message": { "const": "success" }, field: schema },
        "required": ["message"]
    })
}

/// The document; built on each request (it is small) so it never drifts from a cached copy.
pub async fn openapi() -> Json<Value> {
    Json(document())
}

pub fn document() -> Value {
    let input = reference("CampaignInput");
    let conversion = json!({ "type": "object", "properties": { "trigger": reference("Trigger"), "window_seconds": { "type": "integer", "minimum": 1, "maximum": 2_592_000 } }, "required": ["trigger", "window_seconds"] });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Herald API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Herald's management API (`/api/v1`, permission `herald.manage`) and its Braze-compatible endpoints. Authenticate with `Authorization: Bearer <REST API key>`. Errors answer `{\"message\": ..., \"errors\": [...]}`; every response carries X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset."
        },
        "servers": [{ "url": "/api" }],
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "responses": {
                "BadRequest": { "description": "The request is invalid; `errors` names each field and problem.", "content": { "application/json": { "schema": reference("Error") } } },
                "Unauthorized": { "description": "No key, or an unknown or revoked key.", "content": { "application/json": { "schema": reference("Error") } } },
                "Forbidden": { "description": "The key lacks the permission, or the caller's address is not allowed.", "content": { "application/json": { "schema": reference("Error") } } },
                "NotFound": { "description": "No such object in the key's workspace.", "content": { "application/json": { "schema": reference("Error") } } },
                "RateLimited": { "description": "Too many requests; see Retry-After.", "content": { "application/json": { "schema": reference("Error") } } }
            },
            "schemas": {
                "Error": { "type": "object", "properties": { "message": { "type": "string" }, "errors": { "type": "array", "items": { "type": "string" } } }, "required": ["message"] },
                "WebhookMessage": {
                    "type": "object",
                    "properties": {
                        "method": { "enum": ["GET", "POST", "PUT", "PATCH", "DELETE"] },
                        "url": { "type": "string", "description": "Liquid allowed." },
                        "headers": { "type": "array", "items": { "type": "array", "prefixItems": [{ "type": "string" }, { "type": "string" }] } },
                        "body": { "type": "object", "description": "`{\"kind\": \"none\"}`, `{\"kind\": \"raw\", \"text\": ...}` or `{\"kind\": \"pairs\", \"pairs\": [[key, value], ...]}`." }
                    },
                    "required": ["method", "url"]
                },
                "Variant": {
                    "type": "object",
                    "properties": {
                        "id": { "type": "string", "format": "uuid", "description": "message_variation_id; omit when creating." },
                        "name": { "type": "string" },
                        "percent": { "type": "integer", "minimum": 0, "maximum": 100 },
                        "message": reference("WebhookMessage")
                    },
                    "required": ["name", "percent"]
                },
                "Trigger": {
                    "oneOf": [
                        { "type": "object", "properties": { "kind": { "const": "custom_event" }, "name": { "type": "string" }, "property_filters": { "type": "array", "items": { "type": "object", "properties": { "property": { "type": "string" }, "comparison": { "enum": ["equals", "not_equal", "greater_than", "less_than", "exists", "does_not_exist", "contains"] }, "value": {} } } } }, "required": ["kind", "name"] },
                        { "type": "object", "properties": { "kind": { "const": "purchase" }, "product_id": { "type": "string" } }, "required": ["kind"] }
                    ]
                },
                "Delivery": {
                    "oneOf": [
                        { "type": "object", "properties": { "type": { "const": "scheduled" }, "schedule": {
                            "oneOf": [
                                { "type": "object", "properties": { "kind": { "const": "at_launch" } }, "required": ["kind"] },
                                { "type": "object", "properties": {
                                    "kind": { "const": "at" },
                                    "starts_on": { "type": "string", "format": "date" },
                                    "time": { "type": "string", "description": "HH:MM:SS" },
                                    "recurrence": { "type": "object", "description": "`{\"kind\":\"once\"}`, `{\"kind\":\"daily\",\"every\":1}`, `{\"kind\":\"weekly\",\"every\":1,\"days\":[\"Mon\"]}` or `{\"kind\":\"monthly\",\"every\":1,\"day\":15}`" },
                                    "ends_on": { "type": "string", "format": "date" },
                                    "time_zone": { "type": "string", "description": "IANA zone, e.g. Europe/Paris" },
                                    "in_local_time": { "type": "boolean" }
                                }, "required": ["kind", "starts_on", "time", "recurrence", "time_zone"] }
                            ]
                        } }, "required": ["type", "schedule"] },
                        { "type": "object", "properties": { "type": { "const": "action" }, "trigger": reference("Trigger"), "delay_seconds": { "type": "integer" }, "exceptions": { "type": "array", "items": reference("Trigger") }, "starts_at": { "type": "string", "format": "date-time" }, "ends_at": { "type": "string", "format": "date-time" } }, "required": ["type", "trigger"] },
                        { "type": "object", "properties": { "type": { "const": "api" } }, "required": ["type"] }
                    ]
                },
                "CampaignInput": {
                    "type": "object",
                    "properties": {
                        "name": { "type": "string", "maxLength": 200 },
                        "description": { "type": "string" },
                        "tags": { "type": "array", "items": { "type": "string" } },
                        "kind": { "enum": ["webhook", "api"] },
                        "variants": { "type": "array", "items": reference("Variant") },
                        "control_percent": { "type": "integer", "minimum": 0, "maximum": 100 },
                        "delivery": reference("Delivery"),
                        "audience": { "type": "object", "properties": { "segment_ids": { "type": "array", "items": { "type": "string", "format": "uuid" } }, "filter": { "type": "object", "description": "A segment filter (see the segment builder's JSON)." } } },
                        "conversions": { "type": "array", "maxItems": 4, "items": conversion.clone() },
                        "settings": { "type": "object", "properties": {
                            "rate_per_minute": { "type": "integer", "minimum": 1 },
                            "reeligible_after_seconds": { "type": "integer", "minimum": 0 },
                            "frequency_capped": { "type": "boolean", "default": true },
                            "quiet_hours": { "type": "object", "properties": { "start": { "type": "string" }, "end": { "type": "string" }, "send_later": { "type": "boolean" } } },
                            "max_recipients": { "type": "integer" }
                        } },
                        "version": { "type": "integer", "description": "On update: fail with 400 if the campaign changed since this version." }
                    },
                    "required": ["name", "kind", "delivery"]
                },
                "Campaign": {
                    "allOf": [input.clone(), { "type": "object", "properties": {
                        "id": { "type": "string", "format": "uuid" },
                        "status": { "enum": ["draft", "scheduled", "active", "stopped", "archived"] },
                        "version": { "type": "integer" },
                        "created_at": { "type": "string", "format": "date-time" },
                        "updated_at": { "type": "string", "format": "date-time" },
                        "launched_at": { "type": ["string", "null"], "format": "date-time" },
                        "stopped_at": { "type": ["string", "null"], "format": "date-time" },
                        "archived_at": { "type": ["string", "null"], "format": "date-time" },
                        "next_send_at": { "type": ["string", "null"], "format": "date-time" }
                    } }]
                },
                "Progress": { "type": "object", "properties": { "queued": { "type": "integer" }, "retrying": { "type": "integer" }, "delivered": { "type": "integer" }, "failed": { "type": "integer" }, "aborted": { "type": "integer" } } },
                "CanvasInput": {
                    "type": "object",
                    "properties": {
                        "name": { "type": "string", "maxLength": 200 },
                        "description": { "type": "string" },
                        "tags": { "type": "array", "items": { "type": "string" } },
                        "definition": {
                            "type": "object",
                            "description": "entry (`{\"type\": \"scheduled\"|\"action\"|\"api\", …}`), audience, exit (events, segment_ids, filter), settings (rate_per_minute, reentry_after_seconds, entry_limit, time_zone), variants (`[{name, percent, first_step}]`), control_percent, conversions (below), and steps: `[{id, name, type, …}]` where type is message (message, next), delay (delay: for/until/weekday, next), decision_split (segment_ids, filter, yes, no), audience_paths (paths, everyone_else), action_paths (window_seconds, paths, everyone_else), experiment (paths, control_percent), user_update (attributes, next), context (variables, next) or exit.",
                            "properties": {
                                "conversions": { "type": "array", "maxItems": 4, "description": "Conversion events; the first is primary. A journey converts when its user performs the primary event after entering the Canvas and within the window; checked at launch (1 second to 30 days).", "items": conversion.clone() }
                            }
                        }
                    },
                    "required": ["name", "definition"]
                },
                "Canvas": {
                    "allOf": [reference("CanvasInput"), { "type": "object", "properties": {
                        "id": { "type": "string", "format": "uuid" },
                        "status": { "enum": ["draft", "active", "paused", "stopped", "archived"] },
                        "draft": { "type": "object", "description": "the definition being edited" },
                        "live_version": { "type": ["integer", "null"], "description": "the frozen version new entries use" },
                        "version": { "type": "integer" }
                    } }]
                },
                "CapRule": { "type": "object", "properties": { "id": { "type": "string" }, "tag": { "type": ["string", "null"] }, "max_sends": { "type": "integer", "minimum": 1 }, "window_seconds": { "type": "integer", "minimum": 60, "maximum": 2_592_000 } }, "required": ["max_sends", "window_seconds"] }
            }
        },
        "paths": paths(),
    })
}

/// The paths, in groups (one `json!` for all of them exceeds the macro recursion limit).
fn paths() -> Value {
    let manage = "herald.manage";
    let campaign = reference("Campaign");
    let input = reference("CampaignInput");
    let mut paths = serde_json::Map::new();
    for group in [
        json!({
            "/v1/workspace": { "get": operation("The key's workspace and permissions", "any", json!({ "responses": ok(json!({ "type": "object" })) })) },
            "/v1/campaigns": {
                "get": operation("List campaigns, newest first", manage, json!({
                    "parameters": [query("status", "draft, scheduled, active, stopped or archived"), query("tag", "only campaigns with this tag"), query("delivery_type", "scheduled, action or api"), query("include_archived", "true to include archived campaigns")],
                    "responses": ok(success_with("campaigns", json!({ "type": "array", "items": campaign.clone() })))
                })),
                "post": operation("Create a draft campaign", manage, json!({
                    "requestBody": body(input.clone()),
                    "responses": { "201": { "description": "created", "content": { "application/json": { "schema": success_with("campaign", campaign.clone()) } } }, "400": { "$ref": "#/components/responses/BadRequest" } }
                }))
            },
            "/v1/campaigns/{id}": {
                "get": operation("One campaign", manage, json!({ "parameters": [path_id()], "responses": ok(success_with("campaign", campaign.clone())) })),
                "put": operation("Replace a campaign's definition (allowed while it runs: queued sends keep their content)", manage, json!({ "parameters": [path_id()], "requestBody": body(input.clone()), "responses": versioned(success_with("campaign", campaign.clone())) }))
            },
            "/v1/campaigns/{id}/{action}": {
                "post": operation("launch, stop, resume, archive, unarchive or duplicate a campaign", manage, json!({
                    "parameters": [path_id(), { "name": "action", "in": "path", "required": true, "schema": { "enum": ["launch", "stop", "resume", "archive", "unarchive", "duplicate"] } }],
                    "responses": ok(success_with("campaign", campaign.clone()))
                }))
            },
            "/v1/campaigns/{id}/stats": {
                "get": operation("Per-variant analytics and a time series", manage, json!({
                    "parameters": [path_id(), query("since", "ISO 8601; default 7 days before until"), query("until", "ISO 8601; default now"), query("bucket", "hour or day")],
                    "responses": ok(success_with("stats", json!({ "type": "object" })))
                }))
            }
        }),
        json!({
            "/v1/campaigns/{id}/progress": {
                "get": operation("Live progress of the campaign's sends", manage, json!({
                    "parameters": [path_id(), query("dispatch_id", "only this dispatch")],
                    "responses": ok(success_with("progress", reference("Progress")))
                }))
            },
            "/v1/canvases": {
                "get": operation("List Canvases, newest first", manage, json!({
                    "parameters": [query("status", "draft, active, paused, stopped or archived"), query("tag", "only Canvases with this tag"), query("include_archived", "true to include archived Canvases")],
                    "responses": ok(success_with("canvases", json!({ "type": "array", "items": reference("Canvas") })))
                })),
                "post": operation("Create a draft Canvas", manage, json!({
                    "requestBody": body(reference("CanvasInput")),
                    "responses": { "201": { "description": "created", "content": { "application/json": { "schema": success_with("canvas", reference("Canvas")) } } }, "400": { "$ref": "#/components/responses/BadRequest" } }
                }))
            },
            "/v1/canvases/{id}": {
                "get": operation("One Canvas, with the problems that block its launch", manage, json!({ "parameters": [path_id()], "responses": ok(success_with("canvas", reference("Canvas"))) })),
                "put": operation("Save a Canvas's definition (a launched Canvas gets a new version; users inside stay on theirs)", manage, json!({ "parameters": [path_id()], "requestBody": body(reference("CanvasInput")), "responses": versioned(success_with("canvas", reference("Canvas"))) }))
            },
            "/v1/canvases/{id}/{action}": {
                "post": operation("launch, pause, resume, stop, archive, unarchive or duplicate a Canvas", manage, json!({
                    "parameters": [path_id(), { "name": "action", "in": "path", "required": true, "schema": { "enum": ["launch", "pause", "resume", "stop", "archive", "unarchive", "duplicate"] } }],
                    "responses": ok(success_with("canvas", reference("Canvas")))
                }))
            },
            "/v1/canvases/{id}/stats": {
                "get": operation("Entries, conversions (of the primary conversion event), per-step figures (each step's `converted` included) and time series", manage, json!({
                    "parameters": [path_id(), query("since", "ISO 8601"), query("until", "ISO 8601"), query("bucket", "hour or day")],
                    "responses": ok(success_with("stats", json!({ "type": "object" })))
                }))
            }
        }),
        json!({
            "/v1/frequency_caps": {
                "get": operation("The workspace's frequency-capping rules", manage, json!({ "responses": ok(success_with("rules", json!({ "type": "array", "items": reference("CapRule") }))) })),
                "post": operation("Add a frequency-capping rule (at most 10)", manage, json!({ "requestBody": body(reference("CapRule")), "responses": { "201": { "description": "created" }, "400": { "$ref": "#/components/responses/BadRequest" } } }))
            },
            "/v1/frequency_caps/{id}": {
                "delete": operation("Remove a frequency-capping rule", manage, json!({ "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }], "responses": ok(json!({ "type": "object" })) }))
            },
            "/messages/send": { "post": operation("Braze: send a webhook now (tracked under an API campaign with campaign_id)", "messages.send", json!({ "requestBody": body(json!({ "type": "object" })), "responses": ok(success_with("dispatch_id", json!({ "type": "string" }))) })) },
            "/messages/schedule/create": { "post": operation("Braze: schedule a webhook", "messages.schedule.create", json!({ "requestBody": body(json!({ "type": "object" })), "responses": ok(success_with("schedule_id", json!({ "type": "string" }))) })) },
            "/messages/schedule/update": { "post": operation("Braze: change a scheduled webhook", "messages.schedule.update", json!({ "requestBody": body(json!({ "type": "object" })), "responses": ok(json!({ "type": "object" })) })) }
        }),
        json!({
            "/messages/schedule/delete": { "post": operation("Braze: cancel a scheduled webhook", "messages.schedule.delete", json!({ "requestBody": body(json!({ "type": "object" })), "responses": ok(json!({ "type": "object" })) })) },
            "/messages/scheduled_broadcasts": { "get": operation("Braze: upcoming scheduled sends", "messages.schedule_broadcasts", json!({ "parameters": [query("end_time", "ISO 8601, required")], "responses": ok(json!({ "type": "object" })) })) },
            "/campaigns/trigger/send": { "post": operation("Braze: send an API-triggered campaign", "campaigns.trigger.send", json!({ "requestBody": body(json!({ "type": "object" })), "responses": ok(success_with("dispatch_id", json!({ "type": "string" }))) })) },
            "/campaigns/trigger/schedule/create": { "post": operation("Braze: schedule an API-triggered campaign", "campaigns.trigger.schedule.create", json!({ "requestBody": body(json!({ "type": "object" })), "responses": ok(success_with("schedule_id", json!({ "type": "string" }))) })) },
            "/campaigns/trigger/schedule/update": { "post": operation("Braze: change a scheduled trigger", "campaigns.trigger.schedule.update", json!({ "requestBody": body(json!({ "type": "object" })), "responses": ok(json!({ "type": "object" })) })) }
        }),
        json!({
            "/campaigns/trigger/schedule/delete": { "post": operation("Braze: cancel a scheduled trigger", "campaigns.trigger.schedule.delete", json!({ "requestBody": body(json!({ "type": "object" })), "responses": ok(json!({ "type": "object" })) })) },
            "/campaigns/list": { "get": operation("Braze: list campaigns", "campaigns.list", json!({ "parameters": [query("page", "0-based"), query("include_archived", "true or false"), query("sort_direction", "asc or desc")], "responses": ok(json!({ "type": "object" })) })) },
            "/campaigns/details": { "get": operation("Braze: one campaign", "campaigns.details", json!({ "parameters": [query("campaign_id", "required")], "responses": ok(json!({ "type": "object" })) })) },
            "/campaigns/data_series": { "get": operation("Braze: a campaign's sends over time", "campaigns.data_series", json!({ "parameters": [query("campaign_id", "required"), query("length", "1 to 100, required"), query("ending_at", "ISO 8601"), query("unit", "day or hour")], "responses": ok(json!({ "type": "object" })) })) },
            "/canvas/trigger/send": { "post": operation("Braze: enter users into an API-triggered Canvas (context or canvas_entry_properties); 201, with a notice when paused or archived", "canvas.trigger.send", json!({ "requestBody": body(json!({ "type": "object" })), "responses": { "201": { "description": "accepted" }, "400": { "$ref": "#/components/responses/BadRequest" } } })) }
        }),
        json!({
            "/canvas/trigger/schedule/create": { "post": operation("Braze: schedule Canvas entries at a UTC time, or with schedule.in_local_time: true at a wall time (no offset) in each user's zone (the user's, else the Canvas's, else UTC): users enter when it first comes anywhere and each first step runs at their local time (at once where it has passed); a time passed in every zone is a 400", "canvas.trigger.schedule.create", json!({ "requestBody": body(json!({ "type": "object" })), "responses": ok(success_with("schedule_id", json!({ "type": "string" }))) })) },
            "/canvas/trigger/schedule/update": { "post": operation("Braze: change scheduled Canvas entries (time, in_local_time, recipients or context)", "canvas.trigger.schedule.update", json!({ "requestBody": body(json!({ "type": "object" })), "responses": ok(json!({ "type": "object" })) })) },
            "/canvas/trigger/schedule/delete": { "post": operation("Braze: cancel scheduled Canvas entries", "canvas.trigger.schedule.delete", json!({ "requestBody": body(json!({ "type": "object" })), "responses": ok(json!({ "type": "object" })) })) },
            "/canvas/list": { "get": operation("Braze: list Canvases", "canvas.list", json!({ "parameters": [query("page", "0-based"), query("include_archived", "true or false"), query("sort_direction", "asc or desc")], "responses": ok(json!({ "type": "object" })) })) },
            "/canvas/details": { "get": operation("Braze: one Canvas, with its conversion events as conversion_behaviors", "canvas.details", json!({ "parameters": [query("canvas_id", "required")], "responses": ok(json!({ "type": "object" })) })) }
        }),
        json!({
            "/canvas/data_series": { "get": operation("Braze: a Canvas's entries, sends and conversions (total_stats.conversions, conversions_by_entry_time) over time, with per-step figures (converted)", "canvas.data_series", json!({ "parameters": [query("canvas_id", "required"), query("length", "1 to 100, required"), query("ending_at", "ISO 8601"), query("unit", "day or hour")], "responses": ok(json!({ "type": "object" })) })) },
            "/sends/id/create": { "post": operation("Braze: create a send_id for a campaign", "sends.id.create", json!({ "requestBody": body(json!({ "type": "object" })), "responses": ok(success_with("send_id", json!({ "type": "string" }))) })) },
            "/sends/data_series": { "get": operation("Braze: one send_id's sends over time", "sends.data_series", json!({ "parameters": [query("campaign_id", "required"), query("send_id", "required"), query("length", "1 to 100, required")], "responses": ok(json!({ "type": "object" })) })) }
        }),
    ] {
        if let Value::Object(group) = group {
            paths.extend(group);
        }
    }
    Value::Object(paths)
}
