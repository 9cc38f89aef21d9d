//! The data formats, byte-order marks and field mapping against hand-written files.

use super::*;

/// `batch` as a Parquet file named `name`, as Hugging Face datasets write one.
fn write_parquet(name: &str, batch: arrow_array::RecordBatch) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&path).unwrap(),
        batch.schema(),
        None,
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    (dir, path)
}

fn write(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn reads_every_format() {
    let (_d, p) = write(
        "a.json",
        r#"[{"id": 7, "pure_input": "q1", "input": "<s>q1", "output": ["a1"], "reference": "x"},
                                    {"instruction": "q2", "output": "a2"}]"#,
    );
    let r = load(&p, None, &FieldMap::default()).unwrap();
    assert_eq!(
        r[0],
        Record {
            id: "7".into(),
            query: "q1".into(),
            input: Some("<s>q1".into()),
            output: Some("a1".into()),
            output_ids: None,
            // A short extra field is a label; the known ones are not.
            fields: [("reference".to_string(), "x".to_string())].into(),
            sample: None,
        }
    );
    assert_eq!(
        (
            r[1].id.as_str(),
            r[1].query.as_str(),
            r[1].output.as_deref()
        ),
        ("1", "q2", Some("a2"))
    );
    let (_d, p) = write(
        "b.jsonl",
        "{\"prompt\": \"q\", \"response\": \"r\", \"output_ids\": [1, 2]}\n\n{\"query\": \"z\"}\n",
    );
    let r = load(&p, None, &FieldMap::default()).unwrap();
    assert_eq!(r[0].output_ids, Some(vec![1, 2]));
    assert_eq!(r[1].output, None);
    let (_d, p) = write("c.txt", "first query\n\nsecond query\n");
    let r = load(&p, Some(1), &FieldMap::default()).unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].query, "first query");
}

#[test]
fn malformed_records_name_file_and_line() {
    let (_d, p) = write(
        "bad.jsonl",
        "{\"prompt\": \"ok\"}\n{\"answer\": \"no query\"}\n",
    );
    let e = load(&p, None, &FieldMap::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.jsonl:2") && e.contains("no query"), "{e}");
    let (_d, p) = write("bad2.jsonl", "{\"prompt\": \"ok\"}\n{not json\n");
    let e = load(&p, None, &FieldMap::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bad2.jsonl:2") && e.contains("invalid JSON"),
        "{e}"
    );
    let (_d, p) = write(
        "bad3.json",
        r#"[{"pure_input": "a", "output_ids": [1, -2]}]"#,
    );
    let e = load(&p, None, &FieldMap::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("record 0") && e.contains("output_ids"), "{e}");
    let (_d, p) = write(
        "dup.json",
        r#"[{"id": "x", "pure_input": "a"}, {"id": "x", "pure_input": "b"}]"#,
    );
    assert!(load(&p, None, &FieldMap::default())
        .unwrap_err()
        .to_string()
        .contains("duplicate id"));
}

#[test]
fn reads_csv_ndjson_wrapped_json_and_parquet() {
    let (_d, p) = write(
        "q.csv",
        "id,instruction,output,category\nx1,\"What, exactly?\",,safety\nx2,Tell me,\"An answer\",info\n",
    );
    let r = load(&p, None, &FieldMap::default()).unwrap();
    assert_eq!(r.len(), 2, "the header is not a query");
    assert_eq!(
        (
            r[0].id.as_str(),
            r[0].query.as_str(),
            r[0].output.as_deref()
        ),
        ("x1", "What, exactly?", None)
    );
    assert_eq!(r[1].output.as_deref(), Some("An answer"));
    let (_d, p) = write("q.ndjson", "{\"query\": \"a\"}\n{\"query\": \"b\"}\n");
    assert_eq!(load(&p, None, &FieldMap::default()).unwrap().len(), 2);
    let (_d, p) = write(
        "q.json",
        r#"{"instances": [{"instruction": "a"}, {"instruction": "b"}]}"#,
    );
    assert_eq!(load(&p, None, &FieldMap::default()).unwrap()[1].query, "b");

    // Parquet, as Hugging Face datasets write it: string columns and a list column.
    use arrow_array::builder::{ListBuilder, UInt32Builder};
    use arrow_array::{ArrayRef, RecordBatch, StringArray};
    use std::sync::Arc;
    let mut ids = ListBuilder::new(UInt32Builder::new());
    ids.values().append_slice(&[5, 6]);
    ids.append(true);
    ids.append(false);
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(StringArray::from(vec!["p0", "p1"]))),
        (
            "instruction",
            Arc::new(StringArray::from(vec!["first", "second"])),
        ),
        ("output_ids", Arc::new(ids.finish())),
    ];
    let (_dir, path) = write_parquet("q.parquet", RecordBatch::try_from_iter(columns).unwrap());
    let r = load(&path, None, &FieldMap::default()).unwrap();
    assert_eq!(r[0].query, "first");
    assert_eq!(r[0].output_ids, Some(vec![5, 6]));
    assert_eq!((r[1].id.as_str(), r[1].output_ids.clone()), ("p1", None));
    // A Parquet file without a query column says which columns it expected.
    let batch = RecordBatch::try_from_iter(vec![(
        "text",
        Arc::new(StringArray::from(vec!["x"])) as ArrayRef,
    )])
    .unwrap();
    let (_bad_dir, bad) = write_parquet("bad.parquet", batch);
    let e = load(&bad, None, &FieldMap::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("row 0") && e.contains("Parquet columns") && e.contains("pure_input"),
        "{e}"
    );
}

