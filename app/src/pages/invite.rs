//! `/invite/:token`: joining a workspace through a one-time link.

use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::api::{AcceptInvite, get_invite_info};
use crate::components::{ErrorPanel, FormError, Loading, last_error, role_label};

#[component]
pub fn InvitePage() -> impl IntoView {
    let params = use_params_map();
    let token = move || params.read().get("token").unwrap_or_default();
    let info = Resource::new(token, get_invite_info);
    let accept = ServerAction::<AcceptInvite>::new();
    view! {
        <Title text="Join a workspace"/>
        <main class="centered">
            <Suspense fallback=Loading>
                {move || Suspend::new(async move {
                    let info = match info.await {
                        Ok(info) => info,
                        Err(e) => return view! { <ErrorPanel error=e/> }.into_any(),
                    };
                    let intro = view! {
                        <h1>"Join " {info.workspace_name.clone()}</h1>
                        <p class="lead">
                            "You are invited as " <strong>{role_label(&info.role)}</strong>
                            " with the email " <strong>{info.email.clone()}</strong> "."
                        </p>
                    };
                    let body = match (&info.signed_in_as, info.has_account) {
                        (Some(me), _) if *me == info.email => view! {
                            <ActionForm action=accept attr:class="stack" attr:id="accept-invite-form">
                                <FormError message=last_error(accept.value())/>
                                <input type="hidden" name="token" value=token/>
                                <button type="submit" class="primary">"Accept and open the workspace"</button>
                            </ActionForm>
                        }.into_any(),
                        (Some(me), _) => view! {
                            <p class="form-error">"You are signed in as " {me.clone()} ". Sign out, then open this link again as " {info.email.clone()} "."</p>
                        }.into_any(),
                        (None, true) => view! {
                            <p>"This email already has an account. "
                                <a href=format!("/login?next=/invite/{}", token())>"Sign in to accept"</a> "."
                            </p>
                        }.into_any(),
                        (None, false) => view! {
                            <ActionForm action=accept attr:class="stack" attr:id="accept-invite-form">
                                <FormError message=last_error(accept.value())/>
                                <input type="hidden" name="token" value=token/>
                                <label for="invite-email">"Email"</label>
                                <input id="invite-email" type="email" value=info.email.clone() disabled/>
                                <label for="invite-password">"Choose a password"</label>
                                <input id="invite-password" type="password" name="password" required minlength="8" autocomplete="new-password"/>
                                <p class="hint">"At least 8 characters."</p>
                                <button type="submit" class="primary">"Create account and join"</button>
                            </ActionForm>
                        }.into_any(),
                    };
                    view! { <div class="panel auth-panel">{intro}{body}</div> }.into_any()
                })}
            </Suspense>
        </main>
    }
}
