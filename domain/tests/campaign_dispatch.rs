//! Scheduled campaigns turned into outbox rows (variants, control group, re-eligibility, frequency
//! caps, quiet hours, local time), occurrences that never fire twice, crashed dispatches that
//! resume, and API campaign sends; on a freshly migrated database: SQLite always, PostgreSQL too
//! when TEST_DATABASE_URL is set. Time is always an explicit `now`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use domain::campaign::{
    self, AudienceSpec, CampaignInput, CampaignKind, CampaignStatus, CapRule, Delivery, QuietHours,
    Recurrence, Schedule, Settings, Variant,
};
use domain::entity::{campaign_occurrence, campaign_receipt, profile, webhook_send};
use domain::messaging::Audience;
use domain::segment::{self, Comparison, Filter};
use domain::webhook::{Body, Method, WebhookMessage};
use domain::{CampaignId, DomainError, VariantId, WorkspaceId};
use migrations::testing::test_databases;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
};
use serde_json::json;

mod common;

use common::{break_outbox_at, context, launched, now, plan_is, repair_outbox};

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, d).unwrap()
}

fn message() -> WebhookMessage {
    WebhookMessage {
        method: Method::Post,
        url: "https://hooks.example.com/news".into(),
        headers: Vec::new(),
        body: Body::Raw {
            text: "Hi {{${first_name}}} {{campaign.${dispatch_id}}} {{campaign.${message_name}}}"
                .into(),
        },
    }
}

fn variant(name: &str, percent: u8) -> Variant {
    Variant {
        id: None,
        name: name.into(),
        percent,
        message: Some(message()),
    }
}

fn external_id_is(id: &str) -> Filter {
    Filter::Attribute {
        name: "external_id".into(),
        custom: false,
        comparison: Comparison::Equals,
        value: json!(id),
    }
}

/// A scheduled webhook campaign with one variant and no caps, to everyone.
fn input(schedule: Schedule) -> CampaignInput {
    CampaignInput {
        name: "Newsletter".into(),
        description: String::new(),
        tags: Vec::new(),
        kind: CampaignKind::Webhook,
        variants: vec![variant("Only", 100)],
        control_percent: 0,
        delivery: Delivery::Scheduled { schedule },
        audience: AudienceSpec::default(),
        conversions: Vec::new(),
        settings: Settings {
            frequency_capped: false,
            ..Settings::default()
        },
    }
}

/// [`input`] with every user eligible every time, so only the occurrence's own bookkeeping (not
/// the receipts) keeps a user from being queued twice.
fn always_eligible(schedule: Schedule) -> CampaignInput {
    let mut input = input(schedule);
    input.settings.reeligible_after_seconds = Some(0);
    input
}

fn daily_at(hour: u32, starts_on: NaiveDate) -> Schedule {
    Schedule::At {
        starts_on,
        time: NaiveTime::from_hms_opt(hour, 0, 0).unwrap(),
        recurrence: Recurrence::Daily { every: 1 },
        ends_on: None,
        time_zone: "UTC".into(),
        in_local_time: false,
    }
}

/// Users `{prefix}0000`.. straight into the profile table (faster than `/users/track` for
/// thousands), each with a first name, a plan and an optional time zone.
async fn seed(
    db: &DatabaseConnection,
    ws: &WorkspaceId,
    prefix: &str,
    n: usize,
    plan: &str,
    time_zone: impl Fn(usize) -> Option<&'static str>,
) {
    let rows: Vec<profile::ActiveModel> = (0..n)
        .map(|i| profile::ActiveModel {
            workspace_id: Set(ws.to_string()),
            id: Set(uuid::Uuid::new_v4().to_string()),
            external_id: Set(Some(format!("{prefix}{i:04}"))),
            email: Set(None),
            phone: Set(None),
            first_name: Set(Some(format!("Name{i}"))),
            last_name: Set(None),
            gender: Set(None),
            date_of_birth: Set(None),
            country: Set(None),
            home_city: Set(None),
            language: Set(None),
            time_zone: Set(time_zone(i).map(str::to_owned)),
            custom_attributes: Set(json!({ "plan": plan }).to_string()),
            created_at: Set(now()),
            updated_at: Set(now()),
        })
        .collect();
    for chunk in rows.chunks(500) {
        profile::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(db)
            .await
            .unwrap();
    }
}

