#!/usr/bin/env node
// chopsticks for a parachain that checks its relay parent's descendants
// (cumulus-pallet-parachain-system's `RelayParentOffset`, 1 on every Asset
// Hub). chopsticks 1.5.1 mocks the relay chain's state proof for each block
// but, from a genesis, gives no descendants, and on later blocks edits the
// headers it copied without re-sealing them; the runtime then panics
// (`InvalidNumberOfDescendants`) or refuses the seal.
//
// This launcher wraps chopsticks' own `SetValidationData` inherent, and
// changes only the mocked relay chain:
//   * the relay state proof carries `Babe::Authorities`: one sr25519
//     authority whose secret is this file's fixed seed;
//   * `relayParentDescendants` is the relay parent (number and state root as
//     chopsticks mocked them) and OFFSET headers after it, chained by parent
//     hash, each with a BABE secondary-plain pre-digest for authority 0 and
//     a BABE seal, a real sr25519 signature over the header's hash.
// The runtime checks all of it as it would for a collator's block
// (`verify_relay_parent_descendants`: the count, the chain of parent hashes,
// the first header's state root against the proof, pre-digests and seals
// against `Babe::Authorities`); nothing in the runtime is changed. One
// caveat: chopsticks applies inherents with its signature host mocked
// (block-builder.js, "bypass signature check during inherent extrinsics"),
// so the seals are real signatures but go unchecked here; signed
// extrinsics are checked.
//
// Usage: node asset-hub-node.cjs [chopsticks CLI arguments]
// Environment: SOFTSTAKE_AH_RELAY_OFFSET (default 1: how many headers follow
// the relay parent; tests set 0 to show the runtime counts them).
'use strict';
const path = require('node:path');
const { cryptoWaitReady, sr25519PairFromSeed, sr25519Sign, blake2AsU8a } = require('@polkadot/util-crypto');
const { u8aToHex, hexToU8a, u8aConcat } = require('@polkadot/util');
const vd = require('@acala-network/chopsticks-core/blockchain/inherent/parachain/validation-data');

const OFFSET = Number(process.env.SOFTSTAKE_AH_RELAY_OFFSET ?? '1');
// twox128("Babe") ++ twox128("Authorities"): chopsticks' WELL_KNOWN_KEYS.AUTHORITIES.
const BABE_AUTHORITIES = '0x1cb6f36e027abb2091cfb5110ab5087f5e0621c4869aa60c02be9adcc98a0d1d';
// The mocked relay chain's only BABE authority (a test key, nothing else).
const SEED = blake2AsU8a(new TextEncoder().encode('softstake mocked relay chain babe authority'));

let pair;
const ready = cryptoWaitReady().then(() => {
  pair = sr25519PairFromSeed(SEED);
});

// Vec<(AuthorityId, BabeAuthorityWeight)>: one entry, weight 1.
const authoritiesValue = () => {
  const weight = new Uint8Array(8);
  weight[0] = 1;
  return u8aToHex(u8aConcat(new Uint8Array([1 << 2]), pair.publicKey, weight));
};

// BABE PreDigest::SecondaryPlain { authority_index: 0, slot } (codec index 2).
const preDigest = (slot) => {
  const b = new Uint8Array(1 + 4 + 8);
  b[0] = 2;
  new DataView(b.buffer).setBigUint64(5, BigInt(slot), true);
  return u8aToHex(b);
};

const sealed = (registry, fields, slot) => {
  const unsealed = registry.createType('Header', {
    ...fields,
    digest: { logs: [{ PreRuntime: ['BABE', preDigest(slot)] }] },
  });
  const signature = sr25519Sign(unsealed.hash, pair);
  return registry.createType('Header', {
    ...fields,
    digest: {
      logs: [{ PreRuntime: ['BABE', preDigest(slot)] }, { Seal: ['BABE', u8aToHex(signature)] }],
    },
  });
};

const original = vd.SetValidationData.prototype.createInherents;
vd.SetValidationData.prototype.createInherents = async function (newBlock, params) {
  await ready;
  const overrides = (params.relayChainStateOverrides ?? []).filter(([k]) => k !== BABE_AUTHORITIES);
  overrides.push([BABE_AUTHORITIES, authoritiesValue()]);
  const made = await original.call(this, newBlock, { ...params, relayChainStateOverrides: overrides });
  if (made.length === 0) return made;
  const parent = await newBlock.parentBlock;
  const meta = await parent.meta;
  const registry = meta.registry;
  const ext = registry.createType('GenericExtrinsic', made[0]);
  const data = ext.args[0].toJSON();
  if (!('relayParentDescendants' in data)) return made;
  const number = data.validationData.relayParentNumber;
  // The relay slot chopsticks wrote into the proof is past; any slot number
  // serves the seal, so take the relay block number.
  let prev = sealed(
    registry,
    {
      parentHash: u8aToHex(blake2AsU8a(u8aConcat(new TextEncoder().encode('relay'), new Uint8Array(new Uint32Array([number - 1]).buffer)))),
      number,
      stateRoot: data.validationData.relayParentStorageRoot,
      extrinsicsRoot: '0x' + '00'.repeat(32),
    },
    number,
  );
  const headers = [prev];
  for (let i = 1; i <= OFFSET; i++) {
    prev = sealed(
      registry,
      {
        parentHash: prev.hash.toHex(),
        number: number + i,
        stateRoot: u8aToHex(blake2AsU8a(u8aConcat(hexToU8a(prev.stateRoot.toHex()), new Uint8Array([i])))),
        extrinsicsRoot: '0x' + '00'.repeat(32),
      },
      number + i,
    );
    headers.push(prev);
  }
  const newData = { ...data, relayParentDescendants: headers.map((h) => h.toJSON()) };
  const args = ext.args.length === 2 ? [newData, ext.args[1].toJSON()] : [newData];
  const call = meta.tx.parachainSystem.setValidationData(...args);
  return [registry.createType('GenericExtrinsic', call).toHex()];
};

require(path.join(__dirname, 'node_modules', '@acala-network', 'chopsticks', 'chopsticks.cjs'));