#[test]
fn other_formats_are_refused_naming_the_ones_read() {
    for name in ["q.xlsx", "q.tsv", "noextension"] {
        let (_d, p) = write(name, "a\tb\n");
        let e = load(&p, None, &FieldMap::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown data format") && e.contains(".parquet") && e.contains(".csv"),
            "{e}"
        );
    }
    // Binary data under a text extension says so instead of a UTF-8 error per line.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("q.jsonl");
    std::fs::write(&p, b"PAR1\xff\xfe\x00").unwrap();
    let e = load(&p, None, &FieldMap::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("not UTF-8") && e.contains(".parquet"), "{e}");
    // A bad CSV row names its line.
    let (_d, p) = write("q.csv", "instruction,output\nfine,ok\ntoo,many,cells\n");
    let e = load(&p, None, &FieldMap::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("q.csv:3") && e.contains("CSV"), "{e}");
}

fn fields(query: Option<&str>, answer: Option<&str>, id: Option<&str>) -> FieldMap {
    FieldMap {
        query: query.map(str::to_string),
        answer: answer.map(str::to_string),
        id: id.map(str::to_string),
    }
}

#[test]
fn a_utf8_byte_order_mark_is_skipped_in_every_text_format() {
    let bom = "\u{feff}";
    for (name, text) in [
        ("b.json", r#"[{"instruction": "first"}]"#),
        ("b.jsonl", "{\"instruction\": \"first\"}\n"),
        ("b.csv", "instruction\nfirst\n"),
        ("b.txt", "first\n"),
    ] {
        let (_d, p) = write(name, &format!("{bom}{text}"));
        let r = load(&p, None, &FieldMap::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r[0].query, "first", "{name}");
    }
}

#[test]
fn utf16_files_are_refused_naming_the_encoding() {
    let text = "instruction\nfirst\n";
    let le: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let be: Vec<u8> = [0xFE, 0xFF]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_be_bytes))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    for (bytes, encoding) in [
        (&le, "UTF-16 (little-endian)"),
        (&be, "UTF-16 (big-endian)"),
    ] {
        for name in ["u.csv", "u.txt", "u.json", "u.jsonl"] {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            let e = load(&p, None, &FieldMap::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains(encoding) && e.contains("UTF-8"), "{name}: {e}");
        }
    }
}

#[test]
fn named_fields_and_dotted_paths_are_read_from_json_and_jsonl() {
    let json = r#"[
        {"uid": 11, "turns": ["What is 2+2?", "And 3+3?"], "reference": {"text": "4"}, "category": "math"},
        {"uid": 12, "turns": ["Name a colour."], "reference": {"text": "red"}, "category": "art"}
    ]"#;
    let map = fields(Some("turns.0"), Some("reference.text"), Some("uid"));
    let (_d, p) = write("mt.json", json);
    let r = load(&p, None, &map).unwrap();
    assert_eq!(
        (
            r[0].id.as_str(),
            r[0].query.as_str(),
            r[0].output.as_deref()
        ),
        ("11", "What is 2+2?", Some("4"))
    );
    assert_eq!(r[1].query, "Name a colour.");
    // The mapped fields are not labels; the others still are.
    assert_eq!(r[0].fields.keys().collect::<Vec<_>>(), ["category"]);

    let jsonl = "{\"conversation\": [{\"role\": \"user\", \"content\": \"Hi?\"}], \"question_id\": \"q1\"}\n\
                 {\"conversation\": [{\"role\": \"user\", \"content\": \"Bye?\"}], \"question_id\": \"q2\"}\n";
    let (_d, p) = write("chat.jsonl", jsonl);
    let r = load(
        &p,
        None,
        &fields(Some("conversation.0.content"), None, Some("question_id")),
    )
    .unwrap();
    assert_eq!((r[1].id.as_str(), r[1].query.as_str()), ("q2", "Bye?"));

    // A path that reaches a list or an object says how to pick the text.
    let e = load(&p, None, &fields(Some("conversation"), None, None))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("chat.jsonl:1") && e.contains("conversation.0"),
        "{e}"
    );
    let e = load(&p, None, &fields(Some("conversation.0"), None, None))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("role, content") && e.contains("conversation.0.role"),
        "{e}"
    );
    // A misspelt field names what the record has.
    let e = load(
        &p,
        None,
        &fields(Some("conversations.0.content"), None, None),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("no field `conversations.0.content`") && e.contains("conversation, question_id"),
        "{e}"
    );
    let e = load(
        &p,
        None,
        &fields(Some("conversation.0.content"), Some("answer"), None),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("no record has an answer under `answer`"), "{e}");
}

