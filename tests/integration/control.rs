//! The control table adapter keeps the writer-claim contract on DynamoDB (moto).

use anyhow::Context;
use libtest_mimic::Trial;
use switchyard_aws::{control_table::ControlTable, sdk_config};
use switchyard_core::{ledger, ports::contract};
use switchyard_sandbox::{Sandbox, aws};
use switchyard_tests::sandbox_trial;

pub fn trials() -> Vec<Trial> {
    vec![
        sandbox_trial("control_table::an_older_epoch_never_wins_in_dynamodb", |sb| {
            Box::pin(older_epoch_never_wins(sb))
        }),
        sandbox_trial("control_table::the_ledger_keeps_its_contract_in_dynamodb", |sb| Box::pin(ledger_contract(sb))),
        sandbox_trial("control_table::the_standing_and_the_bump_are_one_conditional_write_in_dynamodb", |sb| {
            Box::pin(standing_contract(sb))
        }),
    ]
}

/// The execution ledger's contract (the same cases as the in-memory reference), on a
/// scratch table.
async fn ledger_contract(sb: &Sandbox) -> anyhow::Result<()> {
    let d = sb.deployment();
    let region = &d.regions.standby;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk_config(&sb.aws_target(), region).await);
    let table = format!("switchyard-ledger-contract-{}", std::process::id());
    aws::create_control_table(&ddb, &table, &d.tags(), &d.initial_writer_claim()).await?;
    let outcome = ledger::contract::execution_ledger(&ControlTable::new(ddb.clone(), &table)).await;
    ddb.delete_table().table_name(&table).send().await.context("deleting the scratch table")?;
    outcome.map_err(anyhow::Error::msg)
}

/// On a scratch table (the sandbox's own claim stays untouched for the other tests).
async fn older_epoch_never_wins(sb: &Sandbox) -> anyhow::Result<()> {
    let d = sb.deployment();
    let region = &d.regions.standby;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk_config(&sb.aws_target(), region).await);
    let table = format!("switchyard-contract-{}", std::process::id());
    let initial = d.initial_writer_claim();
    aws::create_control_table(&ddb, &table, &d.tags(), &initial).await?;
    let outcome = contract::claim_store(&ControlTable::new(ddb.clone(), &table), &initial, region).await;
    ddb.delete_table().table_name(&table).send().await.context("deleting the scratch table")?;
    outcome.map_err(anyhow::Error::msg)
}

/// The standby's standing (`switchyard_core::ingress`) on the claim item: conditional on its
/// version and on the claim's epoch, and one conditional write with the bump.
async fn standing_contract(sb: &Sandbox) -> anyhow::Result<()> {
    let d = sb.deployment();
    let region = &d.regions.standby;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk_config(&sb.aws_target(), region).await);
    let table = format!("switchyard-standing-contract-{}", std::process::id());
    let initial = d.initial_writer_claim();
    aws::create_control_table(&ddb, &table, &d.tags(), &initial).await?;
    let outcome = switchyard_core::ingress::contract::standing_on_the_claim(
        &ControlTable::new(ddb.clone(), &table),
        &initial,
        region,
    )
    .await;
    ddb.delete_table().table_name(&table).send().await.context("deleting the scratch table")?;
    outcome.map_err(anyhow::Error::msg)
}
