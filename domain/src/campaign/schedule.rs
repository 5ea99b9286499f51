//! Calendar maths for scheduled campaigns (pure functions, tested beside them) and planning their
//! occurrences in the database.
//!
//! Rules of the calendar:
//! - Wall times are read in the schedule's IANA zone. A wall time that does not exist (the hour
//!   skipped when clocks go forward) moves forward to the first instant that exists (the end of
//!   the gap, e.g. 02:30 on the last Sunday of March in Paris fires at 03:00 local); a wall time
//!   that happens twice (clocks going back) fires at the earlier instant.
//! - `Daily { every: n }` fires on `starts_on` and every `n`th day after it.
//! - `Weekly { every: n, days }` fires on the chosen weekdays of every `n`th week, weeks running
//!   Monday to Sunday and counted from the week of `starts_on` (never before `starts_on`).
//! - `Monthly { every: n, day }` fires on `day` of every `n`th month counted from the month of
//!   `starts_on`; a month without that day (30 February) is skipped, not moved.
//! - `ends_on` is inclusive: the occurrence on that date still fires.
//! - `in_local_time`: the wall time happens at a different instant in every zone. The occurrence
//!   is the instant the sends are queued: 24 hours before the wall time first happens anywhere on
//!   Earth (UTC+14), i.e. wall time `T` on date `D` gives `(D T read as UTC) - 14 h - 24 h`. The
//!   dispatch then gives each user a due time of `T` on `D` in their own zone.

use chrono::{
    DateTime, Datelike, Days, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, TimeZone, Timelike,
    Utc,
};
use chrono_tz::Tz;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use super::model::{Campaign, CampaignStatus, Delivery, Recurrence, Schedule};
use crate::claim::{status, to_millis};
use crate::entity::campaign_occurrence;
use crate::{DomainError, DomainResult, WorkspaceId};

/// How far ahead of the wall time a local-time occurrence is queued: 24 hours before the earliest
/// zone (UTC+14) reaches it.
pub(super) const LOCAL_TIME_LEAD: TimeDelta = TimeDelta::hours(14 + 24);

/// How far back [`replan`] still considers an occurrence due "now": one that came due a moment
/// ago and was not claimed yet is kept rather than skipped.
const REPLAN_GRACE: TimeDelta = TimeDelta::seconds(1);

/// How many candidate dates [`next_occurrence`] examines before deciding a schedule never fires
/// again (a monthly schedule on a day that no month of its cycle has).
const MAX_CANDIDATES: usize = 64;

/// Reads an IANA zone name of a schedule.
pub(super) fn parse_zone(name: &str) -> DomainResult<Tz> {
    name.trim().parse::<Tz>().map_err(|_| {
        DomainError::invalid(
            "delivery.schedule.time_zone",
            format!(
                "unknown time zone \u{201c}{name}\u{201d}: use an IANA name such as Europe/Paris"
            ),
        )
    })
}

/// The instant a wall time happens in `zone`: a nonexistent wall time (in a gap when clocks go
/// forward) moves to the first instant after the gap, an ambiguous one takes the earlier instant.
pub(super) fn local_to_utc(zone: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    if let Some(at) = zone.from_local_datetime(&local).earliest() {
        return at.with_timezone(&Utc);
    }
    // In a gap: the first wall time that exists again is the gap's end, on a minute boundary in
    // every zone of the database since 1970.
    let base = local
        .with_second(0)
        .and_then(|l| l.with_nanosecond(0))
        .unwrap_or(local);
    for minutes in 1..=24 * 60 {
        let candidate = base + TimeDelta::minutes(minutes);
        if let Some(at) = zone.from_local_datetime(&candidate).earliest() {
            return at.with_timezone(&Utc);
        }
    }
    // No zone skips a whole day's worth of minutes; read the wall time as UTC rather than fail.
    local.and_utc()
}

/// The occurrence (queueing instant) of a local-time send of wall time `time` on `date`.
pub(super) fn local_time_occurrence(date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    date.and_time(time).and_utc() - LOCAL_TIME_LEAD
}

