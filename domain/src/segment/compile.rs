//! Compiles a segment filter to one SQL condition over `profile p`, for SQLite and PostgreSQL, so
//! a segment is counted and listed by the database without loading profiles into memory.
//!
//! Conventions shared by both backends:
//! - Every condition yields TRUE, FALSE or NULL, and NULL only where FALSE would do: the language
//!   has AND and OR but no NOT above a condition, so NULL and FALSE select the same rows. The
//!   negative comparisons (`not_equal`, `does_not_*`) wrap their positive form in
//!   `NOT COALESCE(..., FALSE)`, so a profile without the attribute (or with a value of another
//!   type) matches them. Braze's reference we follow (braze.md §3.4) does not say; this is what
//!   Braze's segmenter does for "does not equal", and the same rule is applied to the others.
//! - Custom attributes are typed: a number compares numerically, a string as text, a boolean is
//!   `true`/`false`; an attribute of another type never matches a positive comparison.
//! - Times (custom attributes holding ISO 8601 strings) compare as instants; a time without an
//!   offset is UTC, a date alone is midnight UTC. Strings that are not times never match.
//! - Strings compare case-sensitively for `equals`; `contains` and regular expressions ignore
//!   case (`contains` lower-cases with the database's `lower`, which on SQLite folds ASCII only).
//! - Regular expressions: PostgreSQL `~*`; SQLite `REGEXP` with a `(?i)` prefix, which exists
//!   only when the connection registers it (sqlx-sqlite's `regexp` feature and
//!   `SqliteConnectOptions::with_regexp`).

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use sea_orm::{DbBackend, Value};

use super::filter::{Comparison, CountComparison, Filter, Operand, Target, operand, target};
use crate::{DomainError, ProfileId, WorkspaceId};

/// A condition being written, with its bound values in order.
pub(crate) struct Sql {
    backend: DbBackend,
    pub(crate) text: String,
    pub(crate) values: Vec<Value>,
}

impl Sql {
    pub(crate) fn new(backend: DbBackend) -> Self {
        Self {
            backend,
            text: String::new(),
            values: Vec::new(),
        }
    }

    fn pg(&self) -> bool {
        self.backend == DbBackend::Postgres
    }

    /// Appends SQL text.
    fn push(&mut self, text: &str) {
        self.text.push_str(text);
    }

    /// Appends a placeholder for `value` (`?` on SQLite, `$n` on PostgreSQL).
    pub(crate) fn bind(&mut self, value: impl Into<Value>) {
        self.values.push(value.into());
        if self.pg() {
            let n = self.values.len();
            self.text.push_str(&format!("${n}"));
        } else {
            self.text.push('?');
        }
    }
}

/// Compiles `filter` to a SQL condition over the table alias `p` (`profile`), restricted to the
/// workspace, with its bound values.
///
/// Placeholders are `?` on SQLite and `$1..$n` on PostgreSQL, numbered from 1 in the order of the
/// values, so the pair can be used as is with `Statement::from_sql_and_values`, or embedded in a
/// larger query with sea-query's `Expr::cust_with_values` (which renumbers them).
pub fn compile(
    filter: &Filter,
    backend: DbBackend,
    workspace: &WorkspaceId,
    now: DateTime<Utc>,
) -> Result<(String, Vec<Value>), DomainError> {
    let mut sql = Sql::new(backend);
    compile_into(&mut sql, filter, workspace, now)?;
    Ok((sql.text, sql.values))
}

/// Validates `filter` and appends its condition (workspace included) to `sql`.
pub(crate) fn compile_into(
    sql: &mut Sql,
    filter: &Filter,
    workspace: &WorkspaceId,
    now: DateTime<Utc>,
) -> Result<(), DomainError> {
    filter.validate()?;
    sql.push("p.workspace_id = ");
    sql.bind(workspace.as_str());
    sql.push(" AND ");
    let root_empty =
        matches!(filter, Filter::And { filters } | Filter::Or { filters } if filters.is_empty());
    if root_empty {
        sql.push("TRUE");
    } else {
        node(sql, filter, workspace, now);
    }
    Ok(())
}

