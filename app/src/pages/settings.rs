//! Workspace settings: general (rename, archive), members and invites, REST API keys.

use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

use crate::api::{
    AddMember, ApiKeyRow, ChangeMemberRole, CreateApiKey, CreateCapRule, CreateInvite,
    DeleteCapRule, MemberRow, RemoveMember, RenameWorkspace, RevokeApiKey, RevokeInvite,
    SetWorkspaceArchived, get_cap_rules, get_workspace_details, list_api_keys, list_members,
};
use crate::components::{
    EmptyState, ErrorPanel, FormError, Loading, RoleSelect, last_error, role_label,
};
use crate::pages::layout::use_ws;
use crate::webhooks::{RotateSigning, SetSigning, get_signing};

#[component]
fn SettingsTabs() -> impl IntoView {
    let ws = use_ws();
    view! {
        <div class="page-head"><h1>"Settings"</h1></div>
        <nav class="tabs" aria-label="Settings">
            <A href=move || format!("/w/{}/settings", ws.get()) exact=true>"General"</A>
            <A href=move || format!("/w/{}/settings/members", ws.get())>"Members"</A>
            <A href=move || format!("/w/{}/settings/api-keys", ws.get())>"API keys"</A>
        </nav>
    }
}

#[component]
pub fn GeneralSettingsPage() -> impl IntoView {
    let ws = use_ws();
    let rename = ServerAction::<RenameWorkspace>::new();
    let archive = ServerAction::<SetWorkspaceArchived>::new();
    let details = Resource::new(
        move || (ws.get(), rename.version().get(), archive.version().get()),
        |(ws, _, _)| get_workspace_details(ws),
    );
    view! {
        <Title text="Settings"/>
        <SettingsTabs/>
        <SigningCard/>
        <FrequencyCapsCard/>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                let d = match details.await {
                    Ok(d) => d,
                    Err(e) => return view! { <ErrorPanel error=e/> }.into_any(),
                };
                let archived = d.archived.is_some();
                let (id, id2, name) = (d.id.clone(), d.id.clone(), d.name.clone());
                view! {
                    <section class="card">
                        <h2>"Workspace"</h2>
                        <dl class="facts">
                            <dt>"Name"</dt><dd id="workspace-name">{d.name.clone()}</dd>
                            <dt>"Id"</dt><dd><code>{d.id.clone()}</code></dd>
                            <dt>"Created"</dt><dd>{d.created.clone()}</dd>
                            <dt>"Status"</dt>
                            <dd>{match d.archived.clone() {
                                Some(at) => format!("Archived since {at}"),
                                None => "Active".to_string(),
                            }}</dd>
                        </dl>
                    </section>
                    {d.can_administer.then(move || view! {
                        <section class="card">
                            <h2>"Rename"</h2>
                            <ActionForm action=rename attr:class="row-form" attr:id="rename-form">
                                <input type="hidden" name="ws" value=id.clone()/>
                                <label for="rename-name" class="sr-only">"New name"</label>
                                <input id="rename-name" type="text" name="name" value=name required maxlength="100"/>
                                <button type="submit">"Save name"</button>
                            </ActionForm>
                            <FormError message=last_error(rename.value())/>
                        </section>
                        <section class="card danger-zone">
                            <h2>{if archived { "Restore" } else { "Archive" }}</h2>
                            <p>{if archived {
                                "Restoring makes the workspace editable again and lets its API keys work."
                            } else {
                                "Archiving hides the workspace from the switcher, makes it read-only and refuses its API keys. Nothing is deleted."
                            }}</p>
                            <ActionForm action=archive attr:id="archive-form">
                                <input type="hidden" name="ws" value=id2/>
                                <input type="hidden" name="archived" value=(!archived).to_string()/>
                                <button type="submit" class=if archived { "" } else { "danger" }>
                                    {if archived { "Restore workspace" } else { "Archive workspace" }}
                                </button>
                            </ActionForm>
                            <FormError message=last_error(archive.value())/>
                        </section>
                    })}
                    {(!d.can_administer).then(|| view! {
                        <p class="hint">"Only admins of this workspace can change its settings."</p>
                    })}
                }.into_any()
            })}
        </Transition>
    }
}

