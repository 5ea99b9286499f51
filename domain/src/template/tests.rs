//! Unit tests of the error reporting helpers; behaviour through the public API is tested in
//! `domain/tests/template.rs`.

use super::*;

fn syntax_error(source: &str) -> TemplateError {
    Template::parse("body", source).unwrap_err()
}

#[test]
fn positions_count_lines_and_characters_from_one() {
    let text = "ab\néé x";
    assert_eq!(Position::of(text, 0), Position { line: 1, column: 1 });
    let x = text.find('x').unwrap();
    assert_eq!(Position::of(text, x), Position { line: 2, column: 4 });
    assert_eq!(Position { line: 2, column: 4 }.offset_in(text), x);
}

#[test]
fn an_unknown_filter_is_reported_where_it_is_used() {
    let error = syntax_error("Hello\n    {{ x | foo }}");
    assert_eq!(
        error.to_string(),
        "body: line 2, column 12: unknown filter \"foo\""
    );
    assert_eq!(error.field(), "body");
}

#[test]
fn grammar_errors_point_into_the_original_text_past_rewritten_references() {
    // The `${…}` rewrite lengthens the line; the column must still be the typed one.
    let error = syntax_error("{{${first_name}}} {% if %}");
    let TemplateError::Syntax {
        position, message, ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(
        *position,
        Some(Position {
            line: 1,
            column: 24
        })
    );
    assert_eq!(message, "value expected");
}

#[test]
fn an_unknown_tag_is_named() {
    assert_eq!(
        syntax_error("x\n{% iff a %}{% endif %}").to_string(),
        "body: line 2, column 4: unknown tag \"iff\""
    );
}

#[test]
fn a_filter_with_missing_arguments_is_named() {
    let message = syntax_error("{{ x | hmac_sha256_hex }}").to_string();
    assert!(message.starts_with("body: line 1, column 8: "), "{message}");
    assert!(message.contains("hmac_sha256_hex"), "{message}");
}

#[test]
fn an_unclosed_block_is_a_syntax_error() {
    let message = syntax_error("{% for x in y %}").to_string();
    assert!(message.contains("endfor"), "{message}");
}

#[test]
fn an_unclosed_reference_is_reported_at_its_dollar_sign() {
    assert_eq!(
        syntax_error("ab\n{{ ${first_name\n}}").to_string(),
        "body: line 2, column 4: \"${\" is never closed with \"}\""
    );
}

#[test]
fn a_render_error_names_the_filter_and_cause() {
    let error = Template::parse("url", "{{ 1 | divided_by: 0 }}")
        .unwrap()
        .render(&RenderContext::new())
        .unwrap_err();
    let TemplateError::Render { field, message } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(*field, "url");
    assert!(
        message.contains("divide by zero") && message.contains("divided_by"),
        "{message}"
    );
}

#[test]
fn template_errors_become_invalid_domain_errors_for_the_same_field() {
    let error: DomainError = syntax_error("{{ x | foo }}").into();
    assert_eq!(error.field(), Some("body"));
    assert_eq!(
        error.to_string(),
        "body: line 1, column 8: unknown filter \"foo\""
    );
}

#[test]
fn an_oversized_source_is_refused() {
    let error = syntax_error(&"x".repeat(MAX_SOURCE_BYTES + 1));
    assert!(
        matches!(error, TemplateError::Syntax { position: None, .. }),
        "{error:?}"
    );
}

#[test]
fn the_language_is_built_once_per_process() {
    assert!(std::ptr::eq(language(), language()));
}

#[test]
fn templates_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Template>();
}

#[test]
fn text_without_markup_is_rendered_once_when_parsed_and_markup_is_not_taken_for_literal() {
    let context = RenderContext::new().with_user_attribute("first_name", "Ada");
    for (source, expected) in [
        (
            "https://example.com/hook?a=1&b=}}",
            "https://example.com/hook?a=1&b=}}",
        ),
        (
            "${first_name} without braces",
            "${first_name} without braces",
        ),
        ("", ""),
    ] {
        let template = Template::parse("url", source).unwrap();
        assert_eq!(template.literal.as_deref(), Some(expected), "{source}");
        let rendered = template.render(&context).unwrap();
        assert_eq!(rendered.rendered(), Some(expected), "{source}");
    }
    for source in [
        "{{${first_name}}}",
        "{% if true %}x{% endif %}",
        "{% abort_message %}",
    ] {
        let template = Template::parse("body", source).unwrap();
        assert!(template.literal.is_none(), "{source}");
    }
    // One recipient's values serve several templates, literal or not.
    let recipient = Recipient::new(&context);
    let greeting = Template::parse("body", "Hi {{${first_name}}}").unwrap();
    let fixed = Template::parse("body", "fixed").unwrap();
    let stop = Template::parse("body", "{% abort_message('no') %}").unwrap();
    assert_eq!(
        greeting.render_for(&recipient).unwrap().rendered(),
        Some("Hi Ada")
    );
    assert_eq!(
        fixed.render_for(&recipient).unwrap().rendered(),
        Some("fixed")
    );
    assert!(stop.render_for(&recipient).unwrap().is_aborted());
    assert_eq!(
        greeting.render_for(&recipient).unwrap().rendered(),
        Some("Hi Ada")
    );
}

#[test]
fn a_lone_reference_renders_as_the_engine_would() {
    let context = RenderContext::new()
        .with_user_attribute("first_name", "Ada")
        .with_user_attribute("email_address", "ada@example.com")
        .with_user_attribute("external_id", "u-1")
        .with_custom_attribute("visits", 3)
        .with_custom_attribute("score", 2.5)
        .with_custom_attribute("vip", true)
        .with_custom_attribute("nothing", serde_json::Value::Null)
        .with_custom_attribute("tags", serde_json::json!(["a", "b"]))
        .with_custom_attribute("plan", serde_json::json!({"name": "pro", "seats": 4}))
        .with_event_property("sku", "X-1");
    for reference in [
        "${first_name}",
        "${email}",
        "${user_id}",
        "custom_attribute.${visits}",
        "custom_attribute.${score}",
        "custom_attribute.${vip}",
        "custom_attribute.${nothing}",
        "custom_attribute.${tags}",
        // (A whole object is left out: the engine writes its keys in hash order.)
        "custom_attribute.${plan}.${name}",
        "custom_attribute.${plan}.${seats}",
        "custom_attribute.${plan}.${size}",
        "custom_attribute.${tags}.${first}",
        "custom_attribute.${tags}.${size}",
        "custom_attribute.${visits}.${deeper}",
        "custom_attribute.${nothing}.${deeper}",
        "custom_attribute.${missing}.${deeper}",
        "event_properties.${sku}",
        "campaign.${name}",
    ] {
        let direct = Template::parse("body", &format!("{{{{{reference}}}}}")).unwrap();
        assert!(
            direct.reference.is_some(),
            "{reference} takes the direct path"
        );
        // The same output inside a block, which the engine renders itself.
        let engine = Template::parse(
            "body",
            &format!("{{% if true %}}{{{{{reference}}}}}{{% endif %}}"),
        )
        .unwrap();
        assert!(engine.reference.is_none());
        assert_eq!(
            direct.render(&context).unwrap(),
            engine.render(&context).unwrap(),
            "{reference}"
        );
    }
    for source in [
        "{{${first_name} | upcase}}",
        "{{ true }}",
        "{{ name }}",
        "{{${first_name}}} and more",
        "{{-${first_name}-}}",
        "{{custom_attribute.${a b}}}",
    ] {
        let template = Template::parse("body", source).unwrap();
        assert!(template.reference.is_none(), "{source}");
    }
}