/// Writes an event or purchase count condition as one uncorrelated sub-select, evaluated once
/// for the whole query (a correlated count per profile let SQLite walk every matching event for
/// every profile). Profiles with no matching rows never appear in a GROUP BY, so a condition
/// that zero satisfies (at most N, exactly 0) is written as "not among those that fail it".
fn counted(
    sql: &mut Sql,
    select: &str,
    measure: &str,
    comparison: CountComparison,
    count: u32,
    conditions: impl FnOnce(&mut Sql),
) {
    let zero_matches = match comparison {
        CountComparison::AtLeast => count == 0,
        CountComparison::AtMost => true,
        CountComparison::Exactly => count == 0,
    };
    sql.push(if zero_matches {
        "p.id NOT IN ("
    } else {
        "p.id IN ("
    });
    sql.push(select);
    conditions(sql);
    sql.push(&format!(
        " GROUP BY 1 HAVING {}({measure} {} ",
        if zero_matches { "NOT " } else { "" },
        comparison.operator()
    ));
    sql.bind(i64::from(count));
    sql.push("))");
}

fn node(sql: &mut Sql, filter: &Filter, workspace: &WorkspaceId, now: DateTime<Utc>) {
    match filter {
        Filter::And { filters } | Filter::Or { filters } => {
            let (joiner, empty) = if matches!(filter, Filter::And { .. }) {
                (" AND ", "TRUE")
            } else {
                (" OR ", "FALSE")
            };
            if filters.is_empty() {
                sql.push(empty);
                return;
            }
            sql.push("(");
            for (index, child) in filters.iter().enumerate() {
                if index > 0 {
                    sql.push(joiner);
                }
                node(sql, child, workspace, now);
            }
            sql.push(")");
        }
        Filter::Attribute {
            name,
            custom,
            comparison,
            value,
        } => {
            // Validated before compiling: both are Ok here.
            let (Ok(target), Ok(operand)) = (
                target(name, *custom),
                operand(name, *custom, *comparison, value),
            ) else {
                sql.push("FALSE");
                return;
            };
            attribute(sql, &target, *comparison, &operand, now);
        }
        Filter::Event {
            name,
            comparison,
            count,
            days,
        } => {
            let select = "SELECT e.profile_id FROM profile_event e WHERE e.workspace_id = ";
            counted(sql, select, "COUNT(*)", *comparison, *count, |sql| {
                sql.bind(workspace.as_str());
                sql.push(" AND e.name = ");
                sql.bind(name.as_str());
                if let Some(days) = days {
                    sql.push(" AND e.time >= ");
                    sql.bind(now - Duration::days(i64::from(*days)));
                }
            });
        }
        Filter::Purchase {
            product_id,
            comparison,
            count,
            days,
        } => {
            let select = "SELECT q.profile_id FROM profile_purchase q WHERE q.workspace_id = ";
            counted(sql, select, "SUM(q.quantity)", *comparison, *count, |sql| {
                sql.bind(workspace.as_str());
                if let Some(product_id) = product_id {
                    sql.push(" AND q.product_id = ");
                    sql.bind(product_id.as_str());
                }
                if let Some(days) = days {
                    sql.push(" AND q.time >= ");
                    sql.bind(now - Duration::days(i64::from(*days)));
                }
            });
        }
        Filter::RandomBucket { min, max } => {
            sql.push("(");
            sql.push(&bucket_sql(sql.backend));
            sql.push(" BETWEEN ");
            sql.bind(i64::from(*min));
            sql.push(" AND ");
            sql.bind(i64::from(*max));
            sql.push(")");
        }
        Filter::TimeZone { zones } => {
            sql.push("p.time_zone IN (");
            for (index, zone) in zones.iter().enumerate() {
                if index > 0 {
                    sql.push(", ");
                }
                sql.bind(zone.trim());
            }
            sql.push(")");
        }
    }
}

/// The random bucket of a profile: the first eight hex digits of its id (a UUID) read as a
/// 32-bit number, modulo 10,000. Written with `instr`/`strpos` and arithmetic so both databases
/// give every profile the same bucket as [`random_bucket`]. The weights are `bigint` because
/// `15 * 16^7` overflows PostgreSQL's `integer`.
fn bucket_sql(backend: DbBackend) -> String {
    let find = if backend == DbBackend::Postgres {
        "strpos"
    } else {
        "instr"
    };
    let digits: Vec<String> = (1..=8)
        .map(|k| {
            let weight = 16_i64.pow(8 - k);
            format!(
                "(({find}('0123456789abcdef', substr(lower(p.id), {k}, 1)) - 1) \
                 * CAST({weight} AS bigint))"
            )
        })
        .collect();
    format!("(({}) % 10000)", digits.join(" + "))
}

/// The random bucket (`0..=9999`) a profile falls in; the same number the SQL computes.
pub fn random_bucket(id: &ProfileId) -> u32 {
    let text = id.as_str().to_ascii_lowercase();
    let mut chars = text.chars();
    let mut total: i64 = 0;
    for k in 1..=8_u32 {
        let digit = chars
            .next()
            .and_then(|c| c.to_digit(16))
            .map_or(-1, i64::from);
        total += digit * 16_i64.pow(8 - k);
    }
    // UUIDs only hold hex digits: the remainder is never negative.
    (total % 10_000).clamp(0, 9999) as u32
}

fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Days as a duration, to the millisecond.
fn days(n: f64) -> Duration {
    Duration::milliseconds((n * 86_400_000.0).round() as i64)
}

/// What a custom attribute reads as, by type.
#[derive(Clone, Copy)]
enum As {
    Text,
    Number,
    Time,
}

impl Sql {
    /// The JSON value at `path` (PostgreSQL only).
    fn pg_json(&mut self, path: &[String]) {
        self.push("jsonb_extract_path(p.custom_attributes::jsonb");
        for part in path {
            self.push(", ");
            self.bind(part.as_str());
        }
        self.push(")");
    }

    /// The JSON path string for SQLite, each key quoted.
    fn sqlite_path(path: &[String]) -> String {
        let mut out = String::from("$");
        for part in path {
            out.push_str(&format!(".\"{part}\""));
        }
        out
    }

    /// The JSON type at `path`, in each backend's own names (NULL when absent).
    fn json_type(&mut self, path: &[String]) {
        if self.pg() {
            self.push("jsonb_typeof(");
            self.pg_json(path);
            self.push(")");
        } else {
            self.push("json_type(p.custom_attributes, ");
            self.bind(Self::sqlite_path(path));
            self.push(")");
        }
    }

    /// The scalar at `path` as text (PostgreSQL) or its SQL value (SQLite).
    fn scalar(&mut self, path: &[String]) {
        if self.pg() {
            self.push("jsonb_extract_path_text(p.custom_attributes::jsonb");
            for part in path {
                self.push(", ");
                self.bind(part.as_str());
            }
            self.push(")");
        } else {
            self.push("json_extract(p.custom_attributes, ");
            self.bind(Self::sqlite_path(path));
            self.push(")");
        }
    }

    /// TRUE when the attribute is present and of this JSON type.
    fn is_type(&mut self, path: &[String], kind: &str) {
        let names: &[&str] = match (self.pg(), kind) {
            (true, "string") => &["string"],
            (true, "number") => &["number"],
            (true, "array") => &["array"],
            (true, "true") | (true, "false") => &["boolean"],
            (false, "string") => &["text"],
            (false, "number") => &["integer", "real"],
            (false, "array") => &["array"],
            (false, "true") => &["true"],
            (false, "false") => &["false"],
            _ => &[],
        };
        if self.pg() && (kind == "true" || kind == "false") {
            // jsonb compares by value: no type check needed.
            self.pg_json(path);
            self.push(&format!(" = '{kind}'::jsonb"));
            return;
        }
        self.json_type(path);
        let list: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
        self.push(&format!(" IN ({})", list.join(", ")));
    }

    /// The attribute read as text, number or time, NULL when it is absent or of another type.
    /// A CASE, so PostgreSQL never casts a value of the wrong type.
    fn typed(&mut self, path: &[String], kind: As) {
        self.push("(CASE WHEN ");
        match kind {
            As::Text => self.is_type(path, "string"),
            As::Number => self.is_type(path, "number"),
            As::Time => {
                self.is_type(path, "string");
                if !self.pg() {
                    // julianday would also read 'now' and bare numbers; the migration's PostgreSQL
                    // function checks the same shape.
                    self.push(" AND ");
                    self.scalar(path);
                    self.push(" GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*'");
                }
            }
        }
        self.push(" THEN ");
        match (kind, self.pg()) {
            (As::Text, _) => self.scalar(path),
            (As::Number, true) => {
                self.push("CAST(");
                self.scalar(path);
                self.push(" AS numeric)");
            }
            (As::Number, false) => self.scalar(path),
            (As::Time, true) => {
                self.push("herald_timestamptz(");
                self.scalar(path);
                self.push(")");
            }
            (As::Time, false) => {
                self.push("julianday(");
                self.scalar(path);
                self.push(")");
            }
        }
        self.push(" END)");
    }

    /// A number operand. On PostgreSQL it is bound as text and cast to `numeric`: the driver
    /// caches a prepared statement per SQL text with the parameter types of its first use, so the
    /// same condition bound once with an integer and once with a float must not change type.
    fn bind_number(&mut self, operand: &Operand) {
        let (integer, real) = match operand {
            Operand::Integer(i) => (Some(*i), *i as f64),
            Operand::Real(f) => (None, *f),
            _ => (Some(0), 0.0),
        };
        if self.pg() {
            self.push("CAST(");
            self.bind(integer.map_or_else(|| real.to_string(), |i| i.to_string()));
            self.push(" AS numeric)");
        } else if let Some(i) = integer {
            self.bind(i);
        } else {
            self.bind(real);
        }
    }

