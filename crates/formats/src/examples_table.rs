//! examples.jsonl as one Arrow table, for readers that take columns (the
//! Python package's `Run.examples()`): a column per field of
//! [`ExampleLine`], then one per record field (`field.NAME`, null where a
//! record lacks it) and, in runs with compared sides, four per side
//! (`side.NAME.unshifted`, `.marginal`, `.shifted`, `.scoring_seconds`).

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, UInt32Builder};
use arrow_array::{ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, UInt32Array};
use arrow_schema::{Field, Schema};

use crate::examples::ExampleLine;

fn strings(lines: &[ExampleLine], f: impl Fn(&ExampleLine) -> Option<&str>) -> ArrayRef {
    Arc::new(StringArray::from_iter(lines.iter().map(f)))
}

fn u32s(lines: &[ExampleLine], f: impl Fn(&ExampleLine) -> Option<u32>) -> ArrayRef {
    Arc::new(UInt32Array::from_iter(lines.iter().map(f)))
}

fn f64s(lines: &[ExampleLine], f: impl Fn(&ExampleLine) -> Option<f64>) -> ArrayRef {
    Arc::new(Float64Array::from_iter(lines.iter().map(f)))
}

/// The lines as one record batch (column order as the module says).
pub fn record_batch(lines: &[ExampleLine]) -> RecordBatch {
    let mut answer_ids = ListBuilder::new(UInt32Builder::new());
    for line in lines {
        answer_ids.values().append_slice(&line.answer_ids);
        answer_ids.append(true);
    }
    let mut columns: Vec<(String, ArrayRef)> = vec![
        ("id".into(), strings(lines, |l| Some(&l.id))),
        ("query_id".into(), strings(lines, |l| Some(l.query_key()))),
        ("sample".into(), u32s(lines, |l| l.sample.map(|k| k as u32))),
        ("query".into(), strings(lines, |l| Some(&l.query))),
        (
            "aligned_context".into(),
            strings(lines, |l| Some(&l.aligned_context)),
        ),
        (
            "base_context".into(),
            strings(lines, |l| Some(&l.base_context)),
        ),
        ("answer".into(), strings(lines, |l| Some(&l.answer))),
        ("answer_ids".into(), Arc::new(answer_ids.finish())),
        ("source".into(), strings(lines, |l| Some(&l.source))),
        (
            "stop_reason".into(),
            strings(lines, |l| Some(&l.stop_reason)),
        ),
        (
            "eos_replaced".into(),
            Arc::new(BooleanArray::from_iter(
                lines.iter().map(|l| Some(l.eos_replaced)),
            )),
        ),
        (
            "generation_seconds".into(),
            f64s(lines, |l| Some(l.generation_seconds)),
        ),
        (
            "aligned_scoring_seconds".into(),
            f64s(lines, |l| Some(l.aligned_scoring_seconds)),
        ),
        (
            "base_scoring_seconds".into(),
            f64s(lines, |l| Some(l.base_scoring_seconds)),
        ),
        ("unshifted".into(), u32s(lines, |l| Some(l.unshifted))),
        ("marginal".into(), u32s(lines, |l| Some(l.marginal))),
        ("shifted".into(), u32s(lines, |l| Some(l.shifted))),
        ("skipped".into(), strings(lines, |l| l.skipped.as_deref())),
        (
            "skip_detail".into(),
            strings(lines, |l| l.skip_detail.as_deref()),
        ),
        (
            "schema_version".into(),
            u32s(lines, |l| Some(l.schema_version)),
        ),
    ];
    let fields: BTreeSet<&String> = lines.iter().flat_map(|l| l.fields.keys()).collect();
    for name in fields {
        let values = strings(lines, |l| l.fields.get(name).map(String::as_str));
        columns.push((format!("field.{name}"), values));
    }
    // Sides in study order, as the first line that has each names them.
    let mut sides: Vec<&str> = Vec::new();
    for side in lines.iter().flat_map(|l| &l.sides) {
        if !sides.contains(&side.name.as_str()) {
            sides.push(&side.name);
        }
    }
    for name in sides {
        let side = |l: &ExampleLine| l.sides.iter().find(|s| s.name == name).cloned();
        let prefix = format!("side.{name}");
        columns.push((
            format!("{prefix}.unshifted"),
            u32s(lines, |l| side(l).map(|s| s.unshifted)),
        ));
        columns.push((
            format!("{prefix}.marginal"),
            u32s(lines, |l| side(l).map(|s| s.marginal)),
        ));
        columns.push((
            format!("{prefix}.shifted"),
            u32s(lines, |l| side(l).map(|s| s.shifted)),
        ));
        columns.push((
            format!("{prefix}.scoring_seconds"),
            f64s(lines, |l| side(l).map(|s| s.scoring_seconds)),
        ));
    }
    // Null only where a line may lack the value.
    let optional = |name: &str| {
        name.starts_with("field.")
            || name.starts_with("side.")
            || name.starts_with("skip")
            || name == "sample"
    };
    let schema = Schema::new(
        columns
            .iter()
            .map(|(name, values)| Field::new(name, values.data_type().clone(), optional(name)))
            .collect::<Vec<_>>(),
    );
    let arrays = columns.into_iter().map(|(_, values)| values).collect();
    RecordBatch::try_new(Arc::new(schema), arrays).expect("every column has one value per line")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sides::SideCounts;
    use arrow_array::cast::AsArray;
    use arrow_array::types::UInt32Type;
    use arrow_array::Array;

    #[test]
    fn every_field_lands_in_its_column_and_absent_ones_are_null() {
        let mut a = ExampleLine {
            id: "q1".into(),
            query: "Why?".into(),
            answer: "Because.".into(),
            answer_ids: vec![5, 6, 7],
            unshifted: 2,
            shifted: 1,
            ..Default::default()
        };
        a.fields.insert("category".into(), "info".into());
        a.sides.push(SideCounts {
            name: "sft".into(),
            context: "ctx".into(),
            scoring_seconds: 0.5,
            unshifted: 1,
            marginal: 1,
            shifted: 1,
        });
        let b = ExampleLine {
            id: "q2#1".into(),
            query_id: Some("q2".into()),
            sample: Some(1),
            skipped: Some("empty_answer".into()),
            ..Default::default()
        };
        let batch = record_batch(&[a, b]);
        assert_eq!(batch.num_rows(), 2);
        let text = |name: &str, row: usize| {
            let c = batch.column_by_name(name).unwrap().as_string::<i32>();
            c.is_valid(row).then(|| c.value(row).to_string())
        };
        let count = |name: &str, row: usize| {
            let c = batch
                .column_by_name(name)
                .unwrap()
                .as_primitive::<UInt32Type>();
            c.is_valid(row).then(|| c.value(row))
        };
        assert_eq!(
            (text("id", 0), text("id", 1)),
            (Some("q1".into()), Some("q2#1".into()))
        );
        // The query an answer belongs to: its own id unless it is a sample.
        assert_eq!(
            (text("query_id", 0), text("query_id", 1)),
            (Some("q1".into()), Some("q2".into()))
        );
        assert_eq!((count("sample", 0), count("sample", 1)), (None, Some(1)));
        assert_eq!(text("field.category", 0).as_deref(), Some("info"));
        assert_eq!(text("field.category", 1), None);
        assert_eq!(text("skipped", 1).as_deref(), Some("empty_answer"));
        assert_eq!(text("skipped", 0), None);
        assert_eq!(
            (count("unshifted", 0), count("shifted", 0)),
            (Some(2), Some(1))
        );
        assert_eq!(count("side.sft.marginal", 0), Some(1));
        assert_eq!(count("side.sft.marginal", 1), None);
        let ids = batch.column_by_name("answer_ids").unwrap().as_list::<i32>();
        assert_eq!(
            ids.value(0).as_primitive::<UInt32Type>().values(),
            &[5, 6, 7]
        );
        assert_eq!(ids.value(1).len(), 0);
    }
}
