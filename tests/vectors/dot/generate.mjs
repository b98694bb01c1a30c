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

// Today's shape: Westend Asset Hub spec 1_022_000 (staking-async), live
// metadata from npm @polkadot-api/sdk-staking 0.5.0
// (chains/dot/metadata/README.md), with its transaction extensions:
// ChargeAssetTxPayment (tip, no asset), CheckMetadataHash (mode 0, no
// hash) and the empty AuthorizeCall / EthSetOrigin / StorageWeightReclaim.
const ahMeta = readFileSync(new URL("../../../chains/dot/metadata/westend-asset-hub-1022000.scale", import.meta.url));
const ahRegistry = new TypeRegistry();
const ahMetadata = new Metadata(ahRegistry, ahMeta);
ahRegistry.setMetadata(ahMetadata);
const ah = expandMetadata(ahRegistry, ahMetadata).tx;
const AH_SPEC = 1022000, AH_TXV = 16;
const WND = 1_000_000_000_000n;
const ahCases = [
  ["bond", ah.staking.bond(250n * WND, "Staked"), { value: "250000000000000", payee: "Staked" }],
  ["bond_extra", ah.staking.bondExtra(5n * WND), { value: "5000000000000" }],
  ["nominate", ah.staking.nominate([V1, V2]), { targets: [V1, V2] }],
  ["unbond", ah.staking.unbond(3n * WND), { value: "3000000000000" }],
  ["withdraw_unbonded", ah.staking.withdrawUnbonded(0), { num_slashing_spans: 0 }],
  ["rebond", ah.staking.rebond(WND), { value: "1000000000000" }],
  ["chill", ah.staking.chill(), {}],
  ["payout_stakers_by_page", ah.staking.payoutStakersByPage(V1, 42, 3), { validator_stash: V1, era: 42, page: 3 }],
  ["set_payee", ah.staking.setPayee({ Account: V1 }), { payee: V1 }],
  ["batch_all", ah.utility.batchAll([ah.staking.bondExtra(5n * WND), ah.staking.nominate([V1])]),
    { calls: [["bond_extra", { value: "5000000000000" }], ["nominate", { targets: [V1] }]] }],
  ["proxy", ah.proxy.proxy(stash.address, null, ah.staking.bondExtra(5n * WND)),
    { real: stash.address, inner: ["bond_extra", { value: "5000000000000" }] }],
  ["transfer_keep_alive", ah.balances.transferKeepAlive(V2, 7n * WND), { dest: V2, value: "7000000000000" }],
];
const ahEra = ahRegistry.createType("ExtrinsicEra", { current: BLOCK_NUMBER, period: PERIOD });
const ahOut = [];
for (const [name, call, args] of ahCases) {
  const payload = ahRegistry.createType("ExtrinsicPayload", {
    method: call.toHex(), era: ahEra.toHex(), nonce: NONCE, tip: 0, assetId: null,
    mode: 0, metadataHash: null,
    specVersion: AH_SPEC, transactionVersion: AH_TXV, genesisHash: GENESIS, blockHash: BLOCK,
    version: 4,
  }, { version: 4 });
  const bytes = payload.toU8a({ method: true });
  ahOut.push({ name, args, call_data: call.toHex(), signer_payload: u8aToHex(bytes) });
}

console.log(JSON.stringify({
  stash_uri: "//SoftstakeStash",
  stash_address: stash.address,
  stash_public_key: u8aToHex(stash.publicKey),
  genesis_hash: GENESIS, block_hash: BLOCK, block_number: BLOCK_NUMBER, period: PERIOD,
  spec_version: SPEC, transaction_version: TXV, nonce: NONCE, tip: 0,
  era: era.toHex(),
  cases: out,
  asset_hub: {
    metadata: "chains/dot/metadata/westend-asset-hub-1022000.scale",
    spec_version: AH_SPEC, transaction_version: AH_TXV,
    era: ahEra.toHex(),
    cases: ahOut,
  },
}, null, 2));