async fn sends_of(
    db: &DatabaseConnection,
    ws: &WorkspaceId,
    id: &CampaignId,
) -> Vec<webhook_send::Model> {
    webhook_send::Entity::find()
        .filter(webhook_send::Column::WorkspaceId.eq(ws.as_str()))
        .filter(webhook_send::Column::SourceId.eq(id.as_str()))
        .order_by_asc(webhook_send::Column::Recipient)
        .all(db)
        .await
        .unwrap()
}

async fn occurrences(
    db: &DatabaseConnection,
    ws: &WorkspaceId,
    id: &CampaignId,
) -> Vec<campaign_occurrence::Model> {
    campaign_occurrence::Entity::find()
        .filter(campaign_occurrence::Column::WorkspaceId.eq(ws.as_str()))
        .filter(campaign_occurrence::Column::CampaignId.eq(id.as_str()))
        .order_by_asc(campaign_occurrence::Column::DueAt)
        .all(db)
        .await
        .unwrap()
}

/// Every send's recipient, asserting none appears twice.
fn distinct_recipients(sends: &[webhook_send::Model]) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for send in sends {
        let recipient = send.recipient.clone().unwrap();
        assert!(
            seen.insert(recipient.clone()),
            "{recipient} was queued twice"
        );
    }
    seen
}

/// Fires what is due at `at`; how many occurrences finished.
async fn run(db: &DatabaseConnection, at: DateTime<Utc>) -> usize {
    campaign::run_due_occurrences(db, at, 10)
        .await
        .unwrap_or_else(|e| panic!("{:?}: {e}", db.get_database_backend()))
}

#[tokio::test]
async fn a_campaign_sent_at_launch_queues_one_personalised_send_per_member_with_variants_split_and_a_control_group()
 {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        seed(&db, &ws, "pro", 400, "pro", |_| None).await;
        seed(&db, &ws, "free", 50, "free", |_| None).await;
        let pros = segment::create(&db, &ws, "Pros", "", &plan_is("pro"), now())
            .await
            .unwrap();
        let mut input = input(Schedule::AtLaunch);
        input.variants = vec![variant("A", 45), variant("B", 45)];
        input.control_percent = 10;
        input.audience.segment_ids = vec![pros.id.clone()];
        let campaign = launched(&db, &ws, input, now()).await;
        assert_eq!(campaign.status, CampaignStatus::Active);
        let planned = occurrences(&db, &ws, &campaign.id).await;
        assert_eq!(planned.len(), 1);
        assert_eq!(planned[0].due_at, now());

        assert_eq!(run(&db, now()).await, 1);

        let sends = sends_of(&db, &ws, &campaign.id).await;
        let recipients = distinct_recipients(&sends);
        assert!(recipients.iter().all(|r| r.starts_with("pro")));
        let receipts = campaign_receipt::Entity::find()
            .filter(campaign_receipt::Column::CampaignId.eq(campaign.id.as_str()))
            .all(&db)
            .await
            .unwrap();
        let control = receipts.iter().filter(|r| r.variant_id.is_none()).count();
        assert_eq!(
            sends.len() + control,
            400,
            "every member is sent or held out"
        );
        assert_eq!(receipts.len(), 400);
        assert!((15..=70).contains(&control), "control group of {control}");
        let dispatch_id = &planned[0].dispatch_id;
        let names: BTreeMap<String, String> = campaign
            .variants
            .iter()
            .map(|v| (v.id.clone().unwrap().to_string(), v.name.clone()))
            .collect();
        let mut per_variant: BTreeMap<String, usize> = BTreeMap::new();
        for send in &sends {
            assert_eq!(send.source_kind, "campaign");
            assert_eq!(send.source_name.as_deref(), Some("Newsletter"));
            assert_eq!(send.dispatch_id.as_ref(), Some(dispatch_id));
            assert_eq!(send.next_attempt_at, now());
            let variant = send.variant_id.clone().unwrap();
            let context = context(send);
            assert_eq!(context["campaign"]["dispatch_id"], json!(dispatch_id));
            assert_eq!(context["campaign"]["api_id"], json!(campaign.id.as_str()));
            assert_eq!(context["campaign"]["message_api_id"], json!(variant));
            assert_eq!(context["campaign"]["message_name"], json!(names[&variant]));
            let number: usize = send.recipient.as_ref().unwrap()[3..].parse().unwrap();
            assert_eq!(
                context["user"]["first_name"],
                json!(format!("Name{number}"))
            );
            *per_variant.entry(names[&variant].clone()).or_default() += 1;
        }
        for (name, count) in &per_variant {
            assert!((120..=240).contains(count), "variant {name} got {count}");
        }
        assert_eq!(per_variant.len(), 2);

        // Sent at launch: it is done, nothing else is planned, and it never fires again.
        let after = occurrences(&db, &ws, &campaign.id).await;
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].status, "done");
        assert_eq!(after[0].recipients, sends.len() as i64);
        assert_eq!(run(&db, now() + Duration::days(1)).await, 0);
        assert_eq!(sends_of(&db, &ws, &campaign.id).await.len(), sends.len());
    }
}