#[component]
pub fn MembersPage() -> impl IntoView {
    let ws = use_ws();
    let add = ServerAction::<AddMember>::new();
    let change = ServerAction::<ChangeMemberRole>::new();
    let remove = ServerAction::<RemoveMember>::new();
    let invite = ServerAction::<CreateInvite>::new();
    let revoke = ServerAction::<RevokeInvite>::new();
    let view_data = Resource::new(
        move || {
            (
                ws.get(),
                add.version().get(),
                change.version().get(),
                remove.version().get(),
                invite.version().get(),
                revoke.version().get(),
            )
        },
        |(ws, ..)| list_members(ws),
    );
    let row_error = Signal::derive(move || {
        last_error(change.value())
            .get()
            .or_else(|| last_error(remove.value()).get())
    });
    view! {
        <Title text="Members"/>
        <SettingsTabs/>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                let data = match view_data.await {
                    Ok(d) => d,
                    Err(e) => return view! { <ErrorPanel error=e/> }.into_any(),
                };
                let manage = data.can_manage;
                let ws_id = ws.get_untracked();
                view! {
                    <section class="card">
                        <h2>"Members"</h2>
                        <FormError message=row_error/>
                        <table class="table" id="members-table">
                            <thead><tr><th>"Email"</th><th>"Role"</th><th>"Member since"</th>{manage.then(|| view! { <th><span class="sr-only">"Actions"</span></th> })}</tr></thead>
                            <tbody>
                                {data.members.into_iter().map(|m| member_row(m, manage, ws_id.clone(), change, remove)).collect_view()}
                            </tbody>
                        </table>
                    </section>
                    {manage.then(move || {
                        let invites = data.invites.clone();
                        let (ws_add, ws_invite) = (ws_id.clone(), ws_id.clone());
                        view! {
                            <div class="grid-2">
                                <section class="card">
                                    <h2>"Add an existing account"</h2>
                                    <ActionForm action=add attr:class="stack" attr:id="add-member-form">
                                        <FormError message=last_error(add.value())/>
                                        <input type="hidden" name="ws" value=ws_add/>
                                        <label for="add-email">"Email"</label>
                                        <input id="add-email" type="email" name="email" required/>
                                        <label for="add-role">"Role"</label>
                                        <RoleSelect name="role" id="add-role"/>
                                        <button type="submit">"Add member"</button>
                                    </ActionForm>
                                </section>
                                <section class="card">
                                    <h2>"Invite someone new"</h2>
                                    <p class="hint">"Creates a one-time link, valid for 7 days, that you pass on yourself."</p>
                                    <ActionForm action=invite attr:class="stack" attr:id="invite-form">
                                        <FormError message=last_error(invite.value())/>
                                        <input type="hidden" name="ws" value=ws_invite/>
                                        <label for="invite-email">"Email"</label>
                                        <input id="invite-email" type="email" name="email" required/>
                                        <label for="invite-role">"Role"</label>
                                        <RoleSelect name="role" id="invite-role"/>
                                        <button type="submit">"Create invite link"</button>
                                    </ActionForm>
                                    {move || invite.value().get().and_then(|r| r.ok()).map(|created| view! {
                                        <div class="callout" id="invite-link">
                                            <p>"Send this link to " <strong>{created.email.clone()}</strong> " (" {role_label(&created.role)} "). It is shown only now and works once."</p>
                                            <input type="text" readonly value=created.link.clone() class="secret" aria-label="Invite link"/>
                                        </div>
                                    })}
                                </section>
                            </div>
                            <section class="card">
                                <h2>"Pending invites"</h2>
                                <FormError message=last_error(revoke.value())/>
                                {if invites.is_empty() {
                                    view! { <p class="hint">"No pending invites."</p> }.into_any()
                                } else {
                                    view! {
                                        <table class="table" id="invites-table">
                                            <thead><tr><th>"Email"</th><th>"Role"</th><th>"Expires"</th><th><span class="sr-only">"Actions"</span></th></tr></thead>
                                            <tbody>
                                                {invites.into_iter().map(|i| { let ws_id = ws_id.clone(); view! {
                                                    <tr>
                                                        <td>{i.email}</td>
                                                        <td>{role_label(&i.role)}</td>
                                                        <td>{i.expires}</td>
                                                        <td class="actions">
                                                            <ActionForm action=revoke attr:class="inline">
                                                                <input type="hidden" name="ws" value=ws_id.clone()/>
                                                                <input type="hidden" name="invite_id" value=i.id/>
                                                                <button type="submit" class="link danger">"Revoke"</button>
                                                            </ActionForm>
                                                        </td>
                                                    </tr>
                                                }}).collect_view()}
                                            </tbody>
                                        </table>
                                    }.into_any()
                                }}
                            </section>
                        }
                    })}
                }.into_any()
            })}
        </Transition>
    }
}

