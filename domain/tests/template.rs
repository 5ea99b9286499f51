//! Braze-flavoured Liquid through the public API: what marketers type, what recipients get.

use domain::template::{
    MAX_LOOP_ITERATIONS, MAX_OUTPUT_BYTES, RenderContext, RenderOutcome, Template, TemplateError,
};
use serde_json::json;

fn render(source: &str, context: &RenderContext) -> String {
    match Template::parse("body", source)
        .unwrap()
        .render(context)
        .unwrap()
    {
        RenderOutcome::Rendered(text) => text,
        outcome => panic!("expected a render, got {outcome:?}"),
    }
}

fn render_alone(source: &str) -> String {
    render(source, &RenderContext::new())
}

fn jane() -> RenderContext {
    RenderContext::new()
        .with_user_attribute("first_name", "Jane")
        .with_user_attribute("last_name", "Doe")
        .with_user_attribute("email", "jane@example.com")
        .with_user_attribute("user_id", "u-42")
        .with_custom_attribute("plan", "gold")
        .with_custom_attribute("address", json!({"city": "Lyon", "zip": "69001"}))
        .with_custom_attribute("Favorite Color", "teal")
        .with_event_property("sku", "A-1")
        .with_event_property("items", json!([{"name": "mug", "qty": 2}, {"name": "cap"}]))
        .with_api_trigger_property("coupon", "SAVE10")
        .with_canvas_entry_property("source", "signup")
        .with_campaign("name", "Welcome")
        .with_campaign("api_id", "camp-1")
        .with_campaign("dispatch_id", "disp-9")
        .with_canvas("name", "Onboarding")
        .with_canvas("api_id", "canvas-3")
}

#[test]
fn standard_attributes_render_from_bare_references() {
    let text = render(
        "{{${first_name}}} {{ ${last_name} }} <{{${email_address}}}> {{${email}}} {{${user_id}}}",
        &jane(),
    );
    assert_eq!(text, "Jane Doe <jane@example.com> jane@example.com u-42");
}

#[test]
fn every_namespace_reaches_its_part_of_the_context() {
    let source = "{{custom_attribute.${plan}}}|{{event_properties.${sku}}}|{{api_trigger_properties.${coupon}}}|\
                  {{canvas_entry_properties.${source}}}|{{context.${source}}}|{{campaign.${name}}}|{{campaign.${api_id}}}|\
                  {{campaign.${dispatch_id}}}|{{canvas.${name}}}|{{canvas.${api_id}}}";
    assert_eq!(
        render(source, &jane()),
        "gold|A-1|SAVE10|signup|signup|Welcome|camp-1|disp-9|Onboarding|canvas-3"
    );
}

#[test]
fn nested_custom_attributes_render_in_every_common_form() {
    let context = jane();
    assert_eq!(
        render("{{custom_attribute.${address}.city}}", &context),
        "Lyon"
    );
    assert_eq!(
        render("{{custom_attribute.${address.city}}}", &context),
        "Lyon"
    );
    assert_eq!(
        render("{{custom_attribute.${address}.${zip}}}", &context),
        "69001"
    );
    assert_eq!(
        render("{{custom_attribute.${Favorite Color}}}", &context),
        "teal"
    );
    assert_eq!(
        render(
            "{{event_properties.${items}[0].name}} {{event_properties.${items.1.name}}}",
            &context
        ),
        "mug cap"
    );
}

#[test]
fn missing_values_render_empty_at_any_depth() {
    let source = "[{{${first_name}}}][{{custom_attribute.${plan}}}][{{custom_attribute.${address}.city.street}}]\
                  [{{event_properties.${items}[5].name}}][{{campaign.${name} | upcase}}][{{ not_a_variable.at.all }}]\
                  [{{${braze_id}}}][{{most_recently_used_device.${model}}}][{{subscribed_state.${email_global}}}]";
    assert_eq!(render_alone(source), "[][][][][][][][][]");
}

#[test]
fn missing_keys_of_loop_items_and_assigned_values_render_empty() {
    let source = "{% for item in event_properties.${items} %}{{ item.name }}:{{ item.qty }}:{{ item.missing.deeper }};{% endfor %}\
                  {% assign parsed = '{\"a\": 1}' | json_parse %}[{{ parsed.b.c }}]";
    assert_eq!(render(source, &jane()), "mug:2:;cap::;[]");
}

