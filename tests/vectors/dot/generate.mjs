// Reference vectors for softstake's Polkadot adapter, made by @polkadot/types
// (an offline registry from the Paseo runtime's metadata,
// chains/dot/metadata/paseo.scale, fetched from chopsticks running the
// polkadot-service 42.0.0 chain spec) and @polkadot/keyring (sr25519):
// call data and the signer payload of each staking call for the same
// nonce, mortality, tip and runtime versions. sr25519 signatures are
// randomised, so the tests compare call data and payloads and verify
// signatures instead of comparing signed bytes.
// Regenerate: npm ci && npm run generate
import { readFileSync } from "node:fs";
import { TypeRegistry, Metadata } from "@polkadot/types";
import { expandMetadata } from "@polkadot/types/metadata";
import { u8aToHex } from "@polkadot/util";
import { Keyring } from "@polkadot/keyring";
import { cryptoWaitReady } from "@polkadot/util-crypto";

await cryptoWaitReady();
const meta = readFileSync(new URL("../../../chains/dot/metadata/paseo.scale", import.meta.url));
const registry = new TypeRegistry();
const metadata = new Metadata(registry, meta);
registry.setMetadata(metadata);
const tx = expandMetadata(registry, metadata).tx;

const keyring = new Keyring({ type: "sr25519", ss58Format: 0 });
const stash = keyring.addFromUri("//SoftstakeStash");
const V1 = keyring.addFromUri("//Validator1").address;
const V2 = keyring.addFromUri("//Validator2").address;
const GENESIS = "0x" + "45".repeat(32);
const BLOCK = "0x" + "11".repeat(32);
const SPEC = 1001002, TXV = 25, NONCE = 7, BLOCK_NUMBER = 1000, PERIOD = 64;
const DOT = 10_000_000_000n;

const cases = [
  ["bond", tx.staking.bond(250n * DOT, "Staked"), { value: "2500000000000", payee: "Staked" }],
  ["bond_extra", tx.staking.bondExtra(5n * DOT), { value: "50000000000" }],
  ["nominate", tx.staking.nominate([V1, V2]), { targets: [V1, V2] }],
  ["unbond", tx.staking.unbond(3n * DOT), { value: "30000000000" }],
  ["withdraw_unbonded", tx.staking.withdrawUnbonded(0), { num_slashing_spans: 0 }],
  ["rebond", tx.staking.rebond(DOT), { value: "10000000000" }],
  ["chill", tx.staking.chill(), {}],
  ["payout_stakers", tx.staking.payoutStakers(V1, 42), { validator_stash: V1, era: 42 }],
  ["batch_all", tx.utility.batchAll([tx.staking.bondExtra(5n * DOT), tx.staking.nominate([V1])]),
    { calls: [["bond_extra", { value: "50000000000" }], ["nominate", { targets: [V1] }]] }],
  ["bond", tx.staking.bond(300n * DOT, "Stash"), { value: "3000000000000", payee: "Stash" }],
  ["bond", tx.staking.bond(300n * DOT, { Account: V2 }), { value: "3000000000000", payee: V2 }],
  ["set_payee", tx.staking.setPayee({ Account: V1 }), { payee: V1 }],
  ["proxy", tx.proxy.proxy(stash.address, null, tx.staking.bondExtra(5n * DOT)),
    { real: stash.address, inner: ["bond_extra", { value: "50000000000" }] }],
];

const era = registry.createType("ExtrinsicEra", { current: BLOCK_NUMBER, period: PERIOD });
const out = [];
for (const [name, call, args] of cases) {
  const payload = registry.createType("ExtrinsicPayload", {
    method: call.toHex(), era: era.toHex(), nonce: NONCE, tip: 0,
    specVersion: SPEC, transactionVersion: TXV, genesisHash: GENESIS, blockHash: BLOCK,
    version: 4,
  }, { version: 4 });
  const bytes = payload.toU8a({ method: true });
  out.push({ name, args, call_data: call.toHex(), signer_payload: u8aToHex(bytes) });
}

console.log(JSON.stringify({
  stash_uri: "//SoftstakeStash",
  stash_address: stash.address,
  stash_public_key: u8aToHex(stash.publicKey),
  genesis_hash: GENESIS, block_hash: BLOCK, block_number: BLOCK_NUMBER, period: PERIOD,
  spec_version: SPEC, transaction_version: TXV, nonce: NONCE, tip: 0,
  era: era.toHex(),
  cases: out,
}, null, 2));