fn member_row(
    m: MemberRow,
    manage: bool,
    ws: String,
    change: ServerAction<ChangeMemberRole>,
    remove: ServerAction<RemoveMember>,
) -> impl IntoView {
    let (ws_for_role, account_for_role) = (ws.clone(), m.account_id.clone());
    let role_cell = if manage {
        view! {
            <ActionForm action=change attr:class="inline">
                <input type="hidden" name="ws" value=ws_for_role/>
                <input type="hidden" name="account_id" value=account_for_role/>
                <RoleSelect name="role" selected=m.role.clone()/>
                <button type="submit" class="small">"Save"</button>
            </ActionForm>
        }
        .into_any()
    } else {
        view! { <span>{role_label(&m.role)}</span> }.into_any()
    };
    view! {
        <tr>
            <td>{m.email.clone()} {m.is_me.then(|| view! { <span class="badge">"you"</span> })}</td>
            <td>{role_cell}</td>
            <td>{m.since.clone()}</td>
            {manage.then(|| view! {
                <td class="actions">
                    <ActionForm action=remove attr:class="inline">
                        <input type="hidden" name="ws" value=ws/>
                        <input type="hidden" name="account_id" value=m.account_id/>
                        <button type="submit" class="link danger">"Remove"</button>
                    </ActionForm>
                </td>
            })}
        </tr>
    }
}

#[component]
pub fn ApiKeysPage() -> impl IntoView {
    let ws = use_ws();
    let create = ServerAction::<CreateApiKey>::new();
    let revoke = ServerAction::<RevokeApiKey>::new();
    let keys = Resource::new(
        move || (ws.get(), create.version().get(), revoke.version().get()),
        |(ws, ..)| list_api_keys(ws),
    );
    view! {
        <Title text="API keys"/>
        <SettingsTabs/>
        {move || create.value().get().and_then(|r| r.ok()).map(|created| view! {
            <div class="callout success" id="new-key" role="status">
                <h2>"Key “" {created.name.clone()} "” created"</h2>
                <p>"Copy the secret now: Herald stores only a hash of it and will never show it again."</p>
                <input type="text" readonly value=created.secret.clone() class="secret" id="new-key-secret" aria-label="API key secret"/>
                <p class="hint">"Use it as " <code>"Authorization: Bearer …"</code> " against " <code>"/api"</code> "."</p>
            </div>
        })}
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                let data = match keys.await {
                    Ok(d) => d,
                    Err(e) => return view! { <ErrorPanel error=e/> }.into_any(),
                };
                let ws_id = ws.get_untracked();
                let manage = data.can_manage;
                view! {
                    <section class="card">
                        <h2>"REST API keys"</h2>
                        <FormError message=last_error(revoke.value())/>
                        {if data.keys.is_empty() {
                            view! {
                                <EmptyState title="No API keys yet">
                                    <p>"Keys let other systems call Herald's Braze-compatible REST API."</p>
                                </EmptyState>
                            }.into_any()
                        } else {
                            let ws_id = ws_id.clone();
                            view! {
                                <table class="table" id="api-keys-table">
                                    <thead><tr>
                                        <th>"Name"</th><th>"Identifier"</th><th>"Permissions"</th><th>"Allowed IPs"</th>
                                        <th>"Created"</th><th>"Last used"</th><th>"Status"</th>
                                        {manage.then(|| view! { <th><span class="sr-only">"Actions"</span></th> })}
                                    </tr></thead>
                                    <tbody>
                                        {data.keys.into_iter().map(|k| key_row(k, manage, ws_id.clone(), revoke)).collect_view()}
                                    </tbody>
                                </table>
                            }.into_any()
                        }}
                    </section>
                    {manage.then(|| view! {
                        <section class="card">
                            <h2>"Create a key"</h2>
                            <p class="hint">"As in Braze, permissions and allowed addresses are fixed once created: to change them, create a new key and revoke the old one."</p>
                            <ActionForm action=create attr:class="stack" attr:id="create-key-form">
                                <FormError message=last_error(create.value())/>
                                <input type="hidden" name="ws" value=ws_id.clone()/>
                                <label for="key-name">"Name"</label>
                                <input id="key-name" type="text" name="name" required maxlength="100" placeholder="CRM sync"/>
                                <fieldset class="permissions">
                                    <legend>"Permissions"</legend>
                                    {data.all_permissions.iter().map(|p| view! {
                                        <label class="check">
                                            <input type="checkbox" name="permissions[]" value=p.clone()/>
                                            <code>{p.clone()}</code>
                                        </label>
                                    }).collect_view()}
                                </fieldset>
                                <label for="key-ips">"Allowed IP addresses (optional)"</label>
                                <textarea id="key-ips" name="ip_allowlist" rows="2" placeholder="203.0.113.0/24, 198.51.100.7"></textarea>
                                <p class="hint">"Addresses or CIDR ranges, separated by commas or new lines. Empty: any address."</p>
                                <button type="submit" class="primary" disabled=move || create.pending().get()>"Create key"</button>
                            </ActionForm>
                        </section>
                    })}
                }.into_any()
            })}
        </Transition>
    }
}

