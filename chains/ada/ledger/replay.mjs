// Replays a Cardano history on an independent ledger: @blaze-cardano/emulator
// (the Blaze SDK's Conway ledger emulator, not softstake's code). It checks
// what the real ledger checks of softstake's transactions: every vkey
// witness against the body hash and present for each input's payment key
// and for the stake credential of certificates and withdrawals, the minimum
// fee (a x size + b), value conserved with deposits and refunds, minimum
// ADA per output, the validity interval, stake registration and
// deregistration, and a withdrawal equal to the whole reward balance.
//
// stdin: one JSON document
//   { "params": { "min_fee_a", "min_fee_b", "key_deposit" },
//     "steps": [
//       { "utxo": { "tx_hash", "index", "address", "lovelace" } }  an output the test node made outside any signed transaction (faucet)
//       { "slot": n }                                              the ledger's slot (moves forward only; lands the mempool)
//       { "rewards": { "account", "lovelace" } }                   a reward account's balance, as the chain's reward calculation left it
//       { "tx": cbor_hex }                                         a signed transaction; it lands at the next slot step
//     ] }
// (addresses as hex bytes). stdout: one JSON document
//   { "results": [ { "step", "ok", "id" | "error" } for each tx ],
//     "utxos": [ { "tx_hash", "index", "address", "lovelace" } ],
//     "accounts": { "<reward address hex>": { "lovelace", "pool", "drep" } },
//     "deposits": "<lovelace>" }
import {
  Address,
  HexBlob,
  Transaction,
  TransactionId,
  TransactionInput,
  TransactionOutput,
  TransactionUnspentOutput,
  TxCBOR,
  Value,
  hardCodedProtocolParams,
} from "@blaze-cardano/core";
import { Emulator } from "@blaze-cardano/emulator";

const input = JSON.parse(await new Promise((resolve, reject) => {
  let s = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (d) => (s += d));
  process.stdin.on("end", () => resolve(s));
  process.stdin.on("error", reject);
}));

const p = input.params;
const emulator = new Emulator([], {
  params: {
    ...hardCodedProtocolParams,
    minFeeCoefficient: Number(p.min_fee_a),
    minFeeConstant: Number(p.min_fee_b),
    stakeKeyDeposit: Number(p.key_deposit),
  },
  slotsPerEpoch: 1_000_000_000,
});

const rewardKey = (hex) => Address.fromBytes(HexBlob(hex)).toBech32();
const results = [];

for (const [i, step] of input.steps.entries()) {
  if (step.utxo) {
    const u = step.utxo;
    emulator.addUtxo(
      new TransactionUnspentOutput(
        new TransactionInput(TransactionId(u.tx_hash), BigInt(u.index)),
        new TransactionOutput(Address.fromBytes(HexBlob(u.address)), new Value(BigInt(u.lovelace))),
      ),
    );
  } else if (step.slot !== undefined) {
    if (step.slot > emulator.clock.slot) emulator.stepForwardToSlot(step.slot);
  } else if (step.rewards) {
    const key = rewardKey(step.rewards.account);
    const acct = emulator.accounts.get(key);
    if (!acct) {
      results.push({ step: i, ok: false, error: `rewards for unregistered ${key}` });
      continue;
    }
    acct.balance = BigInt(step.rewards.lovelace);
  } else if (step.tx) {
    try {
      const tx = Transaction.fromCbor(TxCBOR(step.tx));
      const id = await emulator.submitTransaction(tx);
      results.push({ step: i, ok: true, id });
    } catch (e) {
      results.push({ step: i, ok: false, error: String(e?.message ?? e) });
    }
  } else {
    throw new Error(`step ${i}: unknown ${JSON.stringify(step)}`);
  }
}

const utxos = emulator.utxos().map((u) => ({
  tx_hash: u.input().transactionId(),
  index: Number(u.input().index()),
  address: u.output().address().toBytes(),
  lovelace: u.output().amount().coin().toString(),
}));
utxos.sort((a, b) => (a.tx_hash + a.index).localeCompare(b.tx_hash + b.index));
const accounts = {};
for (const [key, a] of emulator.accounts) {
  const hex = Address.fromBech32(key).toBytes();
  accounts[hex] = {
    lovelace: a.balance.toString(),
    pool: a.poolId ?? null,
    drep: a.drep ? JSON.stringify(a.drep.toCore(), (_, v) => (typeof v === "bigint" ? v.toString() : v)) : null,
  };
}
process.stdout.write(
  JSON.stringify({ results, utxos, accounts, deposits: emulator.depositPot.toString() }) + "\n",
);
