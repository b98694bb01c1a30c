//! Every answer the adapter reads is first decoded into the official
//! client's own response type (`solana-rpc-client-api`, the types Agave's
//! RPC server serializes): an answer that does not decode is a node
//! speaking another API (or a test node that drifted), refused as a bad
//! response, never read field by field into a wrong number.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use solana_rpc_client_api::request::RpcRequest;
use solana_rpc_client_api::response::{
    EncodedTransactionWithStatusMeta, OptionalContext, Response, RpcBlockhash,
    RpcConfirmedTransactionStatusWithSignature, RpcInflationReward, RpcKeyedAccount,
    RpcPrioritizationFee, RpcSimulateTransactionResult, RpcVoteAccountStatus,
    TransactionConfirmationStatus, TransactionError, TransactionResult, UiAccount,
};

/// `getTransaction`'s answer (the client's
/// `EncodedConfirmedTransactionWithStatusMeta`, whose crate this one does
/// not depend on): the slot, the transaction with its status, the time.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // decoded to check the shape
struct ConfirmedTransaction {
    slot: u64,
    #[serde(flatten)]
    transaction: EncodedTransactionWithStatusMeta,
    block_time: Option<i64>,
}

/// `getSignatureStatuses`' entries (the client's `TransactionStatus`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // decoded to check the shape
struct SignatureStatus {
    slot: u64,
    confirmations: Option<usize>,
    status: TransactionResult<()>,
    err: Option<TransactionError>,
    confirmation_status: Option<TransactionConfirmationStatus>,
}

fn decodes<T: DeserializeOwned>(v: &Value) -> Result<(), String> {
    serde_json::from_value::<T>(v.clone())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Checks an answer to `req` against the client's type for it. A request
/// the adapter does not send is an error (so a new call gets a type).
pub fn check(req: RpcRequest, v: &Value) -> Result<(), String> {
    use RpcRequest as R;
    let r = match req {
        R::GetGenesisHash | R::SendTransaction | R::GetHealth => decodes::<String>(v),
        R::GetEpochInfo => decodes::<solana_sdk::epoch_info::EpochInfo>(v),
        R::GetEpochSchedule => decodes::<solana_sdk::epoch_schedule::EpochSchedule>(v),
        R::GetAccountInfo => decodes::<Response<Option<UiAccount>>>(v),
        R::GetBalance | R::GetStakeMinimumDelegation => decodes::<Response<u64>>(v),
        R::GetBlockTime => decodes::<Option<i64>>(v),
        R::GetBlocksWithLimit => decodes::<Vec<u64>>(v),
        R::GetProgramAccounts => decodes::<OptionalContext<Vec<RpcKeyedAccount>>>(v),
        R::GetMinimumBalanceForRentExemption | R::GetSlot => decodes::<u64>(v),
        R::GetVoteAccounts => decodes::<RpcVoteAccountStatus>(v),
        R::GetLatestBlockhash => decodes::<Response<RpcBlockhash>>(v),
        R::GetSignaturesForAddress => decodes::<Vec<RpcConfirmedTransactionStatusWithSignature>>(v),
        R::GetTransaction => decodes::<Option<ConfirmedTransaction>>(v),
        R::GetInflationReward => decodes::<Vec<Option<RpcInflationReward>>>(v),
        R::GetSignatureStatuses => decodes::<Response<Vec<Option<SignatureStatus>>>>(v),
        R::IsBlockhashValid => decodes::<Response<bool>>(v),
        R::GetRecentPrioritizationFees => decodes::<Vec<RpcPrioritizationFee>>(v),
        R::SimulateTransaction => decodes::<Response<RpcSimulateTransactionResult>>(v),
        other => Err(format!("no response type known for {other}")),
    };
    r.map_err(|e| format!("{req} answered outside the client's type: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_in_the_clients_types_pass_and_others_are_named() {
        check(RpcRequest::GetSlot, &json!(42)).unwrap();
        check(
            RpcRequest::GetBalance,
            &json!({"context": {"slot": 5}, "value": 7}),
        )
        .unwrap();
        let e = check(RpcRequest::GetBalance, &json!(7)).unwrap_err();
        assert!(e.contains("getBalance"), "{e}");
        let e = check(
            RpcRequest::GetEpochInfo,
            &json!({"epoch": 1, "slotIndex": 2}),
        )
        .unwrap_err();
        assert!(
            e.contains("getEpochInfo") && e.contains("missing field"),
            "{e}"
        );
        check(
            RpcRequest::GetInflationReward,
            &json!([null, {"epoch": 3, "effectiveSlot": 96, "amount": 10, "postBalance": 20, "commission": 5}]),
        )
        .unwrap();
        check(
            RpcRequest::GetRecentPrioritizationFees,
            &json!([{"slot": 348125, "prioritizationFee": 1000}]),
        )
        .unwrap();
        assert!(
            check(
                RpcRequest::GetRecentPrioritizationFees,
                &json!([{"slot": 1}])
            )
            .is_err()
        );
        assert!(check(RpcRequest::GetBlock, &json!({})).is_err());
    }
}