fn key_row(
    k: ApiKeyRow,
    manage: bool,
    ws: String,
    revoke: ServerAction<RevokeApiKey>,
) -> impl IntoView {
    let revoked = k.revoked.is_some();
    view! {
        <tr class:revoked=revoked>
            <td>{k.name.clone()}</td>
            <td><code>{k.prefix.clone()} "…"</code></td>
            <td class="chips">{k.permissions.iter().map(|p| view! { <code class="chip">{p.clone()}</code> }).collect_view()}</td>
            <td>{if k.ip_allowlist.is_empty() { "Any".to_string() } else { k.ip_allowlist.join(", ") }}</td>
            <td>{k.created.clone()}</td>
            <td>{k.last_used.clone().unwrap_or_else(|| "Never".into())}</td>
            <td>{match k.revoked.clone() {
                Some(at) => view! { <span class="badge muted" title=at>"Revoked"</span> }.into_any(),
                None => view! { <span class="badge ok">"Active"</span> }.into_any(),
            }}</td>
            {manage.then(|| view! {
                <td class="actions">
                    {(!revoked).then(|| view! {
                        <ActionForm action=revoke attr:class="inline">
                            <input type="hidden" name="ws" value=ws/>
                            <input type="hidden" name="key_id" value=k.id/>
                            <button type="submit" class="link danger">"Revoke"</button>
                        </ActionForm>
                    })}
                </td>
            })}
        </tr>
    }
}

/// Webhook signing (Standard Webhooks): on or off, the secret, and rotation.
#[component]
fn SigningCard() -> impl IntoView {
    let ws = use_ws();
    let toggle = ServerAction::<SetSigning>::new();
    let rotate = ServerAction::<RotateSigning>::new();
    let signing = Resource::new(
        move || (ws.get(), toggle.version().get(), rotate.version().get()),
        |(ws, ..)| get_signing(ws),
    );
    view! {
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                let s = match signing.await {
                    Ok(s) => s,
                    Err(e) => return view! { <ErrorPanel error=e/> }.into_any(),
                };
                let (ws_a, ws_b) = (ws.get_untracked(), ws.get_untracked());
                view! {
                    <section class="card" id="signing-card">
                        <h2>"Webhook signing"</h2>
                        <p class="hint">
                            "When on, every webhook carries " <code>"webhook-id"</code> ", " <code>"webhook-timestamp"</code>
                            " and " <code>"webhook-signature"</code>
                            " (Standard Webhooks, HMAC-SHA256), so receivers can check it came from Herald and was not replayed."
                        </p>
                        <dl class="facts">
                            <dt>"Status"</dt>
                            <dd id="signing-status">{if s.enabled { "On" } else { "Off" }}</dd>
                            <dt>"Secret"</dt>
                            <dd>
                                {match s.secret.clone() {
                                    Some(secret) => view! {
                                        <details><summary><code>{s.masked.clone()}</code> " (reveal)"</summary>
                                            <input type="text" readonly class="secret" id="signing-secret" value=secret aria-label="Signing secret"/>
                                        </details>
                                    }.into_any(),
                                    None => view! { <code>{s.masked.clone()}</code> }.into_any(),
                                }}
                            </dd>
                            {s.previous_until.clone().map(|until| view! {
                                <dt>"Previous secret"</dt><dd>"still signing until " {until}</dd>
                            })}
                        </dl>
                        {s.can_manage.then(|| view! {
                            <div class="actions-row">
                                <ActionForm action=toggle attr:class="inline" attr:id="signing-toggle">
                                    <input type="hidden" name="ws" value=ws_a/>
                                    <input type="hidden" name="enabled" value=(!s.enabled).to_string()/>
                                    <button type="submit">{if s.enabled { "Turn signing off" } else { "Turn signing on" }}</button>
                                </ActionForm>
                                <ActionForm action=rotate attr:class="inline">
                                    <input type="hidden" name="ws" value=ws_b/>
                                    <button type="submit">"Rotate secret"</button>
                                </ActionForm>
                            </div>
                            <p class="hint">"After a rotation the previous secret keeps signing for 24 hours, so receivers can switch without dropping messages."</p>
                        })}
                        <FormError message=last_error(toggle.value())/>
                        <FormError message=last_error(rotate.value())/>
                    </section>
                }.into_any()
            })}
        </Transition>
    }
}

