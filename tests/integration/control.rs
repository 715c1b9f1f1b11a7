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
        sandbox_trial("control_table::a_standing_moves_by_version_and_never_back_an_epoch_in_dynamodb", |sb| {
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

/// The standby's standing (`switchyard_core::ingress`): conditional on its version, and never
/// written from an older writer epoch over a newer one.
async fn standing_contract(sb: &Sandbox) -> anyhow::Result<()> {
    use switchyard_core::{
        ErrorName, WriterEpoch,
        ingress::{Eligibility, EligibilityStore, Standing},
    };
    let d = sb.deployment();
    let region = &d.regions.standby;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk_config(&sb.aws_target(), region).await);
    let table = format!("switchyard-standing-contract-{}", std::process::id());
    aws::create_control_table(&ddb, &table, &d.tags(), &d.initial_writer_claim()).await?;
    let store = ControlTable::new(ddb.clone(), &table);
    let outcome = async {
        anyhow::ensure!(store.read().await?.is_none(), "a fresh table records no standing");
        let at = |version, epoch, standing| Eligibility {
            version,
            epoch: WriterEpoch(epoch),
            standby: region.clone(),
            standing,
        };
        store.write(0, at(1, 2, Standing::Ineligible)).await?;
        let stale = store.write(0, at(1, 2, Standing::Eligible)).await.expect_err("version 0 again");
        anyhow::ensure!(stale.name == ErrorName::StaleEpoch, "{stale}");
        let older = store.write(1, at(2, 1, Standing::Eligible)).await.expect_err("an older epoch");
        anyhow::ensure!(older.name == ErrorName::StaleEpoch, "{older}");
        store.write(1, at(2, 2, Standing::CatchingUp)).await?;
        store.write(2, at(3, 3, Standing::Eligible)).await?;
        anyhow::ensure!(store.read().await? == Some(at(3, 3, Standing::Eligible)));
        Ok(())
    }
    .await;
    ddb.delete_table().table_name(&table).send().await.context("deleting the scratch table")?;
    outcome
}
