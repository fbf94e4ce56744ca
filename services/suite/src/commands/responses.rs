//! `jixiao reviews import`: survey responses from a CSV file.

use std::path::Path;

use super::{Caller, progress};

/// `jixiao reviews import`: survey responses from a CSV file through the
/// streaming RPC (see [`crate::import`]).
pub async fn import_responses(
    caller: &Caller,
    file: &Path,
    campaign: &str,
) -> Result<String, String> {
    let input = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let batches = crate::import::read_batches(std::io::BufReader::new(input), campaign)?;
    let total = batches.iter().map(|b| b.responses.len()).sum();
    let bar = progress(total, "responses");
    let shown = bar.clone();
    let channel = caller.channel().await?;
    let summary = crate::import::push(channel, batches, move |sent, _| {
        shown.set_position(sent as u64);
    })
    .await;
    bar.finish_and_clear();
    let summary = summary?;
    // The answer lists the first refusals and counts all of them.
    let refused: i64 = summary
        .rejected_by_reason
        .values()
        .map(|&n| i64::from(n))
        .sum();
    let mut out = format!(
        "accepted   {}\nduplicates {}\nrejected   {refused}\n",
        summary.accepted, summary.duplicates,
    );
    let mut reasons: Vec<_> = summary.rejected_by_reason.iter().collect();
    reasons.sort();
    for (reason, n) in reasons {
        out.push_str(&format!("  {reason:<18} {n}\n"));
    }
    for r in summary.rejected.iter().take(50) {
        out.push_str(&format!("  {:<24} {:<18} {}\n", r.id, r.reason, r.message));
    }
    if refused > 50 {
        out.push_str(&format!("  … and {} more\n", refused - 50));
    }
    Ok(out)
}
