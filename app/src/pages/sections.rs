//! Sections of the workspace navigation that live in their own modules: every section now has
//! its pages (campaigns in `pages::campaigns`, Canvases in `pages::canvases`). The Canvas list is
//! re-exported here for code that still reaches it through this module.

pub use super::canvases::CanvasesPage;