#[test]
fn references_work_inside_tags_and_filter_arguments() {
    let source = "{% if custom_attribute.${plan} == 'gold' %}VIP {% endif %}\
                  {% assign city = custom_attribute.${address}.city %}{{ city | upcase }} \
                  {{ 'Hi ' | append: ${first_name} }} \
                  {% unless ${phone_number} %}no phone{% endunless %} \
                  {% case event_properties.${sku} %}{% when 'A-1' %}first{% else %}other{% endcase %}";
    assert_eq!(render(source, &jane()), "VIP LYON Hi Jane no phone first");
}

#[test]
fn default_applies_to_nil_empty_strings_empty_arrays_and_false() {
    let context = RenderContext::new()
        .with_custom_attribute("empty", "")
        .with_custom_attribute("off", false)
        .with_custom_attribute("none", json!([]))
        .with_custom_attribute("zero", 0);
    let source = "{{ ${first_name} | default: 'friend' }}|{{ custom_attribute.${empty} | default: 'e' }}|\
                  {{ custom_attribute.${off} | default: 'f' }}|{{ custom_attribute.${none} | default: 'a' }}|\
                  {{ custom_attribute.${zero} | default: 'z' }}";
    assert_eq!(render(source, &context), "friend|e|f|a|0");
}

#[test]
fn default_does_not_apply_to_a_whitespace_only_string() {
    let context = RenderContext::new().with_user_attribute("first_name", "  ");
    assert_eq!(
        render("[{{ ${first_name} | default: 'friend' }}]", &context),
        "[  ]"
    );
}

#[test]
fn abort_message_with_a_reason_aborts_and_drops_earlier_text() {
    let template = Template::parse("body", "Hello {{${first_name}}}{% if custom_attribute.${plan} == blank %}{% abort_message('no plan') %}{% endif %} bye").unwrap();
    let outcome = template
        .render(&RenderContext::new().with_user_attribute("first_name", "Jane"))
        .unwrap();
    assert_eq!(
        outcome,
        RenderOutcome::Aborted {
            reason: Some("no plan".into())
        }
    );
    assert_eq!(outcome.rendered(), None);
    // The same template renders normally when the condition does not hold.
    let outcome = template.render(&jane()).unwrap();
    assert_eq!(outcome.rendered(), Some("Hello Jane bye"));
}

#[test]
fn abort_message_without_a_reason_aborts_with_none() {
    for source in [
        "before {% abort_message %} after",
        "before {% abort_message() %} after",
        "{%- abort_message( ) -%}",
    ] {
        let outcome = Template::parse("body", source)
            .unwrap()
            .render(&RenderContext::new())
            .unwrap();
        assert_eq!(outcome, RenderOutcome::Aborted { reason: None }, "{source}");
        assert!(outcome.is_aborted());
    }
}

#[test]
fn abort_message_reasons_can_be_personalized() {
    let context = RenderContext::new().with_user_attribute("user_id", "u-7");
    let outcome = Template::parse("body", "{% abort_message(${user_id}) %}")
        .unwrap()
        .render(&context)
        .unwrap();
    assert_eq!(
        outcome,
        RenderOutcome::Aborted {
            reason: Some("u-7".into())
        }
    );
}

#[test]
fn abort_message_accepts_double_quotes_and_stops_inside_loops() {
    let source = "{% for i in (1..5) %}{{ i }}{% if i == 3 %}{% abort_message(\"stopped at three\") %}{% endif %}{% endfor %}";
    let outcome = Template::parse("body", source)
        .unwrap()
        .render(&RenderContext::new())
        .unwrap();
    assert_eq!(
        outcome,
        RenderOutcome::Aborted {
            reason: Some("stopped at three".into())
        }
    );
}

#[test]
fn json_escape_keeps_a_json_body_valid_for_awkward_values() {
    let awkward = "Jane \"JJ\" O'Neil\\\nline two\ttab \u{1}";
    let context = RenderContext::new()
        .with_user_attribute("first_name", awkward)
        .with_custom_attribute("note", "</script>");
    let template = Template::parse("body", "{\"name\": \"{{${first_name} | json_escape}}\", \"note\": \"{{custom_attribute.${note} | json_escape}}\"}").unwrap();
    let body = template.render_json(&context).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(body.rendered().unwrap()).unwrap();
    assert_eq!(parsed, json!({"name": awkward, "note": "</script>"}));
}

#[test]
fn render_json_reports_a_body_that_is_not_json() {
    let context = RenderContext::new().with_user_attribute("first_name", "Jane \"JJ\"");
    let template = Template::parse("body", "{\"name\": \"{{${first_name}}}\"}").unwrap();
    let error = template.render_json(&context).unwrap_err();
    assert!(
        matches!(error, TemplateError::InvalidJson { field: "body", .. }),
        "{error:?}"
    );
}