#[tokio::test]
async fn two_processes_firing_the_same_occurrence_at_once_queue_each_user_once() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        seed(&db, &ws, "u", 2300, "pro", |_| None).await;
        let campaign = launched(&db, &ws, always_eligible(Schedule::AtLaunch), now()).await;
        let (a, b) = tokio::join!(
            campaign::run_due_occurrences(&db, now(), 10),
            campaign::run_due_occurrences(&db, now(), 10),
        );
        assert_eq!(a.unwrap() + b.unwrap(), 1);
        // And once more, later, for good measure.
        assert_eq!(run(&db, now() + Duration::minutes(5)).await, 0);
        let sends = sends_of(&db, &ws, &campaign.id).await;
        assert_eq!(distinct_recipients(&sends).len(), 2300);
    }
}

#[tokio::test]
async fn a_dispatch_that_dies_mid_way_resumes_from_its_cursor_once_its_lease_runs_out() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        seed(&db, &ws, "u", 2500, "pro", |_| None).await;
        let campaign = launched(&db, &ws, always_eligible(Schedule::AtLaunch), now()).await;
        // Members are paged by profile id: break the 1,500th, in the second page.
        let members = segment::members(
            &db,
            &ws,
            &Filter::And { filters: vec![] },
            now(),
            10_000,
            None,
        )
        .await
        .unwrap();
        let victim = members[1499].external_id.clone().unwrap();
        break_outbox_at(&db, &victim).await;

        let crashed = campaign::run_due_occurrences(&db, now(), 10).await;
        assert!(crashed.is_err(), "{crashed:?}");
        let sends = sends_of(&db, &ws, &campaign.id).await;
        assert_eq!(
            distinct_recipients(&sends).len(),
            1000,
            "the first page stayed"
        );
        let occurrence = &occurrences(&db, &ws, &campaign.id).await[0];
        assert_eq!(occurrence.status, "running");
        assert_eq!(occurrence.cursor.as_ref(), Some(&members[999].id));
        assert_eq!(occurrence.recipients, 1000);

        repair_outbox(&db).await;
        // The lease still holds: nobody else takes the occurrence over yet.
        assert_eq!(run(&db, now() + Duration::seconds(30)).await, 0);
        assert_eq!(sends_of(&db, &ws, &campaign.id).await.len(), 1000);
        // Once it has run out, the next run goes on after the cursor.
        assert_eq!(run(&db, now() + Duration::minutes(5)).await, 1);
        let sends = sends_of(&db, &ws, &campaign.id).await;
        assert_eq!(distinct_recipients(&sends).len(), 2500);
        let dispatches: BTreeSet<_> = sends.iter().map(|s| s.dispatch_id.clone()).collect();
        assert_eq!(dispatches.len(), 1, "one dispatch across the crash");
        let occurrence = &occurrences(&db, &ws, &campaign.id).await[0];
        assert_eq!(occurrence.status, "done");
        assert_eq!(occurrence.recipients, 2500);
    }
}