    /// A time operand, comparable with [`As::Time`].
    fn bind_time(&mut self, at: DateTime<Utc>) {
        if self.pg() {
            self.bind(at);
        } else {
            self.push("julianday(");
            self.bind(iso(at));
            self.push(")");
        }
    }

    /// `<text> LIKE '%value%'`, both lower-cased, wildcards escaped.
    fn contains(&mut self, value: &str) {
        let mut pattern = String::from("%");
        for c in value.to_lowercase().chars() {
            if matches!(c, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('%');
        self.push(" LIKE ");
        self.bind(pattern);
        self.push(" ESCAPE '\\'");
    }

    /// `<text> ~* pattern`, case-insensitively.
    fn regex(&mut self, pattern: &str) {
        if self.pg() {
            self.push(" ~* ");
            self.bind(pattern);
        } else {
            self.push(" REGEXP ");
            self.bind(format!("(?i){pattern}"));
        }
    }
}

/// One attribute condition.
fn attribute(
    sql: &mut Sql,
    target: &Target,
    comparison: Comparison,
    operand: &Operand,
    now: DateTime<Utc>,
) {
    if comparison.is_negative() {
        let positive = match comparison {
            Comparison::NotEqual => Comparison::Equals,
            Comparison::DoesNotMatchRegex => Comparison::MatchesRegex,
            Comparison::DoesNotIncludeValue => Comparison::IncludesValue,
            _ => Comparison::Contains,
        };
        sql.push("NOT COALESCE(");
        attribute(sql, target, positive, operand, now);
        sql.push(", FALSE)");
        return;
    }
    match target {
        Target::Column(column) => standard(sql, column, comparison, operand),
        Target::Custom(path) => custom(sql, path, comparison, operand, now),
    }
}

/// A condition on a `profile` column (all text; `date_of_birth` is `YYYY-MM-DD`).
fn standard(sql: &mut Sql, column: &str, comparison: Comparison, operand: &Operand) {
    let col = format!("p.{column}");
    let text = match operand {
        Operand::Text(text) if column == "email" => text.trim().to_lowercase(),
        Operand::Text(text) => text.trim().to_owned(),
        _ => String::new(),
    };
    sql.push("(");
    match comparison {
        Comparison::Exists => sql.push(&format!("{col} IS NOT NULL")),
        Comparison::DoesNotExist => sql.push(&format!("{col} IS NULL")),
        Comparison::Equals => {
            sql.push(&format!("{col} = "));
            sql.bind(text);
        }
        Comparison::Contains => {
            sql.push(&format!("lower({col})"));
            sql.contains(&text);
        }
        Comparison::MatchesRegex => {
            sql.push(&col);
            sql.regex(&text);
        }
        Comparison::After | Comparison::Before => {
            let date = match operand {
                Operand::Time(at) => at.format("%Y-%m-%d").to_string(),
                _ => String::new(),
            };
            let op = if comparison == Comparison::After {
                ">"
            } else {
                "<"
            };
            sql.push(&format!("{col} {op} "));
            sql.bind(date);
        }
        // Validation rejects the others for standard attributes.
        _ => sql.push("FALSE"),
    }
    sql.push(")");
}

/// A condition on a custom attribute.
fn custom(
    sql: &mut Sql,
    path: &[String],
    comparison: Comparison,
    operand: &Operand,
    now: DateTime<Utc>,
) {
    use Comparison::*;
    sql.push("(");
    match (comparison, operand) {
        (Exists, _) | (DoesNotExist, _) => {
            sql.push("COALESCE(");
            sql.json_type(path);
            sql.push(if comparison == Exists {
                ", 'null') <> 'null'"
            } else {
                ", 'null') = 'null'"
            });
        }
        (Equals, Operand::Bool(b)) => sql.is_type(path, if *b { "true" } else { "false" }),
        (IsTrue, _) => sql.is_type(path, "true"),
        (IsFalse, _) => sql.is_type(path, "false"),
        (Equals, Operand::Text(text)) => {
            sql.typed(path, As::Text);
            sql.push(" = ");
            sql.bind(text.as_str());
        }
        (Equals, Operand::Integer(_) | Operand::Real(_)) => {
            sql.typed(path, As::Number);
            sql.push(" = ");
            sql.bind_number(operand);
        }
        (GreaterThan | LessThan | GreaterThanOrEqualTo | LessThanOrEqualTo, _) => {
            let op = match comparison {
                GreaterThan => ">",
                LessThan => "<",
                GreaterThanOrEqualTo => ">=",
                _ => "<=",
            };
            sql.typed(path, As::Number);
            sql.push(&format!(" {op} "));
            sql.bind_number(operand);
        }
        (Contains, Operand::Text(text)) => {
            sql.push("lower(");
            sql.typed(path, As::Text);
            sql.push(")");
            sql.contains(text);
        }
        (MatchesRegex, Operand::Text(pattern)) => {
            sql.typed(path, As::Text);
            sql.regex(pattern);
        }
        (IncludesValue, _) => includes(sql, path, operand),
        (After, Operand::Time(at)) | (Before, Operand::Time(at)) => {
            sql.typed(path, As::Time);
            sql.push(if comparison == After { " > " } else { " < " });
            sql.bind_time(*at);
        }
        (MoreThanXDaysAgo, Operand::Days(n)) => {
            sql.typed(path, As::Time);
            sql.push(" < ");
            sql.bind_time(now - days(*n));
        }
        (LessThanXDaysAgo, Operand::Days(n)) => {
            sql.typed(path, As::Time);
            sql.push(" > ");
            sql.bind_time(now - days(*n));
            sql.push(" AND ");
            sql.typed(path, As::Time);
            sql.push(" <= ");
            sql.bind_time(now);
        }
        (MoreThanXDaysInTheFuture, Operand::Days(n)) => {
            sql.typed(path, As::Time);
            sql.push(" > ");
            sql.bind_time(now + days(*n));
        }
        (LessThanXDaysInTheFuture, Operand::Days(n)) => {
            sql.typed(path, As::Time);
            sql.push(" >= ");
            sql.bind_time(now);
            sql.push(" AND ");
            sql.typed(path, As::Time);
            sql.push(" < ");
            sql.bind_time(now + days(*n));
        }
        // Validation never lets another pairing through.
        _ => sql.push("FALSE"),
    }
    sql.push(")");
}

/// The attribute is an array holding the value (same JSON type and value).
fn includes(sql: &mut Sql, path: &[String], operand: &Operand) {
    if sql.pg() {
        let element = match operand {
            Operand::Text(text) => serde_json::Value::from(text.as_str()),
            Operand::Integer(i) => serde_json::Value::from(*i),
            Operand::Real(f) => serde_json::Value::from(*f),
            Operand::Bool(b) => serde_json::Value::from(*b),
            _ => serde_json::Value::Null,
        };
        sql.is_type(path, "array");
        sql.push(" AND ");
        sql.pg_json(path);
        sql.push(" @> CAST(");
        sql.bind(serde_json::Value::Array(vec![element]).to_string());
        sql.push(" AS jsonb)");
        return;
    }
    sql.is_type(path, "array");
    sql.push(" AND EXISTS (SELECT 1 FROM json_each(p.custom_attributes, ");
    sql.bind(Sql::sqlite_path(path));
    sql.push(") j WHERE ");
    match operand {
        Operand::Text(text) => {
            sql.push("j.type = 'text' AND j.value = ");
            sql.bind(text.as_str());
        }
        Operand::Integer(_) | Operand::Real(_) => {
            sql.push("j.type IN ('integer', 'real') AND j.value = ");
            sql.bind_number(operand);
        }
        Operand::Bool(b) => sql.push(if *b {
            "j.type = 'true'"
        } else {
            "j.type = 'false'"
        }),
        _ => sql.push("FALSE"),
    }
    sql.push(")");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_random_bucket_reads_the_first_eight_hex_digits() {
        let id = ProfileId::from_db("0000ffff-0000-4000-8000-000000000000".into());
        assert_eq!(random_bucket(&id), 65_535 % 10_000);
        let id = ProfileId::from_db("FFFFFFFF-0000-4000-8000-000000000000".into());
        assert_eq!(random_bucket(&id), (u32::MAX % 10_000));
    }

    #[test]
    fn placeholders_are_numbered_on_postgres_and_positional_on_sqlite() {
        let filter = Filter::TimeZone {
            zones: vec!["Europe/Paris".into(), "UTC".into()],
        };
        let ws = WorkspaceId::generate();
        let now = Utc::now();
        let (pg, values) = compile(&filter, DbBackend::Postgres, &ws, now).unwrap();
        assert_eq!(pg, "p.workspace_id = $1 AND p.time_zone IN ($2, $3)");
        assert_eq!(values.len(), 3);
        let (lite, _) = compile(&filter, DbBackend::Sqlite, &ws, now).unwrap();
        assert_eq!(lite, "p.workspace_id = ? AND p.time_zone IN (?, ?)");
    }
}