#[test]
fn url_escapes_encode_what_a_url_or_a_query_value_cannot_hold() {
    let context = RenderContext::new()
        .with_user_attribute("email_address", "jane+news@example.com")
        .with_custom_attribute("q", "a b&c=d/é");
    assert_eq!(
        render(
            "?e={{${email_address} | url_param_escape}}&q={{custom_attribute.${q} | url_param_escape}}",
            &context
        ),
        "?e=jane%2Bnews%40example.com&q=a%20b%26c%3Dd%2F%C3%A9"
    );
    assert_eq!(
        render("{{ 'https://x.test/a b?q=1&r=é' | url_escape }}", &context),
        "https://x.test/a%20b?q=1&r=%C3%A9"
    );
}

#[test]
fn digests_and_base64_match_known_vectors() {
    assert_eq!(
        render_alone("{{ 'hello' | md5 }}"),
        "5d41402abc4b2a76b9719d911017c592"
    );
    assert_eq!(
        render_alone("{{ 'hello' | sha1 }}"),
        "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"
    );
    assert_eq!(
        render_alone("{{ 'hello' | sha2 }}"),
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    assert_eq!(render_alone("{{ 'hello' | base64_encode }}"), "aGVsbG8=");
}

#[test]
fn hmac_signatures_match_rfc_4231_and_known_vectors() {
    // RFC 4231, test case 2.
    let message = "{% assign m = 'what do ya want for nothing?' %}";
    assert_eq!(
        render_alone(&format!("{message}{{{{ m | hmac_sha256_hex: 'Jefe' }}}}")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert_eq!(
        render_alone(&format!(
            "{message}{{{{ m | hmac_sha256_base64: 'Jefe' }}}}"
        )),
        "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="
    );
    assert_eq!(
        render_alone(&format!("{message}{{{{ m | hmac_sha512: 'Jefe' }}}}")),
        "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
    );
    let fox = "{% assign m = 'The quick brown fox jumps over the lazy dog' %}";
    assert_eq!(
        render_alone(&format!("{fox}{{{{ m | hmac_sha1_hex: 'key' }}}}")),
        "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9"
    );
    assert_eq!(
        render_alone(&format!("{fox}{{{{ m | hmac_sha1_base64: 'key' }}}}")),
        "3nybhbi3iqa8ino29wqQcBydtNk="
    );
}

#[test]
fn hmac_keys_can_come_from_the_context() {
    let context = RenderContext::new()
        .with_api_trigger_property("secret", "Jefe")
        .with_event_property("payload", "what do ya want for nothing?");
    assert_eq!(
        render(
            "{{ event_properties.${payload} | hmac_sha256_hex: api_trigger_properties.${secret} }}",
            &context
        ),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn json_parse_gives_values_usable_with_dot_access() {
    let context = RenderContext::new().with_custom_attribute(
        "prefs",
        r#"{"lang": "fr", "tags": ["a", "b"], "deep": {"n": 3}}"#,
    );
    let source = "{% assign prefs = custom_attribute.${prefs} | json_parse %}{{ prefs.lang }} {{ prefs.tags[1] }} {{ prefs.tags.size }} {{ prefs.deep.n | plus: 1 }}";
    assert_eq!(render(source, &context), "fr b 2 4");
    assert_eq!(
        render_alone("{% assign broken = '{nope' | json_parse %}[{{ broken.lang }}]"),
        "[]"
    );
}

#[test]
fn as_json_string_writes_values_back_as_json() {
    let text = render(
        "{{ custom_attribute.${address} | as_json_string }}",
        &jane(),
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        json!({"city": "Lyon", "zip": "69001"})
    );
}

#[test]
fn property_accessor_reads_a_key_held_in_a_variable() {
    let context = jane().with_custom_attribute("prices", json!({"gold": 30, "silver": 10}));
    assert_eq!(
        render(
            "{{ custom_attribute.${prices} | property_accessor: custom_attribute.${plan} }}",
            &context
        ),
        "30"
    );
    assert_eq!(
        render(
            "[{{ custom_attribute.${prices} | property_accessor: 'bronze' }}]",
            &context
        ),
        "[]"
    );
}

#[test]
fn number_with_delimiter_groups_thousands() {
    let context = RenderContext::new()
        .with_custom_attribute("points", 1234567)
        .with_custom_attribute("balance", "-98765.4321");
    assert_eq!(
        render(
            "{{ custom_attribute.${points} | number_with_delimiter }} {{ custom_attribute.${balance} | number_with_delimiter }}",
            &context
        ),
        "1,234,567 -98,765.4321"
    );
}

#[test]
fn shopify_standard_filters_and_tags_still_work() {
    let source = "{{ 'jane' | capitalize }} {{ 'a,b,c' | split: ',' | join: '-' }} {{ 10 | minus: 3 | times: 2 }} \
                  {% capture greeting %}hi {{ ${first_name} }}{% endcapture %}{{ greeting | upcase }} \
                  {% for i in (1..10) limit: 3 offset: 1 reversed %}{{ i }}{% unless forloop.last %},{% endunless %}{% endfor %} \
                  {% for i in (1..0) %}x{% else %}none{% endfor %} \
                  {% for i in (1..9) %}{% if i == 4 %}{% break %}{% endif %}{% if i == 2 %}{% continue %}{% endif %}{{ i }}{% endfor %}";
    assert_eq!(
        render(source, &jane()),
        "Jane a-b-c 14 HI JANE 4,3,2 none 13"
    );
}

#[test]
fn a_syntax_error_names_the_field_line_and_column() {
    let error =
        Template::parse("body", "{\n  \"a\": \"{{ ${first_name} | foo }}\"\n}").unwrap_err();
    assert_eq!(
        error.to_string(),
        "body: line 2, column 28: unknown filter \"foo\""
    );
    let TemplateError::Syntax {
        field,
        position: Some(position),
        ..
    } = error
    else {
        panic!("{error:?}")
    };
    assert_eq!((field, position.line, position.column), ("body", 2, 28));
}

#[test]
fn output_larger_than_the_bound_is_an_error_naming_the_field() {
    let context = RenderContext::new().with_custom_attribute("blob", "x".repeat(1024));
    let template = Template::parse(
        "body",
        "{% for i in (1..300) %}{{ custom_attribute.${blob} }}{% endfor %}",
    )
    .unwrap();
    let error = template.render(&context).unwrap_err();
    assert_eq!(
        error,
        TemplateError::OutputTooLarge {
            field: "body",
            limit: MAX_OUTPUT_BYTES
        }
    );
    assert!(error.to_string().starts_with("body: "), "{error}");
}

#[test]
fn a_value_doubled_past_the_bound_is_an_error_even_without_output() {
    let source = "{% assign s = 'xxxxxxxxxxxxxxxx' %}{% for i in (1..40) %}{% assign s = s | append: s %}{% endfor %}done";
    let error = Template::parse("body", source)
        .unwrap()
        .render(&RenderContext::new())
        .unwrap_err();
    assert_eq!(
        error,
        TemplateError::OutputTooLarge {
            field: "body",
            limit: MAX_OUTPUT_BYTES
        }
    );
}

#[test]
fn huge_ranges_hit_the_loop_budget_instead_of_exhausting_memory() {
    let template = Template::parse("url", "{% for i in (1..1000000000000) %}{% endfor %}").unwrap();
    let error = template.render(&RenderContext::new()).unwrap_err();
    assert_eq!(
        error,
        TemplateError::TooManyIterations {
            field: "url",
            limit: MAX_LOOP_ITERATIONS
        }
    );
    let nested = Template::parse(
        "url",
        "{% for i in (1..200) %}{% for j in (1..200) %}{% endfor %}{% endfor %}",
    )
    .unwrap();
    assert!(matches!(
        nested.render(&RenderContext::new()),
        Err(TemplateError::TooManyIterations { .. })
    ));
}

#[test]
fn one_parsed_template_renders_for_many_recipients() {
    let template = Template::parse("body", "Hi {{ ${first_name} | default: 'there' }}").unwrap();
    let names: Vec<_> = ["Ann", "", "Bob"]
        .into_iter()
        .map(|name| {
            template
                .render(&RenderContext::new().with_user_attribute("first_name", name))
                .unwrap()
                .rendered()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(names, ["Hi Ann", "Hi there", "Hi Bob"]);
    assert_eq!(
        template.source(),
        "Hi {{ ${first_name} | default: 'there' }}"
    );
    assert_eq!(template.field(), "body");
}

#[test]
fn dollar_braces_outside_liquid_stay_literal_text() {
    assert_eq!(
        render(
            "cost: ${price} {{ '${x}' }} {% raw %}{{${y}}}{% endraw %}",
            &jane()
        ),
        "cost: ${price} ${x} {{${y}}}"
    );
}