#[test]
fn without_a_query_field_the_refusal_lists_the_files_columns_and_the_flag() {
    let (_d, p) = write("q.jsonl", "{\"question\": \"Why?\", \"category\": \"x\"}\n");
    let e = load(&p, None, &FieldMap::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("q.jsonl:1")
            && e.contains("this record has: question, category")
            && e.contains("--query-field"),
        "{e}"
    );
    let (_d, p) = write("q.csv", "question,category\nWhy?,x\n");
    let e = load(&p, None, &FieldMap::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("q.csv:2") && e.contains("question, category"),
        "{e}"
    );
    let r = load(&p, None, &fields(Some("question"), None, None)).unwrap();
    assert_eq!(r[0].query, "Why?");
}

#[test]
fn csv_columns_with_dots_match_literally_first() {
    let (_d, p) = write(
        "dots.csv",
        "prompt.text,answer.text,key\n\"Why, then?\",Because.,k1\nHow?,,k2\n",
    );
    let r = load(
        &p,
        None,
        &fields(Some("prompt.text"), Some("answer.text"), Some("key")),
    )
    .unwrap();
    assert_eq!(
        (
            r[0].id.as_str(),
            r[0].query.as_str(),
            r[0].output.as_deref()
        ),
        ("k1", "Why, then?", Some("Because."))
    );
    assert_eq!((r[1].id.as_str(), r[1].output.as_deref()), ("k2", None));
    assert!(r[0].fields.is_empty(), "{:?}", r[0].fields);
}

#[test]
fn parquet_nested_columns_are_reached_by_dotted_paths() {
    use arrow_array::builder::{ListBuilder, StringBuilder, StructBuilder};
    use arrow_array::{ArrayRef, Int64Array, RecordBatch};
    use arrow_schema::{DataType, Field as ArrowField, Fields};
    use std::sync::Arc;
    // `turns`: list<string>; `meta`: struct<source: string> (as datasets write them).
    let mut turns = ListBuilder::new(StringBuilder::new());
    for row in [vec!["first turn", "second"], vec!["only turn"]] {
        for t in row {
            turns.values().append_value(t);
        }
        turns.append(true);
    }
    let meta_fields = Fields::from(vec![ArrowField::new("source", DataType::Utf8, true)]);
    let mut meta = StructBuilder::from_fields(meta_fields, 2);
    for source in ["mt-bench", "arena"] {
        meta.field_builder::<StringBuilder>(0)
            .unwrap()
            .append_value(source);
        meta.append(true);
    }
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("question_id", Arc::new(Int64Array::from(vec![81, 82]))),
        ("turns", Arc::new(turns.finish())),
        ("meta", Arc::new(meta.finish())),
    ];
    let (_dir, path) = write_parquet("mt.parquet", RecordBatch::try_from_iter(columns).unwrap());
    let r = load(
        &path,
        None,
        &fields(Some("turns.0"), Some("meta.source"), Some("question_id")),
    )
    .unwrap();
    assert_eq!(
        (
            r[0].id.as_str(),
            r[0].query.as_str(),
            r[0].output.as_deref()
        ),
        ("81", "first turn", Some("mt-bench"))
    );
    assert_eq!((r[1].id.as_str(), r[1].query.as_str()), ("82", "only turn"));
    let e = load(&path, None, &FieldMap::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Parquet columns") && e.contains("question_id, turns, meta"),
        "{e}"
    );
}