#[tokio::test]
async fn a_daily_campaign_fires_once_on_each_day_and_users_keep_their_variant() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        seed(&db, &ws, "u", 40, "pro", |_| None).await;
        let mut input = input(daily_at(10, day(1)));
        input.variants = vec![variant("A", 50), variant("B", 50)];
        input.settings.reeligible_after_seconds = Some(0);
        let campaign = launched(&db, &ws, input.clone(), now()).await;
        assert_eq!(campaign.status, CampaignStatus::Scheduled);
        let first = Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap();
        assert_eq!(campaign.next_send_at, Some(first));

        // Nothing before the time; each day, runs through the day fire exactly once.
        assert_eq!(run(&db, first - Duration::seconds(1)).await, 0);
        let mut variant_of: BTreeMap<String, Option<String>> = BTreeMap::new();
        for d in 0..3 {
            let due = first + Duration::days(d);
            assert_eq!(run(&db, due).await, 1, "day {d}");
            assert_eq!(run(&db, due + Duration::seconds(1)).await, 0);
            assert_eq!(run(&db, due + Duration::hours(13)).await, 0);
            let sends = sends_of(&db, &ws, &campaign.id).await;
            assert_eq!(sends.len(), 40 * (d as usize + 1), "day {d}");
            let today: Vec<_> = sends.iter().filter(|s| s.created_at == due).collect();
            assert_eq!(today.len(), 40);
            for send in today {
                let previous =
                    variant_of.insert(send.recipient.clone().unwrap(), send.variant_id.clone());
                if let Some(previous) = previous {
                    assert_eq!(previous, send.variant_id, "variants are sticky");
                }
            }
            if d == 0 {
                let current = campaign::find_campaign(&db, &ws, &campaign.id)
                    .await
                    .unwrap();
                assert_eq!(current.status, CampaignStatus::Active);
                // New percentages do not move users who already have a variant.
                let mut edited = input.clone();
                edited.variants = current.variants.clone();
                edited.variants[0].percent = 90;
                edited.variants[1].percent = 10;
                campaign::update_campaign(&db, &ws, &campaign.id, edited, None, due)
                    .await
                    .unwrap();
            }
        }
        let planned = occurrences(&db, &ws, &campaign.id).await;
        let done: Vec<_> = planned.iter().filter(|o| o.status == "done").collect();
        assert_eq!(done.len(), 3);
        let pending: Vec<_> = planned.iter().filter(|o| o.status == "pending").collect();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].due_at, first + Duration::days(3));
        let dispatches: BTreeSet<_> = done.iter().map(|o| o.dispatch_id.clone()).collect();
        assert_eq!(dispatches.len(), 3, "one dispatch id per day");
    }
}

#[tokio::test]
async fn users_receive_a_campaign_once_unless_re_eligible_and_then_only_after_the_window() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        seed(&db, &ws, "u", 5, "pro", |_| None).await;
        let once = launched(&db, &ws, input(daily_at(10, day(1))), now()).await;
        let mut every_other_day = input(daily_at(10, day(1)));
        every_other_day.name = "Every other day".into();
        every_other_day.settings.reeligible_after_seconds = Some(36 * 3600);
        let window = launched(&db, &ws, every_other_day, now()).await;

        let first = Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap();
        let mut counts = Vec::new();
        for d in 0..4 {
            assert_eq!(run(&db, first + Duration::days(d)).await, 2);
            counts.push((
                sends_of(&db, &ws, &once.id).await.len(),
                sends_of(&db, &ws, &window.id).await.len(),
            ));
        }
        // Once ever; again 36 hours later means every other daily send.
        assert_eq!(counts, vec![(5, 5), (5, 5), (5, 10), (5, 10)]);
        let receipt = campaign_receipt::Entity::find()
            .filter(campaign_receipt::Column::CampaignId.eq(window.id.as_str()))
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(receipt.receipts, 2);
        assert_eq!(receipt.first_received_at, first);
        assert_eq!(receipt.last_received_at, first + Duration::days(2));
    }
}

