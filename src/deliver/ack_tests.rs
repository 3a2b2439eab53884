use super::*;

fn ack(msa: &str, err: Option<&str>) -> Ack {
    let mut s =
        format!("MSH|^~\\&|LIS|HOSP|IARI|BB_LAB|20260101000000||ACK^R01^ACK|A1|P|2.5.1\r{msa}\r");
    if let Some(e) = err {
        s.push_str(e);
        s.push('\r');
    }
    parse(s.as_bytes()).unwrap()
}

#[test]
fn table_rows() {
    use AckOutcome::*;
    let id = "IARI0000000000000001";
    let rows: [(&str, Option<&str>, bool, AckOutcome); 16] = [
        ("MSA|AA|{id}", None, false, Delivered),
        ("MSA|CA|{id}", None, false, Committed),
        ("MSA|AE|{id}|bad OBX", None, false, Park),
        ("MSA|CE|{id}", None, false, Resend),
        ("MSA|CR|{id}", None, false, Resend),
        ("MSA|AR|{id}", None, false, Resend),
        (
            "MSA|AR|{id}",
            Some("ERR|||207^Application internal error^HL70357|E"),
            false,
            Resend,
        ),
        (
            "MSA|CR|{id}",
            Some("ERR|||203^Unsupported version id^HL70357|E"),
            false,
            ConfigError,
        ),
        // v2.4: the code sits in ERR-1's fourth component (a CE in subcomponents).
        (
            "MSA|AR|{id}",
            Some("ERR|MSH^1^9^200&Unsupported message type&HL70357"),
            false,
            ConfigError,
        ),
        // v2.3: MSA-6 error condition.
        (
            "MSA|AR|{id}||||201^Unsupported event code^HL70357",
            None,
            false,
            ConfigError,
        ),
        // Duplicate key: delivered only after an unanswered send of ours.
        (
            "MSA|AE|{id}",
            Some("ERR|||205^Duplicate key identifier^HL70357|E"),
            true,
            Duplicate,
        ),
        (
            "MSA|AR|{id}",
            Some("ERR|||205^Duplicate key identifier^HL70357|E"),
            true,
            Duplicate,
        ),
        (
            "MSA|AE|{id}",
            Some("ERR|||205^Duplicate key identifier^HL70357|E"),
            false,
            Park,
        ),
        (
            "MSA|AR|{id}",
            Some("ERR|||205^Duplicate key identifier^HL70357|E"),
            false,
            Resend,
        ),
        ("MSA|AE|{id}||||205", None, true, Duplicate),
        ("MSA|AA|SOMEONE_ELSE", None, false, Foreign),
    ];
    for (msa, err, resent, want) in rows {
        let a = ack(&msa.replace("{id}", id), err);
        assert_eq!(
            outcome(&a, id, resent),
            want,
            "{msa} {err:?} resent={resent}"
        );
    }
    for code in 200..=203 {
        let a = ack(
            &format!("MSA|AR|{id}"),
            Some(&format!("ERR|||{code}^Unsupported^HL70357|E")),
        );
        assert_eq!(
            (a.error_code, a.error_source),
            (Some(code), Some(ErrorSource::Err3))
        );
        assert_eq!(outcome(&a, id, false), ConfigError);
    }
    let v24 = ack(
        "MSA|AR|X",
        Some("ERR|MSH^1^12^203&Unsupported version id&HL70357"),
    );
    assert_eq!(
        (v24.error_code, v24.error_source, v24.text.as_str()),
        (Some(203), Some(ErrorSource::Err1), "Unsupported version id")
    );
    let v23 = ack("MSA|AR|X||||202^Unsupported processing id", None);
    assert_eq!(
        (v23.error_code, v23.error_source),
        (Some(202), Some(ErrorSource::Msa6))
    );
}

#[test]
fn text_comes_from_msa3_then_err() {
    assert_eq!(ack("MSA|AE|X|field too long", None).text, "field too long");
    let a = ack(
        "MSA|AE|X",
        Some("ERR|||101^Required field missing^HL70357|E||||PID-3 missing"),
    );
    assert_eq!(
        (a.error_code, a.text.as_str()),
        (Some(101), "PID-3 missing")
    );
    let b = ack("MSA|AE|X", Some("ERR|||102^Data type error^HL70357|E"));
    assert_eq!(b.text, "Data type error");
}

#[test]
fn lenient_newlines_and_errors() {
    let a = parse(b"MSH|^~\\&|L|H|I|B|20260101||ACK|1|P|2.5.1\r\nMSA|AA|C1\r\n").unwrap();
    assert_eq!((a.code, a.control_id.as_str()), (AckCode::AA, "C1"));
    assert!(matches!(
        parse(b"MSH|^~\\&|L|H|I|B|1||ACK|1|P|2.5.1\r"),
        Err(AckParseError::NoMsa)
    ));
    assert!(matches!(
        parse(b"MSH|^~\\&|L|H|I|B|1||ACK|1|P|2.5.1\rMSA|ZZ|C1\r"),
        Err(AckParseError::UnknownCode(_))
    ));
    assert!(parse(b"garbage").is_err());
}