/// The workspace's frequency-capping rules: campaigns that obey caps (the default) skip a user
/// who already received that many webhooks in the window.
#[component]
fn FrequencyCapsCard() -> impl IntoView {
    let ws = use_ws();
    let create = ServerAction::<CreateCapRule>::new();
    let delete = ServerAction::<DeleteCapRule>::new();
    let rules = Resource::new(
        move || (ws.get(), create.version().get(), delete.version().get()),
        |(ws, ..)| get_cap_rules(ws),
    );
    view! {
        <section class="card" id="frequency-caps">
            <h2>"Frequency capping"</h2>
            <p class="hint">
                "Campaigns that obey frequency capping (the default) skip a user who already received this many webhooks in the window. Up to 10 rules; all of them apply."
            </p>
            <Transition fallback=Loading>
                {move || Suspend::new(async move {
                    let view = match rules.await {
                        Ok(v) => v,
                        Err(e) => return view! { <ErrorPanel error=e/> }.into_any(),
                    };
                    let admin = view.can_administer;
                    view! {
                        {if view.rules.is_empty() {
                            view! { <p class="empty" id="no-cap-rules">"No rules: campaigns are not capped."</p> }.into_any()
                        } else {
                            view! {
                                <table id="cap-rules">
                                    <thead><tr><th>"At most"</th><th>"Per"</th><th>"Counting"</th><th></th></tr></thead>
                                    <tbody>
                                        {view.rules.into_iter().map(|r| view! {
                                            <tr>
                                                <td>{r.max_sends} " webhooks"</td>
                                                <td>{r.window}</td>
                                                <td>{r.scope}</td>
                                                <td>{admin.then(|| view! {
                                                    <ActionForm action=delete>
                                                        <input type="hidden" name="ws" value=ws.get_untracked()/>
                                                        <input type="hidden" name="id" value=r.id.clone()/>
                                                        <button type="submit" class="link">"Remove"</button>
                                                    </ActionForm>
                                                })}</td>
                                            </tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            }.into_any()
                        }}
                        {admin.then(|| view! {
                            <ActionForm action=create attr:class="row-form" attr:id="cap-rule-form">
                                <input type="hidden" name="ws" value=ws.get_untracked()/>
                                <label for="cap-max">"At most"</label>
                                <input id="cap-max" type="number" name="max_sends" min="1" value="3" required/>
                                <label for="cap-amount">"webhooks per"</label>
                                <input id="cap-amount" type="number" name="amount" min="1" value="1" required/>
                                <label for="cap-unit" class="sr-only">"Unit"</label>
                                <select id="cap-unit" name="unit">
                                    <option value="minutes">"minutes"</option>
                                    <option value="hours">"hours"</option>
                                    <option value="days" selected>"days"</option>
                                    <option value="weeks">"weeks"</option>
                                </select>
                                <label for="cap-tag">"for campaigns tagged"</label>
                                <input id="cap-tag" type="text" name="tag" placeholder="any (every webhook)" maxlength="100"/>
                                <button type="submit">"Add rule"</button>
                            </ActionForm>
                        })}
                    }.into_any()
                })}
            </Transition>
            <FormError message=last_error(create.value())/>
            <FormError message=last_error(delete.value())/>
        </section>
    }
}