#[tokio::test]
async fn frequency_caps_hold_back_users_who_had_enough_webhooks_unless_the_campaign_ignores_them() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        seed(&db, &ws, "u", 4, "pro", |_| None).await;
        let cap = |tag: Option<&str>, max_sends| CapRule {
            id: String::new(),
            tag: tag.map(str::to_owned),
            max_sends,
            window_seconds: 86_400,
        };
        campaign::create_cap_rule(&db, &ws, cap(None, 2), now())
            .await
            .unwrap();
        campaign::create_cap_rule(&db, &ws, cap(Some("promo"), 1), now())
            .await
            .unwrap();
        // u0000 had two webhooks today from the messaging API, u0001 one (and one yesterday).
        let api = |ids: &[&str]| Audience::Listed {
            external_ids: ids.iter().map(|s| s.to_string()).collect(),
            within: None,
        };
        let earlier = now() - Duration::hours(2);
        domain::messaging::send_now(&db, &ws, &message(), api(&["u0000", "u0001"]), earlier)
            .await
            .unwrap();
        domain::messaging::send_now(&db, &ws, &message(), api(&["u0000"]), earlier)
            .await
            .unwrap();
        domain::messaging::send_now(
            &db,
            &ws,
            &message(),
            api(&["u0001"]),
            now() - Duration::days(2),
        )
        .await
        .unwrap();
        // u0002 had one promo campaign today.
        let mut first_promo = input(Schedule::AtLaunch);
        first_promo.name = "First promo".into();
        first_promo.tags = vec!["promo".into()];
        first_promo.settings.frequency_capped = true;
        first_promo.audience.filter = Some(external_id_is("u0002"));
        launched(&db, &ws, first_promo, earlier).await;
        assert_eq!(run(&db, earlier).await, 1);

        let mut promo = input(Schedule::AtLaunch);
        promo.name = "Second promo".into();
        promo.tags = vec!["promo".into()];
        promo.settings.frequency_capped = true;
        let promo = launched(&db, &ws, promo, now()).await;
        assert_eq!(run(&db, now()).await, 1);
        let to = |sends: Vec<webhook_send::Model>| -> Vec<String> {
            sends.into_iter().map(|s| s.recipient.unwrap()).collect()
        };
        // Promo: u0000 by the global rule, u0002 by the promo rule.
        assert_eq!(to(sends_of(&db, &ws, &promo.id).await), ["u0001", "u0003"]);

        // A minute later, an untagged campaign: only the global rule applies, and the promo
        // sends count toward it (u0001 now has two).
        let later = now() + Duration::minutes(1);
        let mut plain = input(Schedule::AtLaunch);
        plain.name = "Plain".into();
        plain.settings.frequency_capped = true;
        let plain = launched(&db, &ws, plain, later).await;
        assert_eq!(run(&db, later).await, 1);
        assert_eq!(to(sends_of(&db, &ws, &plain.id).await), ["u0002", "u0003"]);

        // A campaign that ignores caps reaches everyone.
        let mut uncapped = input(Schedule::AtLaunch);
        uncapped.name = "Uncapped".into();
        let uncapped = launched(&db, &ws, uncapped, later).await;
        assert_eq!(run(&db, later).await, 1);
        assert_eq!(
            to(sends_of(&db, &ws, &uncapped.id).await),
            ["u0000", "u0001", "u0002", "u0003"]
        );
    }
}

