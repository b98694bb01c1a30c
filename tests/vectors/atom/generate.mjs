// Reference vectors for softstake's Cosmos Hub adapter, made by cosmjs
// (pinned in package.json / package-lock.json): SIGN_MODE_DIRECT TxRaw bytes
// from an offline signer. Regenerate: npm ci && npm run generate
import { DirectSecp256k1Wallet } from "@cosmjs/proto-signing";
import { SigningStargateClient } from "@cosmjs/stargate";
import { fromHex, toHex } from "@cosmjs/encoding";
import { sha256 } from "@cosmjs/crypto";
import { TxRaw } from "cosmjs-types/cosmos/tx/v1beta1/tx.js";

const KEY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const V1 = "cosmosvaloper1sjllsnramtg3ewxqwwrwjxfgc4n4ef9u2lcnj0";
const V2 = "cosmosvaloper156gqf9837u7d4c4678yt3rl4ls9c5vuursrrzf";
const signer = { chainId: "cosmoshub-4", accountNumber: 12345, sequence: 7 };
const fee = { amount: [{ denom: "uatom", amount: "5000" }], gas: "200000" };
const memo = "softstake";

const wallet = await DirectSecp256k1Wallet.fromKey(fromHex(KEY), "cosmos");
const [{ address }] = await wallet.getAccounts();
const client = await SigningStargateClient.offline(wallet);
// A second account (key 0x02 x 32) to receive rewards.
const [{ address: WITHDRAW_TO }] = await (await DirectSecp256k1Wallet.fromKey(new Uint8Array(32).fill(2), "cosmos")).getAccounts();

const coin = (amount) => ({ denom: "uatom", amount });
const delegate = (v, a) => ({ typeUrl: "/cosmos.staking.v1beta1.MsgDelegate", value: { delegatorAddress: address, validatorAddress: v, amount: coin(a) } });
const undelegate = (v, a) => ({ typeUrl: "/cosmos.staking.v1beta1.MsgUndelegate", value: { delegatorAddress: address, validatorAddress: v, amount: coin(a) } });
const redelegate = (from, to, a) => ({ typeUrl: "/cosmos.staking.v1beta1.MsgBeginRedelegate", value: { delegatorAddress: address, validatorSrcAddress: from, validatorDstAddress: to, amount: coin(a) } });
const withdraw = (v) => ({ typeUrl: "/cosmos.distribution.v1beta1.MsgWithdrawDelegatorReward", value: { delegatorAddress: address, validatorAddress: v } });
const setWithdraw = (to) => ({ typeUrl: "/cosmos.distribution.v1beta1.MsgSetWithdrawAddress", value: { delegatorAddress: address, withdrawAddress: to } });

// Each case: the operation as softstake's offline request names it, and
// the messages cosmjs signs for it.
const cases = [
  { name: "delegate", op: { kind: "delegate", validator: V1, amount: "1000000" }, msgs: [delegate(V1, "1000000")] },
  { name: "undelegate", op: { kind: "undelegate", validator: V1, amount: "500000" }, msgs: [undelegate(V1, "500000")] },
  { name: "redelegate", op: { kind: "redelegate", from: V1, to: V2, amount: "250000" }, msgs: [redelegate(V1, V2, "250000")] },
  { name: "claim_one", op: { kind: "claim_rewards", validators: [V1] }, msgs: [withdraw(V1)] },
  { name: "claim_all", op: { kind: "claim_rewards", validators: [V1, V2] }, msgs: [withdraw(V1), withdraw(V2)] },
  { name: "set_withdraw_address", op: { kind: "setup", step: `set_withdraw_address:${WITHDRAW_TO}` }, msgs: [setWithdraw(WITHDRAW_TO)] },
];

const out = { generator: "cosmjs 0.39.0 (@cosmjs/proto-signing, @cosmjs/stargate), DirectSecp256k1Wallet, SigningStargateClient.offline().sign()", key_hex: KEY, address, withdraw_to: WITHDRAW_TO, chain_id: signer.chainId, account_number: signer.accountNumber, sequence: signer.sequence, fee_amount: "5000", fee_denom: "uatom", gas_limit: 200000, memo, cases: [] };
// Transactions that expire: the adapter sets timeout_height on everything it
// sends, so a dropped transaction can be declared expired.
cases.push({ name: "delegate_with_timeout", timeout_height: 123456, op: { kind: "delegate", validator: V2, amount: "42" }, msgs: [delegate(V2, "42")] });
cases.push({ name: "claim_all_and_delegate", op: null, msgs: [withdraw(V1), withdraw(V2), delegate(V1, "7")] });
for (const c of cases) {
  const raw = await client.sign(address, c.msgs, fee, memo, signer, c.timeout_height === undefined ? undefined : BigInt(c.timeout_height));
  const bytes = TxRaw.encode(raw).finish();
  out.cases.push({ name: c.name, operation: c.op, timeout_height: c.timeout_height ?? 0, messages: c.msgs.map((m) => m.typeUrl), tx_hex: toHex(bytes), tx_hash: toHex(sha256(bytes)).toUpperCase() });
}
console.log(JSON.stringify(out, null, 2));
