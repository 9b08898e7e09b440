//! JSON laid out for reading without changing what it says. A round trip
//! through `serde_json::Value` would sort the keys and respell numbers
//! (`12345678901234567890123` becomes `1.2345678901234568e22`, `1.50`
//! becomes `1.5`): an operator comparing a body with the provider's
//! dashboard, or a signature with its bytes, must see the event as it came.

use std::iter::Peekable;
use std::str::Chars;

/// Spaces per nesting level, as `serde_json::to_string_pretty` indents.
const INDENT: usize = 2;

/// `text` with one member or element per line, indented by depth, its
/// tokens (keys, strings, numbers, their order) exactly as written; `None`
/// when it is not a JSON document.
pub(super) fn indent_json(text: &str) -> Option<String> {
    // Only a valid document is re-laid out, so below every character
    // outside a string is a token or JSON whitespace.
    serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
    let mut out = String::with_capacity(text.len() + text.len() / 2);
    let mut depth = 0usize;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => copy_string(&mut chars, &mut out),
            '{' | '[' => {
                skip_whitespace(&mut chars);
                out.push(c);
                if let Some(close) = chars.next_if(|n| matches!(n, '}' | ']')) {
                    // An empty object or array stays on its line: `{}`.
                    out.push(close);
                    continue;
                }
                depth += 1;
                new_line(&mut out, depth);
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                new_line(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(',');
                new_line(&mut out, depth);
            }
            ':' => out.push_str(": "),
            ' ' | '\t' | '\n' | '\r' => {}
            other => out.push(other),
        }
    }
    Some(out)
}

/// Copies a string token whose opening quote was read, escapes untouched.
fn copy_string(chars: &mut Peekable<Chars<'_>>, out: &mut String) {
    out.push('"');
    while let Some(c) = chars.next() {
        out.push(c);
        match c {
            '\\' => {
                if let Some(escaped) = chars.next() {
                    out.push(escaped);
                }
            }
            '"' => return,
            _ => {}
        }
    }
}

fn skip_whitespace(chars: &mut Peekable<Chars<'_>>) {
    while matches!(chars.peek(), Some(' ' | '\t' | '\n' | '\r')) {
        chars.next();
    }
}

fn new_line(out: &mut String, depth: usize) {
    out.push('\n');
    out.extend(std::iter::repeat_n(' ', depth * INDENT));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_their_order_and_numbers_their_spelling() {
        let body =
            r#"{"type":"invoice.paid","id":"evt_1","amount":12345678901234567890123,"rate":1.50}"#;
        assert_eq!(
            indent_json(body).unwrap(),
            "{\n  \"type\": \"invoice.paid\",\n  \"id\": \"evt_1\",\n  \"amount\": 12345678901234567890123,\n  \"rate\": 1.50\n}"
        );
    }

    #[test]
    fn nesting_empty_containers_and_whitespace_lay_out_as_serde_json_does() {
        let body = " {\"a\" : [1, {\"b\":[]}, {} ,[ ]], \"c\":{\"d\":null,\"e\":[true,false]}}\n";
        let value: serde_json::Value = serde_json::from_str(body).unwrap();
        // Already in sorted order, so serde_json's layout is the reference.
        assert_eq!(
            indent_json(body).unwrap(),
            serde_json::to_string_pretty(&value).unwrap()
        );
    }

    #[test]
    fn strings_are_copied_untouched_whatever_they_hold() {
        let body = r#"{"s":"a \"quoted\" {brace}, [bracket]: colon \\ \u00e9 é","t":"\\"}"#;
        assert_eq!(
            indent_json(body).unwrap(),
            "{\n  \"s\": \"a \\\"quoted\\\" {brace}, [bracket]: colon \\\\ \\u00e9 é\",\n  \"t\": \"\\\\\"\n}"
        );
    }

    #[test]
    fn scalars_stay_and_what_is_not_json_is_refused() {
        assert_eq!(indent_json(" 42 ").unwrap(), "42");
        assert_eq!(indent_json("\"x\"").unwrap(), "\"x\"");
        assert_eq!(indent_json("{}").unwrap(), "{}");
        for not_json in ["", "{", "{\"a\":1}x", "[1,]", "hello", "{'a':1}"] {
            assert_eq!(indent_json(not_json), None, "{not_json:?}");
        }
    }
}