#[tokio::test]
async fn quiet_hours_either_drop_a_send_or_hold_it_until_they_end_in_the_users_zone() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        // At 09:00 UTC it is 18:00 in Tokyo, 10:00 in Paris and 04:00 in New York.
        let zones = ["Asia/Tokyo", "Europe/Paris", "America/New_York"];
        seed(&db, &ws, "u", 3, "pro", |i| Some(zones[i])).await;
        let quiet = |send_later| QuietHours {
            start: NaiveTime::from_hms_opt(22, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
            send_later,
        };
        let mut drop = input(Schedule::AtLaunch);
        drop.name = "Drop".into();
        drop.settings.quiet_hours = Some(quiet(false));
        let drop = launched(&db, &ws, drop, now()).await;
        let mut later = input(Schedule::AtLaunch);
        later.name = "Later".into();
        later.settings.quiet_hours = Some(quiet(true));
        let later = launched(&db, &ws, later, now()).await;
        assert_eq!(run(&db, now()).await, 2);

        let dropped = sends_of(&db, &ws, &drop.id).await;
        assert_eq!(
            distinct_recipients(&dropped),
            BTreeSet::from(["u0000", "u0001"].map(String::from))
        );
        let held: BTreeMap<String, DateTime<Utc>> = sends_of(&db, &ws, &later.id)
            .await
            .into_iter()
            .map(|s| (s.recipient.unwrap(), s.next_attempt_at))
            .collect();
        assert_eq!(held["u0000"], now());
        assert_eq!(held["u0001"], now());
        // 08:00 in New York (EST, UTC-5).
        assert_eq!(
            held["u0002"],
            Utc.with_ymd_and_hms(2026, 11, 28, 13, 0, 0).unwrap()
        );
        // A dropped user did not receive it, so stays eligible.
        let receipts = campaign_receipt::Entity::find()
            .filter(campaign_receipt::Column::CampaignId.eq(drop.id.as_str()))
            .all(&db)
            .await
            .unwrap();
        assert_eq!(receipts.len(), 2);
    }
}

#[tokio::test]
async fn local_time_sends_are_queued_a_day_ahead_and_due_at_the_wall_time_in_each_users_zone() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let zones = [
            Some("Asia/Tokyo"),
            Some("Europe/Paris"),
            Some("America/New_York"),
            None,
            Some("Nowhere/Land"),
        ];
        seed(&db, &ws, "u", zones.len(), "pro", |i| zones[i]).await;
        let schedule = Schedule::At {
            starts_on: day(5),
            time: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            recurrence: Recurrence::Once,
            ends_on: None,
            time_zone: "Europe/Paris".into(),
            in_local_time: true,
        };
        let campaign = launched(&db, &ws, input(schedule), now()).await;
        // 09:00 on 5 December comes first at UTC+14 (19:00 UTC on the 4th); queued 24 h before.
        let queued_at = Utc.with_ymd_and_hms(2026, 12, 3, 19, 0, 0).unwrap();
        assert_eq!(campaign.next_send_at, Some(queued_at));
        assert_eq!(run(&db, queued_at - Duration::seconds(1)).await, 0);
        assert_eq!(run(&db, queued_at).await, 1);

        let due: BTreeMap<String, DateTime<Utc>> = sends_of(&db, &ws, &campaign.id)
            .await
            .into_iter()
            .map(|s| (s.recipient.unwrap(), s.next_attempt_at))
            .collect();
        let utc = |d, h| Utc.with_ymd_and_hms(2026, 12, d, h, 0, 0).unwrap();
        assert_eq!(due["u0000"], utc(5, 0), "09:00 in Tokyo");
        assert_eq!(due["u0001"], utc(5, 8), "09:00 in Paris");
        assert_eq!(due["u0002"], utc(5, 14), "09:00 in New York");
        assert_eq!(due["u0003"], utc(5, 8), "no zone: the campaign's");
        assert_eq!(due["u0004"], utc(5, 8), "unknown zone: the campaign's");
        // Once: nothing else planned.
        let planned = occurrences(&db, &ws, &campaign.id).await;
        assert_eq!(planned.len(), 1);
    }
}

