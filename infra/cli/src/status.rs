//! `switchyard status`: who writes, at which epoch, as each region's control table says, and
//! the last handover each recorded. Read-only: strongly consistent reads, nothing written.

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;
use switchyard_aws::control_table::ControlTable;
use switchyard_core::{
    Region, WriterClaim,
    ledger::{ExecutionLedger, HandoverRecord},
    ports::ClaimStore,
};

use crate::{Exit, Global, Output, loaded_sandbox};

/// Every read is bounded: a region that does not answer is reported, not waited for.
const READ_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RegionView {
    region: Region,
    claim: Option<WriterClaim>,
    last_handover: Option<HandoverRecord>,
    error: Option<String>,
}

pub async fn run(g: &Global) -> Result<Exit> {
    let sb = loaded_sandbox(g)?;
    let d = sb.deployment();
    let mut views = Vec::new();
    for region in d.regions.iter() {
        let config = switchyard_aws::sdk_config(&sb.aws_target(), region).await;
        let table = ControlTable::new(aws_sdk_dynamodb::Client::new(&config), d.regional_names(region).control_table);
        let read = async {
            Ok::<_, switchyard_core::SwitchyardError>((
                table.strong_read().await.proven()?,
                table.last_handover().await?,
            ))
        };
        let view = match tokio::time::timeout(READ_DEADLINE, read).await {
            Ok(Ok((claim, last))) => {
                RegionView { region: region.clone(), claim: Some(claim), last_handover: last, error: None }
            }
            Ok(Err(e)) => {
                RegionView { region: region.clone(), claim: None, last_handover: None, error: Some(e.to_string()) }
            }
            Err(_) => RegionView {
                region: region.clone(),
                claim: None,
                last_handover: None,
                error: Some(format!("no answer within {READ_DEADLINE:?}")),
            },
        };
        views.push(view);
    }
    // The regions agree when every table answered with the same claim.
    let claims: Vec<_> = views.iter().map(|v| v.claim.as_ref()).collect();
    let agree = claims.iter().all(|c| c.is_some() && *c == claims[0]);
    let armed = {
        use switchyard_core::arming::ArmingStore;
        let table = crate::arm::claim_store(&sb).await;
        tokio::time::timeout(READ_DEADLINE, table.armed()).await.ok().and_then(Result::ok).flatten()
    };
    match g.output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "sandbox": sb.instance, "agree": agree, "regions": views, "armed": armed })
            )?
        ),
        Output::Table => {
            println!("switchyard {} (sandbox {:?})", d.environment, sb.instance);
            for v in &views {
                let claim = match (&v.claim, &v.error) {
                    (Some(c), _) => format!("writer {} at epoch {} ({})", c.writer, c.epoch, c.phase),
                    (None, Some(e)) => format!("unreadable: {e}"),
                    (None, None) => "no claim".to_owned(),
                };
                let last = v.last_handover.as_ref().map_or("no handover yet".to_owned(), |h| {
                    format!("last handover {} to {} at epoch {} ({})", h.at, h.writer, h.epoch, h.execution)
                });
                println!("  {:<10} {claim}; {last}", v.region);
            }
            match &armed {
                Some(a) => println!(
                    "  armed: {} may take over automatically (armed by {} at {}, epoch {})",
                    a.target, a.armed_by, a.at, a.epoch
                ),
                None => println!("  disarmed: no automatic failover moves the writer"),
            }
            if !agree {
                println!(
                    "  the regions read different claims: the claim store is not one strongly consistent table; readiness's writer-claim rule fails"
                );
            }
        }
    }
    Ok(if agree { Exit::Done } else { Exit::Failed })
}
