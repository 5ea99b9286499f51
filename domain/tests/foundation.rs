//! Accounts, workspaces, members, invites and API keys on a freshly migrated database: SQLite
//! always, PostgreSQL too when TEST_DATABASE_URL is set.

use chrono::{Duration, TimeZone, Utc};
use domain::{AccountId, Capability, Clock, DomainError, ManualClock, Role, WorkspaceId};
use domain::{account, api_key, invite, rate_limit, workspace};
use migrations::testing::test_databases;

fn clock() -> ManualClock {
    ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0).unwrap())
}

fn id_of(model: &domain::entity::account::Model) -> AccountId {
    account::account_id(model)
}

#[tokio::test]
async fn the_first_run_creates_the_owner_and_a_workspace_and_only_once() {
    for db in test_databases().await {
        let now = clock().now();
        assert!(!account::has_accounts(&db).await.unwrap());
        let (owner, ws) =
            account::create_owner(&db, "Owner@Example.com", "long enough", "Acme", now)
                .await
                .unwrap();
        assert_eq!(owner.email, "owner@example.com");
        assert!(owner.is_owner);
        let ws_id = WorkspaceId::from_db(ws.id.clone());
        assert_eq!(
            workspace::role_in(&db, &id_of(&owner), &ws_id)
                .await
                .unwrap(),
            Some(Role::Admin)
        );

        let again = account::create_owner(&db, "other@example.com", "long enough", "B", now).await;
        assert!(matches!(again, Err(DomainError::Forbidden(_))));
    }
}

#[tokio::test]
async fn a_failed_owner_creation_leaves_nothing_behind() {
    for db in test_databases().await {
        let err = account::create_owner(&db, "owner@example.com", "short", "Acme", clock().now())
            .await
            .unwrap_err();
        assert_eq!(err.field(), Some("password"));
        assert!(!account::has_accounts(&db).await.unwrap());
        let err =
            account::create_owner(&db, "owner@example.com", "long enough", "  ", clock().now())
                .await
                .unwrap_err();
        assert_eq!(err.field(), Some("workspace_name"));
        assert!(!account::has_accounts(&db).await.unwrap());
    }
}

#[tokio::test]
async fn sign_in_checks_the_password_and_throttles_repeated_failures() {
    for db in test_databases().await {
        let clock = clock();
        account::create_account(&db, "ada@example.com", "right password", false, clock.now())
            .await
            .unwrap();
        assert!(
            account::sign_in(&db, "ADA@example.com ", "right password", clock.now())
                .await
                .is_ok()
        );
        for _ in 0..account::MAX_FAILED_SIGN_INS {
            let err = account::sign_in(&db, "ada@example.com", "wrong password", clock.now()).await;
            assert!(matches!(err, Err(DomainError::BadCredentials)));
            clock.advance(Duration::seconds(10));
        }
        // Now even the right password is refused until the window passes.
        let err = account::sign_in(&db, "ada@example.com", "right password", clock.now()).await;
        assert!(matches!(err, Err(DomainError::Throttled { .. })), "{err:?}");
        clock.advance(Duration::minutes(account::THROTTLE_WINDOW_MINUTES));
        assert!(
            account::sign_in(&db, "ada@example.com", "right password", clock.now())
                .await
                .is_ok()
        );
        // Unknown emails fail the same way as wrong passwords.
        let err = account::sign_in(&db, "nobody@example.com", "whatever1", clock.now()).await;
        assert!(matches!(err, Err(DomainError::BadCredentials)));
    }
}

