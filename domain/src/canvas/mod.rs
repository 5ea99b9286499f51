//! Canvases: multi-step journeys. `model` holds the shapes, `store` the lifecycle and versions
//! (an edit of a live Canvas freezes a new version; users inside finish on theirs) and the
//! launch checks, `entry` how users enter (API trigger, tracked events, schedules), `journey` the
//! engine that moves each user through the steps (durable, idempotent transitions), and `stats`
//! the analytics and a user's journey.

mod entry;
mod journey;
mod model;
mod stats;
mod store;

pub use entry::{
    CanvasRecipient, CanvasTarget, CanvasTriggerRequest, EntryOutcome, on_event,
    run_due_canvas_occurrences, trigger_canvas,
};
pub use journey::advance_due;
pub use model::*;
pub use stats::{canvas_stats, user_journeys};
pub use store::{
    archive_canvas, check_definition, create_canvas, duplicate_canvas, find_canvas, launch_canvas,
    list_canvases, pause_canvas, problems, resume_canvas, scheduled_entries, stop_canvas,
    unarchive_canvas, update_canvas,
};
