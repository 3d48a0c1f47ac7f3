//! The mail goldens (fixtures/mail/*.json) were written by the code under test, so an
//! independent parser reviews them: Python's standard `email` package reads every .eml
//! (tools/mail_fields.py), and each golden must agree with it on the fields that matter —
//! From and its name, To, Cc, Subject, Message-ID, In-Reply-To, References, the text body.

use std::path::Path;

use serde_json::{json, Value};
use smimp_gateway::smimp::address::Address;

/// SMIMP addresses in a golden, in their email form, as Python lists the addressees.
fn emails(list: &Value) -> Vec<String> {
    let list = list.as_array().expect("an address list");
    list.iter().map(|a| a.as_str().unwrap().parse::<Address>().unwrap().to_email()).collect()
}

/// Message-IDs an x-rfc5322 extension lists under `key`, none when absent.
fn ids(extension: &Value, key: &str) -> Value {
    extension.get(key).cloned().unwrap_or_else(|| json!([]))
}

/// What Python's `email` package reads in every .eml, by file name.
fn python_fields(root: &Path) -> Value {
    let output = std::process::Command::new("python3")
        .arg(root.join("tools/mail_fields.py"))
        .arg(root.join("fixtures/mail"))
        .output()
        .expect("python3 runs (it is required, as by tests/clients)");
    assert!(output.status.success(), "tools/mail_fields.py: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("tools/mail_fields.py prints JSON")
}

fn check(name: &str, golden: &Value, seen: &Value) {
    let expected = &golden["expected"];
    let payload = &expected["payload"];
    let extension = &payload["extensions_data"]["x-rfc5322"];
    assert_eq!(expected["from"], seen["from"], "{name}: From");
    assert_eq!(extension.get("from_name").unwrap_or(&Value::Null), &seen["from_name"], "{name}: From's name");
    assert_eq!(json!(emails(&payload["to"])), seen["to"], "{name}: To");
    assert_eq!(json!(emails(&payload["cc"])), seen["cc"], "{name}: Cc");
    assert_eq!(payload["subject"], seen["subject"], "{name}: Subject");
    assert_eq!(extension["message_id"], seen["message_id"], "{name}: Message-ID");
    assert_eq!(ids(extension, "in_reply_to"), seen["in_reply_to"], "{name}: In-Reply-To");
    assert_eq!(ids(extension, "references"), seen["references"], "{name}: References");
    // The text body, with the signature the conversion splits off put back after its
    // "-- " line; a message with no text/plain part has its body made from HTML.
    if let Some(text) = seen["body"].as_str() {
        let mut body = payload["body"].as_str().unwrap().to_string();
        if let Some(signature) = payload["signature_text"].as_str() {
            body = format!("{body}-- \n{signature}");
        }
        assert_eq!(body, text, "{name}: the text body");
    }
}

#[test]
fn goldens_agree_with_pythons_email_package() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = python_fields(root);
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("fixtures/mail")).expect("fixtures/mail") {
        let path = entry.expect("directory entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        let golden: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        check(&name, &golden, &python[name.as_str()]);
        checked += 1;
    }
    assert_eq!(python.as_object().map(|o| o.len()), Some(checked), "every .eml has a golden: {python}");
    assert!(checked >= 7, "the goldens of fixtures/mail/ were found ({checked})");
}