#[tokio::test]
async fn a_stopped_campaign_does_not_fire_until_it_is_resumed_and_the_cap_on_recipients_holds() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        seed(&db, &ws, "u", 30, "pro", |_| None).await;
        let mut input = input(Schedule::AtLaunch);
        input.settings.max_recipients = Some(12);
        let campaign = launched(&db, &ws, input, now()).await;
        campaign::stop_campaign(&db, &ws, &campaign.id, now())
            .await
            .unwrap();
        assert_eq!(run(&db, now() + Duration::minutes(1)).await, 0);
        assert!(sends_of(&db, &ws, &campaign.id).await.is_empty());

        let later = now() + Duration::hours(1);
        campaign::resume_campaign(&db, &ws, &campaign.id, later)
            .await
            .unwrap();
        assert_eq!(run(&db, later).await, 1);
        assert_eq!(
            distinct_recipients(&sends_of(&db, &ws, &campaign.id).await).len(),
            12
        );
    }
}

#[tokio::test]
async fn api_campaign_sends_check_the_campaign_and_variant_and_are_tracked_under_it() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        seed(&db, &ws, "u", 3, "pro", |_| None).await;
        let api_input = CampaignInput {
            name: "Receipts".into(),
            description: String::new(),
            tags: Vec::new(),
            kind: CampaignKind::Api,
            variants: vec![Variant {
                id: None,
                name: "Webhook".into(),
                percent: 100,
                message: None,
            }],
            control_percent: 0,
            delivery: Delivery::Api,
            audience: AudienceSpec::default(),
            conversions: Vec::new(),
            settings: Settings::default(),
        };
        let draft = campaign::create_campaign(&db, &ws, api_input.clone(), now())
            .await
            .unwrap();
        let api = launched(&db, &ws, api_input, now()).await;
        let webhook = launched(&db, &ws, input(Schedule::AtLaunch), now()).await;
        let variant = api.variants[0].id.clone().unwrap();
        let listed = |ids: &[&str]| Audience::Listed {
            external_ids: ids.iter().map(|s| s.to_string()).collect(),
            within: None,
        };
        let send = |campaign: CampaignId, variant: VariantId, audience: Audience| {
            let db = &db;
            let ws = &ws;
            async move {
                campaign::send_api_campaign(
                    db,
                    ws,
                    &campaign,
                    &variant,
                    &message(),
                    audience,
                    Some("receipt-42".into()),
                    now(),
                )
                .await
            }
        };
        let field = |result: Result<_, DomainError>| result.unwrap_err().field();
        for wrong in [CampaignId::generate(), webhook.id.clone(), draft.id.clone()] {
            assert_eq!(
                field(send(wrong, variant.clone(), listed(&["u0000"])).await),
                Some("campaign_id")
            );
        }
        assert_eq!(
            field(send(api.id.clone(), VariantId::generate(), listed(&["u0000"])).await),
            Some("messages.webhook.message_variation_id")
        );
        assert_eq!(
            field(
                send(
                    api.id.clone(),
                    webhook.variants[0].id.clone().unwrap(),
                    listed(&["u0000"])
                )
                .await
            ),
            Some("messages.webhook.message_variation_id")
        );
        assert!(sends_of(&db, &ws, &api.id).await.is_empty());

        let outcome = send(
            api.id.clone(),
            variant.clone(),
            listed(&["u0000", "u0001", "ghost"]),
        )
        .await
        .unwrap();
        assert_eq!(outcome.queued, 2);
        assert_eq!(outcome.unknown_recipients, ["ghost"]);
        // Everyone is eligible every time: no re-eligibility, caps or split.
        let again = send(
            api.id.clone(),
            variant.clone(),
            Audience::Broadcast(Filter::And { filters: vec![] }),
        )
        .await
        .unwrap();
        assert_eq!(again.queued, 3);
        let sends = sends_of(&db, &ws, &api.id).await;
        assert_eq!(sends.len(), 5);
        for send in &sends {
            assert_eq!(send.source_kind, "campaign");
            assert_eq!(send.source_name.as_deref(), Some("Receipts"));
            assert_eq!(send.variant_id.as_deref(), Some(variant.as_str()));
            assert_eq!(send.send_tag.as_deref(), Some("receipt-42"));
            let dispatch = send.dispatch_id.clone().unwrap();
            assert!(dispatch == outcome.dispatch_id || dispatch == again.dispatch_id);
            assert_eq!(context(send)["campaign"]["message_name"], json!("Webhook"));
        }
    }
}
