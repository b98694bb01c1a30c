// Builds a raw development chain spec for a runtime wasm from the runtime
// itself, as staging-chain-spec-builder does, with chopsticks' own executor
// (@acala-network/chopsticks-core, the smoldot executor): the runtime's
// default genesis config (GenesisBuilder_get_preset(None)) patched with a
// named preset (GenesisBuilder_get_preset(Some(name))), merged key by key,
// then GenesisBuilder_build_state on empty storage; the storage it writes
// plus `:code` is the raw genesis.
//
// One change to the preset, made here and nowhere else: `staking.devStakers`
// is dropped (westmint's "development" preset asks for 1,000 generated
// validators and 25,000 nominators; its two named validators stay).
//
// Usage: node ah-genesis.mjs RUNTIME.wasm PRESET OUT.json
// Prints "spec NAME VERSION" on success.
import { readFileSync, writeFileSync } from 'node:fs';
import { runTask, getRuntimeVersion } from '@acala-network/chopsticks-core/wasm-executor/index';

const [wasmPath, preset, outPath] = process.argv.slice(2);
if (!outPath) {
  console.error('usage: node ah-genesis.mjs RUNTIME.wasm PRESET OUT.json');
  process.exit(2);
}
const wasm = '0x' + readFileSync(wasmPath).toString('hex');
const version = await getRuntimeVersion(wasm);
const empty = {
  getStorage: async () => undefined,
  getNextKey: async () => undefined,
  offchainGetStorage: async () => undefined,
  offchainTimestamp: async () => 0,
  offchainRandomSeed: async () => '0x' + '00'.repeat(32),
  offchainSubmitTransaction: async () => false,
};
const call = async (method, args) => {
  const r = await runTask(
    { wasm, calls: [[method, args]], mockSignatureHost: false, allowUnresolvedImports: false, runtimeLogLevel: 0 },
    empty,
  );
  if ('Error' in r) throw new Error(`${method}: ${JSON.stringify(r.Error)}`);
  return r.Call;
};
// SCALE: a compact length prefix, and back.
const encode = (bytes) => {
  const n = bytes.length;
  let len;
  if (n < 64) len = Buffer.from([n << 2]);
  else if (n < 16384) {
    const x = (n << 2) | 1;
    len = Buffer.from([x & 0xff, x >> 8]);
  } else {
    len = Buffer.alloc(4);
    len.writeUInt32LE(((n << 2) | 2) >>> 0);
  }
  return Buffer.concat([len, bytes]);
};
const decode = (buf) => {
  const mode = buf[0] & 3;
  let n;
  let at;
  if (mode === 0) [n, at] = [buf[0] >> 2, 1];
  else if (mode === 1) [n, at] = [buf.readUInt16LE(0) >> 2, 2];
  else [n, at] = [buf.readUInt32LE(0) >>> 2, 4];
  return buf.subarray(at, at + n);
};
// Option<Vec<u8>> answers: 0x00 none, 0x01 then the bytes.
const preset_json = async (name) => {
  const arg = name === null ? '0x00' : '0x01' + encode(Buffer.from(name)).toString('hex');
  const r = Buffer.from((await call('GenesisBuilder_get_preset', [arg])).result.slice(2), 'hex');
  if (r[0] !== 1) throw new Error(`the runtime has no preset ${name}`);
  return JSON.parse(decode(r.subarray(1)).toString());
};
const merge = (a, b) => {
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const o = { ...a };
    for (const k of Object.keys(b)) o[k] = k in a ? merge(a[k], b[k]) : b[k];
    return o;
  }
  return b;
};
const patch = await preset_json(preset);
if (patch.staking) patch.staking.devStakers = null;
const config = Buffer.from(JSON.stringify(merge(await preset_json(null), patch)));
const built = await call('GenesisBuilder_build_state', ['0x' + encode(config).toString('hex')]);
// Result<(), String>: 0x00 is Ok.
if (built.result !== '0x00') {
  throw new Error(`GenesisBuilder_build_state: ${Buffer.from(built.result.slice(4), 'hex').toString()}`);
}
const top = {};
for (const [k, v] of built.storageDiff) if (v !== null) top[k] = v;
top['0x3a636f6465'] = wasm; // :code
const spec = {
  name: `${version.specName} ${preset} (softstake)`,
  id: `${version.specName}-${preset}`,
  chainType: 'Development',
  bootNodes: [],
  telemetryEndpoints: null,
  protocolId: null,
  properties: { tokenDecimals: 12, tokenSymbol: 'WND', ss58Format: 42 },
  relay_chain: 'westend-local',
  para_id: patch.parachainInfo?.parachainId ?? 1000,
  codeSubstitutes: {},
  genesis: { raw: { top, childrenDefault: {} } },
};
writeFileSync(outPath, JSON.stringify(spec));
console.log(`spec ${version.specName} ${version.specVersion}`);
process.exit(0);
