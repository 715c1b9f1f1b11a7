//! `switchyard arm REGION` and `switchyard disarm`: the takeover target an automatic failover
//! may move the writer into (`switchyard_core::arming`). The arming holds for the writer
//! epoch it was given under; a handover voids it.

use anyhow::Result;
use switchyard_aws::control_table::ControlTable;
use switchyard_core::{
    Region,
    arming::{Arming, ArmingStore},
    order::Timestamp,
    ports::ClaimStore,
};

use crate::{BadValue, Exit, Global, Output, Refused, loaded_sandbox};

/// The claim store of `sb`, through the primary region's replica (the operator's view).
pub(crate) async fn claim_store(sb: &switchyard_sandbox::Sandbox) -> ControlTable {
    let d = sb.deployment();
    let config = switchyard_aws::sdk_config(&sb.aws_target(), &d.regions.primary).await;
    ControlTable::new(aws_sdk_dynamodb::Client::new(&config), d.regional_names(&d.regions.primary).control_table)
}

pub async fn arm(g: &Global, region: &str, by: Option<String>) -> Result<Exit> {
    let target: Region = region.parse().map_err(|e| BadValue(format!("{region}: {e}")))?;
    let sb = loaded_sandbox(g)?;
    let store = claim_store(&sb).await;
    sb.deployment().regions.check(&target).map_err(|e| BadValue(e.message))?;
    let claim = store.strong_read().await.proven()?;
    if claim.writer == target {
        return Err(
            Refused(format!("{target} writes (epoch {}): arm the region that would take over", claim.epoch)).into()
        );
    }
    let armed_by = by.or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "operator".to_owned());
    let arming = Arming { target, epoch: claim.epoch, armed_by, at: Timestamp::now() };
    store.arm(&arming).await?;
    match g.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&arming)?),
        Output::Table => println!(
            "armed {} as the takeover target at epoch {} (by {}); a handover disarms it",
            arming.target, arming.epoch, arming.armed_by
        ),
    }
    Ok(Exit::Done)
}

pub async fn disarm(g: &Global) -> Result<Exit> {
    let store = claim_store(&loaded_sandbox(g)?).await;
    let before = store.armed().await?;
    store.disarm().await?;
    match (g.output, &before) {
        (Output::Json, _) => println!("{}", serde_json::json!({ "disarmed": before })),
        (Output::Table, Some(a)) => println!("disarmed {} (armed by {} at epoch {})", a.target, a.armed_by, a.epoch),
        (Output::Table, None) => println!("nothing was armed"),
    }
    Ok(if before.is_some() { Exit::Done } else { Exit::NothingToDo })
}