/// The date whose wall time a local-time occurrence stands for (the inverse of
/// [`local_time_occurrence`]).
pub(crate) fn local_time_date(occurrence: DateTime<Utc>) -> NaiveDate {
    (occurrence + LOCAL_TIME_LEAD).date_naive()
}

fn every(n: u16) -> DomainResult<i64> {
    if n == 0 {
        return Err(DomainError::invalid(
            "delivery.schedule.recurrence.every",
            "must be at least 1",
        ));
    }
    Ok(i64::from(n))
}

fn add_days(date: NaiveDate, days: i64) -> Option<NaiveDate> {
    let days = u64::try_from(days).ok()?;
    date.checked_add_days(Days::new(days))
}

/// The first date on or after `from` (and on or after `starts_on`) that `recurrence` names, if
/// any.
fn first_date_from(
    recurrence: &Recurrence,
    starts_on: NaiveDate,
    from: NaiveDate,
) -> DomainResult<Option<NaiveDate>> {
    let from = from.max(starts_on);
    match recurrence {
        Recurrence::Once => Ok((from == starts_on).then_some(starts_on)),
        Recurrence::Daily { every: n } => {
            let n = every(*n)?;
            let elapsed = (from - starts_on).num_days();
            let steps = (elapsed + n - 1) / n;
            Ok(steps.checked_mul(n).and_then(|d| add_days(starts_on, d)))
        }
        Recurrence::Weekly { every: n, days } => {
            let n = every(*n)?;
            if days.is_empty() {
                return Err(DomainError::invalid(
                    "delivery.schedule.recurrence.days",
                    "choose at least one day of the week",
                ));
            }
            let first_monday =
                starts_on - Days::new(u64::from(starts_on.weekday().num_days_from_monday()));
            let mut week = (from - first_monday).num_days() / 7;
            let mut earliest = from;
            // Two turns at most: the rest of the current eligible week, then the next one.
            for _ in 0..3 {
                if week % n != 0 {
                    week += n - week % n;
                }
                let Some(monday) = week.checked_mul(7).and_then(|d| add_days(first_monday, d))
                else {
                    return Ok(None);
                };
                for offset in 0..7 {
                    let Some(date) = add_days(monday, offset) else {
                        return Ok(None);
                    };
                    if date >= earliest && days.contains(&date.weekday()) {
                        return Ok(Some(date));
                    }
                }
                week += 1;
                earliest = monday;
            }
            Ok(None)
        }
        Recurrence::Monthly { every: n, day } => {
            let n = every(*n)?;
            if !(1..=31).contains(day) {
                return Err(DomainError::invalid(
                    "delivery.schedule.recurrence.day",
                    "must be a day of the month between 1 and 31",
                ));
            }
            let month_index = |d: NaiveDate| i64::from(d.year()) * 12 + i64::from(d.month0());
            let first = month_index(starts_on);
            let first_step = ((month_index(from) - first).max(0) + n - 1) / n;
            for step in (first_step..).take(MAX_CANDIDATES) {
                let index = first + step * n;
                let (Ok(year), Ok(month0)) = (i32::try_from(index / 12), u32::try_from(index % 12))
                else {
                    return Ok(None);
                };
                if let Some(date) = NaiveDate::from_ymd_opt(year, month0 + 1, u32::from(*day))
                    && date >= from
                {
                    return Ok(Some(date));
                }
            }
            Ok(None)
        }
    }
}