#[tokio::test]
async fn members_of_one_workspace_see_nothing_of_another() {
    for db in test_databases().await {
        let now = clock().now();
        let ada = account::create_account(&db, "ada@example.com", "password-a", false, now)
            .await
            .unwrap();
        let bob = account::create_account(&db, "bob@example.com", "password-b", false, now)
            .await
            .unwrap();
        let a = workspace::create_workspace_atomically(&db, &id_of(&ada), "A", now)
            .await
            .unwrap();
        let b = workspace::create_workspace_atomically(&db, &id_of(&bob), "B", now)
            .await
            .unwrap();
        let (a_id, b_id) = (WorkspaceId::from_db(a.id), WorkspaceId::from_db(b.id));

        let denied = workspace::authorize(&db, &id_of(&ada), &b_id, Capability::Read).await;
        assert!(matches!(denied, Err(DomainError::NotFound("workspace"))));
        let mine = workspace::workspaces_of(&db, &id_of(&ada)).await.unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].0.name, "A");
        assert!(
            workspace::authorize(&db, &id_of(&ada), &a_id, Capability::Administer)
                .await
                .is_ok()
        );
    }
}

#[tokio::test]
async fn roles_limit_what_members_may_do_and_the_last_admin_stays() {
    for db in test_databases().await {
        let now = clock().now();
        let ada = account::create_account(&db, "ada@example.com", "password-a", false, now)
            .await
            .unwrap();
        let vic = account::create_account(&db, "vic@example.com", "password-v", false, now)
            .await
            .unwrap();
        let ws = workspace::create_workspace_atomically(&db, &id_of(&ada), "A", now)
            .await
            .unwrap();
        let ws_id = WorkspaceId::from_db(ws.id);
        workspace::add_member(&db, &ws_id, "VIC@example.com", Role::Viewer, now)
            .await
            .unwrap();
        let dup = workspace::add_member(&db, &ws_id, "vic@example.com", Role::Viewer, now).await;
        assert_eq!(dup.unwrap_err().field(), Some("email"));
        let unknown =
            workspace::add_member(&db, &ws_id, "zed@example.com", Role::Viewer, now).await;
        assert_eq!(unknown.unwrap_err().field(), Some("email"));

        assert!(
            workspace::authorize(&db, &id_of(&vic), &ws_id, Capability::Read)
                .await
                .is_ok()
        );
        let build = workspace::authorize(&db, &id_of(&vic), &ws_id, Capability::Build).await;
        assert!(matches!(build, Err(DomainError::Forbidden(_))));

        let demote = workspace::change_role(&db, &ws_id, &id_of(&ada), Role::Marketer).await;
        assert_eq!(demote.unwrap_err().field(), Some("role"));
        assert!(
            workspace::remove_member(&db, &ws_id, &id_of(&ada))
                .await
                .is_err()
        );
        workspace::change_role(&db, &ws_id, &id_of(&vic), Role::Admin)
            .await
            .unwrap();
        workspace::change_role(&db, &ws_id, &id_of(&ada), Role::Viewer)
            .await
            .unwrap();
        workspace::remove_member(&db, &ws_id, &id_of(&ada))
            .await
            .unwrap();
        assert_eq!(workspace::list_members(&db, &ws_id).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn archived_workspaces_are_read_only_and_can_be_renamed_back() {
    for db in test_databases().await {
        let now = clock().now();
        let ada = account::create_account(&db, "ada@example.com", "password-a", false, now)
            .await
            .unwrap();
        let ws = workspace::create_workspace_atomically(&db, &id_of(&ada), "A", now)
            .await
            .unwrap();
        let ws_id = WorkspaceId::from_db(ws.id);
        let access = workspace::authorize(&db, &id_of(&ada), &ws_id, Capability::Administer)
            .await
            .unwrap();
        let renamed = workspace::rename_workspace(&db, &access, "  Acme EU ")
            .await
            .unwrap();
        assert_eq!(renamed.name, "Acme EU");
        assert_eq!(
            workspace::rename_workspace(&db, &access, "")
                .await
                .unwrap_err()
                .field(),
            Some("name")
        );
        workspace::set_archived(&db, &access, true, now)
            .await
            .unwrap();
        let build = workspace::authorize(&db, &id_of(&ada), &ws_id, Capability::Build).await;
        assert!(matches!(build, Err(DomainError::Forbidden(_))));
        let access = workspace::authorize(&db, &id_of(&ada), &ws_id, Capability::Administer)
            .await
            .unwrap();
        workspace::set_archived(&db, &access, false, now)
            .await
            .unwrap();
        assert!(
            workspace::authorize(&db, &id_of(&ada), &ws_id, Capability::Build)
                .await
                .is_ok()
        );
    }
}

#[tokio::test]
async fn an_invite_link_creates_the_account_and_works_exactly_once() {
    for db in test_databases().await {
        let clock = clock();
        let ada = account::create_account(&db, "ada@example.com", "password-a", false, clock.now())
            .await
            .unwrap();
        let ws = workspace::create_workspace_atomically(&db, &id_of(&ada), "A", clock.now())
            .await
            .unwrap();
        let ws_id = WorkspaceId::from_db(ws.id);
        let new = invite::create_invite(
            &db,
            &ws_id,
            &id_of(&ada),
            "Mia@example.com",
            Role::Marketer,
            clock.now(),
        )
        .await
        .unwrap();
        assert_eq!(
            invite::list_pending(&db, &ws_id, clock.now())
                .await
                .unwrap()
                .len(),
            1
        );
        let open = invite::open_invite(&db, &new.token, clock.now())
            .await
            .unwrap();
        assert_eq!(open.invite.email, "mia@example.com");
        assert!(open.existing_account.is_none());

        let short = invite::accept_invite(&db, &new.token, None, Some("short"), clock.now()).await;
        assert_eq!(short.unwrap_err().field(), Some("password"));
        assert!(
            account::find_account_by_email(&db, "mia@example.com")
                .await
                .unwrap()
                .is_none()
        );

        let (mia, joined) =
            invite::accept_invite(&db, &new.token, None, Some("mia's password"), clock.now())
                .await
                .unwrap();
        assert_eq!(joined, ws_id);
        assert_eq!(
            workspace::role_in(&db, &id_of(&mia), &ws_id).await.unwrap(),
            Some(Role::Marketer)
        );
        let again =
            invite::accept_invite(&db, &new.token, None, Some("mia's password"), clock.now()).await;
        assert!(matches!(again, Err(DomainError::Forbidden(_))));

        let late = invite::create_invite(
            &db,
            &ws_id,
            &id_of(&ada),
            "late@example.com",
            Role::Viewer,
            clock.now(),
        )
        .await
        .unwrap();
        clock.advance(Duration::days(invite::INVITE_VALID_DAYS) + Duration::seconds(1));
        assert!(matches!(
            invite::open_invite(&db, &late.token, clock.now()).await,
            Err(DomainError::Forbidden(_))
        ));
        assert!(matches!(
            invite::open_invite(&db, "bogus", clock.now()).await,
            Err(DomainError::NotFound(_))
        ));
    }
}

#[tokio::test]
async fn api_keys_are_shown_once_stored_hashed_and_can_be_revoked() {
    for db in test_databases().await {
        let clock = clock();
        let ada = account::create_account(&db, "ada@example.com", "password-a", false, clock.now())
            .await
            .unwrap();
        let ws = workspace::create_workspace_atomically(&db, &id_of(&ada), "A", clock.now())
            .await
            .unwrap();
        let ws_id = WorkspaceId::from_db(ws.id.clone());
        let perms = vec!["users.track".to_string(), "campaigns.list".to_string()];
        let new = api_key::create_api_key(
            &db,
            &ws_id,
            Some(&id_of(&ada)),
            "CRM",
            &perms,
            "10.0.0.0/8",
            clock.now(),
        )
        .await
        .unwrap();
        assert!(new.secret.starts_with("hrld_"));
        let stored =
            domain::entity::api_key::Entity::find_by_id((ws.id.clone(), new.key.id.to_string()));
        use sea_orm::EntityTrait;
        let row = stored.one(&db).await.unwrap().unwrap();
        assert_ne!(row.secret_hash, new.secret);
        assert!(!row.secret_hash.contains(&new.secret[5..]));

        let (key, owner_ws) = api_key::authenticate(&db, &new.secret, clock.now())
            .await
            .unwrap();
        assert_eq!(owner_ws.id, ws.id);
        assert!(key.has_permission("users.track"));
        assert!(!key.has_permission("users.delete"));
        assert!(key.allows_ip("10.1.2.3".parse().unwrap()));
        assert!(!key.allows_ip("192.168.0.1".parse().unwrap()));
        assert_eq!(key.last_used_at, Some(clock.now()));

        assert!(matches!(
            api_key::authenticate(&db, "hrld_unknown", clock.now()).await,
            Err(api_key::KeyRejection::Unknown)
        ));
        api_key::revoke_api_key(&db, &ws_id, &new.key.id, clock.now())
            .await
            .unwrap();
        assert!(matches!(
            api_key::authenticate(&db, &new.secret, clock.now()).await,
            Err(api_key::KeyRejection::Revoked)
        ));
        let bad =
            api_key::create_api_key(&db, &ws_id, None, "x", &perms, "300.1.1.1", clock.now()).await;
        assert_eq!(bad.unwrap_err().field(), Some("ip_allowlist"));
    }
}

#[tokio::test]
async fn the_rate_limiter_counts_per_bucket_and_resets_with_the_window() {
    for db in test_databases().await {
        let clock = ManualClock::new(Utc.timestamp_opt(1_800_000_000, 0).unwrap());
        for expected_remaining in [2, 1, 0] {
            let d = rate_limit::hit(&db, "key:a", 3, 60, clock.now())
                .await
                .unwrap();
            assert!(d.allowed);
            assert_eq!(d.remaining, expected_remaining);
            assert_eq!(
                d.reset_at,
                1_800_000_000 + 60,
                "1_800_000_000 is a whole minute"
            );
        }
        let over = rate_limit::hit(&db, "key:a", 3, 60, clock.now())
            .await
            .unwrap();
        assert!(!over.allowed);
        assert!(
            rate_limit::hit(&db, "key:b", 3, 60, clock.now())
                .await
                .unwrap()
                .allowed
        );
        clock.advance(Duration::seconds(60));
        let fresh = rate_limit::hit(&db, "key:a", 3, 60, clock.now())
            .await
            .unwrap();
        assert!(fresh.allowed);
        assert_eq!(fresh.remaining, 2);
    }
}

#[tokio::test]
async fn sends_are_counted_per_hour_and_status_for_the_activity_chart() {
    use domain::outbox::{self, NewSend, SourceKind};
    use domain::webhook::{Body, Method, WebhookMessage};
    for db in test_databases().await {
        let at = Utc.with_ymd_and_hms(2026, 11, 28, 9, 30, 15).unwrap();
        let ws = WorkspaceId::generate();
        let send = NewSend {
            workspace_id: ws.clone(),
            source_kind: SourceKind::Test,
            source_id: None,
            source_name: None,
            recipient: None,
            message: WebhookMessage {
                method: Method::Get,
                url: "https://example.com".into(),
                headers: vec![],
                body: Body::None,
            },
            context: Default::default(),
            due_at: None,
            tracking: Default::default(),
        };
        outbox::enqueue(&db, vec![send.clone(), send.clone()], at)
            .await
            .unwrap();
        outbox::enqueue(&db, vec![send], at + Duration::hours(1))
            .await
            .unwrap();
        let mut counts = outbox::hourly_counts(&db, &ws, at - Duration::hours(1))
            .await
            .unwrap();
        counts.sort();
        assert_eq!(
            counts,
            vec![
                ("2026-11-28 09".to_string(), "pending".to_string(), 2),
                ("2026-11-28 10".to_string(), "pending".to_string(), 1)
            ]
        );
    }
}
