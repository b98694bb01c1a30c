// Reference vectors for softstake's Tezos adapter, made by Taquito (pinned
// in package.json / package-lock.json): forged bytes (@taquito/local-forging,
// the current protocol's encoding, reveal with the empty proof) and ed25519
// signatures over blake2b(0x03 || forged) (@taquito/signer).
// Regenerate: npm ci && npm run generate
import { LocalForger } from "@taquito/local-forging";
import { InMemorySigner } from "@taquito/signer";
import { b58Encode, PrefixV2, encodeOpHash } from "@taquito/utils";

// A throwaway key: the ed25519 seed 0x01 x 32.
const EDSK = b58Encode(new Uint8Array(32).fill(1), PrefixV2.Ed25519Seed);
const BRANCH = "BLockGenesisGenesisGenesisGenesisGenesisf79b5d1CoW2";
const BAKER = "tz1gjaF81ZRRvdzjobyfVNsAeSC6PScjfQwN";

const signer = new InMemorySigner(EDSK);
const source = await signer.publicKeyHash();
const publicKey = await signer.publicKey();
const forger = new LocalForger();

const manager = (counter, extra) => ({ source, fee: "1300", counter: String(counter), gas_limit: "3250", storage_limit: "0", ...extra });
const toSelf = (counter, amount, entrypoint) =>
  manager(counter, { kind: "transaction", amount: String(amount), destination: source, parameters: { entrypoint, value: { prim: "Unit" } } });

const cases = [
  { name: "reveal", contents: [manager(8, { kind: "reveal", public_key: publicKey })] },
  { name: "delegation", contents: [manager(9, { kind: "delegation", delegate: BAKER })] },
  { name: "undelegation", contents: [manager(10, { kind: "delegation" })] },
  { name: "stake", contents: [toSelf(11, 1000000, "stake")] },
  { name: "unstake", contents: [toSelf(12, 250000, "unstake")] },
  { name: "finalize_unstake", contents: [toSelf(13, 0, "finalize_unstake")] },
  { name: "reveal_and_delegation", contents: [manager(8, { kind: "reveal", public_key: publicKey }), manager(9, { kind: "delegation", delegate: BAKER })] },
];

const out = { generator: "@taquito/local-forging 25.0.0 (LocalForger, default protocol) + @taquito/signer 25.0.0 (InMemorySigner, watermark 0x03)", secret_key: EDSK, source, public_key: publicKey, branch: BRANCH, baker: BAKER, fee: "1300", gas_limit: "3250", storage_limit: "0", cases: [] };
for (const c of cases) {
  const forged = await forger.forge({ branch: BRANCH, contents: c.contents });
  const sig = await signer.sign(forged, new Uint8Array([3]));
  out.cases.push({ name: c.name, contents: c.contents, forged_hex: forged, signature_hex: sig.sbytes.slice(forged.length), edsig: sig.prefixSig, signed_hex: sig.sbytes, operation_hash: encodeOpHash(sig.sbytes) });
}
console.log(JSON.stringify(out, null, 2));
