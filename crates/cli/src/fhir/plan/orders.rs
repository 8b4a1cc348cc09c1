//! An encounter's laboratory reports as test orders, each answered by one lab result
//! within the limits of one sealed body.

use health_workflow::clinical::{self, LabReport};
use health_workflow::limits;
use health_workflow::seal::MAX_BODY_BYTES;

use super::{OrderPlan, Reader, fit};

/// The room one lab result leaves for its reports, below the body limit, for the
/// result text and the encoding's own overhead.
const REPORTS_BUDGET: usize = MAX_BODY_BYTES - limits::MAX_RESULTS - 1024;

/// An encounter's lab reports as test orders, each answered by one result within
/// the limits of one sealed body; what does not fit in
/// [`MAX_TEST_ORDERS`](limits::MAX_TEST_ORDERS) is skipped and counted.
pub(super) fn orders_of(reports: Vec<LabReport>, r: &mut Reader<'_>) -> Vec<OrderPlan> {
    let mut parts: Vec<LabReport> = Vec::new();
    // A report too large for one result is split across results.
    for report in reports {
        if report.observations.len() <= limits::MAX_OBSERVATIONS
            && ledger_core::codec::encoded_len(&report) <= REPORTS_BUDGET
        {
            parts.push(report);
            continue;
        }
        let header = LabReport {
            observations: Vec::new(),
            ..report.clone()
        };
        let mut part = header.clone();
        for observation in report.observations {
            part.observations.push(observation);
            if part.observations.len() > limits::MAX_OBSERVATIONS
                || ledger_core::codec::encoded_len(&part) > REPORTS_BUDGET
            {
                let mut next = header.clone();
                next.observations.extend(part.observations.pop());
                parts.push(std::mem::replace(&mut part, next));
            }
        }
        if !part.observations.is_empty() {
            parts.push(part);
        }
    }
    let mut chunks: Vec<Vec<LabReport>> = Vec::new();
    let mut size = 0;
    let mut count = 0;
    for part in parts {
        let len = ledger_core::codec::encoded_len(&part);
        let fits = chunks.last().is_some_and(|c| {
            c.len() < limits::MAX_REPORTS
                && count + part.observations.len() <= limits::MAX_OBSERVATIONS
                && size + len <= REPORTS_BUDGET
        });
        if !fits {
            chunks.push(Vec::new());
            size = 0;
            count = 0;
        }
        size += len;
        count += part.observations.len();
        if let Some(chunk) = chunks.last_mut() {
            chunk.push(part);
        }
    }
    let mut orders = Vec::new();
    for chunk in chunks {
        if orders.len() == limits::MAX_TEST_ORDERS {
            let observations: usize = chunk.iter().map(|p| p.observations.len()).sum();
            *r.skipped
                .entry(format!(
                    "Observation: above {} lab orders in one encounter",
                    limits::MAX_TEST_ORDERS
                ))
                .or_default() += observations;
            continue;
        }
        orders.push(order_of(chunk));
    }
    orders
}

fn order_of(reports: Vec<LabReport>) -> OrderPlan {
    let mut tests: Vec<clinical::Coding> = Vec::new();
    for code in reports.iter().filter_map(|r| r.code.clone()) {
        if !tests.contains(&code) {
            tests.push(code);
        }
    }
    let test_name = match tests.as_slice() {
        [one] if !one.display.is_empty() => one.display.clone(),
        [] | [_] => "Laboratory tests".to_string(),
        many => format!("Laboratory tests ({} panels)", many.len()),
    };
    let lines: Vec<String> = reports
        .iter()
        .flat_map(|r| &r.observations)
        .map(clinical::Observation::summary)
        .collect();
    let results = if lines.is_empty() {
        "No results reported".to_string()
    } else {
        lines.join("; ")
    };
    OrderPlan {
        test_name: fit(&test_name, limits::MAX_TEST_NAME),
        tests,
        results: fit(&results, limits::MAX_RESULTS),
        reports,
    }
}
