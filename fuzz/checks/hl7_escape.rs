//! HL7 escape round trip (`deliver::hl7::encode::escape`), shared by the cargo-fuzz target and
//! the bounded stable run (`tests/fuzz`): any text (the input, read as UTF-8 lossily), escaped
//! and put into a segment between two other fields.
//!
//! Asserts: no panic; the escaped text holds no delimiter, line break or control character, so
//! hl7-parser reads the segment back as exactly three fields and the escaped one as a single
//! repeat, component and subcomponent carrying it unchanged; unescaping it (per HL7 v2.5.1
//! §2.7, written here as the oracle) gives back the text, up to the profile's documented
//! normalisation: CR LF, CR and LF become one line break, a tab a space, other control
//! characters are dropped. For ASCII text, hl7-parser's own decoder agrees (its decoder slices
//! by character index, so it is asked only where characters are bytes).

use hl7_parser::message::Separators;
use iari::deliver::hl7::encode::escape;

/// HL7 v2 unescaping of what `escape` writes; `\.br\` becomes `\n`.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let end = after.find('\\').expect("an escape sequence is closed");
        out.push_str(match &after[..end] {
            "F" => "|",
            "S" => "^",
            "T" => "&",
            "R" => "~",
            "E" => "\\",
            ".br" => "\n",
            other => panic!("escape wrote an unknown sequence \\{other}\\"),
        });
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The text as the profile carries it.
fn normalised(text: &str) -> String {
    let lines = text.replace("\r\n", "\n").replace('\r', "\n");
    lines
        .chars()
        .filter_map(|c| match c {
            '\t' => Some(' '),
            '\n' => Some('\n'),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

/// The check on one input.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let escaped = escape(&text);
    assert!(
        !escaped.contains(['|', '^', '~', '&', '\r', '\n'])
            && !escaped.chars().any(char::is_control),
        "{text:?} escaped to {escaped:?}"
    );
    assert_eq!(
        unescape(&escaped),
        normalised(&text),
        "{text:?} → {escaped:?}"
    );

    let message = format!(
        "MSH|^~\\&|A|B|C|D|20260101000000+0000||ORU^R01|1|P|2.5.1\rZZZ|before|{escaped}|after\r"
    );
    let parsed = hl7_parser::Message::parse(message.trim_end_matches('\r'))
        .unwrap_or_else(|e| panic!("{escaped:?} broke the message: {e}"));
    let seg = parsed.segment("ZZZ").expect("the ZZZ segment");
    let fields: Vec<&str> = seg.fields().map(|f| f.raw_value()).collect();
    assert_eq!(fields, ["before", escaped.as_str(), "after"]);
    let field = seg.field(2).expect("field 2");
    assert_eq!(field.repeats().count(), 1, "{escaped:?}");
    let repeat = field.repeat(1).expect("repeat 1");
    assert_eq!(repeat.components().count(), 1, "{escaped:?}");
    let component = repeat.component(1).expect("component 1");
    assert_eq!(component.subcomponents().count(), 1, "{escaped:?}");
    assert_eq!(component.raw_value(), escaped);

    if text.is_ascii() {
        let decoded = Separators::default().decode(&escaped).to_string();
        assert_eq!(decoded, normalised(&text).replace('\n', "\r"), "{text:?}");
    }
}