/// The first instant strictly after `after` at which `schedule` fires (for `in_local_time`, the
/// instant its sends must be queued: 24 hours before the wall time first comes anywhere on
/// Earth), or `None` when it has ended. `AtLaunch` fires at `launched_at` only.
pub fn next_occurrence(
    schedule: &Schedule,
    after: DateTime<Utc>,
    launched_at: DateTime<Utc>,
) -> DomainResult<Option<DateTime<Utc>>> {
    let Schedule::At {
        starts_on,
        time,
        recurrence,
        ends_on,
        time_zone,
        in_local_time,
    } = schedule
    else {
        let launched_at = to_millis(launched_at);
        return Ok((after < launched_at).then_some(launched_at));
    };
    // The zone is checked in local-time schedules too: users without a zone fall back to it.
    let zone = parse_zone(time_zone)?;
    let time = time
        .with_nanosecond(time.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap_or(*time);
    let instant = |date: NaiveDate| {
        if *in_local_time {
            local_time_occurrence(date, time)
        } else {
            local_to_utc(zone, date.and_time(time))
        }
    };
    // A lower bound on the answer's date: no zone is more than 14 hours from UTC, and a local-time
    // occurrence is its date's wall time less 38 hours.
    let mut from = if *in_local_time {
        (after + LOCAL_TIME_LEAD).date_naive()
    } else {
        after.date_naive() - Days::new(1)
    };
    // Instants grow with the date (a DST shift is shorter than a day), so the first candidate
    // past `after` is the answer.
    for _ in 0..MAX_CANDIDATES {
        let Some(date) = first_date_from(recurrence, *starts_on, from)? else {
            return Ok(None);
        };
        if ends_on.is_some_and(|end| date > end) {
            return Ok(None);
        }
        let at = to_millis(instant(date));
        if at > after {
            return Ok(Some(at));
        }
        let Some(next) = date.succ_opt() else {
            return Ok(None);
        };
        from = next;
    }
    Ok(None)
}

/// When the campaign should fire next, given the occurrences it already has.
async fn plan_next(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    campaign: &Campaign,
    schedule: &Schedule,
    now: DateTime<Utc>,
) -> DomainResult<Option<DateTime<Utc>>> {
    let mine = || {
        campaign_occurrence::Entity::find()
            .filter(campaign_occurrence::Column::WorkspaceId.eq(ws.as_str()))
            .filter(campaign_occurrence::Column::CampaignId.eq(campaign.id.as_str()))
    };
    // The latest occurrence that fired (or is firing): the next one comes strictly after it.
    let fired = mine()
        .filter(campaign_occurrence::Column::Status.is_in([status::DONE, status::RUNNING]))
        .order_by_desc(campaign_occurrence::Column::DueAt)
        .one(db)
        .await?
        .map(|o| o.due_at);
    let launched_at = campaign.launched_at.unwrap_or(now);
    if let Schedule::AtLaunch = schedule {
        if fired.is_some() {
            return Ok(None);
        }
        // Not fired yet (never, or stopped before it could): keep the pending one, so a resumed
        // campaign still sends; otherwise send now.
        let pending = mine()
            .filter(campaign_occurrence::Column::Status.eq(status::PENDING))
            .order_by_asc(campaign_occurrence::Column::DueAt)
            .one(db)
            .await?;
        if let Some(pending) = pending {
            return Ok(Some(pending.due_at));
        }
        let launched_at = to_millis(launched_at);
        return Ok(Some(if launched_at > now - REPLAN_GRACE {
            launched_at
        } else {
            to_millis(now)
        }));
    }
    let after = fired.map_or(now - REPLAN_GRACE, |f| f.max(now - REPLAN_GRACE));
    next_occurrence(schedule, after, launched_at)
}

/// Makes the campaign's pending occurrences match its schedule from `now`: cancels pending ones
/// that no longer apply and inserts the next one (unique per campaign and due time, so two
/// processes planning at once make one row). Returns when it next sends.
///
/// Only launched scheduled campaigns (any status but draft and archived) are planned; a stopped
/// one is planned too, its occurrence simply does not fire until it is resumed. Occurrences
/// already due more than a second ago are not kept: a campaign resumed (or edited) after its
/// send time skips that send, except a send-at-launch campaign that has not sent yet.
pub async fn replan(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    campaign: &Campaign,
    now: DateTime<Utc>,
) -> DomainResult<Option<DateTime<Utc>>> {
    let planned = !matches!(
        campaign.status,
        CampaignStatus::Draft | CampaignStatus::Archived
    );
    let next = match &campaign.delivery {
        Delivery::Scheduled { schedule } if planned => {
            plan_next(db, ws, campaign, schedule, now).await?
        }
        _ => None,
    };
    let mut stale = campaign_occurrence::Entity::update_many()
        .col_expr(
            campaign_occurrence::Column::Status,
            Expr::value(status::CANCELLED),
        )
        .col_expr(
            campaign_occurrence::Column::CompletedAt,
            Expr::value(to_millis(now)),
        )
        .filter(campaign_occurrence::Column::WorkspaceId.eq(ws.as_str()))
        .filter(campaign_occurrence::Column::CampaignId.eq(campaign.id.as_str()))
        .filter(campaign_occurrence::Column::Status.eq(status::PENDING));
    if let Some(next) = next {
        stale = stale.filter(campaign_occurrence::Column::DueAt.ne(next));
    }
    stale.exec(db).await?;
    if let Some(next) = next {
        let row = campaign_occurrence::ActiveModel {
            workspace_id: Set(ws.to_string()),
            id: Set(uuid::Uuid::new_v4().to_string()),
            campaign_id: Set(campaign.id.to_string()),
            due_at: Set(next),
            status: Set(status::PENDING.into()),
            lease_until: Set(None),
            dispatch_id: Set(uuid::Uuid::new_v4().simple().to_string()),
            cursor: Set(None),
            recipients: Set(0),
            created_at: Set(to_millis(now)),
            completed_at: Set(None),
        };
        // Another process planning the same occurrence made the row already: keep it. One
        // cancelled earlier (the schedule changed and changed back) comes back to life.
        let on_conflict = OnConflict::columns([
            campaign_occurrence::Column::WorkspaceId,
            campaign_occurrence::Column::CampaignId,
            campaign_occurrence::Column::DueAt,
        ])
        .value(
            campaign_occurrence::Column::Status,
            Expr::value(status::PENDING),
        )
        .value(
            campaign_occurrence::Column::CompletedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .value(
            campaign_occurrence::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .action_and_where(
            Expr::col((
                campaign_occurrence::Entity,
                campaign_occurrence::Column::Status,
            ))
            .eq(status::CANCELLED),
        )
        .to_owned();
        campaign_occurrence::Entity::insert(row)
            .on_conflict(on_conflict)
            .exec_without_returning(db)
            .await?;
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, NaiveTime, TimeZone, Utc, Weekday};

    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    fn schedule(recurrence: Recurrence, starts_on: NaiveDate, time: (u32, u32)) -> Schedule {
        Schedule::At {
            starts_on,
            time: NaiveTime::from_hms_opt(time.0, time.1, 0).unwrap(),
            recurrence,
            ends_on: None,
            time_zone: "UTC".into(),
            in_local_time: false,
        }
    }

    fn with_zone(mut schedule: Schedule, zone: &str) -> Schedule {
        if let Schedule::At { time_zone, .. } = &mut schedule {
            *time_zone = zone.into();
        }
        schedule
    }

    fn ending(mut schedule: Schedule, end: NaiveDate) -> Schedule {
        if let Schedule::At { ends_on, .. } = &mut schedule {
            *ends_on = Some(end);
        }
        schedule
    }

    /// Every occurrence after `from`, up to `n` of them.
    fn occurrences(schedule: &Schedule, from: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut after = from;
        while out.len() < n {
            match next_occurrence(schedule, after, from).unwrap() {
                Some(next) => {
                    assert!(next > after, "{next} is not after {after}");
                    out.push(next);
                    after = next;
                }
                None => break,
            }
        }
        out
    }

    #[test]
    fn send_at_launch_fires_once_at_the_launch() {
        let launched = at(2026, 11, 28, 9, 0);
        let s = Schedule::AtLaunch;
        assert_eq!(
            next_occurrence(&s, launched - TimeDelta::seconds(1), launched).unwrap(),
            Some(launched)
        );
        assert_eq!(next_occurrence(&s, launched, launched).unwrap(), None);
    }

    #[test]
    fn a_one_off_schedule_fires_on_its_date_only() {
        let s = schedule(Recurrence::Once, date(2026, 12, 1), (10, 0));
        assert_eq!(
            occurrences(&s, at(2026, 11, 28, 0, 0), 5),
            vec![at(2026, 12, 1, 10, 0)]
        );
        assert_eq!(
            next_occurrence(&s, at(2026, 12, 1, 10, 0), at(2026, 11, 28, 0, 0)).unwrap(),
            None
        );
    }

    #[test]
    fn daily_schedules_fire_every_nth_day_from_the_start_date() {
        let s = schedule(Recurrence::Daily { every: 1 }, date(2026, 11, 28), (9, 30));
        assert_eq!(
            occurrences(&s, at(2026, 11, 28, 12, 0), 3),
            vec![
                at(2026, 11, 29, 9, 30),
                at(2026, 11, 30, 9, 30),
                at(2026, 12, 1, 9, 30)
            ]
        );
        let s = schedule(Recurrence::Daily { every: 3 }, date(2026, 11, 28), (9, 30));
        assert_eq!(
            occurrences(&s, at(2026, 11, 20, 0, 0), 3),
            vec![
                at(2026, 11, 28, 9, 30),
                at(2026, 12, 1, 9, 30),
                at(2026, 12, 4, 9, 30)
            ]
        );
        // Starting the search mid-cycle lands on the cycle, not on the next day.
        assert_eq!(
            occurrences(&s, at(2026, 11, 29, 0, 0), 1),
            vec![at(2026, 12, 1, 9, 30)]
        );
    }

    #[test]
    fn weekly_schedules_fire_on_the_chosen_days_of_every_nth_week() {
        // 2026-11-25 is a Wednesday; its week starts on Monday 23rd.
        let s = schedule(
            Recurrence::Weekly {
                every: 2,
                days: vec![Weekday::Mon, Weekday::Thu],
            },
            date(2026, 11, 25),
            (8, 0),
        );
        assert_eq!(
            occurrences(&s, at(2026, 11, 1, 0, 0), 5),
            vec![
                at(2026, 11, 26, 8, 0), // Thursday of the first week (Monday 23rd is before the start)
                at(2026, 12, 7, 8, 0),  // two weeks on
                at(2026, 12, 10, 8, 0),
                at(2026, 12, 21, 8, 0),
                at(2026, 12, 24, 8, 0),
            ]
        );
    }

    #[test]
    fn monthly_schedules_skip_months_without_the_day() {
        let s = schedule(
            Recurrence::Monthly { every: 1, day: 30 },
            date(2027, 1, 1),
            (12, 0),
        );
        assert_eq!(
            occurrences(&s, at(2026, 12, 31, 0, 0), 3),
            vec![
                at(2027, 1, 30, 12, 0),
                at(2027, 3, 30, 12, 0),
                at(2027, 4, 30, 12, 0)
            ]
        );
        let s = schedule(
            Recurrence::Monthly { every: 2, day: 31 },
            date(2027, 1, 15),
            (12, 0),
        );
        // January, March, May, July (all with a 31st), then September (none) is skipped.
        assert_eq!(
            occurrences(&s, at(2027, 1, 1, 0, 0), 5),
            vec![
                at(2027, 1, 31, 12, 0),
                at(2027, 3, 31, 12, 0),
                at(2027, 5, 31, 12, 0),
                at(2027, 7, 31, 12, 0),
                at(2028, 1, 31, 12, 0),
            ]
        );
    }

    #[test]
    fn the_end_date_is_inclusive() {
        let s = ending(
            schedule(Recurrence::Daily { every: 1 }, date(2026, 12, 1), (18, 0)),
            date(2026, 12, 3),
        );
        assert_eq!(
            occurrences(&s, at(2026, 11, 28, 0, 0), 10),
            vec![
                at(2026, 12, 1, 18, 0),
                at(2026, 12, 2, 18, 0),
                at(2026, 12, 3, 18, 0)
            ]
        );
    }

    #[test]
    fn wall_times_follow_the_zone_across_daylight_saving_changes() {
        // Paris: clocks go forward on 2027-03-28 at 02:00 (to 03:00), back on 2027-10-31 at 03:00.
        let s = with_zone(
            schedule(Recurrence::Daily { every: 1 }, date(2027, 3, 27), (2, 30)),
            "Europe/Paris",
        );
        assert_eq!(
            occurrences(&s, at(2027, 3, 26, 0, 0), 3),
            vec![
                at(2027, 3, 27, 1, 30), // 02:30 CET
                at(2027, 3, 28, 1, 0),  // 02:30 does not exist: the gap ends at 03:00 CEST
                at(2027, 3, 29, 0, 30), // 02:30 CEST
            ]
        );
        // 02:30 happens twice on 2027-10-31: the earlier one (CEST) is taken.
        let s = with_zone(
            schedule(Recurrence::Once, date(2027, 10, 31), (2, 30)),
            "Europe/Paris",
        );
        assert_eq!(
            occurrences(&s, at(2027, 10, 1, 0, 0), 2),
            vec![at(2027, 10, 31, 0, 30)]
        );
    }

    #[test]
    fn local_time_schedules_are_queued_a_day_before_the_earliest_zone() {
        let mut s = schedule(Recurrence::Daily { every: 1 }, date(2026, 12, 5), (9, 0));
        if let Schedule::At { in_local_time, .. } = &mut s {
            *in_local_time = true;
        }
        // 09:00 on 5 December first happens at Kiritimati (UTC+14) at 19:00 UTC on the 4th; the
        // sends are queued 24 hours before that.
        let first = at(2026, 12, 3, 19, 0);
        assert_eq!(
            occurrences(&s, at(2026, 11, 28, 0, 0), 2),
            vec![first, first + TimeDelta::days(1)]
        );
        assert_eq!(local_time_date(first), date(2026, 12, 5));
        // Too late for the 5th: the next one is the 6th.
        assert_eq!(
            next_occurrence(&s, first, first).unwrap(),
            Some(first + TimeDelta::days(1))
        );
    }

    #[test]
    fn unknown_zones_and_impossible_recurrences_are_refused() {
        let s = with_zone(
            schedule(Recurrence::Once, date(2026, 12, 1), (10, 0)),
            "Mars/Olympus",
        );
        let err = next_occurrence(&s, at(2026, 11, 28, 0, 0), at(2026, 11, 28, 0, 0)).unwrap_err();
        assert_eq!(err.field(), Some("delivery.schedule.time_zone"));
        let s = schedule(Recurrence::Daily { every: 0 }, date(2026, 12, 1), (10, 0));
        let err = next_occurrence(&s, at(2026, 11, 28, 0, 0), at(2026, 11, 28, 0, 0)).unwrap_err();
        assert_eq!(err.field(), Some("delivery.schedule.recurrence.every"));
        let s = schedule(
            Recurrence::Weekly {
                every: 1,
                days: vec![],
            },
            date(2026, 12, 1),
            (10, 0),
        );
        let err = next_occurrence(&s, at(2026, 11, 28, 0, 0), at(2026, 11, 28, 0, 0)).unwrap_err();
        assert_eq!(err.field(), Some("delivery.schedule.recurrence.days"));
    }

    #[test]
    fn a_monthly_day_no_month_of_the_cycle_has_never_fires() {
        let s = schedule(
            Recurrence::Monthly { every: 12, day: 30 },
            date(2027, 2, 1),
            (10, 0),
        );
        assert_eq!(
            next_occurrence(&s, at(2027, 1, 1, 0, 0), at(2027, 1, 1, 0, 0)).unwrap(),
            None
        );
    }
}
